"""slamp.viz: the Middlebury flow colour code, image rows and GIFs (notebook 01_flow_warping); the
streams of a prediction, t-SNE and diversity figures (notebook 07_latents)."""
import math

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from slamp.models import Prediction
from slamp.viz import (
    STREAM_TITLES,
    colour_wheel,
    demo_image,
    flow_legend,
    flow_to_colour,
    prediction_parts,
    save_gif,
    show_diversity,
    show_row,
    show_streams,
    show_tsne,
    stream_images,
    streams_strip,
)


matplotlib.use("Agg")


def reference_colour(u, v, max_radius):
    """Baker et al.'s colour code for one vector, written pixel by pixel from the paper's recipe:
    hue from the angle on a 55-colour wheel (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6), saturation
    from the length; independent of the vectorised code under test."""
    wheel = []
    for n, channel_up, channel_down, fixed in [(15, 1, None, 0), (6, None, 0, 1), (4, 2, None, 1),
                                               (11, None, 1, 2), (13, 0, None, 2), (6, None, 2, 0)]:
        for i in range(n):
            colour = [0.0, 0.0, 0.0]
            colour[fixed] = 1.0
            step = math.floor(255 * i / n) / 255
            if channel_up is not None:
                colour[channel_up] = step
            else:
                colour[channel_down] = 1 - step
            wheel.append(colour)
    radius = math.hypot(u, v) / max_radius
    position = (math.atan2(-v, -u) / math.pi + 1) / 2 * (len(wheel) - 1)
    k0 = math.floor(position)
    k1 = (k0 + 1) % len(wheel)
    f = position - k0
    colour = [(1 - f) * a + f * b for a, b in zip(wheel[k0], wheel[k1])]
    return [1 - radius * (1 - c) if radius <= 1 else 0.75 * c for c in colour]


def test_colour_wheel_has_the_55_middlebury_colours():
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    assert wheel[0].tolist() == [1, 0, 0]  # red
    assert wheel[15].tolist() == [1, 1, 0]  # yellow
    assert wheel[21].tolist() == [0, 1, 0]  # green
    assert wheel[25].tolist() == [0, 1, 1]  # cyan
    assert wheel[36].tolist() == [0, 0, 1]  # blue
    assert wheel[49].tolist() == [1, 0, 1]  # magenta


def test_flow_to_colour_matches_the_reference_recipe():
    torch.manual_seed(0)
    flow = torch.randn(2, 5, 7) * 3
    colour = flow_to_colour(flow)
    longest = flow.norm(dim=0).max().item()
    for y in range(5):
        for x in range(7):
            expected = reference_colour(flow[0, y, x].item(), flow[1, y, x].item(), longest)
            assert torch.allclose(colour[:, y, x], torch.tensor(expected), atol=1e-5)


def test_zero_flow_is_white_and_direction_sets_hue():
    assert torch.allclose(flow_to_colour(torch.zeros(2, 3, 3)), torch.ones(3, 3, 3))
    right = flow_to_colour(torch.tensor([1.0, 0.0]).view(2, 1, 1), max_flow=1.0)[:, 0, 0]
    assert torch.allclose(right, torch.tensor([1.0, 0.0, 0.0]), atol=0.03)
    half = flow_to_colour(torch.tensor([0.5, 0.0]).view(2, 1, 1), max_flow=1.0)[:, 0, 0]
    assert torch.allclose(half, torch.tensor([1.0, 0.5, 0.5]), atol=0.03)  # half saturated


def test_fixed_max_flow_darkens_longer_vectors():
    inside = flow_to_colour(torch.tensor([1.0, 0.0]).view(2, 1, 1), max_flow=1.0)
    beyond = flow_to_colour(torch.tensor([3.0, 0.0]).view(2, 1, 1), max_flow=1.0)
    assert torch.allclose(beyond, 0.75 * inside)


def test_batched_flow_keeps_leading_axes_and_normalises_per_image():
    flow = torch.randn(2, 3, 2, 8, 8)
    flow[1] *= 10
    colour = flow_to_colour(flow)
    assert colour.shape == (2, 3, 3, 8, 8)
    assert torch.allclose(colour[1, 0], flow_to_colour(flow[1, 0]))  # same as one at a time
    assert colour.min() >= 0 and colour.max() <= 1


def test_flow_to_colour_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        flow_to_colour(torch.zeros(3, 4, 4))


def test_legend_is_white_outside_the_unit_disk():
    legend = flow_legend(21)
    assert legend.shape == (3, 21, 21)
    assert (legend[:, 0, 0] == 1).all()
    assert torch.allclose(legend[:, 10, 10], torch.ones(3))  # centre: zero flow


def test_show_row_makes_one_axis_per_image():
    figure = show_row([demo_image(16, 16), torch.rand(1, 16, 16)], ["a", "b"])
    assert len(figure.axes) == 2
    assert [ax.get_title() for ax in figure.axes] == ["a", "b"]
    with pytest.raises(ValueError, match="expected an image"):
        show_row([torch.rand(16, 16)])


def test_save_gif_writes_every_frame_at_the_requested_scale(tmp_path):
    frames = torch.rand(5, 3, 8, 10)
    path = save_gif(frames, tmp_path / "sub" / "clip.gif", scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.size == (20, 16)
    save_gif(torch.rand(2, 1, 8, 8), tmp_path / "grey.gif")
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        save_gif(torch.rand(3, 8, 8), tmp_path / "bad.gif")


def demo_image_is_an_rgb_image_in_range():
    pattern = demo_image(20, 30)
    assert pattern.shape == (3, 20, 30)
    assert pattern.min() >= 0 and pattern.max() <= 1 and pattern.std() > 0.1


# ---- figures of notebook 07_latents: streams, t-SNE, diversity ----------------------------------
def fake_prediction(batch=2, samples=3, length=4, motion_head=True):
    """A Prediction shaped like generate's: tensors (B, S, T, ...)."""
    torch.manual_seed(0)
    shape = (batch, samples, length)
    parts = {"x_hat": torch.rand(*shape, 1, 16, 16), "x_p": torch.rand(*shape, 1, 16, 16)}
    if motion_head:
        parts.update(x_f=torch.rand(*shape, 1, 16, 16), mask=torch.rand(*shape, 1, 16, 16),
                     flow=torch.randn(*shape, 2, 16, 16))
    return Prediction(**parts)


def test_prediction_parts_picks_one_sample_of_one_sequence():
    prediction = fake_prediction()
    parts = prediction_parts(prediction, sequence=1, sample=2)
    assert list(parts) == ["x_hat", "x_p", "x_f", "mask", "flow"]
    assert torch.equal(parts["flow"], prediction.flow[1, 2]) and parts["x_hat"].shape == (4, 1, 16, 16)
    training = Prediction(x_hat=torch.rand(2, 4, 1, 16, 16), x_p=torch.rand(2, 4, 1, 16, 16))
    assert list(prediction_parts(training, 1, sample=None)) == ["x_hat", "x_p"]  # SVG: no motion head


def test_stream_images_colour_the_flow_on_one_scale_for_the_sequence():
    flow = torch.zeros(2, 2, 4, 4)
    flow[0, 0] = 1.0  # frame 0 moves right by 1 pixel, frame 1 by 2
    flow[1, 0] = 2.0
    images = stream_images(torch.rand(2, 1, 4, 4), {"flow": flow, "x_hat": torch.rand(2, 1, 4, 4)})
    assert list(images) == ["truth", "x_hat", "flow"]  # in the order of STREAM_TITLES
    assert torch.allclose(images["flow"][0], flow_to_colour(flow[0], max_flow=2.0))  # half saturated
    assert not torch.allclose(images["flow"][0], images["flow"][1])
    with pytest.raises(ValueError, match="same number of frames"):
        stream_images(torch.rand(3, 1, 4, 4), {"x_hat": torch.rand(2, 1, 4, 4)})


def test_show_streams_has_a_row_per_stream_and_a_column_per_step():
    truth = torch.rand(4, 1, 16, 16)
    fig = show_streams(truth, prediction_parts(fake_prediction()), steps=[0, 2], first_frame=5, title="best")
    assert len(fig.axes) == 6 * 2
    rows = [fig.axes[2 * r].get_ylabel() for r in range(6)]
    assert rows == [STREAM_TITLES[k] for k in ("truth", "x_hat", "x_p", "x_f", "mask", "flow")]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["5", "7"] and fig.get_suptitle() == "best"
    svg = show_streams(truth, prediction_parts(fake_prediction(motion_head=False)))
    assert len(svg.axes) == 3 * 4  # truth, x̂, x^p; every step


def test_streams_strip_puts_the_rows_side_by_side_with_white_gaps():
    parts = prediction_parts(fake_prediction())
    strip = streams_strip(torch.rand(4, 1, 16, 16), parts, gap=2)
    assert strip.shape == (4, 3, 16, 6 * 16 + 5 * 2)
    assert (strip[..., 16:18] == 1).all()  # the first gap
    assert torch.equal(strip[:, 0, :, 18:34], parts["x_hat"][:, 0])  # x̂, grey in all channels


def test_show_tsne_has_a_panel_per_space_and_names_the_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    embeddings = {"$z^f$": rng.normal(size=(30, 2)), "$z^p$": rng.normal(size=(30, 2))}
    fig = show_tsne(embeddings, labels, names=["→", "↓", "←"], title="directions")
    assert [ax.get_title() for ax in fig.axes] == ["$z^f$", "$z^p$"]
    legend = fig.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["→", "↓", "←"]
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 30
    with pytest.raises(ValueError, match=r"must be \(N, 2\) with N = 30"):
        show_tsne({"bad": rng.normal(size=(29, 2))}, labels)


def test_show_diversity_shows_truth_samples_their_mean_and_spread():
    samples = torch.rand(6, 4, 1, 16, 16)
    fig = show_diversity(torch.rand(4, 1, 16, 16), samples, steps=[1, 3], best=2)
    rows = [fig.axes[2 * r].get_ylabel() for r in range(5)]
    assert rows == ["truth", "best sample", "random sample", "mean of 6", "spread (2 std)"]
    shown_mean = fig.axes[6].get_images()[0].get_array()
    assert np.allclose(shown_mean, samples.mean(0)[1, 0].numpy(), atol=1e-6)
    assert len(show_diversity(torch.rand(4, 1, 16, 16), samples).axes) == 4 * 4  # no best: four rows
