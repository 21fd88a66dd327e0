"""slamp's SVG is the public SVG-LP code's function, and the public SVG release files open safely.

The public SVG code (edenton/svg, commit 3f19f0b) was run in a scratch folder on fixed weights,
input and noise in float64 (tests/data/public_svg/README.md); these tests rebuild the same weights,
write them as the public code saved its models (PyTorch 0.3's pickles, conv biases before BatchNorm,
storages tagged cuda:0), read them back through slamp's allow-list reader, and compare with what the
public code computed: training (per-frame BatchNorm, gradients, running statistics) and generation
(BatchNorm in training mode as its generation script runs it, and in evaluation mode), to 1e-5.
"""
import numpy as np
import pytest
import torch
from public_weights import SVG_RECORDS, recorded, svg_format_file, svg_settings, svg_weights

from slamp.checkpoint import PublicReleaseFile, load_checkpoint, load_model
from slamp.cli import main
from slamp.evaluate import PublicCodeSampler
from slamp.models import SVG
from slamp.release import convert_release, read_release, weight_names


SETTINGS = svg_settings()


def test_the_three_settings_are_recorded():
    assert SETTINGS == ["bair", "mnist", "mnist_last_frame_skip"], SVG_RECORDS


@pytest.fixture(scope="module", params=SETTINGS)
def public_svg(request, tmp_path_factory):
    """``(setting, record, path, model)``: a file in the public SVG format and its converted model (float64)."""
    setting = request.param
    path = tmp_path_factory.mktemp(setting) / f"svglp_{setting}.pth"
    svg_format_file(setting, path)
    return setting, recorded(setting, SVG_RECORDS), path, convert_release(read_release(path), torch.float64)


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array))


def assert_frames(frames: torch.Tensor, outputs: dict, key: str) -> None:
    """``frames`` (..., C, 64, 64) equal the recorded ones to 1e-5 on the pixel grid and in the frame mean."""
    rows, cols = (_tensor(outputs[k]).long() for k in ("rows", "cols"))
    expected = _tensor(outputs[key])
    found = frames[..., rows, :][..., cols]
    assert found.shape == expected.shape, (key, found.shape, expected.shape)
    assert torch.allclose(found, expected, atol=1e-5, rtol=0), (key, (found - expected).abs().max())
    assert torch.allclose(frames.mean((-2, -1)), _tensor(outputs[f"{key}_hwmean"]), atol=1e-5, rtol=0), key


def test_the_file_reads_as_the_public_svg_model(public_svg):
    setting, record, path, model = public_svg
    with path.open("rb") as file:  # the pickle comes before the storages in the legacy format
        head = file.read(1 << 22)
    assert b"torch.nn.parameter" in head and b"Variable" in head and b"cuda:0" in head  # as PyTorch 0.3 wrote
    release = read_release(path)
    assert release.family == "svg" and release.dataset == ("bair" if setting == "bair" else "mnist")
    assert isinstance(model, SVG) and not model.training
    assert model.config.skips == ("previous" if record["record"]["last_frame_skip"] else "held")
    assert model.config.z_dim == record["record"]["z"] and model.config.channels == record["record"]["C"]
    names = weight_names(release, model)
    folded = [f"{name}.{key}" for name, module in record["modules"].items() for key, _ in module["state"]
              if f"{name}.{key}" not in names and not key.endswith("num_batches_tracked")]
    # what slamp has no tensor for: exactly the conv biases before a BatchNorm (folded), the rest one to one
    assert len(folded) == len(record["bn_names"]) and all(key.endswith(".bias") for key in folded)
    assert model.num_parameters() == record["total_parameters"] - sum(
        np.prod(shape) for name, module in record["modules"].items() for key, shape in module["state"]
        if f"{name}.{key}" in folded)


def test_training_computes_the_public_loss_gradients_and_statistics(public_svg):
    """``train(x)`` of train_svg_lp.py: every module in training mode, BatchNorm on each frame batch."""
    setting, record, _, model = public_svg
    outputs, n_past = record["outputs"], record["record"]["n_past"]
    model = model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _tensor(outputs["x"])
    total, terms, prediction = model.loss(x, n_past, per_step=True, noise={"appearance": _tensor(outputs["eps_train"])})
    total.backward()
    assert_frames(prediction.x_hat.detach(), outputs, "train_frames")
    mse = ((prediction.x_hat.detach() - x[:, 1:]) ** 2).mean((0, 2, 3, 4))
    assert torch.allclose(mse, _tensor(outputs["train_mse"]), rtol=1e-6, atol=0)
    assert torch.allclose(total.detach(), _tensor(outputs["train_loss"]), rtol=1e-7, atol=0)
    assert torch.allclose(terms["kl_appearance"].detach(), _tensor(outputs["train_kld"]).sum(), rtol=1e-6, atol=0)
    # gradients, parameter by parameter (the folded biases' public gradients are round-off: < 1e-15)
    names, parameters = weight_names(read_release_of(public_svg), model), dict(model.named_parameters())
    for i, public in enumerate(record["grad_names"]):
        expected_sum, expected_norm = outputs["grad_sum"][i], outputs["grad_norm"][i]
        if public not in names:
            assert expected_norm < 1e-12, public
            continue
        grad = parameters[names[public]].grad
        assert abs(grad.sum().item() - expected_sum) <= 1e-6 * expected_norm * grad.numel() ** 0.5 + 1e-12, public
        assert grad.norm().item() == pytest.approx(expected_norm, rel=1e-6), public
    # BatchNorm's running statistics, updated once per encoder or decoder call (per frame); ours
    # hold the running mean without the folded conv bias, which training mode cancels
    weights, buffers = svg_weights(setting), dict(model.named_buffers())
    for i, public in enumerate(record["bn_names"]):
        ours = names[f"{public}.running_mean"]
        conv = public.rsplit(".", 1)[0] + "." + str(int(public.rsplit(".", 1)[1]) - 1)
        bias = weights[f"{conv}.bias"].sum().item()
        assert buffers[ours].sum().item() + bias == pytest.approx(outputs["bn_running_mean_sum"][i], rel=1e-9, abs=1e-9)
        assert buffers[ours.replace("running_mean", "running_var")].sum().item() == pytest.approx(
            outputs["bn_running_var_sum"][i], rel=1e-9)
    changed = [k for k, v in model.state_dict().items() if k.endswith("running_mean") and not torch.equal(v, before[k])]
    assert changed, "training mode must update BatchNorm's running statistics"
    model.zero_grad(set_to_none=True)
    model.load_state_dict(before)
    model.eval()


def read_release_of(public_svg):
    return read_release(public_svg[2])


def _generation_noise(outputs: dict) -> dict:
    eps = _tensor(outputs["eps_generate"])  # (B, S, T-1, z): sample s of sequence b is row b*S + s
    return {"appearance": eps.flatten(0, 1)}


def test_generation_as_the_public_generation_script(public_svg):
    """generate_svg_lp.py: encoder and decoder in training mode (BatchNorm on the batch of sequences,
    one sample at a time), LSTMs in eval mode: slamp's ``protocol="public-code"`` sampler."""
    _, record, _, model = public_svg
    outputs, n_past, samples = record["outputs"], record["record"]["n_past"], record["record"]["S"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _tensor(outputs["x"])
    with torch.no_grad():
        generated = PublicCodeSampler(model).generate(x[:, :n_past], x.shape[1] - n_past, samples,
                                                      noise=_generation_noise(outputs))
    assert_frames(generated.x_hat, outputs, "generate_trainbn_frames")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # statistics put back


def test_generation_in_evaluation_mode(public_svg):
    """Every module in eval mode: BatchNorm's running statistics, where the folded conv biases count."""
    _, record, _, model = public_svg
    outputs, n_past, samples = record["outputs"], record["record"]["n_past"], record["record"]["S"]
    x = _tensor(outputs["x"])
    generated = model.eval().generate(x[:, :n_past], x.shape[1] - n_past, samples, noise=_generation_noise(outputs))
    assert_frames(generated.x_hat, outputs, "generate_eval_frames")


def test_the_batched_training_path_matches_in_evaluation_mode(public_svg):
    """Without per-frame BatchNorm statistics (eval mode), the fast batched path computes the same
    frames as the step-by-step one: the skip rule is applied alike in both."""
    _, record, _, model = public_svg
    outputs, n_past = record["outputs"], record["record"]["n_past"]
    x, noise = _tensor(outputs["x"]), {"appearance": _tensor(outputs["eps_train"])}
    with torch.no_grad():
        batched = model.eval()(x, n_past, noise=noise).x_hat
        stepwise = model(x, n_past, per_step=True, noise=noise).x_hat
    assert torch.allclose(batched, stepwise, atol=1e-12, rtol=0)


def test_convert_and_checkpoint_accept_the_svg_file(public_svg, tmp_path):
    setting, _, path, model = public_svg
    if setting != "mnist":
        pytest.skip("one setting is enough for the plumbing")
    with pytest.raises(PublicReleaseFile):
        load_checkpoint(path)
    loaded, config = load_model(path)
    assert isinstance(loaded, SVG) and config.model == "svg" and config.model_preset == "svg_mnist"
    assert config.per_frame_batchnorm and config.lr == 2e-3
    destination = tmp_path / "converted.pt"
    assert main(["convert", str(path), str(destination)]) == 0
    state = torch.load(destination, weights_only=True)
    assert state["source"]["family"] == "svg" and state["model_class"] == "SVG"
    again, _ = load_model(destination)
    for key, value in loaded.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
