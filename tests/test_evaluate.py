"""slamp.evaluate: best-of-N picks the best sample, batching does not change the result."""
import json

import pytest
import torch

from slamp.evaluate import Evaluation, best_of_n, evaluate, score_frames
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
        return Prediction(frames=frames, appearance=frames)


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
    assert result.curves["final"]["psnr"].shape == (2, 4)
    assert (result.curves["final"]["psnr"] == 100).all()  # sample 0 is the truth itself
    assert torch.equal(result.best_frames, truth)


def test_evaluate_a_real_model_with_every_head_and_save(tmp_path):
    torch.manual_seed(0)
    model = SLAMP.from_preset("tiny")
    videos = [torch.rand(2, 6, 1, 64, 64), torch.rand(1, 6, 1, 64, 64)]
    result = evaluate(model, videos, n_past=2, n_future=4, num_samples=3, metrics=("psnr", "ssim"),
                      heads=("final", "appearance", "motion", "average"), progress=False)
    assert not model.training
    for head in ("final", "appearance", "motion", "average"):
        assert result.curves[head]["psnr"].shape == (3, 4) and result.curves[head]["ssim"].shape == (3, 4)
    assert result.best_frames.shape == (3, 4, 1, 64, 64)
    # the best of 3 is at least as good, per sequence, as every sample: check against a recount
    summary = result.summary()
    assert abs(summary["final"]["psnr"]["mean"] - result.curves["final"]["psnr"].mean().item()) < 1e-4
    folder = result.save(tmp_path / "eval")
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["settings"]["num_samples"] == 3 and "average" in saved["results"]
    assert len((folder / "per_frame.csv").read_text().splitlines()) == 1 + 4 * 2 * 4
    assert torch.load(folder / "best_samples.pt").shape == (3, 4, 1, 64, 64)


def test_best_curve_dominates_every_sample_on_average():
    torch.manual_seed(1)
    model = SLAMP.from_preset("tiny").eval()
    videos = torch.rand(2, 5, 1, 64, 64)
    torch.manual_seed(5)
    result = evaluate(model, [videos], n_past=2, n_future=3, num_samples=4, metrics=("psnr",), progress=False)
    torch.manual_seed(5)
    samples = model.generate(videos[:, :2], 3, 4).frames
    every = psnr(samples.flatten(0, 2), videos[:, None, 2:].expand_as(samples).flatten(0, 2)).view(2, 4, 3).mean(-1)
    assert torch.allclose(result.curves["final"]["psnr"].mean(1), every.max(1).values, atol=1e-5)


def test_bad_requests_are_rejected():
    model = SVG.from_preset("tiny")
    videos = [torch.rand(1, 6, 1, 64, 64)]
    with pytest.raises(ValueError, match="motion head"):
        evaluate(model, videos, 2, 3, 2, heads=("motion",), progress=False)
    with pytest.raises(ValueError, match="unknown head"):
        evaluate(model, videos, 2, 3, 2, heads=("mask",), progress=False)
    with pytest.raises(ValueError, match="T >= n_past \\+ n_future"):
        evaluate(model, videos, 4, 3, 2, progress=False)
    with pytest.raises(ValueError, match="must be >= 1"):
        evaluate(model, videos, 2, 3, 0, progress=False)
    assert isinstance(evaluate(model, videos, 2, 3, 2, progress=False), Evaluation)
