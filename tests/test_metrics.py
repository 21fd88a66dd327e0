"""slamp.metrics: PSNR, SSIM (against scikit-image), LPIPS's clear failure, confidence intervals."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from slamp.metrics import (
    FVDUnavailable,
    LPIPSUnavailable,
    frechet_distance,
    fvd,
    i3d_features,
    lpips,
    mean_confidence_interval,
    psnr,
    ssim,
    ssim_of_samples,
)


def test_psnr_of_known_errors():
    target = torch.rand(3, 1, 16, 16) * 0.8
    assert torch.allclose(psnr(target + 0.1, target), torch.full((3,), 20.0), atol=1e-4)  # MSE 0.01
    assert torch.allclose(psnr(target + 0.01, target), torch.full((3,), 40.0), atol=1e-3)
    assert torch.equal(psnr(target, target), torch.full((3,), 100.0))  # capped, finite


def test_psnr_is_per_image():
    target = torch.zeros(2, 3, 8, 8)
    prediction = target.clone()
    prediction[1] += 0.1
    values = psnr(prediction, target)
    assert values[0] == 100 and abs(values[1] - 20) < 1e-4


@pytest.mark.parametrize("channels, size, noise", [(1, 64, 0.05), (3, 64, 0.2), (1, 32, 0.5), (3, 23, 0.1)])
def test_ssim_matches_scikit_image(channels, size, noise):
    generator = torch.Generator().manual_seed(channels * size)
    target = torch.rand(2, channels, size, size, generator=generator)
    prediction = (target + noise * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    ours = ssim(prediction, target)
    for i in range(2):
        reference = structural_similarity(prediction[i].numpy().astype(np.float64), target[i].numpy().astype(np.float64),
                                          channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
        assert abs(ours[i].item() - reference) < 1e-5


def test_ssim_of_identical_images_is_one_and_falls_with_noise():
    target = torch.rand(1, 1, 32, 32)
    assert torch.allclose(ssim(target, target), torch.ones(1))
    small = ssim((target + 0.05 * torch.randn_like(target)).clamp(0, 1), target)
    large = ssim((target + 0.3 * torch.randn_like(target)).clamp(0, 1), target)
    assert 1 > small > large


@pytest.mark.parametrize("channels, size", [(1, 32), (3, 23)])
def test_ssim_of_samples_against_a_shared_target_is_ssim_of_every_pair(channels, size):
    generator = torch.Generator().manual_seed(size)
    target = torch.rand(2, 4, channels, size, size, generator=generator)  # (B, T, C, H, W)
    noise = torch.tensor([0.05, 0.2, 0.5]).view(1, 3, 1, 1, 1, 1)  # one level per sample
    samples = (target[:, None] + noise * torch.randn(2, 3, 4, channels, size, size, generator=generator)).clamp(0, 1)
    shared = ssim_of_samples(samples, target)
    pairs = ssim(samples.flatten(0, 2), target[:, None].expand_as(samples).flatten(0, 2)).view(2, 3, 4)
    assert shared.shape == (2, 3, 4) and torch.allclose(shared, pairs, atol=1e-6)
    assert (shared[:, 0] > shared[:, 1]).all() and (shared[:, 1] > shared[:, 2]).all()  # each sample its own score
    with pytest.raises(ValueError, match=r"\(B, S, T, C, H, W\)"):
        ssim_of_samples(samples[:, :, :3], target)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_of_samples(torch.rand(1, 2, 1, 1, 8, 8), torch.rand(1, 1, 1, 8, 8))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_metrics_reject_mismatched_or_unbatched_input(metric):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        metric(torch.rand(1, 32, 32), torch.rand(1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        metric(torch.rand(2, 1, 32, 32), torch.rand(3, 1, 32, 32))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_lpips_works_or_says_why_not():
    prediction, target = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    try:
        values = lpips(prediction, target)
    except LPIPSUnavailable as error:  # the CPU machines of CI: no matching torchvision
        message = str(error)
        assert "pip install" in message or "checkpoints" in message
        print(f"LPIPS skipped: {message}")  # shown with pytest -s; never a silent fake value
    else:  # where lpips, torchvision and the AlexNet weights are present
        assert values.shape == (2,) and (values > 0).all()
        assert torch.allclose(lpips(target, target), torch.zeros(2), atol=1e-5)


def test_confidence_interval_uses_students_t():
    mean, half = mean_confidence_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert math.isclose(half, 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5), rel_tol=1e-9)
    assert mean_confidence_interval([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_confidence_interval([])


def test_confidence_interval_covers_the_true_mean_about_95_percent_of_the_time():
    generator = torch.Generator().manual_seed(0)
    covered = 0
    for _ in range(400):
        mean, half = mean_confidence_interval(torch.randn(20, generator=generator) + 5)
        covered += abs(mean - 5) <= half
    assert 0.92 <= covered / 400 <= 0.98


# ---- FVD ---------------------------------------------------------------------------------------


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(3000, 6))
    assert abs(frechet_distance(cloud, cloud)) < 1e-6
    assert frechet_distance(cloud, cloud + 1.0) == pytest.approx(6.0, abs=1e-6)  # ||Δμ||², equal covariances
    # Doubling a set: means μ and 2μ, covariances C and 4C, so ||μ||² + tr(C + 4C - 2·2C) = ||μ||² + tr(C).
    expected = (cloud.mean(0) ** 2).sum() + np.trace(np.cov(cloud, rowvar=False))
    assert frechet_distance(cloud, 2 * cloud) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="need two sets of features"):
        frechet_distance(cloud, cloud[:, :3])


def test_fvd_without_i3d_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SLAMP_I3D", str(tmp_path / "missing.pt"))
    videos = torch.rand(2, 10, 1, 32, 32)
    with pytest.raises(FVDUnavailable, match=r"expected at .*missing\.pt.*i3d_torchscript\.pt"):
        fvd(videos, videos)
    (tmp_path / "broken.pt").write_bytes(b"not torchscript")
    monkeypatch.setenv("SLAMP_I3D", str(tmp_path / "broken.pt"))
    with pytest.raises(FVDUnavailable, match="cannot load the I3D network"):
        fvd(videos, videos)


class _FakeI3D(torch.nn.Module):
    """Stands in for I3D: (N, 3, T, 224, 224) in [-1, 1] → (N, 400) features."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True):
        pooled = x.mean(dim=(1, 3, 4))  # (N, T)
        return torch.cat([pooled, x.amin(dim=(1, 2, 3, 4))[:, None], x.std(dim=(1, 2, 3, 4))[:, None]], 1).repeat(1, 40)[:, :400]


def test_fvd_pipeline_with_a_stand_in_network(tmp_path, monkeypatch):
    path = tmp_path / "i3d.pt"
    torch.jit.script(_FakeI3D()).save(str(path))
    monkeypatch.setenv("SLAMP_I3D", str(path))
    torch.manual_seed(0)
    real = torch.rand(6, 10, 1, 48, 64)
    features = i3d_features(real)
    assert features.shape == (6, 400)
    assert abs(fvd(real, real)) < 1e-3 and fvd(real, real * 0.2) > fvd(real, real * 0.9) > 0
    with pytest.raises(ValueError, match="C = 1 or 3"):
        i3d_features(torch.rand(2, 10, 2, 32, 32))


def test_the_i3d_file_is_looked_for_in_the_data_folders(isolated_data, tmp_path, monkeypatch):
    from slamp.metrics import i3d_path

    monkeypatch.delenv("SLAMP_I3D", raising=False)
    assert i3d_path() == isolated_data / "i3d_torchscript.pt"  # where FVDUnavailable says to put it
    cache = tmp_path / "cache" / "slamp"  # the second data folder, the user cache
    cache.mkdir(parents=True)
    (cache / "i3d_torchscript.pt").write_bytes(b"weights")
    assert i3d_path() == cache / "i3d_torchscript.pt"
    monkeypatch.setenv("SLAMP_I3D", str(tmp_path / "mine.pt"))
    assert i3d_path() == tmp_path / "mine.pt"
