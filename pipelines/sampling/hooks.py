"""Sampler hooks: how features reach into a sampling run without their own copy of the run.

:func:`~.samplers.sample` runs every sampler the same way (start latent, hooks, sampler, back to a VP latent) and
takes a sequence of :class:`SamplerHook` objects. A hook has two places to act, both in sigma space
(``x = x0 + sigma * eps``) and both returning a replacement tensor or ``None`` to keep ``x``:

- ``start(sigma0, x)``: once, on the start latent at ``sigmas[0]``, before the first model call;
- ``step(i, sigma, x)``: after sampler step ``i`` (0-based), ``x`` at ``sigma = sigmas[i + 1]``.

Hooks run in the order given; each sees the previous one's replacement. Users today:

- image-to-video (``pipelines/sampling/i2v.py``): a :class:`FrameHold` of frame 0 (seed 000 §4.1);
- VidRD (``pipelines/sampling/vidrd.py``): DSG replay of the previous clip's trajectory, a trajectory recorder
  and an observer (seed 003 §4.3 eq. 8);
- FreeInit (``pipelines/sampling/freeinit.py``) wraps whole runs, each one a :func:`~.samplers.sample` call.

Next users, and where they plug in:

- diffusion in-betweening: a :class:`FrameHold` of several keyframes (``frames`` = their indices, ``clean`` their
  latents) keeps them at the current noise level at every step, as image-to-video does for frame 0;
- ControlNet: its per-step residuals are computed inside the model call, so they enter through the denoiser's
  ``control`` callable (``GuidedDenoiser`` in ``pipelines/sampling/guidance.py``), called once per model call with
  that call's sigma, so a start/end percent is a sigma range; where a range must count steps instead, a hook tracks
  them (``start`` arms step 0, ``step(i, ...)`` arms step ``i + 1``) and the control callable reads its state.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

from ..options import check_range
from .schedules import noised_latent

StepFunction = Callable[[int, float, torch.Tensor], Optional[torch.Tensor]]


class SamplerHook:
    """Base of all hooks: both places leave ``x`` unchanged unless a subclass overrides them."""

    def start(self, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """The start latent at ``sigmas[0]``; return a replacement or None."""
        return None

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """The latent after step ``i`` at ``sigma = sigmas[i + 1]``; return a replacement or None."""
        return None


class StepHook(SamplerHook):
    """A plain ``fn(i, sigma, x) -> tensor or None`` as a hook acting after every step."""

    def __init__(self, fn: StepFunction):
        self.fn = fn

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Call ``fn``."""
        return self.fn(i, sigma, x)


HookLike = Union[SamplerHook, StepFunction, None]


def as_hooks(hooks: Sequence[HookLike]) -> List[SamplerHook]:
    """The hooks as :class:`SamplerHook` objects (plain callables become step hooks, None is dropped)."""
    return [h if isinstance(h, SamplerHook) else StepHook(h) for h in hooks if h is not None]


def run_start(hooks: Sequence[SamplerHook], sigma: float, x: torch.Tensor) -> torch.Tensor:
    """Every hook's ``start`` in order, each on the previous one's result."""
    for hook in hooks:
        replaced = hook.start(sigma, x)
        if replaced is not None:
            x = replaced
    return x


def step_function(hooks: Sequence[SamplerHook]) -> Optional[StepFunction]:
    """One ``fn(i, sigma, x)`` running every hook's ``step`` in order (None without hooks)."""
    if not hooks:
        return None

    def run_steps(i: int, sigma: float, x: torch.Tensor) -> torch.Tensor:
        for hook in hooks:
            replaced = hook.step(i, sigma, x)
            if replaced is not None:
                x = replaced
        return x

    return run_steps


@dataclass(frozen=True)
class FrameHold(SamplerHook):
    """Frames held to clean latents during sampling (image-to-video's first frame, in-betweening's keyframes).

    frames: the held frame indices; clean: their latents ``[K, C, h, w]`` (or ``[C, h, w]`` for one frame);
    noise: the fixed noise those frames are noised with (shaped like ``clean``, normally the frames' own rows of
    the initial noise). At the start and after every step, at the current noise level ``sigma``::

        x[frames] = strength * (clean + sigma * noise) + (1 - strength) * x[frames]

    Strength 1 replaces the frames (they end exactly on ``clean`` at a final sigma of 0), 0 leaves them free.
    """

    frames: Union[int, slice, Tuple[int, ...]]
    clean: torch.Tensor
    noise: torch.Tensor
    strength: float = 1.0

    def __post_init__(self) -> None:
        check_range("strength", self.strength, 0.0, 1.0)
        if tuple(self.clean.shape) != tuple(self.noise.shape):
            raise ValueError(f"held latents {tuple(self.clean.shape)} and their noise {tuple(self.noise.shape)} differ")

    def apply(self, sigma: float, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the held frames blended towards ``clean`` noised to ``sigma``."""
        index = list(self.frames) if isinstance(self.frames, tuple) else self.frames
        held = noised_latent(self.clean.to(x), self.noise.to(x), float(sigma))
        x = x.clone()
        x[index] = held * self.strength + x[index] * (1.0 - self.strength)
        return x

    def start(self, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Hold at the first noise level."""
        return self.apply(sigma, x)

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Hold at the noise level reached by step ``i``."""
        return self.apply(sigma, x)


class StepStates(SamplerHook):
    """Keeps a copy of ``x`` after every step: ``states[i]`` is the latent at ``sigmas[i + 1]``."""

    def __init__(self) -> None:
        self.states: List[torch.Tensor] = []

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Store a copy."""
        self.states.append(x.clone())
        return None


class LastState(SamplerHook):
    """Keeps a reference to the latest sampler state: ``x`` (sigma space) at ``sigma`` after ``steps_done`` steps.

    Before the first step it holds the start latent (``steps_done`` 0). Used to save the work done when a run fails.
    """

    def __init__(self) -> None:
        self.steps_done = 0
        self.sigma: Optional[float] = None
        self.x: Optional[torch.Tensor] = None

    def start(self, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Remember the start latent."""
        self.sigma, self.x = float(sigma), x
        return None

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Remember the latest state."""
        self.steps_done, self.sigma, self.x = i + 1, float(sigma), x
        return None
