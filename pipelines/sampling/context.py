"""Context windows: denoise a video longer than the motion module's window one window at a time.

Windows are applied inside the ``denoise`` callable, so every sampler works with them. Each window's x0
prediction is weighted per frame (flat, pyramid or overlap-linear) and the weighted predictions are averaged
where windows overlap. Only one window's activations exist at a time, so memory stays flat in frame count.
"""

from dataclasses import dataclass
from typing import Any, Callable, List, Sequence

import torch

from ..options import OptionError, check_choice, check_range

FUSE_METHODS = ("flat", "pyramid", "overlap-linear")


@dataclass(frozen=True)
class ContextOptions:
    """What a FF_CONTEXT socket carries.

    length: frames per window (the motion module's length, 16 for AnimateDiff); overlap: frames shared by
    neighbouring windows; stride: dilation levels, 1 = contiguous windows only, k adds windows over every
    2nd, 4th, ... 2**(k-1)-th frame; closed_loop: windows wrap from the last frame to the first (looping video);
    fuse: per-frame weights inside a window, one of FUSE_METHODS.
    """

    length: int = 16
    overlap: int = 4
    stride: int = 1
    closed_loop: bool = False
    fuse: str = "pyramid"

    def __post_init__(self) -> None:
        check_range("length", self.length, 1)
        if not 0 <= self.overlap < self.length:
            raise OptionError("overlap", f"a value in [0, length) = [0, {self.length}), got {self.overlap}")
        check_range("stride", self.stride, 1)
        check_choice("fuse", self.fuse, FUSE_METHODS)


def _slide(sequence: Sequence[int], length: int, step: int, closed_loop: bool) -> List[List[int]]:
    """Windows of ``length`` over ``sequence`` every ``step``; the last one is end-aligned, or wraps if looping."""
    n = len(sequence)
    if closed_loop:
        return [[sequence[(s + k) % n] for k in range(length)] for s in range(0, n, step)]
    starts = list(range(0, n - length, step)) + [n - length]
    return [list(sequence[s : s + length]) for s in starts]


def uniform_windows(
    num_frames: int, length: int, overlap: int, stride: int = 1, closed_loop: bool = False
) -> List[List[int]]:
    """Frame-index lists of a uniform sliding schedule; one window of all frames when they fit."""
    if num_frames <= length:
        return [list(range(num_frames))]
    windows = []
    for level in range(stride):
        dilation = 2**level
        for phase in range(dilation):
            sequence = list(range(phase, num_frames, dilation))
            if len(sequence) < length:
                continue
            for window in _slide(sequence, length, length - overlap, closed_loop):
                if window not in windows:
                    windows.append(window)
    return windows


def window_weights(length: int, fuse: str = "pyramid", overlap: int = 0) -> torch.Tensor:
    """Per-frame fuse weights of one window ``[length]`` (all > 0)."""
    k = torch.arange(length, dtype=torch.float32)
    if fuse == "flat":
        return torch.ones(length)
    if fuse == "pyramid":
        return torch.minimum(k + 1, length - k)
    if fuse == "overlap-linear":
        ramp = float(max(overlap, 0) + 1)
        return torch.minimum(torch.ones(length), torch.minimum((k + 1) / ramp, (length - k) / ramp))
    raise ValueError(f"fuse must be one of {FUSE_METHODS}, got {fuse!r}")


def denoise_in_windows(
    window_denoiser: Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    options: ContextOptions,
) -> torch.Tensor:
    """Fused x0 for all frames of ``x [F, ...]``.

    ``window_denoiser(x_window, sigma, frames)`` returns the x0 prediction for the frames listed in
    ``frames`` (a LongTensor of indices into F); it is called once per window, one window at a time.
    """
    num_frames = x.shape[0]
    windows = uniform_windows(num_frames, options.length, options.overlap, options.stride, options.closed_loop)
    if len(windows) == 1:  # nothing to fuse; skip the weights so the result is bit-identical
        return window_denoiser(x, sigma, torch.arange(num_frames, device=x.device))
    total = torch.zeros_like(x)
    weight_sum = torch.zeros(num_frames, dtype=x.dtype, device=x.device)
    for window in windows:
        frames = torch.tensor(window, dtype=torch.long, device=x.device)
        out = window_denoiser(x.index_select(0, frames), sigma, frames)
        w = window_weights(len(window), options.fuse, options.overlap).to(device=x.device, dtype=x.dtype)
        total.index_add_(0, frames, out * w.view(-1, *([1] * (x.dim() - 1))))
        weight_sum.index_add_(0, frames, w)
        del out
    return total / weight_sum.view(-1, *([1] * (x.dim() - 1)))


def slice_frames(obj: Any, frames: torch.Tensor, num_frames: int) -> Any:
    """Slice every tensor with a leading frame axis of size ``num_frames`` in a nested dict/list/tuple.

    Other values (and tensors with another leading size) pass through unchanged. Used for per-frame
    conditioning such as ControlNet hint latents.
    """
    if torch.is_tensor(obj):
        if obj.dim() > 0 and obj.shape[0] == num_frames:
            return obj.index_select(0, frames.to(obj.device))
        return obj
    if isinstance(obj, dict):
        return {key: slice_frames(value, frames, num_frames) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(slice_frames(value, frames, num_frames) for value in obj)
    return obj
