"""The extension points: a model is a class and ``register_model``; a dataset is a loader and
``register_dataset``. Both are added here, in this one file, and then trained, checkpointed,
reloaded and evaluated through the public entry points (``train``, ``load_model``, ``slamp evaluate``)."""
import json

import pytest
import torch
from torch.utils.data import Dataset

from slamp import cli
from slamp.checkpoint import load_model
from slamp.config import ConfigError, TrainConfig, training_presets
from slamp.model_registry import MODELS, model_class, register_model
from slamp.models import PRESETS, SVG
from slamp.registry import DATASETS, DatasetSpec, dataset_spec, register_dataset
from slamp.train import train


class SlidingSquares(Dataset):
    """Clips ``(T, 1, 64, 64)`` of a bright square sliding right, one speed per index: a dataset
    whose every clip is a function of its index (as a real dataset's files are)."""

    def __init__(self, split: str, n_frames: int, size: int = 16):
        self.n_frames, self.size, self.offset = n_frames, size, {"train": 0, "val": 1000, "test": 2000}[split]

    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> torch.Tensor:
        speed, row = 1 + (index + self.offset) % 3, (7 * index) % 40
        clip = torch.zeros(self.n_frames, 1, 64, 64)
        for t in range(self.n_frames):
            left = (2 + speed * t) % (64 - self.size)
            clip[t, :, row:row + self.size, left:left + self.size] = 1.0
        return clip


def squares_clips(split, n_frames, root=None, seed=0, digits=None, count=None):
    return SlidingSquares(split, n_frames)


@pytest.fixture
def toy_registrations():
    """Register a toy model and a toy dataset; remove them afterwards (the registries are global)."""

    @register_model("toy_svg")
    class ToySVG(SVG):
        """SVG under another name: a model added from outside the package."""

    spec = register_dataset(DatasetSpec("squares", 1, (64, 64), train_clip=(2, 3), test_protocol=(2, 4),
                                        model_preset="tiny", clips=squares_clips,
                                        recipe={"batch_size": 4, "lr": 1e-3, "epochs": 1, "epoch_size": 3}))
    yield ToySVG, spec
    MODELS.pop("toy_svg", None)
    DATASETS.pop("squares", None)


def test_a_model_and_a_dataset_added_in_one_file_train_reload_and_evaluate(toy_registrations, tmp_path, capsys):
    ToySVG, spec = toy_registrations
    assert model_class("toy_svg") is ToySVG and model_class("ToySVG") is ToySVG
    assert "squares" in training_presets() and dataset_spec("squares") is spec
    config = TrainConfig.preset("squares", model="toy_svg", model_preset="tiny", workers=0, log_every=1,
                                val_every=3, val_sequences=4, val_samples=2, checkpoint_every=3,
                                out=str(tmp_path / "run"))
    assert (config.n_past, config.n_future, config.val_n_future) == (2, 3, 4)  # from the spec
    summary = train(config)
    assert summary["updates"] == 3 and summary["best_psnr"] is not None

    model, loaded = load_model(tmp_path / "run" / "last.pt")
    assert type(model) is ToySVG and loaded.dataset == "squares"

    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--sequences", "3",
                     "--num-samples", "2", "--device", "cpu", "--out", str(out)]) == 0
    written = json.loads((out / "summary.json").read_text())
    assert written["settings"]["dataset"] == "squares" and written["settings"]["n_future"] == 4
    assert written["settings"]["sequences"] == 3 and "ToySVG on squares" in capsys.readouterr().out


def test_registries_refuse_clashes_and_name_what_they_know(toy_registrations):
    with pytest.raises(ValueError, match="already registered"):
        register_model("svg")(type("Other", (SVG,), {}))
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec("squares", 1, (64, 64), (1, 1), (1, 1), "tiny", lambda *args, **kw: None))
    again = register_model("toy_svg")(type("ToySVG", (SVG,), {}))  # a notebook cell run again
    assert MODELS["toy_svg"] is again
    with pytest.raises(ValueError, match="does not exist"):
        register_dataset(DatasetSpec("other", 1, (64, 64), (1, 1), (1, 1), "no_such_preset", squares_clips))
    assert "other" not in DATASETS and "no_such_preset" not in PRESETS
    with pytest.raises(ValueError, match="choose from.*squares"):
        dataset_spec("nope")
    with pytest.raises(ConfigError, match="dataset must be one of"):
        TrainConfig(dataset="nope")
    with pytest.raises(ConfigError, match="3-channel"):  # the spec's frames against the model preset's
        TrainConfig(dataset="bair", model_preset="tiny")


def test_the_paper_datasets_are_registered_with_their_protocols_and_recipes():
    assert {name: spec.test_protocol for name, spec in DATASETS.items()} == {
        "mnist": (5, 20), "kth": (10, 30), "bair": (2, 28), "kitti": (10, 20), "cityscapes": (10, 20)}
    assert {name: (spec.channels, spec.frame_size) for name, spec in DATASETS.items()} == {
        "mnist": (1, (64, 64)), "kth": (1, (64, 64)), "bair": (3, (64, 64)), "kitti": (3, (92, 310)),
        "cityscapes": (3, (128, 256))}
    presets = training_presets()
    for name in ("kitti", "cityscapes"):  # App. C.3: lr 1e-4 until 2.4 M video samples are seen
        recipe = presets[name]
        assert recipe.lr == 1e-4 and abs(recipe.epochs * recipe.epoch_size * recipe.batch_size - 2.4e6) < 1e4
    finetune = presets["mnist_finetune"]
    assert (finetune.lr, finetune.beta, finetune.betas) == (1e-5, 5e-5, (0.7, 0.999))
    assert (presets["kth"].scheduled_sampling_k, presets["kth"].batch_size, presets["mnist"].lr) == (25.0, 20, 3e-4)


def test_every_built_in_dataset_names_a_model_preset_that_exists():
    from slamp.registry import DATASETS

    assert {name: spec.model_preset in PRESETS for name, spec in DATASETS.items()} == {name: True for name in DATASETS}
