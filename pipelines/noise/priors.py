"""Initial-noise priors for video diffusion. Every function draws from an explicit torch.Generator and keeps
unit variance per element; they differ in how frames are correlated.

Shapes are ``[F, ...]`` (frames first, e.g. ``[F, C, h, w]``). Draws happen in float32 on the generator's
device, in a fixed documented order, so the same seed gives the same noise.
"""

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch

from ..options import OptionError, check_choice, check_range

METHODS = ("iid", "videofusion", "pyoco_mixed", "pyoco_progressive", "freenoise", "motion", "vidrd")


def _randn(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Standard normal float32 noise from ``generator`` (on its device)."""
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32)


def _per_frame(values: Union[float, Sequence[float]], num_frames: int) -> torch.Tensor:
    """A ``[F, 1, ...]``-broadcastable float tensor from a scalar or a per-frame sequence."""
    v = torch.as_tensor(values, dtype=torch.float32)
    if v.dim() == 0:
        v = v.expand(num_frames)
    if v.shape != (num_frames,):
        raise ValueError(f"expected a scalar or {num_frames} per-frame values, got shape {tuple(v.shape)}")
    return v


def iid_noise(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Independent N(0, 1) noise for every element."""
    return _randn(shape, generator)


def videofusion_noise(
    shape: Sequence[int],
    generator: torch.Generator,
    lam: Union[float, Sequence[float]] = 0.5,
    base_frame: Optional[int] = None,
) -> torch.Tensor:
    """VideoFusion base + residual (000 §3.1 eq. 4): ``eps_i = sqrt(l_i) b + sqrt(1 - l_i) r_i``.

    lam: scalar or per-frame ``l_i`` in [0, 1]; base_frame: a frame index whose noise is the base itself
    (``l = 1``, eq. 7 uses ``F // 2``) or None. Correlation of frames i, j is ``sqrt(l_i l_j)``.
    Draw order: b ``[1, ...]`` then r ``[F, ...]``.
    """
    num_frames = shape[0]
    weights = _per_frame(lam, num_frames).clone()
    if base_frame is not None:
        if not -num_frames <= base_frame < num_frames:
            raise ValueError(f"base_frame {base_frame} out of range for {num_frames} frames")
        weights[base_frame] = 1.0
    if bool(((weights < 0) | (weights > 1)).any()):
        raise ValueError("videofusion lambda must be in [0, 1]")
    base = _randn((1, *shape[1:]), generator)
    residual = _randn(shape, generator)
    weights = weights.to(base.device).view(-1, *([1] * (len(shape) - 1)))
    return weights.sqrt() * base + (1 - weights).sqrt() * residual


def pyoco_mixed_noise(shape: Sequence[int], generator: torch.Generator, alpha: float = 1.0) -> torch.Tensor:
    """PYoCo mixed noise: ``eps_i = sqrt(a^2/(1+a^2)) s + sqrt(1/(1+a^2)) r_i``; inter-frame corr ``a^2/(1+a^2)``.

    Draw order: shared s ``[1, ...]`` then r ``[F, ...]``.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    shared = _randn((1, *shape[1:]), generator)
    independent = _randn(shape, generator)
    a2 = alpha * alpha
    return shared * math.sqrt(a2 / (1 + a2)) + independent * math.sqrt(1 / (1 + a2))


def pyoco_progressive_noise(shape: Sequence[int], generator: torch.Generator, alpha: float = 2.0) -> torch.Tensor:
    """PYoCo progressive (autoregressive) noise: ``eps_0 ~ N``, ``eps_i = a/sqrt(1+a^2) eps_{i-1} + r_i/sqrt(1+a^2)``.

    Correlation at lag k is ``(a / sqrt(1 + a^2)) ** k``. Draw order: ``[F, ...]`` at once (row 0 is eps_0).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    fresh = _randn(shape, generator)
    keep, new = alpha / math.sqrt(1 + alpha * alpha), 1 / math.sqrt(1 + alpha * alpha)
    frames = [fresh[0]]
    for i in range(1, shape[0]):
        frames.append(frames[-1] * keep + fresh[i] * new)
    return torch.stack(frames)


def freenoise_noise(
    shape: Sequence[int], generator: torch.Generator, window: int = 16, stride: int = 4
) -> torch.Tensor:
    """FreeNoise noise rescheduling: the first ``window`` frames are i.i.d.; each later chunk of ``stride`` frames
    reuses the chunk ``window`` frames earlier in a random order (so every window sees the same noise set).

    Draw order: ``[min(F, window), ...]`` i.i.d., then one ``randperm`` per later chunk.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    num_frames = shape[0]
    first = _randn((min(num_frames, window), *shape[1:]), generator)
    noise = torch.empty(tuple(shape), dtype=first.dtype, device=first.device)
    noise[: len(first)] = first
    for start in range(window, num_frames, stride):
        count = min(stride, num_frames - start)
        source = torch.arange(start - window, start - window + stride, device=first.device)
        order = torch.randperm(stride, generator=generator, device=generator.device).to(first.device)
        noise[start : start + count] = noise[source[order][:count]]
    return noise


def motion_translated_noise(
    shape: Sequence[int], generator: torch.Generator, delta_x: float = 1.0, delta_y: float = 0.0
) -> torch.Tensor:
    """Text2Video-Zero motion-translated noise (002 P103): frame k is frame 0's noise shifted by ``k*(dx, dy)``
    latent pixels (rounded, circular), a global scene motion. Draw order: frame 0 ``[1, ...]``."""
    first = _randn((1, *shape[1:]), generator)[0]
    frames = [
        torch.roll(first, shifts=(round(k * delta_y), round(k * delta_x)), dims=(-2, -1)) for k in range(shape[0])
    ]
    return torch.stack(frames)


def frame_noise_reversal(previous: torch.Tensor) -> torch.Tensor:
    """VidRD FNR (003 eq. 6): the next clip's initial noise is the previous clip's in reversed frame order."""
    return previous.flip(0)


def past_dependent_noise(
    previous: torch.Tensor, generator: torch.Generator, prompt_frames: int = 4, alpha: float = 1.0
) -> torch.Tensor:
    """VidRD PNS (003 eq. 7): reversed previous noise for the first ``prompt_frames`` frames; for the others
    ``a/sqrt(1+a^2) * reversed + eps`` with ``eps ~ N(0, 1/(1+a^2))``. alpha 0 gives fresh noise there.

    Draw order: one ``[F, ...]`` tensor (rows of the prompt frames are drawn but unused).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    reversed_noise = frame_noise_reversal(previous)
    fresh = _randn(previous.shape, generator).to(device=previous.device, dtype=previous.dtype)
    keep, new = alpha / math.sqrt(1 + alpha * alpha), 1 / math.sqrt(1 + alpha * alpha)
    mixed = reversed_noise * keep + fresh * new
    m = max(0, min(prompt_frames, previous.shape[0]))
    return torch.cat([reversed_noise[:m], mixed[m:]])


@dataclass(frozen=True)
class NoisePrior:
    """What a FF_NOISE socket carries: a method and its parameters; ``sample(shape, generator)`` draws noise.

    lam/base_frame: videofusion; alpha: pyoco_mixed, pyoco_progressive, vidrd (PNS); window/stride: freenoise;
    delta_x/delta_y: motion; prompt_frames: vidrd. ``vidrd`` samples i.i.d. for the first clip and gives later
    clips through :meth:`next_clip` (FNR when ``alpha`` is None, PNS otherwise).
    """

    method: str = "iid"
    lam: Union[float, Tuple[float, ...]] = 0.5
    base_frame: Optional[int] = None
    alpha: Optional[float] = 1.0
    window: int = 16
    stride: int = 4
    delta_x: float = 1.0
    delta_y: float = 0.0
    prompt_frames: int = 4

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        for lam in self.lam if isinstance(self.lam, tuple) else (self.lam,):
            check_range("lam", lam, 0.0, 1.0)
        if self.alpha is not None:
            check_range("alpha", self.alpha, 0.0)
        elif self.method in ("pyoco_mixed", "pyoco_progressive"):
            raise OptionError("alpha", f"a value >= 0 for {self.method}, got None")
        check_range("window", self.window, 1)
        check_range("stride", self.stride, 1)
        check_range("prompt_frames", self.prompt_frames, 0)

    def sample(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """Initial noise ``[F, ...]`` (float32 on the generator's device)."""
        m = self.method
        if m in ("iid", "vidrd"):
            return iid_noise(shape, generator)
        if m == "videofusion":
            return videofusion_noise(shape, generator, self.lam, self.base_frame)
        if m == "pyoco_mixed":
            return pyoco_mixed_noise(shape, generator, float(self.alpha or 0.0))
        if m == "pyoco_progressive":
            return pyoco_progressive_noise(shape, generator, float(self.alpha or 0.0))
        if m == "freenoise":
            return freenoise_noise(shape, generator, self.window, self.stride)
        return motion_translated_noise(shape, generator, self.delta_x, self.delta_y)

    def next_clip(self, previous: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Initial noise of the next clip from the previous clip's (VidRD FNR / PNS)."""
        if self.alpha is None:
            return frame_noise_reversal(previous)
        return past_dependent_noise(previous, generator, self.prompt_frames, self.alpha)
