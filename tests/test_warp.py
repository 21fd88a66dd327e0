"""slamp.warp: backward warping by flow in pixel units (notebook 01_flow_warping)."""
import pytest
import torch
import torch.nn.functional as F

from slamp.viz import demo_image
from slamp.warp import fit_flow, pixel_grid, rotation_flow, warp


def constant_flow(dx, dy, batch=2, height=9, width=11):
    flow = torch.zeros(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def official_warp(frames, flow):
    """The public SLAMP code's rule, written independently: zero-padded grid_sample, then every
    pixel whose warped all-ones image is below 0.9999 set to 0."""
    _, _, height, width = frames.shape
    coords = pixel_grid(height, width, dtype=frames.dtype) + flow
    grid = torch.stack([2 * coords[:, 0] / (width - 1) - 1, 2 * coords[:, 1] / (height - 1) - 1], -1)
    out = F.grid_sample(frames, grid, align_corners=True)
    ones = F.grid_sample(torch.ones_like(frames), grid, align_corners=True)
    return out * (ones >= 0.9999)


def test_pixel_grid_counts_columns_then_rows():
    grid = pixel_grid(2, 3)
    assert grid.shape == (2, 2, 3)
    assert grid[0].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert grid[1].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_zero_flow_is_identity():
    frames = torch.rand(3, 2, 5, 9, 11)
    assert torch.allclose(warp(frames, torch.zeros(3, 2, 2, 9, 11)), frames, atol=1e-6)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-3, 2), (4, -1), (-2, -3)])
def test_integer_flow_shifts_by_exactly_that_many_pixels(dx, dy):
    frames = torch.rand(2, 3, 9, 11)
    out = warp(frames, constant_flow(dx, dy))
    height, width = frames.shape[-2:]
    # out[y, x] = frames[y + dy, x + dx] wherever that is inside the image, else 0.
    for y in range(height):
        for x in range(width):
            sy, sx = y + dy, x + dx
            inside = 0 <= sy < height and 0 <= sx < width
            expected = frames[..., sy, sx] if inside else torch.zeros(2, 3)
            assert torch.allclose(out[..., y, x], expected, atol=1e-6), (y, x)


def test_half_pixel_flow_is_the_mean_of_neighbours():
    frames = torch.rand(2, 3, 9, 11)
    out = warp(frames, constant_flow(0, 0.5))
    assert torch.allclose(out[..., :-1, :], (frames[..., :-1, :] + frames[..., 1:, :]) / 2, atol=1e-6)
    assert (out[..., -1, :] == 0).all()  # row 8.5 is outside: the paper's rule gives 0, not a blend


def test_gradients_reach_flow_and_frames():
    torch.manual_seed(0)
    # Non-integer positions keep the bilinear weights smooth for the finite differences.
    flow = (torch.rand(1, 2, 6, 7, dtype=torch.double) * 0.8 + 0.1).requires_grad_()
    frames = torch.rand(1, 2, 6, 7, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, x: warp(x, f), (flow, frames))
    warp(frames, flow).sum().backward()
    assert flow.grad.abs().sum() > 0


@pytest.mark.parametrize("dx, dy", [(0.3, -0.7), (-20.0, 0.0), (2.5, 3.25), (-0.6, 0.4)])
def test_zero_padding_matches_the_official_all_ones_rule(dx, dy):
    torch.manual_seed(1)
    frames = torch.rand(2, 3, 9, 11, dtype=torch.double)
    flow = constant_flow(dx, dy).double() + 0.5 * torch.randn(2, 2, 9, 11, dtype=torch.double)
    assert torch.allclose(warp(frames, flow), official_warp(frames, flow), atol=1e-10)


def test_flow_far_outside_gives_zeros_or_the_border():
    frames = torch.rand(1, 1, 6, 6)
    far = constant_flow(100.0, 0.0, batch=1, height=6, width=6)
    assert (warp(frames, far) == 0).all()
    border = warp(frames, far, padding="border")
    assert torch.allclose(border, frames[..., -1:].expand_as(frames))  # every pixel reads the last column
    reflected = warp(frames, constant_flow(-1.0, 0.0, batch=1, height=6, width=6), padding="reflection")
    assert torch.allclose(reflected[..., 0], frames[..., 1])  # column -1 mirrors to column 1


def test_five_dimensional_input_equals_per_step_calls():
    frames, flow = torch.rand(2, 4, 3, 8, 8), torch.randn(2, 4, 2, 8, 8)
    stacked = warp(frames, flow)
    per_step = torch.stack([warp(frames[:, t], flow[:, t]) for t in range(4)], 1)
    assert torch.allclose(stacked, per_step)


def test_bfloat16_keeps_dtype_and_subpixel_positions():
    frames = torch.rand(1, 1, 64, 64)
    flow = constant_flow(0.25, 0.0, batch=1, height=64, width=64)
    low = warp(frames.bfloat16(), flow.bfloat16())
    assert low.dtype == torch.bfloat16
    # Positions near column 60 are not representable in bf16; computed in fp32 they stay exact.
    assert torch.allclose(low.float(), warp(frames, flow), atol=1e-2)


def test_output_stays_in_the_range_of_the_input():
    frames = torch.rand(4, 3, 16, 16)
    out = warp(frames, 5 * torch.randn(4, 2, 16, 16))
    assert out.min() >= 0 and out.max() <= 1


def test_rotation_by_90_degrees_is_rot90():
    frames = torch.rand(1, 3, 9, 9)
    turned = warp(frames, rotation_flow(9, 9, 90)[None])
    assert torch.allclose(turned, torch.rot90(frames, 1, dims=(-2, -1)), atol=1e-5)


def test_fit_flow_recovers_a_known_shift():
    image = demo_image(64, 64)[None]
    true = constant_flow(-1.5, 1.0, batch=1, height=64, width=64)
    flow, losses = fit_flow(image, warp(image, true), steps=300)
    assert losses[-1] < 0.01 * losses[0]
    assert (flow - true)[..., 4:-4, 4:-4].norm(dim=1).mean() < 0.2  # 0.10 px measured


@pytest.mark.parametrize("frames, flow, message", [
    (torch.rand(3, 8, 8), torch.zeros(2, 8, 8), "(B, C, H, W) or (B, T, C, H, W)"),
    (torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), "flow must be (B, 2, H, W)"),
    (torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9), "differ outside the channel axis"),
    (torch.rand(2, 3, 8, 8), torch.zeros(1, 2, 8, 8), "differ outside the channel axis"),
    (torch.rand(1, 3, 1, 8), torch.zeros(1, 2, 1, 8), "at least 2x2"),
    (torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 8, dtype=torch.long), "floating point"),
])
def test_bad_input_names_what_was_expected(frames, flow, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        warp(frames, flow)


def test_unknown_padding_is_rejected():
    with pytest.raises(ValueError, match="padding must be one of"):
        warp(torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), padding="wrap")


def test_warp_builds_no_tensor_from_python_data(monkeypatch):
    # A copy from host data mid-rollout would stop a CUDA graph from recording the sampler
    # (benchmarks/gpu.py's GraphedSampler); the values must not change for it.
    frames, flow = torch.rand(2, 3, 6, 7), torch.randn(2, 2, 6, 7)
    size = torch.tensor([6.0, 5.0]).view(1, 2, 1, 1)  # the normalisation as it was: (W - 1, H - 1)
    grid = (2 * (pixel_grid(6, 7) + flow) / size - 1).permute(0, 2, 3, 1)
    expected = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def no_host_data(*args, **kwargs):
        raise AssertionError("warp made a tensor from Python data")
    monkeypatch.setattr(torch, "tensor", no_host_data)
    assert torch.equal(warp(frames, flow, padding="border"), expected)
    warp(frames, flow)  # zero padding too
