# %% [markdown]
# # 01 · Flow warping
#
# SLAMP predicts the next frame twice. The *appearance* head paints it from scratch; the *motion*
# head predicts an optical-flow field $f_{t-1:t}$ and moves the pixels of the previous frame along it:
#
# $$x^f_t = \mathcal{W}\big(x_{t-1},\, f_{t-1:t}\big).$$
#
# *Paper: Sec. 3.2 (the motion prediction, warping by a spatial transformer), App. C.2 (the flow
# decoder: the pixel decoder with two output channels) and App. E.1 (how the flow is visualised).*
#
# This notebook builds $\mathcal{W}$, the warping operator, and the colour code used to look at
# flow fields. Everything marked `#| export` here becomes `slamp.warp` and `slamp.viz`.
#
# **You will learn:** why SLAMP warps *backward*; how pixel coordinates map to the $[-1, 1]$ grid of
# `torch.nn.functional.grid_sample`; what happens where the flow points outside the image; how the
# Middlebury colour wheel encodes a flow field; and why a differentiable warp lets a network learn
# flow from pixels alone, with no flow labels.

# %%
# Setup. On Colab, install slamp from its repository (it carries its trained models, so nothing
# else is downloaded; SLAMP_REPO overrides where from). Then seed, and pick the GPU when present.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_REPO", "git+https://github.com/slamp-project/slamp")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"

# %%
#| default_exp warp

# %%
import os

import matplotlib.pyplot as plt
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0);

# %% [markdown]
# ## Backward, not forward
#
# There are two ways to move an image $x$ along a flow field.
#
# * **Forward warping** (splatting) sends every source pixel $p$ to $p + f(p)$. Several pixels may
#   land on the same target and some targets receive nothing, leaving *holes*.
# * **Backward warping** asks, for every *target* pixel $p$, where it came from, and reads the
#   source there:
#
# $$\mathcal{W}(x, f)(p) = x\big(p + f(p)\big).$$
#
# Every target pixel gets exactly one value, and when $p + f(p)$ falls between pixels we
# interpolate bilinearly from the four neighbours $q$:
#
# $$x(s) = \sum_{q} \max(0, 1 - |s_x - q_x|)\,\max(0, 1 - |s_y - q_y|)\; x(q).$$
#
# The weights are piecewise linear in $s = p + f(p)$, so the output is differentiable in the flow:
# this is what lets SLAMP learn $f_{t-1:t}$ from a pixel loss. SLAMP's flow therefore points **from
# the target frame to the source frame**, in **pixel units**: channel 0 is the horizontal
# displacement $f_x$ (columns), channel 1 the vertical $f_y$ (rows), as in the paper's public code.
#
# **The paper's words and its arrays.** Sec. 3.2 names the flow $f_{t-1:t}$ and describes it as
# the motion "from the previous frame $t-1$ to the target frame $t$": that is what the flow
# *means*. What the network outputs, and what `warp` reads, is the backward field: at each pixel
# $p$ of the target $x_t$, the displacement to where that pixel was in $x_{t-1}$. App. E.1 says so
# ("we predict flow from the target frame to the current frame and apply inverse warping"). The
# two differ by a sign: **a digit moving right by 2 pixels has $f = (-2, 0)$**, so the colour wheel
# below shows it in the colour of *left*. The paper's flow figures (Figs. 20, 26, 30) are drawn the
# same way and warn about it; `07_latents` shows the flow of the trained SLAMP in this colour code.
#
# ## From pixels to `grid_sample` coordinates
#
# `grid_sample` reads an image at locations given in normalised coordinates, $-1$ at one edge and
# $+1$ at the other. With `align_corners=True`, $-1$ and $+1$ are the *centres* of the first and
# last pixels, so column $i \in \{0, \dots, W-1\}$ sits at
#
# $$u = \frac{2i}{W - 1} - 1 ,$$
#
# and likewise for rows with $H$. We build the pixel grid, add the flow, and normalise.

# %%
#| export
"""Backward warping of frames by optical flow in pixel units (SLAMP's motion head)."""
import math

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "border", "reflection")
# A sample may overshoot the image by this many pixels and still count as inside: the public
# SLAMP code warps an all-ones image and keeps pixels whose value is >= 0.9999, i.e. 1e-4 px.
INSIDE_TOLERANCE = 1e-4


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates of an image, shape ``(2, H, W)``: channel 0 is x (column), 1 is y (row)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys])


# %% [markdown]
# A grid of a 2×3 image: the first channel counts columns, the second rows.

# %%
pixel_grid(2, 3)

# %% [markdown]
# ## What happens outside the image
#
# Where $p + f(p)$ leaves the image there is nothing to read. The public SLAMP code zero-pads and
# then goes one step further: it warps an all-ones image the same way and sets to 0 every pixel
# whose warped "one" fell below 0.9999, so a pixel is either read from inside the image or black —
# never a bilinear blend of image and padding. We implement the same rule by testing the sampling
# coordinates directly (same result up to $10^{-4}$ px, half the `grid_sample` calls), and also offer
# `grid_sample`'s `border` and `reflection` modes, which replicate or mirror the edge instead.
#
# The public code also clamps the warped frame to $[0, 1]$. Bilinear interpolation is a convex
# combination of input pixels, so for frames in $[0, 1]$ that clamp never changes anything; `warp`
# leaves values untouched.

# %% [markdown]
# **Exercise: `warp`**
#
# Write the three lines of `warp` that sample `frames` at `p + flow(p)`: the pixel grid plus the
# flow (in pixels), converted to `grid_sample`'s $[-1, 1]$ coordinates (x first), and the bilinear
# sample with the given `padding`. Shapes: frames `(B, C, H, W)` or `(B, T, C, H, W)`, flow
# `(B, 2, H, W)` or `(B, T, 2, H, W)` → frames' shape. Checked with zero, integer and half-pixel
# flows, both paddings and a video of flows. The lines after the blank read two of your names:
# `grid`, the normalised sampling positions `(N, H, W, 2)` with x first (N = B·T images, as in
# `images`), and `out`, the sampled images `(N, C, H, W)`; `size` (width − 1, height − 1) is there
# for the conversion.
#
# The cell after the function runs the grader's own checks on it, `check(warp)`: it prints ✓ when
# they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
def _check_warp_inputs(frames: torch.Tensor, flow: torch.Tensor, padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, found {padding!r}")
    if frames.ndim not in (4, 5):
        raise ValueError(f"frames must be (B, C, H, W) or (B, T, C, H, W), found shape {tuple(frames.shape)}")
    if flow.ndim != frames.ndim or flow.shape[-3] != 2:
        want = "(B, 2, H, W)" if frames.ndim == 4 else "(B, T, 2, H, W)"
        raise ValueError(f"flow must be {want} to match frames {tuple(frames.shape)}, found {tuple(flow.shape)}")
    if flow.shape[:-3] != frames.shape[:-3] or flow.shape[-2:] != frames.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} and frames {tuple(frames.shape)} differ outside the channel axis")
    if min(frames.shape[-2:]) < 2:
        raise ValueError(f"frames must be at least 2x2 pixels, found {tuple(frames.shape[-2:])}")
    if not (frames.is_floating_point() and flow.is_floating_point()):
        raise ValueError(f"frames and flow must be floating point, found {frames.dtype} and {flow.dtype}")


def warp(frames: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Backward-warp ``frames`` by ``flow``: ``out[..., y, x] = frames[..., y + fy, x + fx]``.

    Args:
        frames: ``(B, C, H, W)`` or ``(B, T, C, H, W)`` images.
        flow: ``(B, 2, H, W)`` or ``(B, T, 2, H, W)`` displacements in pixels, pointing from each
            target pixel to where it is read in ``frames``; channel 0 is x (columns), 1 is y (rows).
        padding: where a sample falls outside the image: ``"zeros"`` (the paper's rule: the pixel
            becomes 0), ``"border"`` (nearest edge pixel) or ``"reflection"`` (mirrored).

    Returns:
        The warped frames, same shape and dtype as ``frames``; bilinear, differentiable in both
        inputs. Coordinates are computed in at least float32, so that under bf16 autocast the
        sampling positions keep their sub-pixel accuracy.
    """
    _check_warp_inputs(frames, flow, padding)
    *lead, channels, height, width = frames.shape
    dtype = torch.promote_types(frames.dtype, torch.float32)  # bf16/fp16 -> fp32, fp64 stays
    images = frames.reshape(-1, channels, height, width).to(dtype)
    size = torch.empty(1, 2, 1, 1, device=frames.device, dtype=dtype)  # filled on the device: a copy from
    size[:, 0], size[:, 1] = width - 1, height - 1                     # Python data would stop a CUDA graph
    # BEGIN SOLUTION warp
    coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)
    grid = (2 * coords / size - 1).permute(0, 2, 3, 1)  # (N, H, W, 2), x first, as grid_sample wants
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=True)
    # END SOLUTION
    if padding == "zeros":  # inside means |u| <= 1 in grid units, up to the tolerance
        limit = 1 + 2 * INSIDE_TOLERANCE / size.view(1, 1, 1, 2)
        out = out * (grid.abs() <= limit).all(-1).unsqueeze(1)
    return out.reshape(*lead, channels, height, width).to(frames.dtype)


# %%
from slamp.exercises import check
from slamp.notebook import use

check(warp)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(warp)  # from here on the package runs this warp: in a student's notebook, yours

# %% [markdown]
# ## Checking `warp`
#
# Four properties pin the operator down; `tests/test_warp.py` asserts the same ones.
#
# **1. Zero flow is the identity.**

# %%
image = torch.rand(2, 3, 8, 10)
assert torch.allclose(warp(image, torch.zeros(2, 2, 8, 10)), image, atol=1e-6)

# %% [markdown]
# **2. A constant integer flow shifts by exactly that many pixels.** With $f = (-2, 1)$, the pixel
# at $(x, y)$ reads $(x - 2, y + 1)$: content moves 2 pixels *right* and 1 pixel *up*. The flow
# points to the source, so the content moves the opposite way.

# %%
flow = torch.zeros(2, 2, 8, 10)
flow[:, 0], flow[:, 1] = -2.0, 1.0
shifted = warp(image, flow)
assert torch.allclose(shifted[..., :-1, 2:], image[..., 1:, :-2], atol=1e-6)
assert (shifted[..., :, :2] == 0).all() and (shifted[..., -1, :] == 0).all()  # read from outside

# %% [markdown]
# **3. Half a pixel is the average of the two neighbours** (bilinear interpolation).

# %%
flow = torch.zeros(2, 2, 8, 10)
flow[:, 0] = 0.5
assert torch.allclose(warp(image, flow)[..., :-1], (image[..., :-1] + image[..., 1:]) / 2, atol=1e-6)

# %% [markdown]
# **4. Gradients reach the flow.** A finite difference agrees with autograd.

# %%
flow = (torch.randn(1, 2, 8, 10) * 0.3).double().requires_grad_()
target = torch.rand(1, 3, 8, 10, dtype=torch.double)
source = torch.rand(1, 3, 8, 10, dtype=torch.double)
loss = lambda f: ((warp(source, f) - target) ** 2).sum()  # noqa: E731
(grad,) = torch.autograd.grad(loss(flow), flow)
step = torch.zeros_like(flow)
step[0, 0, 4, 5] = 1e-6
numeric = (loss(flow + step) - loss(flow - step)) / 2e-6
print(f"autograd {grad[0, 0, 4, 5].item():.6f}   finite difference {numeric.item():.6f}")
assert torch.isclose(grad[0, 0, 4, 5], numeric, rtol=1e-4)

# %% [markdown]
# ## Seeing it
#
# A smooth, colourful test pattern makes distortions easy to see. A rotation by $\theta$ about the
# centre $c$ is a flow field too: the target pixel $p$ reads the source at $R_{-\theta}(p - c) + c$,
# so $f(p) = R_{-\theta}(p - c) + c - p$.

# %%
#| export
def rotation_flow(height: int, width: int, degrees: float, device=None) -> torch.Tensor:
    """Backward flow ``(2, H, W)`` that rotates an image by ``degrees`` (counter-clockwise on
    screen) about its centre: each target pixel reads the source at the inversely rotated point."""
    grid = pixel_grid(height, width, device)
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=device).view(2, 1, 1)
    x, y = grid - centre
    a = math.radians(degrees)
    # The source of p is p turned back by a; with y pointing down, that is this matrix.
    source = torch.stack([math.cos(a) * x - math.sin(a) * y, math.sin(a) * x + math.cos(a) * y])
    return source + centre - grid


# %%
#| export viz
"""Pictures of frames and flow: the optical-flow colour wheel, image rows, GIFs."""
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch


def demo_image(height: int = 64, width: int = 64) -> torch.Tensor:
    """A smooth RGB image ``(3, H, W)`` in [0, 1] with structure at several scales, for demos."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    rings = torch.cos(18 * ((x - 0.5) ** 2 + (y - 0.5) ** 2).sqrt())
    red = 0.5 + 0.4 * torch.sin(2 * math.pi * 2 * x) * rings
    green = 0.5 + 0.4 * torch.sin(2 * math.pi * 2 * y)
    blue = 0.5 + 0.4 * torch.cos(2 * math.pi * 1.5 * (x + y))
    return torch.stack([red, green, blue]).clamp(0, 1)


def _as_numpy_image(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] → (H, W, C) or (H, W) array for imshow."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (C, H, W) with C in (1, 3), found {tuple(image.shape)}")
    array = image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def show_row(images, titles=None, size: float = 2.2) -> plt.Figure:
    """A row of images, each ``(C, H, W)`` in [0, 1] (C = 1 or 3), with optional titles."""
    images = list(images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for k, (ax, image) in enumerate(zip(axes[0], images)):
        ax.imshow(_as_numpy_image(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig


# %%
pattern = demo_image(64, 64)
rotated = warp(pattern[None], rotation_flow(64, 64, 30)[None])[0]
rotated_border = warp(pattern[None], rotation_flow(64, 64, 30)[None], padding="border")[0]
show_row([pattern, rotated, rotated_border],
         ["source", "rotated 30°, padding='zeros'", "padding='border'"], size=3);

# %% [markdown]
# The corners of the rotated image read from outside the source. With the paper's rule they are
# black: the motion head *cannot* invent what was not in the previous frame. Those are exactly the
# regions (objects entering the frame, disocclusions behind a moving object) where SLAMP's mask
# should trust the appearance head instead. `border` smears the edge into them instead.
#
# ## Why not forward warping?
#
# To see the holes, apply one zoom by 1.4× about the centre $c$ both ways. Backward warping reads
# each target pixel $p$ at $p + f(p) = c + (p - c)/1.4$, with $f$ the *backward* field. Forward
# splatting needs the *forward* field $g$ of the same zoom, $g(p) = 0.4\,(p - c)$: it sends each
# source pixel $p$ to its rounded target $p + g(p) = c + 1.4\,(p - c)$. (The backward field with
# its sign flipped is not $g$: splatting to $p - f(p)$ would draw a different transform, a
# $2 - 1/1.4 \approx 1.29\times$ zoom.) Backward warping fills every target; forward splatting
# leaves a lattice of empty pixels, close to $1 - 1/1.4^2 = 49\%$ of them. Where the splat did
# write, it shows the same image as the backward warp up to rounding: the printed difference is
# below what a half-pixel shift changes (the rounding's largest error), and splatting along
# $-f$ instead fails that test.

# %%
def zoom_flow(height, width, factor):
    """Backward flow of a zoom by `factor` about the centre."""
    grid = pixel_grid(height, width)
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2]).view(2, 1, 1)
    return (grid - centre) / factor + centre - grid


def zoom_forward_flow(height, width, factor):
    """Forward flow of the same zoom: source pixel p moves to p + g(p) = c + factor (p - c)."""
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2]).view(2, 1, 1)
    return (pixel_grid(height, width) - centre) * (factor - 1)


def forward_splat(image, forward_flow):
    """Nearest-pixel forward warping: source pixel p goes to round(p + g(p)) for a *forward* flow g;
    returns the image (holes stay 0) and which target pixels were written."""
    _, height, width = image.shape
    x, y = (pixel_grid(height, width) + forward_flow).round().long()
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    out, written = torch.zeros_like(image), torch.zeros(height, width, dtype=torch.bool)
    out[:, y[keep], x[keep]] = image[:, keep]
    written[y[keep], x[keep]] = True
    return out, written


backward = warp(pattern[None], zoom_flow(64, 64, 1.4)[None])[0]
splat, written = forward_splat(pattern, zoom_forward_flow(64, 64, 1.4))
wrong_sign, wrong_written = forward_splat(pattern, -zoom_flow(64, 64, 1.4))  # p - f(p): a 1.29x zoom
half_pixel = (warp(pattern[None], torch.full((1, 2, 64, 64), 0.5))[0] - pattern)[:, 4:-4, 4:-4].abs().mean().item()
agree = (splat - backward)[:, written].abs().mean().item()
disagree = (wrong_sign - backward)[:, wrong_written].abs().mean().item()
print(f"holes: {1 - written.float().mean():.1%} of the target; where written, |splat - backward warp| = {agree:.4f} "
      f"(a half-pixel shift: {half_pixel:.4f}; splatting to p - f(p): {disagree:.4f})")
assert agree < half_pixel < disagree
show_row([pattern, backward, splat], ["source", "backward warp (zoom 1.4×)", "forward splat, same zoom: holes"], size=3);

# %% [markdown]
# ## Seeing flow: the colour wheel
#
# A flow field has two numbers per pixel. The standard picture (Baker et al., *A Database and
# Evaluation Methodology for Optical Flow*, the Middlebury benchmark) maps the **direction** to a
# hue on a wheel of 55 colours (red → yellow → green → cyan → blue → magenta, with more steps where
# the eye tells hues apart) and the **length**, divided by the largest length shown, to saturation:
# zero flow is white, the longest vector has the full hue. Vectors longer than the maximum (when it
# is fixed, e.g. to compare frames of a video) are drawn darker.
#
# `torchvision.utils.flow_to_image` implements the same wheel, but torchvision is not a dependency
# of `slamp` (it does not import with the CPU build of torch used in CI), so we write it here, in
# torch, so it also runs on the GPU and on batches.

# %%
#| export viz
# Segments of the Middlebury wheel: (number of colours, RGB at the start, RGB at the end).
_WHEEL_SEGMENTS = [(15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)),
                   (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0))]


def colour_wheel() -> torch.Tensor:
    """The 55 colours ``(55, 3)`` in [0, 1] of the Middlebury optical-flow colour wheel."""
    colours = []
    for n, start, end in _WHEEL_SEGMENTS:
        ramp = torch.floor(255 * torch.arange(n) / n) / 255  # the reference's 8-bit steps
        start, end = torch.tensor(start, dtype=torch.float32), torch.tensor(end, dtype=torch.float32)
        colours.append(start + ramp[:, None] * (end - start))
    return torch.cat(colours)


def flow_to_colour(flow: torch.Tensor, max_flow: float | None = None) -> torch.Tensor:
    """Colour-code flow ``(..., 2, H, W)`` (pixels, x then y) as RGB ``(..., 3, H, W)`` in [0, 1].

    Hue is the direction, saturation the length divided by ``max_flow`` (default: the longest
    vector of each image, so every image uses the full range). Pass a fixed ``max_flow`` to
    compare images; longer vectors are then darkened (x 0.75), as in the Middlebury code.
    """
    if flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow must be (..., 2, H, W), found shape {tuple(flow.shape)}")
    u, v = flow[..., 0, :, :].float(), flow[..., 1, :, :].float()
    length = torch.sqrt(u**2 + v**2)
    if max_flow is None:
        scale = length.flatten(-2).amax(-1)[..., None, None]
    else:
        scale = torch.as_tensor(float(max_flow), device=flow.device)
    radius = length / scale.clamp_min(1e-8)
    wheel = colour_wheel().to(flow.device)
    position = (torch.atan2(-v, -u) / math.pi + 1) / 2 * (len(wheel) - 1)
    k0 = position.floor().long()
    k1 = (k0 + 1) % len(wheel)
    frac = (position - k0)[..., None]
    colour = (1 - frac) * wheel[k0] + frac * wheel[k1]  # (..., H, W, 3)
    radius = radius[..., None]
    colour = torch.where(radius <= 1, 1 - radius * (1 - colour), colour * 0.75)
    return colour.movedim(-1, -3)


def flow_legend(size: int = 101) -> torch.Tensor:
    """The colour key ``(3, size, size)``: each pixel shows the flow pointing from the centre to it."""
    r = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(r, r, indexing="ij")
    legend = flow_to_colour(torch.stack([x, y]), max_flow=1.0)
    return torch.where((x**2 + y**2 < 1)[None], legend, torch.ones_like(legend))


# %% [markdown]
# The key: a pixel's colour is that of the flow vector pointing from the centre to it. Below it, a
# rotation flow (hue goes round the wheel, saturation grows with the distance from the centre) and
# the zoom flow (vectors point inwards: they read from nearer the centre).

# %%
show_row([flow_legend(), flow_to_colour(rotation_flow(64, 64, 30)), flow_to_colour(zoom_flow(64, 64, 1.4))],
         ["colour key", "rotation flow", "zoom flow"], size=3);

# %%
# Directions land where the wheel says: flow to the right is red, to the left cyan.
right, left = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])
for name, vector in [("right", right), ("left", left)]:
    rgb = flow_to_colour(vector.view(2, 1, 1), max_flow=1.0)[:, 0, 0]
    print(name, [round(c, 3) for c in rgb.tolist()])
assert torch.allclose(flow_to_colour(right.view(2, 1, 1), max_flow=1.0)[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=0.03)
assert torch.allclose(flow_to_colour(torch.zeros(2, 4, 4)), torch.ones(3, 4, 4))  # still = white

# %% [markdown]
# ## Learning flow from pixels alone
#
# SLAMP never sees a ground-truth flow: its flow decoder is trained only through the pixel loss
# $\lVert \mathcal{W}(x_{t-1}, f_{t-1:t}) - x_t \rVert^2$. Because `warp` is differentiable in $f$, we
# can do the same by hand: start from zero flow and descend the photometric loss until the warped
# first frame matches the second. The pattern is shifted by a known $(1.5, -1)$ pixels, so we know
# the flow the optimiser should find.

# %%
#| export
def fit_flow(source: torch.Tensor, target: torch.Tensor, steps: int = 300, lr: float = 0.05,
             margin: int = 4) -> tuple[torch.Tensor, list[float]]:
    """Find a flow ``(B, 2, H, W)`` with ``warp(source, flow) ≈ target`` by gradient descent on the
    photometric L2 loss, from zero flow, ignoring ``margin`` pixels at the border (where content
    enters the frame). Inputs are ``(B, C, H, W)``; returns the flow and the loss at each step."""
    if source.shape != target.shape or source.ndim != 4:
        raise ValueError(f"source and target must both be (B, C, H, W), found {tuple(source.shape)} and {tuple(target.shape)}")
    inner = (..., slice(margin, -margin or None), slice(margin, -margin or None))
    batch, _, height, width = source.shape
    flow = torch.zeros(batch, 2, height, width, device=source.device, requires_grad=True)
    optimiser = torch.optim.Adam([flow], lr=lr)
    losses = []
    for _ in range(steps):
        loss = ((warp(source, flow) - target)[inner] ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return flow.detach(), losses


# %%
true_flow = torch.tensor([-1.5, 1.0]).view(1, 2, 1, 1).expand(1, 2, 64, 64)
first = pattern[None]
second = warp(first, true_flow)
flow, losses = fit_flow(first, second, steps=60 if SMOKE else 300)
error = (flow - true_flow)[..., 4:-4, 4:-4].norm(dim=1).mean().item()
print(f"photometric loss {losses[0]:.4f} -> {losses[-1]:.6f}; mean end-point error {error:.3f} px")
assert losses[-1] < 0.1 * losses[0]
# Texture: the pattern's gradient; the half of the pixels with more of it against the half with less.
gradient_y, gradient_x = torch.gradient(pattern.mean(0))
texture = (gradient_x**2 + gradient_y**2).sqrt()[4:-4, 4:-4]
end_point = (flow - true_flow)[0].norm(dim=0)[4:-4, 4:-4]
textured, flat = end_point[texture > texture.median()].mean().item(), end_point[texture <= texture.median()].mean().item()
print(f"end-point error where the pattern has more texture: {textured:.3f} px, less: {flat:.3f} px")
assert textured < flat

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
axes[0].semilogy(losses)
axes[0].set(title="photometric loss", xlabel="step")
axes[1].imshow(pattern.permute(1, 2, 0).numpy())
axes[1].set_title("the image (first frame)")
for ax, field, title in [(axes[2], true_flow[0], "true flow (-1.5, 1) px"), (axes[3], flow[0], "learned flow")]:
    ax.imshow(flow_to_colour(field[:, 4:-4, 4:-4], max_flow=2.0).permute(1, 2, 0).numpy())
    ax.set_title(title)
axes[4].imshow(flow_legend().permute(1, 2, 0).numpy())
axes[4].set_title("key: edge of disc = 2 px")
for ax in axes[1:]:
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# Both flows are backward fields (where each pixel of the second frame reads the first), drawn with
# the key on the right at a fixed scale of 2 px: the true one is the single colour of
# $(-1.5, 1)$, the content moving right and up. Where the pattern has more texture the learned flow
# is closer to the true one (printed: the mean end-point error over the more textured half of the
# pixels, about a third of that over the flatter half); in flat regions the photometric loss cannot
# tell displacements apart (the *aperture problem*), so the flow there is less certain. SLAMP faces the same ambiguity, and its mask network decides per pixel whether the
# warped previous frame or the freshly painted appearance prediction is more trustworthy.
#
# ## Movies
#
# `save_gif` writes frames `(T, C, H, W)` as an animated GIF, the format used for predictions
# throughout the repository.

# %%
#| export viz
def save_gif(frames: torch.Tensor, path, fps: float = 8, scale: int = 1) -> Path:
    """Write frames ``(T, C, H, W)`` in [0, 1] (C = 1 or 3) as a looping GIF, ``scale``× enlarged."""
    from PIL import Image

    if frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be (T, C, H, W) with C in (1, 3), found {tuple(frames.shape)}")
    frames = frames.detach().float().clamp(0, 1).cpu()
    if scale > 1:
        frames = frames.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    arrays = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    images = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


# %%
import tempfile

spin = torch.stack([warp(pattern[None], rotation_flow(64, 64, a)[None])[0] for a in range(0, 360, 30)])
gif = save_gif(spin, Path(tempfile.mkdtemp()) / "spin.gif")
print(gif.name, gif.stat().st_size > 0)

# %% [markdown]
# ## Exercises and what to try next
#
# The exercise of this notebook: **`warp`** (three lines: the sampling positions, their
# `grid_sample` coordinates, the bilinear sample with the given padding).
#
# * Warp an image forward (splat each pixel $p$ to $p + g(p)$ along a *forward* field $g$, as
#   `forward_splat` does) and count the holes, then backward with `warp` along the backward field
#   of the same motion: why does SLAMP warp backward?
# * Compare `padding="zeros"` with `"border"` on a digit that leaves the frame: which one makes the
#   motion prediction wrong, and where?
# * Fit a flow by gradient descent (as above) for a shift of 1, 4 and 12 pixels. Bilinear sampling
#   only sees the four neighbours: what happens to the large shift, and why do optical-flow methods
#   work coarse to fine?

# %% [markdown]
# ## Summary
#
# * `slamp.warp.warp(frames, flow)` backward-warps `(B, C, H, W)` or `(B, T, C, H, W)` frames by
#   flow in pixels (`x` then `y`, from target to source), bilinear, with the paper's rule that a
#   pixel read from outside the image is 0.
# * `slamp.viz.flow_to_colour` draws flow with the Middlebury wheel; `show_row` and `save_gif`
#   show frames.
# * The motion head of SLAMP is exactly this: a decoder outputs $f_{t-1:t}$, and
#   `warp(previous_frame, f)` is the motion prediction $x^f_t$. Next: the data it learns from
#   (`02_data`).
