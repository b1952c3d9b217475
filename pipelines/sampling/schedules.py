"""Noise schedules as plain tensors.

Conventions (k-diffusion's): a sampler works on ``x = x0 + sigma * eps`` (the "sigma space"). A model trained
on the variance-preserving process sees ``x_vp = x / sqrt(1 + sigma^2)`` at timestep ``t`` with
``sigma(t) = sqrt((1 - alphas_cumprod[t]) / alphas_cumprod[t])``.

The numbers follow diffusers' schedulers (float32 betas and cumulative products, the same timestep spacings)
so that trajectories can be compared with them.
"""

import math
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

if TYPE_CHECKING:
    from ..models.bundle import ScheduleConfig

SPACINGS = ("leading", "trailing", "linspace", "karras", "lcm")

# Where FrameFold's spacing deliberately differs from diffusers' scheduler of the same sampler (kept: every sampler
# shares one sigma table per spacing, so sampler comparisons at equal settings see equal noise levels). Suggested
# as the sampler-node tooltip; tests/test_sampling_diffusers_oracle.py checks both statements.
SPACING_NOTES = (
    "'leading' is DDIM's leading spacing for every sampler (steps 2: timesteps 501, 1); diffusers' "
    "DPMSolverMultistepScheduler spaces 'leading' over n+1 intervals (667, 334). Full denoise starts from "
    "noise * sqrt(1 + sigma_max^2) for every spacing; diffusers' EulerDiscreteScheduler with 'linspace' or "
    "'trailing' starts from noise * sigma_max (0.2% smaller for SD's sigma_max 14.6)."
)

# diffusers replaces a zero terminal alphas_cumprod by this so that sigma stays finite (sigma_max ~ 4096).
_ZERO_SNR_ALPHA_FLOOR = 2.0**-24


def _cosine_alpha_bar(t: float) -> float:
    """Nichol & Dhariwal's cosine alpha-bar (s = 0.008) at ``t`` in [0, 1]."""
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def make_betas(
    beta_schedule: str = "scaled_linear",
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """Training betas ``[T]`` (float32) as diffusers' DDPMScheduler makes them.

    ``scaled_linear`` (Stable Diffusion): linear in sqrt(beta); ``linear`` (AnimateDiff, DDPM): linear in beta;
    ``squaredcos_cap_v2``: the cosine alpha-bar schedule, betas capped at 0.999 (beta_start/end unused).
    """
    T = num_train_timesteps
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if beta_schedule == "squaredcos_cap_v2":
        betas = [min(1 - _cosine_alpha_bar((i + 1) / T) / _cosine_alpha_bar(i / T), 0.999) for i in range(T)]
        return torch.tensor(betas, dtype=torch.float32)
    raise ValueError(f"beta_schedule must be 'scaled_linear', 'linear' or 'squaredcos_cap_v2', got {beta_schedule!r}")


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale betas so the last timestep has zero SNR (Lin et al. 2023, Algorithm 1)."""
    sqrt_abar = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    sqrt_abar = (sqrt_abar - last) * (first / (first - last))
    abar = sqrt_abar**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """Cumulative product of ``1 - beta`` (float32, like diffusers)."""
    return torch.cumprod(1.0 - betas, dim=0)


def alphas_cumprod_from_config(config: "ScheduleConfig") -> torch.Tensor:
    """``alphas_cumprod [T]`` for a :class:`~pipelines.models.bundle.ScheduleConfig`."""
    betas = make_betas(config.beta_schedule, config.beta_start, config.beta_end, config.num_train_timesteps)
    if config.zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    return alphas_cumprod_from_betas(betas)


def train_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Sigma of every training timestep ``[T]``; a zero terminal alpha is floored so sigma stays finite."""
    abar = alphas_cumprod.clone()
    abar[abar <= 0] = _ZERO_SNR_ALPHA_FLOOR
    return ((1.0 - abar) / abar) ** 0.5


def sigma_at_timestep(timesteps: Union[float, torch.Tensor], sigmas_train: torch.Tensor) -> torch.Tensor:
    """Sigma at (possibly fractional) timesteps by linear interpolation of the training sigmas."""
    t = torch.as_tensor(timesteps, dtype=torch.float64).clamp(0, len(sigmas_train) - 1)
    low = t.floor().long().clamp(max=len(sigmas_train) - 2)
    w = t - low
    table = sigmas_train.double()
    return (1 - w) * table[low] + w * table[low + 1]


def timestep_at_sigma(sigma: Union[float, torch.Tensor], sigmas_train: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`sigma_at_timestep` (piecewise linear), clamped to ``[0, T-1]``."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    table = sigmas_train.double()
    flat = s.reshape(-1)
    high = torch.searchsorted(table, flat).clamp(1, len(table) - 1)
    low = high - 1
    w = ((flat - table[low]) / (table[high] - table[low])).clamp(0, 1)
    return (low + w).reshape(s.shape)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) sigmas, ``n`` values from sigma_max down to sigma_min (no trailing zero)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def default_spacing(schedule: "ScheduleConfig") -> str:
    """The timestep spacing a model's schedule calls for: trailing (starts at t = T) for zero terminal SNR,
    else leading (SD / AnimateDiff DDIM)."""
    return "trailing" if schedule.zero_terminal_snr else "leading"


def spaced_timesteps(
    n: int, spacing: str, num_train_timesteps: int = 1000, steps_offset: int = 1, lcm_original_steps: int = 50
) -> torch.Tensor:
    """``n`` descending timesteps (float64) spaced as diffusers does.

    leading: ``arange(n) * (T // n) + steps_offset`` (SD's DDIM); trailing: ``round(arange(T, 0, -T/n)) - 1``;
    linspace: ``linspace(0, T-1, n)`` unrounded (Euler's default); lcm: evenly spaced indices into the
    ``lcm_original_steps`` distillation timesteps (LCMScheduler).
    """
    T = num_train_timesteps
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {n}")
    if spacing == "leading":
        ts = torch.arange(n, dtype=torch.float64) * (T // n) + steps_offset
        return ts.flip(0)
    if spacing == "trailing":
        ts = torch.round(torch.arange(T, 0, -T / n, dtype=torch.float64)) - 1
        return ts[:n]
    if spacing == "linspace":
        return torch.linspace(0, T - 1, n, dtype=torch.float64).flip(0)
    if spacing == "lcm":
        k = T // lcm_original_steps
        origin = (torch.arange(1, lcm_original_steps + 1, dtype=torch.float64) * k - 1).flip(0)
        if n > lcm_original_steps:
            raise ValueError(f"lcm spacing supports at most {lcm_original_steps} steps, got {n}")
        idx = torch.floor(torch.arange(n, dtype=torch.float64) * (lcm_original_steps / n)).long()
        return origin[idx]
    raise ValueError(f"timestep spacing must be one of {SPACINGS[:3] + SPACINGS[4:]}, got {spacing!r}")


def sampling_sigmas(
    alphas_cumprod: torch.Tensor,
    steps: int,
    scheduler: str = "leading",
    *,
    final_sigma: str = "zero",
    steps_offset: int = 1,
) -> torch.Tensor:
    """Descending sampling sigmas ``[steps + 1]`` (float32) ending with the final noise level.

    scheduler: a timestep spacing (``leading``/``trailing``/``linspace``/``lcm``) or ``karras`` (rho 7 between
    the training sigma_min and sigma_max). final_sigma: ``"zero"`` (clean output) or ``"alpha0"`` (the
    first training timestep's sigma, diffusers' DDIM with ``set_alpha_to_one=False``).
    """
    table = train_sigmas(alphas_cumprod)
    if scheduler == "karras":
        sig = karras_sigmas(steps, table[0].item(), table[-1].item())
    else:
        sig = sigma_at_timestep(spaced_timesteps(steps, scheduler, len(table), steps_offset), table)
    if final_sigma == "zero":
        last = 0.0
    elif final_sigma == "alpha0":
        last = table[0].item()
    else:
        raise ValueError(f"final_sigma must be 'zero' or 'alpha0', got {final_sigma!r}")
    sigmas = torch.cat([sig, torch.tensor([last], dtype=torch.float64)]).float()
    if bool((sigmas[:-1] <= sigmas[1:]).any()):
        raise ValueError(
            f"{steps} steps with '{scheduler}' spacing repeat a timestep; use fewer steps or 'trailing' spacing"
        )
    return sigmas


def denoise_sigmas(
    alphas_cumprod: torch.Tensor, steps: int, scheduler: str = "leading", denoise: float = 1.0, **kwargs: Any
) -> torch.Tensor:
    """Sigmas for a partial run (video-to-video): the last ``steps + 1`` sigmas of a ``steps / denoise`` schedule.

    ``denoise`` in (0, 1]; 1 is the full schedule. The run starts at ``result[0]`` (see :func:`noised_latent`).
    """
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}")
    num_train = len(alphas_cumprod)
    if steps > num_train:
        raise ValueError(f"steps must be at most {num_train} (the training timesteps), got {steps}")
    # capped so that very small denoise values never ask for more steps than there are training timesteps
    total = steps if denoise >= 1.0 else max(steps, min(num_train - 1, int(steps / denoise)))
    return sampling_sigmas(alphas_cumprod, total, scheduler, **kwargs)[-(steps + 1) :]


def noised_latent(latent: torch.Tensor, noise: torch.Tensor, sigma: Union[float, torch.Tensor]) -> torch.Tensor:
    """``latent`` noised to level ``sigma`` in sigma space: ``latent + sigma * noise``."""
    return latent + noise * sigma


def initial_latent(
    noise: torch.Tensor, sigmas: torch.Tensor, latent: Optional[torch.Tensor] = None, *, full_denoise: bool = True
) -> torch.Tensor:
    """Starting point of a run in sigma space.

    Full denoise: pure noise at ``sigmas[0]`` scaled as the variance-preserving process implies,
    ``noise * sqrt(1 + sigma^2)`` (the latent only gives the shape). Partial: ``latent + sigmas[0] * noise``.
    """
    sigma = float(sigmas[0])
    if full_denoise or latent is None:
        return noise * math.sqrt(1.0 + sigma * sigma)
    return noised_latent(latent, noise, sigma)


def to_model_input(x: torch.Tensor, sigma: Union[float, torch.Tensor]) -> torch.Tensor:
    """Sigma-space ``x`` to the variance-preserving input the UNet expects: ``x / sqrt(1 + sigma^2)``."""
    return x / (1.0 + sigma * sigma) ** 0.5


def from_sigma_space(x: torch.Tensor, sigma: Union[float, torch.Tensor]) -> torch.Tensor:
    """Sigma-space ``x`` back to a VP latent; identity at sigma 0 (used for a nonzero final sigma)."""
    return to_model_input(x, sigma)


def denoised_from_output(
    x: torch.Tensor, output: torch.Tensor, sigma: Union[float, torch.Tensor], prediction_type: str = "epsilon"
) -> torch.Tensor:
    """x0 from the model output at sigma-space ``x``: epsilon ``x - sigma*eps``; v ``a^2 x - sigma*a*v``."""
    if prediction_type == "epsilon":
        return x - output * sigma
    if prediction_type == "v_prediction":
        alpha = 1.0 / (1.0 + sigma * sigma) ** 0.5
        return x * (alpha * alpha) - output * (sigma * alpha)
    raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")


def output_from_denoised(
    x: torch.Tensor, denoised: torch.Tensor, sigma: Union[float, torch.Tensor], prediction_type: str = "epsilon"
) -> torch.Tensor:
    """Inverse of :func:`denoised_from_output`: the epsilon or v a model would have predicted."""
    if prediction_type == "epsilon":
        return (x - denoised) / sigma
    if prediction_type == "v_prediction":
        alpha = 1.0 / (1.0 + sigma * sigma) ** 0.5
        return (x * (alpha * alpha) - denoised) / (sigma * alpha)
    raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
