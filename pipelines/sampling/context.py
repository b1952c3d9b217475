"""Context windows: denoise a video longer than the motion module's window one window at a time.

Windows are applied inside the ``denoise`` callable, so every sampler works with them. Each window's x0
prediction is weighted per frame (flat, pyramid or overlap-linear) and the weighted predictions are averaged
where windows overlap. Only one window's activations exist at a time, so memory stays flat in frame count.
"""

from dataclasses import dataclass

import torch

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

    def __post_init__(self):
        if self.length < 1:
            raise ValueError(f"context length must be >= 1, got {self.length}")
        if not 0 <= self.overlap < self.length:
            raise ValueError(f"context overlap must be in [0, length), got {self.overlap} for length {self.length}")
        if self.stride < 1:
            raise ValueError(f"context stride must be >= 1, got {self.stride}")
        if self.fuse not in FUSE_METHODS:
            raise ValueError(f"fuse must be one of {FUSE_METHODS}, got {self.fuse!r}")


def _slide(sequence, length, step, closed_loop):
    """Windows of ``length`` over ``sequence`` every ``step``; the last one is end-aligned, or wraps if looping."""
    n = len(sequence)
    if closed_loop:
        return [[sequence[(s + k) % n] for k in range(length)] for s in range(0, n, step)]
    starts = list(range(0, n - length, step)) + [n - length]
    return [sequence[s : s + length] for s in starts]


def uniform_windows(num_frames, length, overlap, stride=1, closed_loop=False):
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


def window_weights(length, fuse="pyramid", overlap=0):
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


def denoise_in_windows(window_denoise, x, sigma, options):
    """Fused x0 for all frames of ``x [F, ...]``.

    ``window_denoise(x_window, sigma, frames)`` returns the x0 prediction for the frames listed in
    ``frames`` (a LongTensor of indices into F); it is called once per window, one window at a time.
    """
    num_frames = x.shape[0]
    windows = uniform_windows(num_frames, options.length, options.overlap, options.stride, options.closed_loop)
    if len(windows) == 1:  # nothing to fuse; skip the weights so the result is bit-identical
        return window_denoise(x, sigma, torch.arange(num_frames, device=x.device))
    total = torch.zeros_like(x)
    weight_sum = torch.zeros(num_frames, dtype=x.dtype, device=x.device)
    for window in windows:
        frames = torch.tensor(window, dtype=torch.long, device=x.device)
        out = window_denoise(x.index_select(0, frames), sigma, frames)
        w = window_weights(len(window), options.fuse, options.overlap).to(device=x.device, dtype=x.dtype)
        total.index_add_(0, frames, out * w.view(-1, *([1] * (x.dim() - 1))))
        weight_sum.index_add_(0, frames, w)
        del out
    return total / weight_sum.view(-1, *([1] * (x.dim() - 1)))


def slice_frames(obj, frames, num_frames):
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
