"""k-diffusion-style samplers: each is one short function over a ``denoiser(x, sigma) -> x0`` callable.

``x`` lives in sigma space (``x = x0 + sigma * eps``), ``sigmas`` is a descending 1-D tensor whose last entry is
the final noise level (usually 0). Samplers know nothing about UNets, prompts or nodes.

After every step ``i`` (0-based) a sampler calls ``step_hook(i, sigmas[i + 1], x)`` when one is given: ``x`` is
the new sigma-space latent at noise level ``sigmas[i + 1]``; the hook returns a replacement tensor or ``None``
to keep ``x``. Then it calls ``progress.report(i + 1, n, preview=denoised)`` (which raises
``progress.Interrupted`` when the user stopped the run, so runs cancel between steps).

:func:`sample` is the one run sequence every feature uses (plain text-to-video, video-to-video, image-to-video,
each VidRD clip, each FreeInit pass): check the sampler name, build the start latent, let the hooks
(``pipelines/sampling/hooks.py``, which documents where each feature plugs in) adjust it, run the sampler with the
hooks after every step, and leave sigma space.
"""

import math
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

import torch

from .. import progress
from .hooks import HookLike, as_hooks, run_start, step_function
from .schedules import from_sigma_space, initial_latent

Tensor = torch.Tensor
Gen = Optional[torch.Generator]
Denoiser = Callable[[Tensor, float], Tensor]
StepFn = Optional[Callable[[int, float, Tensor], Optional[Tensor]]]


def randn_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal noise shaped like ``x`` drawn (in float32) from ``generator``'s device, then moved to x."""
    if generator is None:
        raise ValueError("this sampler draws noise: pass an explicit torch.Generator")
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return noise.to(device=x.device, dtype=x.dtype)


def _finish_step(
    i: int, sigmas: torch.Tensor, x: torch.Tensor, denoised: torch.Tensor, step_hook: StepFn
) -> torch.Tensor:
    """Run the step hook (it may replace x), then report progress (which may raise Interrupted)."""
    if step_hook is not None:
        replaced = step_hook(i, float(sigmas[i + 1]), x)
        if replaced is not None:
            x = replaced
    progress.report(i + 1, len(sigmas) - 1, preview=denoised)
    return x


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> Tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step; eta 1 is DDPM-like, 0 deterministic (DDIM's eta)."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


def _steps(sigmas: Tensor) -> Iterator[Tuple[int, float, float]]:
    """``(i, sigma, sigma_next)`` of every step."""
    for i in range(len(sigmas) - 1):
        yield i, float(sigmas[i]), float(sigmas[i + 1])


def _add_noise(x: Tensor, up: float, generator: Gen) -> Tensor:
    """``x`` plus fresh noise of size ``up`` (an ancestral step); ``x`` itself when ``up`` is 0."""
    return x + randn_like(x, generator) * up if up > 0 else x


def sample_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: Gen = None, step_hook: StepFn = None
) -> Tensor:
    """Euler method on the probability-flow ODE (diffusers' EulerDiscreteScheduler without churn)."""
    for i, sigma, sigma_next in _steps(sigmas):
        denoised = denoiser(x, sigma)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
        x = _finish_step(i, sigmas, x, denoised, step_hook)
    return x


def sample_euler_ancestral(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: Gen, eta: float = 1.0, step_hook: StepFn = None
) -> Tensor:
    """Euler step to sigma_down, then fresh noise of size sigma_up (diffusers' EulerAncestralDiscreteScheduler)."""
    for i, sigma, sigma_next in _steps(sigmas):
        denoised = denoiser(x, sigma)
        down, up = ancestral_step(sigma, sigma_next, eta)
        x = _add_noise(x + (x - denoised) / sigma * (down - sigma), up, generator)
        x = _finish_step(i, sigmas, x, denoised, step_hook)
    return x


def sample_ddim(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, eta: float = 0.0, generator: Gen = None, step_hook: StepFn = None
) -> Tensor:
    """DDIM (Song et al. 2021). In sigma space its eta-noise equals an ancestral step with the same eta,
    so eta 0 is the deterministic DDIM of diffusers' DDIMScheduler and eta 1 is DDPM-like."""
    for i, sigma, sigma_next in _steps(sigmas):
        denoised = denoiser(x, sigma)
        down, up = ancestral_step(sigma, sigma_next, eta)
        x = _add_noise(denoised + (x - denoised) / sigma * down, up, generator)
        x = _finish_step(i, sigmas, x, denoised, step_hook)
    return x


def sample_dpmpp_2m(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: Gen = None, step_hook: StepFn = None
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in log-sigma; first order on the first step
    and on a final step to sigma 0 (diffusers' DPMSolverMultistepScheduler, dpmsolver++, midpoint)."""
    old_denoised: Optional[Tensor] = None
    h_last = 0.0  # set together with old_denoised on every step before sigma 0
    for i, sigma, sigma_next in _steps(sigmas):
        denoised = denoiser(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)
            blended = denoised
            if old_denoised is not None:
                r = h_last / h
                blended = denoised * (1 + 1 / (2 * r)) - old_denoised * (1 / (2 * r))
            x = x * (sigma_next / sigma) - blended * math.expm1(-h)
            h_last = h
        old_denoised = denoised
        x = _finish_step(i, sigmas, x, denoised, step_hook)
    return x


def sample_lcm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: Gen, step_hook: StepFn = None) -> Tensor:
    """Latent Consistency Model sampling: jump to the prediction, renoise with fresh noise to the next sigma.

    LCMScheduler's boundary scalings (c_skip, c_out with timestep_scaling 10) are omitted: they differ from
    (0, 1) by under 1e-5 at every LCM timestep (>= 19).
    """
    for i, sigma, sigma_next in _steps(sigmas):
        denoised = denoiser(x, sigma)
        x = _add_noise(denoised, sigma_next, generator)
        x = _finish_step(i, sigmas, x, denoised, step_hook)
    return x


SAMPLERS: dict = {
    "ddim": sample_ddim,
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "dpmpp_2m": sample_dpmpp_2m,
    "lcm": sample_lcm,
}


def check_sampler(name: str) -> None:
    """Raise a ValueError naming the known samplers unless ``name`` is one."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")


def sample(
    sampler_name: str,
    denoiser: Denoiser,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    latent: Optional[torch.Tensor] = None,
    denoise_strength: float = 1.0,
    generator: Optional[torch.Generator] = None,
    hooks: Sequence[HookLike] = (),
    **sampler_options: Any,
) -> torch.Tensor:
    """Run a named sampler from noise (or a noised ``latent`` when ``denoise_strength < 1``) to a VP latent.

    ``noise`` is the unit-variance initial noise ``[F, C, h, w]`` (e.g. from a NoisePrior); ``generator`` feeds
    the ancestral samplers. ``hooks`` (:mod:`.hooks`; plain ``fn(i, sigma, x)`` callables act after every step)
    adjust the start latent and every step's result. Returns the final latent (converted from sigma space when
    the last sigma is not 0).
    """
    check_sampler(sampler_name)
    active = as_hooks(hooks)
    x = initial_latent(noise, sigmas, latent, full_denoise=denoise_strength >= 1.0)
    x = run_start(active, float(sigmas[0]), x)
    x = SAMPLERS[sampler_name](
        denoiser, x, sigmas, generator=generator, step_hook=step_function(active), **sampler_options
    )
    return from_sigma_space(x, float(sigmas[-1]))
