"""Video metrics: seam ratio, flicker, warp error, PSNR, SSIM (properties and an independent SSIM oracle)."""

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from framefold.pipelines.metrics import (
    flicker,
    frame_differences,
    psnr,
    seam_ratio,
    seam_ratios,
    ssim,
    warp_error,
    warp_errors,
)

H, W = 48, 64


def texture(seed, height=120, width=160, cells=(10, 13)):
    """A smooth random colour texture (bicubic upsampling of a coarse random grid)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, *cells, generator=g)
    big = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    return big[0].permute(1, 2, 0).contiguous()


def pan(image, frames=8, step=1, top=20, left=20):
    """A camera pan: 64x48 windows moving ``step`` pixels right per frame."""
    return torch.stack([image[top : top + H, left + step * t : left + step * t + W] for t in range(frames)])


def test_frame_differences_and_flicker():
    frames = torch.zeros(4, 8, 8, 3)
    frames[1] += 0.5
    d = frame_differences(frames)
    assert torch.allclose(d, torch.tensor([0.5, 0.5, 0.0]))
    assert flicker(frames) == pytest.approx(1.0 / 3.0)
    assert flicker(torch.full((5, 8, 8, 3), 0.3)) == 0.0


def test_seam_ratio_smooth_pan_is_about_one():
    frames = pan(texture(0), frames=12)
    assert seam_ratio(frames, 6) == pytest.approx(1.0, abs=0.15)


def test_seam_ratio_detects_an_injected_jump():
    # a cut between two unrelated smooth textures during a 1 px/frame pan (measured ratios 23.7 and 21.6)
    frames = torch.cat([pan(texture(0, cells=(6, 8)), frames=6), pan(texture(1, cells=(6, 8)), frames=6)])
    assert seam_ratio(frames, 6) > 10.0
    smooth, jump = seam_ratios(frames, [3, 6])  # baseline excludes both listed joins
    assert smooth == pytest.approx(1.0, abs=0.2) and jump > 10.0


def test_seam_ratio_definition_on_exact_numbers():
    # d = [0.1, 0.2, 0.9, 0.3] -> join at frame 3 (d[2] = 0.9), baseline median(0.1, 0.2, 0.3) = 0.2
    levels = torch.tensor([0.0, 0.1, 0.3, 1.2, 1.5]) / 2
    frames = levels.view(5, 1, 1, 1).expand(5, 4, 4, 3).clone()
    assert seam_ratio(frames, 3) == pytest.approx(0.45 / 0.1)
    static = torch.zeros(4, 4, 4, 3)
    assert seam_ratio(static, 2) == 1.0
    static[2:] = 1.0
    assert seam_ratio(static, 2) == math.inf
    with pytest.raises(ValueError, match="join index 0"):
        seam_ratio(static, 0)


def test_warp_error_is_near_zero_for_a_global_translation():
    frames = pan(texture(2), frames=6, step=2)
    assert warp_error(frames) < 0.005  # 0..1 units; measured ~0.0004
    assert all(e < 0.005 for e in warp_errors(frames, occlusion_check=False))


def test_warp_error_is_large_for_unrelated_frames():
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(4, H, W, 3, generator=g)
    assert warp_error(noise, occlusion_check=False) > 0.1


def test_psnr_values():
    a = texture(4)[:H, :W].expand(3, H, W, 3).contiguous()
    assert psnr(a, a) == math.inf
    b = (a + 0.1).clamp(max=10)  # constant offset 0.1 -> MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, a[:2])


def _ssim_oracle(x, y):
    """Independent SSIM of one grey image pair with OpenCV's Gaussian blur, 'valid' region (float64)."""

    def blur(img):
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


def test_ssim_identical_noise_and_oracle():
    a = texture(5)[:H, :W].expand(2, H, W, 3).contiguous()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    g = torch.Generator().manual_seed(6)
    noisy = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    value = ssim(a, noisy)
    assert value < 0.9
    weights = torch.tensor([0.2126, 0.7152, 0.0722])
    luma_a, luma_n = (a * weights).sum(-1).double().numpy(), (noisy * weights).sum(-1).double().numpy()
    oracle = np.mean([_ssim_oracle(luma_a[i], luma_n[i]) for i in range(2)])
    assert value == pytest.approx(oracle, abs=1e-6)
    assert ssim(a, noisy, channel="rgb") < 0.9
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:, :8, :8], a[:, :8, :8])
