"""RIFE as a pair interpolator (see :mod:`.driver`): IMAGE frames in, IFNet at the requested times, frames out."""

from typing import Sequence

import torch

from .ifnet import IFNet, interpolate_batch


class RifeInterpolator:
    """Frames between two IMAGE frames ``[H, W, C]`` from a RIFE IFNet; ``scale`` and ``ensemble`` as in the releases.

    ``scale`` 1 for up to ~1080p, 0.5 for 4K (coarser flow, padding to 64); ``ensemble`` also runs the swapped pair
    and averages. All times of one pair run as one batch. An alpha channel is blended linearly.
    """

    def __init__(self, model: IFNet, *, scale: float = 1.0, ensemble: bool = False):
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.model = model
        self.scale = scale
        self.ensemble = ensemble

    def __call__(self, a: torch.Tensor, b: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
        """Frames ``[len(times), H, W, C]`` (float32) between ``a`` and ``b``."""
        rgb0 = _rgb_batch(a)
        rgb1 = _rgb_batch(b)
        out = interpolate_batch(self.model, rgb0, rgb1, times, scale=self.scale, ensemble=self.ensemble)
        frames = out.float().cpu().clamp(0, 1).permute(0, 2, 3, 1)
        if a.shape[-1] == 1:
            return frames.mean(-1, keepdim=True)
        if a.shape[-1] == 4:
            t = torch.tensor(list(times), dtype=torch.float32).view(-1, 1, 1, 1)
            alpha = a[..., 3:].float() + t * (b[..., 3:].float() - a[..., 3:].float())
            frames = torch.cat((frames, alpha), -1)
        return frames


def _rgb_batch(frame: torch.Tensor) -> torch.Tensor:
    """``[H, W, C]`` -> ``[1, 3, H, W]`` (grey repeated to RGB, alpha dropped)."""
    rgb = frame[..., :3] if frame.shape[-1] >= 3 else frame[..., :1].expand(*frame.shape[:-1], 3)
    return rgb.float().permute(2, 0, 1).unsqueeze(0)
