"""Deterministic DDIM inversion: run the DDIM ODE backwards from a clean latent to noise (002 P16-17)."""

from typing import Optional

import torch

from .. import progress
from .samplers import Denoiser, StepFn


def ddim_invert(
    denoiser: Denoiser,
    latent: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    fixed_point_iters: int = 0,
    sigma_floor: Optional[float] = None,
    step_hook: StepFn = None,
) -> torch.Tensor:
    """Invert a DDIM (eta 0) run over descending ``sigmas``: returns sigma-space x at ``sigmas[0]``.

    Walks the sigmas in ascending order. Each step from level ``a`` to the higher level ``b`` takes the
    predicted noise ``e`` at the current point and sets ``x_b = x_a + (b - a) * e`` — the DDIM step solved
    for its start point. Plain DDIM inversion (``fixed_point_iters=0``) evaluates ``e`` at ``(x_a, a)`` (the
    clean start is evaluated at ``sigma_floor``, default the smallest nonzero sigma); each fixed-point
    iteration re-evaluates ``e`` at ``(x_b, b)``, which makes the DDIM sampling step from ``x_b`` land back on
    ``x_a`` (near-exact reconstruction for one extra model call per iteration and step).
    ``sample_ddim(denoiser, result, sigmas)`` then reconstructs ``latent``.
    ``step_hook(k, sigma_b, x_b)`` is called after inversion step k (may return a replacement).
    """
    ascending = [float(s) for s in reversed(sigmas)]
    floor = sigma_floor if sigma_floor is not None else min(s for s in ascending if s > 0)
    x = latent
    steps = len(ascending) - 1
    for k in range(steps):
        low, high = ascending[k], ascending[k + 1]
        sigma_eval = max(low, floor)
        denoised = denoiser(x, sigma_eval)
        eps = (x - denoised) / sigma_eval
        x_next = x + eps * (high - low)
        for _ in range(fixed_point_iters):
            denoised = denoiser(x_next, high)
            x_next = x + (x_next - denoised) / high * (high - low)
        x = x_next
        if step_hook is not None:
            replaced = step_hook(k, high, x)
            if replaced is not None:
                x = replaced
        progress.report(k + 1, steps, preview=denoised)
    return x
