"""Video quality metrics on IMAGE tensors ``[F, H, W, C]`` float in 0..1.

All differences are measured in 0..1 units (multiply by 255 for 8-bit levels).
"""

import math
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

LUMA_BT709 = (0.2126, 0.7152, 0.0722)


def _check_video(frames, what="frames", min_frames=1):
    """Raise a clear error unless ``frames`` is [F,H,W,C] with at least ``min_frames`` frames."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"{what}: expected an IMAGE tensor [frames, height, width, channels], got {shape}")
    if frames.shape[0] < min_frames:
        raise ValueError(f"{what}: needs at least {min_frames} frames, got {frames.shape[0]}")
    return frames.detach().to("cpu", torch.float32)


def _check_pair(a, b):
    """Both videos as float32 CPU tensors of the same shape, or a clear error."""
    a, b = _check_video(a, "video"), _check_video(b, "reference")
    if a.shape != b.shape:
        raise ValueError(f"video {tuple(a.shape)} and reference {tuple(b.shape)} must have the same shape")
    return a, b


def frame_differences(frames: torch.Tensor) -> torch.Tensor:
    """d[t] = mean over pixels and channels of |frame[t+1] - frame[t]|, for t = 0..F-2 (tensor [F-1])."""
    frames = _check_video(frames, min_frames=2)
    return (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))


def flicker(frames: torch.Tensor) -> float:
    """Mean frame-to-frame absolute difference, mean(d) with d as in ``frame_differences`` (0 = static)."""
    return float(frame_differences(frames).mean())


def seam_ratios(frames: torch.Tensor, join_indices: Sequence[int]) -> List[float]:
    """``seam_ratio`` for each join; the in-clip baseline excludes ALL the listed joins."""
    d = frame_differences(frames)
    joins = [int(j) for j in join_indices]
    for j in joins:
        if not 1 <= j <= d.shape[0]:
            raise ValueError(f"join index {j} must be in 1..{d.shape[0]} (the first frame of a later clip)")
    keep = torch.ones_like(d, dtype=torch.bool)
    keep[[j - 1 for j in joins]] = False
    if not keep.any():
        raise ValueError("seam ratio needs at least one frame pair that is not a join")
    baseline = float(d[keep].median())
    ratios = []
    for j in joins:
        across = float(d[j - 1])
        if baseline == 0.0:
            ratios.append(1.0 if across == 0.0 else math.inf)
        else:
            ratios.append(across / baseline)
    return ratios


def seam_ratio(frames: torch.Tensor, join_index: int) -> float:
    """How visible the join before frame ``join_index`` is.

    With d[t] = mean |frame[t+1] - frame[t]| (over pixels and channels), the join difference is
    d[join_index - 1] (frame join_index-1 -> join_index) and the baseline is the median of all other
    d[t]. seam_ratio = join difference / baseline: 1.0 means the cut changes the picture as much as
    an ordinary frame step (an invisible join), >> 1 a visible jump. A static clip (baseline 0)
    gives 1.0 for an identical join and inf otherwise.
    """
    return seam_ratios(frames, [join_index])[0]


def _gray_uint8(frame):
    """BT.709 luma of an RGB float [H,W,3] tensor as uint8 numpy (what DIS flow takes)."""
    rgb = frame[..., :3] if frame.shape[-1] >= 3 else frame.expand(-1, -1, 3)
    y = (rgb * torch.tensor(LUMA_BT709)).sum(-1)
    return (y.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _pair_warp_error(dis, prev, nxt, occlusion_check):
    """Mean |warp(prev -> nxt) - nxt| over valid pixels of one frame pair (None if none are valid)."""
    import cv2

    g_prev, g_next = _gray_uint8(prev), _gray_uint8(nxt)
    back = dis.calc(g_next, g_prev, None)  # for each pixel x of nxt: nxt(x) ~ prev(x + back(x))
    h, w = g_next.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    if occlusion_check:
        fwd = dis.calc(g_prev, g_next, None)
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = ((back + fwd_at) ** 2).sum(-1)
        bound = 0.01 * ((back**2).sum(-1) + (fwd_at**2).sum(-1)) + 0.5
        valid &= mismatch <= bound
    if not valid.any():
        return None
    warped = cv2.remap(prev.numpy(), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.abs(warped - nxt.numpy()).mean(-1)
    return float(err[valid].mean())


def warp_errors(frames: torch.Tensor, *, occlusion_check: bool = True) -> List[float]:
    """Per-pair warp error list [F-1]; see ``warp_error``. A pair with no valid pixel gives nan."""
    import cv2

    frames = _check_video(frames, min_frames=2)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    out = []
    for t in range(frames.shape[0] - 1):
        err = _pair_warp_error(dis, frames[t].contiguous(), frames[t + 1].contiguous(), occlusion_check)
        out.append(math.nan if err is None else err)
    return out


def warp_error(frames: torch.Tensor, *, occlusion_check: bool = True) -> float:
    """Optical-flow warp error: how much each frame differs from its predecessor moved along the motion.

    For each pair (t, t+1): OpenCV DIS flow (medium preset, on BT.709 luma) from frame t+1 back to
    frame t; frame t is warped onto t+1 with cv2.remap (bilinear); the error is the mean |warped -
    actual| over channels and valid pixels. Valid = the flow lands inside frame t and, with
    ``occlusion_check``, passes the forward-backward consistency test
    |b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5 (Sundaram et al. 2010).
    Returns the mean over pairs (0 = perfectly motion-consistent; units 0..1).
    """
    errors = [e for e in warp_errors(frames, occlusion_check=occlusion_check) if not math.isnan(e)]
    return float(np.mean(errors)) if errors else math.nan


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB from the MSE over ALL frames, pixels and channels: 10 log10(range^2 / MSE); inf if identical."""
    a, b = _check_pair(a, b)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def _gaussian_window(size=11, sigma=1.5):
    """Normalised 1-D Gaussian of ``size`` taps."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(torch.float32)


def _blur_valid(x, window):
    """Separable Gaussian filter of x [N,1,H,W], 'valid' region only (no padding, as in Wang et al.)."""
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k))
    return F.conv2d(x, window.view(1, 1, k, 1))


def ssim(a: torch.Tensor, b: torch.Tensor, *, channel: str = "luma", data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.

    ``channel="luma"`` (default) compares BT.709 luma Y' = 0.2126 R + 0.7152 G + 0.0722 B;
    ``channel="rgb"`` averages the SSIM of R, G and B. The SSIM map is computed on the 'valid'
    region (no padding) of each frame and averaged over frames. 1.0 = identical.
    """
    a, b = _check_pair(a, b)
    if a.shape[1] < 11 or a.shape[2] < 11:
        raise ValueError(f"ssim needs frames of at least 11x11 pixels, got {a.shape[2]}x{a.shape[1]}")
    if channel == "luma":
        weights = torch.tensor(LUMA_BT709)
        x, y = (a[..., :3] * weights).sum(-1, keepdim=True), (b[..., :3] * weights).sum(-1, keepdim=True)
    elif channel == "rgb":
        x, y = a, b
    else:
        raise ValueError(f"ssim channel must be 'luma' or 'rgb', got {channel!r}")
    x = x.permute(0, 3, 1, 2).reshape(-1, 1, a.shape[1], a.shape[2]).double()
    y = y.permute(0, 3, 1, 2).reshape(-1, 1, a.shape[1], a.shape[2]).double()
    window = _gaussian_window().double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur_valid(x, window), _blur_valid(y, window)
    var_x = _blur_valid(x * x, window) - mu_x**2
    var_y = _blur_valid(y * y, window) - mu_y**2
    cov = _blur_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())
