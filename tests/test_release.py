"""The public SLAMP release's checkpoints: read without running anything they name, converted into
slamp's models, which compute the public code's function (recorded outputs of the public code on
fixed weights, input and noise: tests/data/public_slamp/README.md)."""
import argparse
import pickle
import sys

import numpy as np
import pytest
import torch
from public_weights import public_format_file, recorded, recorded_datasets, saved_as_cuda, stand_in
from torch import nn

from slamp.checkpoint import CheckpointError, PublicReleaseFile, load_checkpoint, load_model
from slamp.cli import main
from slamp.models import Prediction
from slamp.release import (
    ReleaseError,
    UnsafeFileError,
    convert_release,
    load_restricted,
    read_release,
)


class RunsACommand:
    """What an attacker pickles: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_a_pickle_that_would_run_a_command_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"pixel_encoder": RunsACommand(marker)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeFileError, match="system"):  # posix.system, named
        load_restricted(path)
    with pytest.raises(CheckpointError, match="allow-list"):
        load_model(path)
    assert main(["convert", str(path), str(tmp_path / "out.pt")]) == 1
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_a_global_outside_the_list_is_named_and_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "imports.pth"
    path.write_bytes(b"\x80\x02cplanted\nThing\nq\x00.")  # protocol 2: GLOBAL planted.Thing
    with pytest.raises(UnsafeFileError, match=r"planted\.Thing"):
        load_restricted(path)
    assert not marker.exists() and "planted" not in sys.modules


def test_calling_a_named_class_is_refused():
    from slamp.release import NamedGlobal, allowed

    adam = allowed("torch.optim.adam", "Adam")
    assert isinstance(adam, NamedGlobal) and repr(adam) == "torch.optim.adam.Adam"
    with pytest.raises(UnsafeFileError, match="only reads its name"):
        adam([])
    with pytest.raises(UnsafeFileError, match="builtins.eval"):
        allowed("builtins", "eval")
    with pytest.raises(UnsafeFileError, match=r"torch\.nn\.modules\.conv\.Conv3d"):  # a torch layer the release lacks
        allowed("torch.nn.modules.conv", "Conv3d")


def _tiny_public_module():
    """A small stand-in of the public code's ``models.lstm.lstm`` with the attributes it pickles."""
    record = {"class": "models.lstm.lstm",
              "tree": [["", "models.lstm.lstm", {}], ["embed", "torch.nn.modules.linear.Linear", {}],
                       ["lstm", "torch.nn.modules.container.ModuleList", {}],
                       ["lstm.0", "torch.nn.modules.rnn.LSTMCell", {}],
                       ["output", "torch.nn.modules.container.Sequential", {}],
                       ["output.0", "torch.nn.modules.linear.Linear", {}],
                       ["output.1", "torch.nn.modules.activation.Tanh", {}]],
              "state": [["embed.weight", [4, 3]], ["embed.bias", [4]], ["lstm.0.weight_ih", [16, 4]],
                        ["lstm.0.weight_hh", [16, 4]], ["lstm.0.bias_ih", [16]], ["lstm.0.bias_hh", [16]],
                        ["output.0.weight", [2, 4]], ["output.0.bias", [2]]]}
    return record


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
@pytest.mark.parametrize("opt_as", ["namespace", "dict"])
def test_both_formats_cuda_storages_and_either_opt_are_read(tmp_path, legacy, opt_as):
    with stand_in({"static_frame_predictor": _tiny_public_module()}) as modules:
        lstm = modules["static_frame_predictor"]
        lstm.batch_size = 2  # state outside state_dict(), as the public LSTMs keep it
        lstm.hidden = [(torch.zeros(2, 4, requires_grad=True), torch.zeros(2, 4, requires_grad=True))]
        opt = argparse.Namespace(dataset="smmnist", optimizer=torch.optim.Adam, sc_prob=np.float64(0.5),
                                 device=torch.device("cpu"), channels=1, skip={1, 2})
        content = {"static_frame_predictor": lstm, "opt": opt if opt_as == "namespace" else vars(opt), "epoch": 290}
        path = tmp_path / "file.pth"
        with saved_as_cuda():
            torch.save(content, path, _use_new_zipfile_serialization=not legacy)
        expected = {k: v.clone() for k, v in lstm.state_dict().items()}
    raw = path.read_bytes()
    assert b"cuda:0" in raw  # the storages really are tagged for a GPU this machine does not have
    loaded = load_restricted(path)
    record = loaded["static_frame_predictor"]
    assert type(record).__module__ == "slamp.release" and not isinstance(record, nn.Module)
    assert record.class_path == "models.lstm.lstm" and record.batch_size == 2
    state = record.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert state[key].device.type == "cpu" and torch.equal(state[key], value)
    assert record.hidden[0][0].shape == (2, 4)
    options = loaded["opt"] if opt_as == "dict" else vars(loaded["opt"])
    assert options["sc_prob"] == 0.5 and repr(options["optimizer"]) == "torch.optim.adam.Adam"
    assert options["device"] == torch.device("cpu") and options["skip"] == {1, 2}
    assert "models.lstm" not in sys.modules  # nothing of the public code was imported


def test_a_torch_file_that_is_neither_says_what_it_holds(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3), "step": 4}, path)
    with pytest.raises(ReleaseError, match=r"a dict with keys \['step', 'weights'\]"):
        read_release(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ReleaseError, match="cannot read"):
        read_release(junk)
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_model(junk)


DATASETS = recorded_datasets()


@pytest.fixture(scope="module", params=DATASETS)
def public_file(request, tmp_path_factory):
    """A file in the public release's format for one dataset: legacy serialization, storages tagged
    cuda:0, ``opt`` a dict for KITTI/Cityscapes as their loader suggests, a Namespace otherwise."""
    dataset = request.param
    path = tmp_path_factory.mktemp(dataset) / f"slamp_{dataset}.pth"
    public_format_file(dataset, path, opt_as_dict=dataset in ("kitti", "cityscapes"))
    return dataset, path


def test_release_files_are_recognised_everywhere_a_checkpoint_is_read(public_file, tmp_path):
    dataset, path = public_file
    with path.open("rb") as file:  # the pickle comes before the storages in the legacy format
        head = file.read(1 << 22)
    assert b"_get_thnn_function_backend" in head and b"cuda:0" in head and b"cmodels." in head  # as PyTorch 1.4 wrote
    with pytest.raises(PublicReleaseFile, match=f"public SLAMP release's {dataset} checkpoint") as raised:
        load_checkpoint(path)
    assert raised.value.release.dataset == dataset
    model, config = load_model(path)
    assert config.dataset == dataset and config.model_preset == dataset
    assert model.num_parameters() == recorded(dataset)["total_parameters"]


def test_convert_writes_an_ordinary_checkpoint(public_file, tmp_path):
    dataset, path = public_file
    destination = tmp_path / "converted.pt"
    assert main(["convert", str(path), str(destination)]) == 0
    state = torch.load(destination, weights_only=True)  # an ordinary slamp checkpoint
    assert state["source"]["public_release"] == dataset
    model, _ = load_model(destination)
    direct, _ = load_model(path)
    for key, value in direct.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def _as_tensor(array):
    return torch.from_numpy(np.asarray(array))


# Ours, and the names the recorded public outputs carry (tests/data/public_release/README.md).
HEADS = (("x_hat", "final"), ("x_p", "appearance"), ("x_f", "motion"), ("mask", "mask"), ("flow", "flow"))


def assert_as_recorded(prediction, outputs: dict, prefix: str, dataset: str) -> None:
    """Each head of ``prediction`` ``(B, T, C, H, W)`` equals the recorded one to 1e-5: on the
    recorded grid of pixels (rows x cols) and in its mean over the whole frame."""
    rows, cols = (torch.from_numpy(outputs[k]).long() for k in ("rows", "cols"))
    for ours, theirs in HEADS:
        frames = getattr(prediction, ours)
        expected = _as_tensor(outputs[f"{prefix}_{theirs}"])
        assert frames.shape[:3] == expected.shape[:3], (dataset, ours, frames.shape, expected.shape)
        found = frames[..., rows, :][..., cols]
        assert torch.allclose(found, expected, atol=1e-5, rtol=0), (dataset, prefix, ours, (found - expected).abs().max())
        means = _as_tensor(outputs[f"{prefix}_{theirs}_hwmean"])
        assert torch.allclose(frames.mean((-2, -1)), means, atol=1e-5, rtol=0), (dataset, prefix, ours)


def test_converted_models_compute_the_public_code_function(public_file):
    """Teacher forcing and generation, every module in eval mode, float64: the public code's
    x̂, x^p, x^f, m and f to 1e-5."""
    dataset, path = public_file
    outputs = recorded(dataset)["outputs"]
    model = convert_release(read_release(path), torch.float64)
    x, n_past = _as_tensor(outputs["x"]), int(outputs["n_past"])
    noise = {"appearance": _as_tensor(outputs["eps_appearance"]), "motion": _as_tensor(outputs["eps_motion"])}
    with torch.no_grad():
        assert_as_recorded(model(x, noise=noise), outputs, "teacher", dataset)
        generated = model.generate(x[:, :n_past], x.shape[1] - n_past, 1, noise=noise)
    assert_as_recorded(Prediction(**{k: getattr(generated, k)[:, 0] for k, _ in HEADS}), outputs, "generate", dataset)


def test_public_code_protocol_samples_as_the_public_evaluation(public_file):
    """With BatchNorm on the batch's statistics (the public evaluate.py), the same samples; the
    model's running statistics are as before."""
    from slamp.evaluate import PublicCodeSampler

    dataset, path = public_file
    outputs = recorded(dataset)["outputs"]
    model = convert_release(read_release(path), torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, n_past = _as_tensor(outputs["x"]), int(outputs["n_past"])
    noise = {"appearance": _as_tensor(outputs["eps_appearance"]), "motion": _as_tensor(outputs["eps_motion"])}
    with torch.no_grad():
        generated = PublicCodeSampler(model).generate(x[:, :n_past], x.shape[1] - n_past, 1, noise=noise)
    assert_as_recorded(Prediction(**{k: getattr(generated, k)[:, 0] for k, _ in HEADS}), outputs, "generate_trainbn",
                       dataset)
    assert not model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_pickle_module_is_not_the_standard_one():
    from slamp.release import _restricted_pickle

    assert _restricted_pickle.Unpickler is not pickle.Unpickler


def test_init_from_a_release_file_copies_its_weights(public_file):
    from slamp.models import SLAMP
    from slamp.run import initialise_from

    dataset, path = public_file
    if dataset != "mnist":
        pytest.skip("one dataset is enough for the plumbing")
    model = initialise_from(SLAMP.from_preset("mnist", beta=5e-5), str(path))  # the fine-tuning stage's β
    converted, _ = load_model(path)
    assert all(torch.equal(value, converted.state_dict()[key]) for key, value in model.state_dict().items())


def test_notebooks_and_the_demo_show_the_paper_model_when_its_file_is_there(public_file, isolated_data, capsys):
    from slamp.pretrained import paper_or_shipped

    dataset, path = public_file
    if dataset != "mnist":
        pytest.skip("the notebooks and the demo show Moving MNIST")
    _, label = paper_or_shipped("slamp", paper="auto")
    assert label.startswith("shipped SLAMP")  # no file in the data folder: the shipped model
    assert main(["demo", "--paper", "--out", str(isolated_data / "demo")]) == 1
    assert "slamp download public mnist" in capsys.readouterr().err
    (isolated_data / "public").mkdir(parents=True)
    (isolated_data / "public" / "slamp_mnist.pth").symlink_to(path)
    model, label = paper_or_shipped("slamp", paper="auto")
    assert label == "the paper's SLAMP (public release, 290,000 updates)" and model.num_parameters() == 25_366_628
    assert paper_or_shipped("slamp", paper="off")[1].startswith("shipped SLAMP")
    assert paper_or_shipped("svg", paper="auto")[1].startswith("shipped SVG")  # the release holds SLAMP only
    with pytest.raises(ValueError, match="paper must be one of"):
        paper_or_shipped("slamp", paper="yes")
