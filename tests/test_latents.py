"""slamp.latents: trained models, the explorer's state, motion labels, t-SNE and separability
(notebook 07_latents)."""
import base64

import matplotlib
import numpy as np
import pytest
import torch

import slamp.pretrained
from slamp.latents import (
    DIRECTIONS,
    Explorer,
    embed,
    explorer_widget,
    latent_symbol,
    motion_labels,
    posterior_latents,
    separability,
    trained_model,
)
from slamp.models import SLAMP, SVG


matplotlib.use("Agg")

N_PAST, N_FUTURE = 3, 5


@pytest.fixture(scope="module")
def slamp_model():
    torch.manual_seed(0)
    return SLAMP.from_preset("tiny").eval()


@pytest.fixture(scope="module")
def videos():
    torch.manual_seed(1)
    return torch.rand(3, N_PAST + N_FUTURE, 1, 64, 64)


@pytest.fixture
def explorer(slamp_model, videos):
    return Explorer(slamp_model, videos, n_past=N_PAST, seed=0)


# ---- trained_model ----------------------------------------------------------------------------
def test_trained_model_loads_the_shipped_model_when_there_is_one(monkeypatch):
    shipped = SVG.from_preset("tiny")
    monkeypatch.setattr(slamp.pretrained, "available", lambda: ["svg"])
    monkeypatch.setattr(slamp.pretrained, "load", lambda name, device="cpu": shipped)
    model, about = trained_model("svg", steps=5)
    assert model is shipped and "shipped" in about


def test_trained_model_trains_the_tiny_preset_when_nothing_is_shipped(monkeypatch):
    monkeypatch.setattr(slamp.pretrained, "available", lambda: [])
    model, about = trained_model("svg", steps=1, batch_size=2, n_frames=4, n_past=2, seed=3)
    assert isinstance(model, SVG) and not model.training and "trained here for 1 updates" in about
    torch.manual_seed(3)
    untrained = SVG.from_preset("tiny")  # the same initialisation, before the update
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), untrained.parameters())]
    assert any(changed)
    with pytest.raises(ValueError, match="unknown model 'vae'"):
        trained_model("vae")


# ---- Explorer -----------------------------------------------------------------------------------
def test_explorer_starts_at_the_first_sequence_and_step(explorer, videos):
    assert (explorer.sequence, explorer.t, explorer.n_future) == (0, 0, N_FUTURE)
    assert torch.equal(explorer.truth, videos[0, N_PAST:])
    prediction = explorer.prediction
    assert prediction.x_hat.shape == (1, 1, N_FUTURE, 1, 64, 64)
    assert set(explorer.latents) == {"appearance", "motion"}
    assert explorer.latents["motion"].shape == (N_FUTURE, 8)


def test_scrub_changes_the_frame_shown_without_generating_again(explorer):
    prediction = explorer.prediction
    first = explorer.frame()
    explorer.scrub(3)
    later = explorer.frame()
    assert explorer.prediction is prediction  # scrubbing only moves through the same future
    assert torch.equal(later["x_hat"], prediction.x_hat[0, 0, 3])
    assert torch.equal(later["truth"], explorer.truth[3])
    assert not torch.equal(first["truth"], later["truth"]) and not torch.equal(first["x_hat"], later["x_hat"])
    assert set(later) == {"truth", "x_hat", "x_p", "x_f", "mask", "flow"}
    assert later["flow"].shape == (3, 64, 64)  # colour-coded
    with pytest.raises(ValueError, match=r"t must be in \[0, 4\], found 5"):
        explorer.scrub(N_FUTURE)


@pytest.mark.parametrize("redrawn, kept", [("appearance", "motion"), ("motion", "appearance")])
def test_resample_one_stream_keeps_the_others_draw(explorer, redrawn, kept):
    before_noise = {k: v.clone() for k, v in explorer.noise.items()}
    before = explorer.latents
    explorer.resample(redrawn)
    after = explorer.latents
    assert torch.equal(explorer.noise[kept], before_noise[kept])
    assert not torch.equal(explorer.noise[redrawn], before_noise[redrawn])
    assert explorer.draws == {redrawn: 1, kept: 0}
    # The first future step's prior reads only the past: the kept stream's z is exactly the same there.
    assert torch.equal(after[kept][0], before[kept][0])
    assert not torch.allclose(after[redrawn][0], before[redrawn][0])


def test_resample_all_redraws_every_stream(explorer):
    before = {k: v.clone() for k, v in explorer.noise.items()}
    frames = explorer.prediction.x_hat
    explorer.resample()
    assert all(not torch.equal(explorer.noise[k], before[k]) for k in before)
    assert not torch.equal(explorer.prediction.x_hat, frames)
    with pytest.raises(ValueError, match=r"stream must be one of \['appearance', 'motion'\] or None, found 'colour'"):
        explorer.resample("colour")


def test_select_picks_another_sequence_with_the_same_draws(explorer, videos):
    noise = {k: v.clone() for k, v in explorer.noise.items()}
    frames = explorer.prediction.x_hat
    explorer.select(2)
    assert explorer.sequence == 2 and torch.equal(explorer.truth, videos[2, N_PAST:])
    assert all(torch.equal(explorer.noise[k], noise[k]) for k in noise)
    assert not torch.allclose(explorer.prediction.x_hat, frames)  # another past, another future
    explorer.select(0)
    assert torch.equal(explorer.prediction.x_hat, frames)  # same past and draws: same future
    with pytest.raises(ValueError, match=r"sequence must be in \[0, 2\], found 3"):
        explorer.select(3)


def test_explorer_is_reproducible_from_its_seed(slamp_model, videos):
    a, b = Explorer(slamp_model, videos, N_PAST, seed=4), Explorer(slamp_model, videos, N_PAST, seed=4)
    assert torch.equal(a.prediction.x_hat, b.prediction.x_hat)
    assert not torch.equal(Explorer(slamp_model, videos, N_PAST, seed=5).noise["motion"], a.noise["motion"])


def test_explorer_figure_shows_every_stream_and_each_latent(explorer):
    fig = explorer.select(1).scrub(2).resample("motion").figure()
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6 + 2  # six images, one bar chart per latent stream
    assert titles[:6] == ["ground truth", r"prediction $\hat x$", r"appearance $x^p$", r"motion $x^f$",
                          "mask $m$", "flow $f$"]
    assert titles[6:] == ["$z^p$ (draw 0)", "$z^f$ (draw 1)"]
    assert "sequence 1, frame 6" in fig.get_suptitle()  # frames from 1: N_PAST = 3 past, future step 2 is the 3rd
    ticks = fig.axes[7].get_xticks()
    assert ticks.min() >= 1 and all(float(tick).is_integer() for tick in ticks)  # dimensions 1, 2, ..., not 2.5
    heights = [bar.get_height() for bar in fig.axes[7].patches]
    assert np.allclose(heights, explorer.latents["motion"][2].numpy())
    matplotlib.pyplot.close(fig)


def test_explorer_of_a_one_stream_model(videos):
    model = SVG.from_preset("tiny")
    explorer = Explorer(model, videos, n_past=N_PAST, n_future=2)
    assert explorer.streams == ("appearance",) and latent_symbol(model, "appearance") == "z"
    assert set(explorer.frame()) == {"truth", "x_hat", "x_p"}
    fig = explorer.figure()
    assert len(fig.axes) == 3 + 1 and fig.axes[-1].get_title() == "$z$ (draw 0)"
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="n_past \\+ n_future <= T = 8"):
        Explorer(model, videos, n_past=N_PAST, n_future=6)


def test_the_widget_only_wires_controls_to_the_explorer(explorer):
    widget = explorer_widget(explorer)
    (sequence, _play, step), buttons = widget.children[0].children, widget.children[1].children
    assert [b.description for b in buttons] == ["redraw z^p", "redraw z^f", "redraw all"]
    step.value = 4
    assert explorer.t == 4
    sequence.value = 2
    assert explorer.sequence == 2
    motion = explorer.noise["motion"].clone()
    buttons[0].click()
    assert explorer.draws == {"appearance": 1, "motion": 0} and torch.equal(explorer.noise["motion"], motion)
    buttons[2].click()
    assert explorer.draws == {"appearance": 2, "motion": 1}


def test_the_widget_is_stored_as_a_figure_where_widgets_do_not_render(explorer):
    bundle = explorer_widget(explorer)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # a live front end shows the controls
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")  # GitHub the figure
    assert "run the cell to explore" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]


# ---- labels, latents, t-SNE, separability -------------------------------------------------------
def test_motion_labels_name_the_direction_of_each_step():
    # (row, column) corners: right, down, up-left, still, down-right
    path = np.array([[10, 10], [10, 13], [14, 13], [12, 11], [12, 11], [13, 12]], dtype=float)
    labels = motion_labels(path[None])
    assert labels.shape == (1, 5)
    assert [DIRECTIONS[k] if k >= 0 else None for k in labels[0]] == ["→", "↓", "↖", None, "↘"]
    compass = np.cumsum([[0, 0], [0, 3], [3, 1], [-1, -3], [-3, 1]], axis=0).astype(float)  # →, ↓, ←, ↑ (roughly)
    assert motion_labels(compass[None], bins=4)[0].tolist() == [0, 1, 2, 3]
    two_digits = np.stack([path, path[:, ::-1]])[None]  # digit 1 moves with rows and columns swapped
    assert motion_labels(two_digits, digit=1)[0].tolist() == [2, 0, 5, -1, 1]


def test_motion_labels_by_speed_order_slow_before_fast():
    steps = np.array([1, 1, 1, 4, 4, 4, 8, 8, 8], dtype=float)
    path = np.stack([np.zeros(10), np.concatenate([[0], np.cumsum(steps)])], -1)
    assert motion_labels(path[None], "speed", bins=3)[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="by must be 'direction' or 'speed'"):
        motion_labels(path[None], "colour")
    with pytest.raises(ValueError, match=r"\(N, D, T, 2\) or \(N, T, 2\)"):
        motion_labels(path)


def test_posterior_latents_cover_every_step_of_every_video(slamp_model):
    latents = posterior_latents(slamp_model, torch.rand(5, 4, 1, 64, 64), batch_size=2)
    assert {k: tuple(v.shape) for k, v in latents.items()} == {"appearance": (5, 3, 8), "motion": (5, 3, 8)}
    assert set(posterior_latents(SVG.from_preset("tiny"), torch.rand(1, 3, 1, 64, 64))) == {"appearance"}


def clusters(n=60, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (3, dim))
    labels = np.repeat(np.arange(3), n)
    return centres[labels] + rng.normal(0, 1, (3 * n, dim)), labels


def test_separability_is_high_on_separable_data_and_chance_on_random_labels():
    points, labels = clusters()
    clear = separability(points, labels)
    assert clear["knn_accuracy"] > 0.95 and clear["silhouette"] > 0.5
    assert clear["chance"] == pytest.approx(1 / 3) and clear["items"] == 180
    shuffled = separability(points, np.random.default_rng(1).permutation(labels))
    assert abs(shuffled["knn_accuracy"] - 1 / 3) < 0.12 and abs(shuffled["silhouette"]) < 0.1


def test_separability_leaves_out_unlabelled_and_rare_items():
    points, labels = clusters(n=20)
    labels = labels.copy()
    labels[:5] = -1  # no label
    labels[5:8] = 7  # a class with 3 < 5 items
    assert separability(points, labels)["items"] == 60 - 8
    with pytest.raises(ValueError, match="at least 2 labels"):
        separability(points[:20], np.zeros(20, dtype=int))


def test_embed_keeps_separate_clusters_separate():
    points, labels = clusters(n=30)
    embedding = embed(points, seed=0)
    assert embedding.shape == (90, 2) and np.isfinite(embedding).all()
    assert separability(embedding, labels)["knn_accuracy"] > 0.95
    assert embed(points[:7]).shape == (7, 2)  # perplexity shrinks for small inputs
