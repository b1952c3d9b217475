"""One call for the video-metrics feature: every metric that applies to a video, as a JSON-ready dict."""

import math
from typing import Any, Dict, Optional, Sequence

import torch

from ..options import OptionError
from .quality import flicker, psnr, seam_ratios, ssim, warp_error

SSIM_MIN_SIZE = 11  # the SSIM Gaussian window is 11 x 11 pixels


def _json_number(value: float) -> Any:
    """A float rounded for display; inf/nan as strings so the JSON stays standard."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return round(value, 6)


def _check_joins(joins: Sequence[int], frame_count: int) -> None:
    """Joins are first frames of later clips, and at least one frame step must not be a join (the baseline)."""
    for index in joins:
        if not 1 <= index <= frame_count - 1:
            raise OptionError(
                "join_indices", f"frame indices in 1..{frame_count - 1} (first frame of a later clip), got {index}"
            )
    if joins and frame_count - len(set(joins)) < 2:
        raise OptionError("join_indices", "at least one frame step that is not a join (for the baseline)")


def measure_video(
    images: torch.Tensor,
    reference: Optional[torch.Tensor] = None,
    joins: Sequence[int] = (),
    warp: bool = True,
) -> Dict[str, Any]:
    """Metrics of ``images [F, H, W, C]`` in 0..1: frame count, flicker and (with ``warp``) warp error from 2
    frames, seam ratios at ``joins``, and PSNR (dB) and SSIM (luma, frames of at least 11 px) against a
    ``reference`` of the same shape. Floats are rounded to 6 digits, inf/nan written as strings."""
    if images is None or images.ndim != 4 or images.shape[0] == 0:
        raise OptionError("images", "an IMAGE batch [frames, height, width, channels] with at least one frame")
    joins = sorted(set(joins))
    _check_joins(joins, images.shape[0])
    result: Dict[str, Any] = {"frames": int(images.shape[0])}
    if images.shape[0] >= 2:
        result["flicker"] = _json_number(flicker(images))
        if warp:
            result["warp_error"] = _json_number(warp_error(images))
    if joins:
        result["seam_ratio"] = {str(j): _json_number(r) for j, r in zip(joins, seam_ratios(images, joins))}
    if reference is not None:
        if tuple(reference.shape) != tuple(images.shape):
            raise OptionError(
                "reference",
                f"a video of the same shape as images {tuple(images.shape)}, got {tuple(reference.shape)}",
            )
        result["psnr_db"] = _json_number(psnr(images, reference))
        if min(images.shape[1], images.shape[2]) >= SSIM_MIN_SIZE:
            result["ssim_luma"] = _json_number(ssim(images, reference))
    return result
