"""Weight-free frame interpolation from OpenCV DIS optical flow, with an occlusion-aware blend.

For a pair ``(I0, I1)`` and a time ``t``:

1. DIS flow both ways on luma: ``F01`` (``I1(x + F01(x)) ~ I0(x)``) and ``F10``.
2. Flow from the in-between frame back to each neighbour, by the linear-motion approximation of Super SloMo
   (Jiang et al. 2018, eq. 4): ``Ft0 = -(1 - t) t F01 + t^2 F10`` and ``Ft1 = (1 - t)^2 F01 - t (1 - t) F10``.
3. Backward warping: ``W0(x) = I0(x + Ft0(x))``, ``W1(x) = I1(x + Ft1(x))`` (bilinear, ``cv2.remap``).
4. Visibility from forward-backward consistency: a pixel of I0 whose flow, followed there and back, does not
   return within ``0.01 (|F01|^2 + |F10|^2) + 0.5`` px^2 is occluded in I1 (and vice versa). Warped to time t,
   I0's map says which in-between pixels I1 cannot see, and I1's map which ones I0 cannot see.
5. Blend ``W0 + w1 (W1 - W0)`` with ``w1 = t V1 / ((1 - t) V0 + t V1)``: each pixel is taken from the neighbour
   that sees it, in proportion to time where both do (plain ``t`` where neither does).

Two identical frames give zero flow and therefore the same frame back, exactly.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .driver import LUMA_BT709

PRESETS = ("ultrafast", "fast", "medium")
CONSISTENCY_SCALE = 0.01
CONSISTENCY_OFFSET = 0.5


def _gray_uint8(frame: np.ndarray) -> np.ndarray:
    """BT.709 luma of an ``[H, W, C]`` float frame as uint8 (what DIS takes)."""
    rgb = frame[..., :3] if frame.shape[-1] >= 3 else np.repeat(frame[..., :1], 3, axis=-1)
    luma = rgb @ np.asarray(LUMA_BT709, np.float32)
    return np.clip(np.round(luma * 255.0), 0, 255).astype(np.uint8)


def dis_flow_pair(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> Tuple[np.ndarray, np.ndarray]:
    """``(F01, F10)`` float32 ``[H, W, 2]`` (x, y pixel offsets) between two float frames by DIS flow."""
    import cv2

    if preset not in PRESETS:
        raise ValueError(f"DIS preset must be one of {PRESETS}, got {preset!r}")
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))  # type: ignore[attr-defined]
    ga, gb = _gray_uint8(a), _gray_uint8(b)
    return dis.calc(ga, gb, None), dis.calc(gb, ga, None)


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate maps ``(x, y)`` float32 ``[H, W]``."""
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image(x + flow(x))`` bilinearly sampled, edges replicated; ``image`` ``[H, W, C]`` or ``[H, W]``."""
    import cv2

    gx, gy = _grid(*flow.shape[:2])
    out = cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """1 where ``forward`` (from frame A to B) is undone by ``backward`` at the landing point, else 0 ``[H, W]``."""
    back_at = backward_warp(backward, forward)
    mismatch = ((forward + back_at) ** 2).sum(-1)
    bound = CONSISTENCY_SCALE * ((forward**2).sum(-1) + (back_at**2).sum(-1)) + CONSISTENCY_OFFSET
    return (mismatch <= bound).astype(np.float32)


class FlowInterpolator:
    """Pair interpolator (see :mod:`.driver`) from DIS optical flow; no weights."""

    def __init__(self, preset: str = "medium", occlusion: bool = True):
        if preset not in PRESETS:
            raise ValueError(f"DIS preset must be one of {PRESETS}, got {preset!r}")
        self.preset = preset
        self.occlusion = occlusion

    def __call__(self, a: torch.Tensor, b: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
        """Frames ``[len(times), H, W, C]`` between ``a`` and ``b`` (``[H, W, C]``, float 0..1)."""
        a_np = np.ascontiguousarray(a.detach().cpu().float().numpy())
        b_np = np.ascontiguousarray(b.detach().cpu().float().numpy())
        f01, f10 = dis_flow_pair(a_np, b_np, self.preset)
        v0: Optional[np.ndarray] = None
        v1: Optional[np.ndarray] = None
        if self.occlusion:
            v0, v1 = consistency_mask(f01, f10), consistency_mask(f10, f01)
        out = [self._at_time(a_np, b_np, f01, f10, v0, v1, float(t)) for t in times]
        return torch.from_numpy(np.stack(out))

    @staticmethod
    def _at_time(a, b, f01, f10, v0, v1, t: float) -> np.ndarray:
        """One in-between frame at time ``t`` (steps 2-5 of the module docstring)."""
        ft0 = -(1 - t) * t * f01 + t * t * f10
        ft1 = (1 - t) ** 2 * f01 - t * (1 - t) * f10
        w0, w1 = backward_warp(a, ft0), backward_warp(b, ft1)
        if v0 is None or v1 is None:
            weight1 = np.full(a.shape[:2], t, np.float32)
        else:
            # Content of I0 with no match in I1 is hidden at t = 1, so the in-between pixel that shows it is
            # seen by I0 only (and the other way round).
            vis0 = (1 - t) * backward_warp(v1, ft1)
            vis1 = t * backward_warp(v0, ft0)
            total = vis0 + vis1
            weight1 = np.where(total > 1e-3, vis1 / np.maximum(total, 1e-3), t).astype(np.float32)
        return w0 + weight1[..., None] * (w1 - w0)
