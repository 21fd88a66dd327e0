"""slamp.evaluate: best-of-N picks the best sample, batching does not change the result; the reference
predictors (floors) are scored with the same code."""
import json
import math

import pytest
import torch

from slamp.evaluate import (
    REFERENCES,
    Evaluation,
    ReferencePredictor,
    best_of_n,
    evaluate,
    evaluate_reference,
    mean_training_frame,
    reference_frames,
    score_frames,
)
from slamp.metrics import psnr
from slamp.models import SLAMP, SVG, Prediction


class ScriptedModel(torch.nn.Module):
    """Sample k (counted over all calls for one batch) is the truth plus noise of level k: sample 0 is
    the best. The truth is smuggled in through ``truth``."""

    def __init__(self, truth):
        super().__init__()
        self.truth, self.weight, self.calls = truth, torch.nn.Parameter(torch.zeros(1)), 0

    def generate(self, past, n_future, num_samples):
        generator = torch.Generator().manual_seed(0)
        levels = torch.arange(self.calls, self.calls + num_samples, dtype=torch.float32) * 0.05
        self.calls += num_samples
        noise = torch.randn((1, num_samples, *self.truth.shape[1:]), generator=generator)
        frames = (self.truth[:, None] + levels.view(1, -1, 1, 1, 1, 1) * noise).clamp(0, 1)
        return Prediction(x_hat=frames, x_p=frames)


def test_best_of_n_picks_the_best_frame_average():
    scores = torch.tensor([[[30.0, 10.0, 10.0], [20.0, 20.0, 20.0]], [[1.0, 1.0, 1.0], [0.0, 5.0, 0.0]]])
    index, curve = best_of_n(scores)
    assert index.tolist() == [1, 1] and curve.tolist() == [[20, 20, 20], [0, 5, 0]]
    index, _ = best_of_n(scores, higher_is_better=False)
    assert index.tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"\(B, S, T\)"):
        best_of_n(torch.rand(3, 4))


def test_score_frames_scores_each_sample_and_frame():
    target = torch.rand(2, 3, 1, 16, 16)
    samples = torch.stack([target, (target + 0.1).clamp(max=1)], 1)
    scores = score_frames(samples, target, "psnr")
    assert scores.shape == (2, 2, 3) and (scores[:, 0] == 100).all() and (scores[:, 1] < 100).all()
    with pytest.raises(ValueError, match="do not match"):
        score_frames(samples, target[:, :2], "psnr")
    with pytest.raises(ValueError, match="unknown metric"):
        score_frames(samples, target, "mae")


@pytest.mark.parametrize("max_batch", [1, 3, 64])
def test_evaluate_keeps_the_best_sample_whatever_the_chunking(max_batch):
    torch.manual_seed(0)
    videos = torch.rand(2, 7, 1, 16, 16)
    truth = videos[:, 3:]
    result = evaluate(ScriptedModel(truth), [videos], n_past=3, n_future=4, num_samples=6, metrics=("psnr",),
                      max_batch=max_batch, progress=False)
    assert result.curves["x_hat"]["psnr"].shape == (2, 4)
    assert (result.curves["x_hat"]["psnr"] == 100).all()  # sample 0 is the truth itself
    assert torch.equal(result.best_frames, truth)


def test_evaluate_a_real_model_with_every_head_and_save(tmp_path):
    torch.manual_seed(0)
    model = SLAMP.from_preset("tiny")
    videos = [torch.rand(2, 6, 1, 64, 64), torch.rand(1, 6, 1, 64, 64)]
    result = evaluate(model, videos, n_past=2, n_future=4, num_samples=3, metrics=("psnr", "ssim"),
                      heads=("x_hat", "x_p", "x_f", "average"), progress=False)
    assert not model.training
    for head in ("x_hat", "x_p", "x_f", "average"):
        assert result.curves[head]["psnr"].shape == (3, 4) and result.curves[head]["ssim"].shape == (3, 4)
    assert result.best_frames.shape == (3, 4, 1, 64, 64)
    # the best of 3 is at least as good, per sequence, as every sample: check against a recount
    summary = result.summary()
    assert abs(summary["x_hat"]["psnr"]["mean"] - result.curves["x_hat"]["psnr"].mean().item()) < 1e-4
    folder = result.save(tmp_path / "eval")
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["settings"]["num_samples"] == 3 and "average" in saved["results"]
    assert len((folder / "per_frame.csv").read_text().splitlines()) == 1 + 4 * 3 * 4  # psnr, ssim, diversity
    rows = (folder / "per_sequence.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 2 * 3  # heads x metrics x sequences
    head, metric, index, score = rows[1].split(",")
    assert (head, metric, index) == ("x_hat", "psnr", "0")
    assert abs(float(score) - result.curves["x_hat"]["psnr"][0].mean().item()) < 1e-5
    rows = (folder / "per_sequence_frame.csv").read_text().splitlines()
    assert rows[0] == "head,metric,sequence,frame,score" and len(rows) == 1 + 4 * 2 * 3 * 4  # ... x frames
    head, metric, index, frame, score = rows[1 + 4 + 2].split(",")  # sequence 1 (counted from 0), frame 3
    assert (head, metric, index, frame) == ("x_hat", "psnr", "1", "3")
    assert abs(float(score) - result.curves["x_hat"]["psnr"][1, 2].item()) < 1e-5
    assert torch.load(folder / "best_samples.pt").shape == (3, 4, 1, 64, 64)


def test_best_curve_dominates_every_sample_on_average():
    torch.manual_seed(1)
    model = SLAMP.from_preset("tiny").eval()
    videos = torch.rand(2, 5, 1, 64, 64)
    torch.manual_seed(5)
    result = evaluate(model, [videos], n_past=2, n_future=3, num_samples=4, metrics=("psnr",), progress=False)
    torch.manual_seed(5)
    samples = model.generate(videos[:, :2], 3, 4).x_hat
    every = psnr(samples.flatten(0, 2), videos[:, None, 2:].expand_as(samples).flatten(0, 2)).view(2, 4, 3).mean(-1)
    assert torch.allclose(result.curves["x_hat"]["psnr"].mean(1), every.max(1).values, atol=1e-5)
    # The samples' spread: the per-pixel standard deviation over the 4 samples, averaged over pixels.
    spread = samples.std(1, unbiased=False).mean((2, 3, 4))
    assert torch.allclose(result.diversity["x_hat"], spread, atol=1e-5) and (spread > 0).all()
    assert abs(result.summary()["x_hat"]["diversity"]["mean"] - spread.mean().item()) < 1e-5


def test_a_deterministic_predictor_has_no_diversity():
    videos = torch.rand(3, 6, 1, 16, 16)
    result = evaluate_reference("last_frame", [videos], n_past=2, n_future=4)
    assert result.diversity["x_hat"].shape == (3, 4) and (result.diversity["x_hat"] == 0).all()


def test_bad_requests_are_rejected():
    model = SVG.from_preset("tiny")
    videos = [torch.rand(1, 6, 1, 64, 64)]
    with pytest.raises(ValueError, match="motion head"):
        evaluate(model, videos, 2, 3, 2, heads=("x_f",), progress=False)
    with pytest.raises(ValueError, match="unknown head"):
        evaluate(model, videos, 2, 3, 2, heads=("mask",), progress=False)
    with pytest.raises(ValueError, match="T >= n_past \\+ n_future"):
        evaluate(model, videos, 4, 3, 2, progress=False)
    with pytest.raises(ValueError, match="must be >= 1"):
        evaluate(model, videos, 2, 3, 0, progress=False)
    assert isinstance(evaluate(model, videos, 2, 3, 2, progress=False), Evaluation)


# --- Reference predictors (the floors): same protocol, same code ------------------------------


def test_black_frame_scores_the_psnr_computed_by_hand():
    # Future frames: left half white, right half black -> a black prediction misses half the pixels
    # by 1: MSE 0.5, PSNR 10 log10(1 / 0.5) = 3.0103 dB. A frame of 0.5 everywhere: MSE 0.25, 6.0206 dB.
    video = torch.zeros(2, 6, 1, 16, 16)
    video[0, :, :, :, :8] = 1.0
    video[1] = 0.5
    result = evaluate_reference("black", [video], n_past=2, n_future=4, metrics=("psnr",))
    curve = result.curves["x_hat"]["psnr"]
    assert curve.shape == (2, 4)
    assert torch.allclose(curve[0], torch.full((4,), 10 * math.log10(2)), atol=1e-4)
    assert torch.allclose(curve[1], torch.full((4,), 10 * math.log10(4)), atol=1e-4)
    assert result.summary()["x_hat"]["psnr"]["mean"] == pytest.approx(5 * math.log10(8), abs=1e-4)


def test_last_frame_on_a_still_video_is_perfect():
    torch.manual_seed(0)
    still = torch.rand(3, 1, 1, 16, 16).repeat(1, 7, 1, 1, 1)
    summary = evaluate_reference("last_frame", [still], 3, 4).summary()["x_hat"]
    assert summary["psnr"]["mean"] == 100  # the cap for identical frames
    assert summary["ssim"]["mean"] == pytest.approx(1, abs=1e-5)
    moving = torch.rand(2, 7, 1, 16, 16)
    assert torch.equal(reference_frames("last_frame", moving[:, :3], 4), moving[:, 2:3].expand(-1, 4, -1, -1, -1))


def test_reference_frames_shapes_and_errors():
    past = torch.rand(2, 3, 1, 8, 8)
    assert torch.equal(reference_frames("black", past, 5), torch.zeros(2, 5, 1, 8, 8))
    mean = torch.full((1, 8, 8), 0.3)
    frames = reference_frames("mean_frame", past, 5, mean_frame=mean)
    assert frames.shape == (2, 5, 1, 8, 8) and torch.equal(frames, torch.full((2, 5, 1, 8, 8), 0.3))
    with pytest.raises(ValueError, match="needs mean_frame"):
        reference_frames("mean_frame", past, 5)
    with pytest.raises(ValueError, match=r"mean_frame must be \(C, H, W\) = \(1, 8, 8\)"):
        reference_frames("mean_frame", past, 5, mean_frame=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"mean_frame must be \(C, H, W\)"):
        reference_frames("mean_frame", past, 5, mean_frame=torch.zeros(8, 8))
    with pytest.raises(ValueError, match="unknown reference 'zeros'"):
        reference_frames("zeros", past, 5)
    with pytest.raises(ValueError, match=r"past \(B, n_past, C, H, W\)"):
        reference_frames("black", past[0], 5)
    with pytest.raises(ValueError, match="n_future >= 1"):
        reference_frames("black", past, 0)
    with pytest.raises(ValueError, match="needs mean_frame"):  # before any test batch is read
        evaluate_reference("mean_frame", [], 2, 3)


def test_mean_training_frame_from_tensors_datasets_and_streams():
    clips = torch.rand(6, 4, 1, 8, 8)
    assert torch.allclose(mean_training_frame(clips), clips.mean((0, 1)))
    assert torch.allclose(mean_training_frame(clips, num_clips=2), clips[:2].mean((0, 1)))
    dataset = list(clips)  # a map-style dataset: clips at evenly spaced indices 0, 5
    assert torch.allclose(mean_training_frame(dataset, num_clips=2), clips[[0, 5]].mean((0, 1)))
    batches = iter([clips[:4], clips[4:]])  # a stream of batches: its first 5 clips
    assert torch.allclose(mean_training_frame(batches, num_clips=5), clips[:5].mean((0, 1)), atol=1e-6)
    assert mean_training_frame(clips).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="num_clips must be >= 1"):
        mean_training_frame(clips, num_clips=0)
    with pytest.raises(ValueError, match="dataset is empty"):
        mean_training_frame([])
    with pytest.raises(ValueError, match=r"\(T, C, H, W\) or batches"):
        mean_training_frame([torch.rand(8, 8)])


def test_the_default_mean_frame_is_made_from_training_digits_only(monkeypatch):
    import slamp.data.moving_mnist as moving_mnist

    asked = []
    real = moving_mnist.load_digits
    monkeypatch.setattr(moving_mnist, "load_digits", lambda split="train", *a, **k: asked.append(split) or real(split, *a, **k))
    first, second = mean_training_frame(num_clips=8), mean_training_frame(num_clips=8)
    assert asked == ["train", "train"]  # never the test digits
    assert first.shape == (1, 64, 64) and torch.equal(first, second)  # a fixed seed: the same frame
    assert 0 < first.mean() < 0.3 and first.min() >= 0 and first.max() <= 1


class RepeatingModel(torch.nn.Module):
    """A stub model whose every sample is ``frames_of(past, n_future)``, like a reference's."""

    def __init__(self, frames_of):
        super().__init__()
        self.frames_of, self.weight = frames_of, torch.nn.Parameter(torch.zeros(1))

    def generate(self, past, n_future, num_samples):
        frames = self.frames_of(past, n_future)
        return Prediction(x_hat=frames[:, None].expand(-1, num_samples, -1, -1, -1, -1), x_p=frames)


@pytest.mark.parametrize("name", REFERENCES)
def test_evaluate_reference_agrees_with_evaluate_on_a_model_that_predicts_the_same(name):
    torch.manual_seed(0)
    videos = [torch.rand(3, 7, 1, 16, 16), torch.rand(2, 7, 1, 16, 16)]
    mean = torch.rand(1, 16, 16)
    stub = RepeatingModel(lambda past, n: reference_frames(name, past, n, mean))
    expected = evaluate(stub, videos, 3, 4, num_samples=3, metrics=("psnr", "ssim"), progress=False)
    found = evaluate_reference(name, videos, 3, 4, metrics=("psnr", "ssim"), mean_frame=mean)
    for metric in ("psnr", "ssim"):
        assert torch.allclose(found.curves["x_hat"][metric], expected.curves["x_hat"][metric])
    assert found.summary().keys() == expected.summary().keys() == {"x_hat"}
    assert found.summary()["x_hat"].keys() == expected.summary()["x_hat"].keys()
    assert found.settings["num_samples"] == 1 and found.settings["model"] == f"reference:{name}"
    assert found.best_frames is None  # deterministic: nothing to keep unless asked
    kept = evaluate_reference(name, videos, 3, 4, mean_frame=mean, keep_best=True)
    assert torch.equal(kept.best_frames[:3], reference_frames(name, videos[0][:, :3], 4, mean))


def test_a_reference_is_a_model_with_generate():
    past = torch.rand(2, 3, 1, 8, 8)
    futures = ReferencePredictor("last_frame").generate(past, n_future=4, num_samples=5).x_hat
    assert futures.shape == (2, 5, 4, 1, 8, 8) and torch.equal(futures[:, 4, 3], past[:, -1])
    with pytest.raises(ValueError, match="unknown reference"):
        ReferencePredictor("mean")


def test_the_fast_sampler_chooses_what_the_one_at_a_time_protocol_chooses_for_the_same_noise():
    """evaluate samples from a copy with BatchNorm folded into the convolutions, all samples of a
    sequence in one call with its true frames encoded once, on a CPU its decoders' output layers
    folded; the public code draws one sample per call on the model as trained. For the same noise:
    the same futures (to rounding), the same best samples, the same scores."""
    from slamp.evaluate import best_of_n, score_frames
    from slamp.kernels import FoldedTransposedConv, fast_sampler, fold_batchnorm
    from slamp.models import SLAMP

    sampler = fast_sampler(SLAMP.from_preset("tiny"), "cpu")
    assert isinstance(sampler.pixel_decoder.out, FoldedTransposedConv) and isinstance(sampler.flow_decoder.out, FoldedTransposedConv)
    assert isinstance(sampler.pixel_decoder.head[0], FoldedTransposedConv)  # from 1x1: a linear layer
    assert isinstance(fast_sampler(SLAMP.from_preset("tiny"), "cuda").pixel_decoder.out, torch.nn.ConvTranspose2d)

    torch.manual_seed(0)
    model = SLAMP.from_preset("tiny").eval()
    for module in model.modules():  # statistics a trained model would have: folding them is not a no-op
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 1.5)
    videos, samples = torch.rand(2, 7, 1, 64, 64), 5
    noise = model.draw_noise(2 * samples, 3 - 1 + 4)
    with torch.inference_mode():
        fast = fast_sampler(model, "cpu").generate(videos[:, :3], 4, samples, noise=noise).x_hat
    with torch.no_grad():
        looped = torch.cat([model.generate(videos[:, :3], 4, 1, noise={k: v[s::samples] for k, v in noise.items()}).x_hat
                            for s in range(samples)], 1)
    assert fast.shape == looped.shape == (2, samples, 4, 1, 64, 64)
    assert torch.allclose(fast, looped, atol=1e-5) and not torch.equal(fast[:, 0], fast[:, 1])
    (index_fast, curve_fast), (index_looped, curve_looped) = (best_of_n(score_frames(f, videos[:, 3:], "psnr"), True)
                                                              for f in (fast, looped))
    assert torch.equal(index_fast, index_looped) and torch.allclose(curve_fast, curve_looped, atol=1e-3)
    def norms(net):
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())

    assert norms(fold_batchnorm(model)) == 0 and norms(model) > 10  # every one folded, in a copy


@pytest.mark.parametrize("layer, height, width, output_size", [
    (dict(in_channels=8, out_channels=1, kernel_size=4, stride=2, padding=1), 8, 8, None),  # DCGAN
    (dict(in_channels=8, out_channels=2, kernel_size=4, stride=2, padding=1, bias=False), 8, 8, None),
    (dict(in_channels=8, out_channels=3, kernel_size=3, stride=1, padding=1), 9, 7, None),  # VGG
    (dict(in_channels=8, out_channels=3, kernel_size=3, stride=2, padding=1), 5, 8, (10, 15)),  # conv, odd size
    (dict(in_channels=8, out_channels=6, kernel_size=4, stride=1, padding=0), 1, 1, None),  # a head: 1x1 in
], ids=["dcgan", "no-bias", "vgg", "conv", "head"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels-last"])
def test_a_folded_transposed_convolution_is_the_transposed_convolution(layer, height, width, output_size, layout):
    from slamp.kernels import FoldedTransposedConv

    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(**layer)
    x = torch.randn(3, layer["in_channels"], height, width).contiguous(memory_format=layout)
    expected = conv(x, output_size=output_size)
    folded = FoldedTransposedConv(conv)(x, output_size=output_size)
    assert folded.shape == expected.shape and torch.allclose(folded, expected, atol=1e-5)
    assert not torch.equal(expected, torch.zeros_like(expected))


@pytest.mark.parametrize("layer", [dict(in_channels=8, out_channels=1, kernel_size=3, padding=1),  # a mask net's last
                                   dict(in_channels=4, out_channels=2, kernel_size=5, padding=1, bias=False)],
                         ids=["mask", "5x5-no-bias"])
def test_a_folded_convolution_is_the_convolution(layer):
    from slamp.kernels import folded_convolution

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(**layer)
    x = torch.randn(3, layer["in_channels"], 9, 12).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(folded_convolution(conv)(x), conv(x), atol=1e-5)
    with pytest.raises(ValueError, match="only stride-1"):
        folded_convolution(torch.nn.Conv2d(4, 1, 3, stride=2))


def test_the_fast_sampler_folds_the_mask_nets_last_layer_from_16_channels():
    from slamp.kernels import FoldedTransposedConv, fast_sampler
    from slamp.models import SLAMP

    wide = fast_sampler(SLAMP.from_preset("tiny"), "cpu").mask_net.net[-2]  # 16 channels
    narrow = fast_sampler(SLAMP.from_preset("cpu"), "cpu").mask_net.net[-2]  # 8 channels: oneDNN is faster
    assert isinstance(wide, FoldedTransposedConv) and isinstance(narrow, torch.nn.Conv2d)


def test_only_plain_transposed_convolutions_fold():
    from slamp.kernels import FoldedTransposedConv

    with pytest.raises(ValueError, match="only plain"):
        FoldedTransposedConv(torch.nn.ConvTranspose2d(4, 2, 3, groups=2))


def test_the_scores_do_not_depend_on_how_the_samples_are_chunked():
    """All of a batch's noise is drawn at once: 2 futures per call or all 12 give the same result
    (the default chunk differs between a CPU and a GPU)."""
    from slamp.models import SLAMP

    model = SLAMP.from_preset("tiny").eval()
    videos = torch.rand(2, 6, 1, 64, 64)
    results = []
    for max_batch in (2, 12):
        torch.manual_seed(3)
        results.append(evaluate(model, [videos], 3, 3, 6, metrics=("psnr",), max_batch=max_batch, progress=False))
    assert torch.allclose(results[0].curves["x_hat"]["psnr"], results[1].curves["x_hat"]["psnr"], atol=1e-4)
    assert torch.allclose(results[0].best_frames, results[1].best_frames, atol=1e-5)
