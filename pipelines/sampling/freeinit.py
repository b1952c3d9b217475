"""FreeInit (Wu et al. 2023, "FreeInit: Bridging Initialization Gap in Video Diffusion Models").

Sampling is run several times. Between two passes the initial noise is re-initialised:

1. the previous pass's clean result ``z0`` is diffused back to the last training timestep with the FIRST
   pass's initial noise ``e0`` (the paper's and the reference code's choice):
   ``zT = sqrt(abar[T-1]) * z0 + sqrt(1 - abar[T-1]) * e0``;
2. ``zT`` and fresh Gaussian noise ``n`` are mixed in the 3-D (frames, height, width) frequency domain:
   ``z' = IFFT3( FFT3(zT) * L + FFT3(n) * (1 - L) )`` with a low-pass filter ``L`` — the low frequencies
   (layout and slow motion) come from the previous result, the high ones are new;
3. ``z'`` is the next pass's initial noise (a VP latent at the first sampling sigma, like unit noise).

The filter is a function of the normalised distance to the spectrum's centre (DC after fftshift),
``d^2 = (d_s/d_t * (2f/F - 1))^2 + (2y/h - 1)^2 + (2x/w - 1)^2`` with spatial / temporal stop frequencies
``d_s``, ``d_t`` (the temporal axis is rescaled so that ``d_t`` is its cut-off):

- gaussian: ``exp(-d^2 / (2 d_s^2))``
- butterworth (order n): ``1 / (1 + (d^2 / d_s^2)^n)``
- ideal: ``1 where d <= d_s else 0``. (The FreeInit reference code tests ``d^2 <= 2 d_s``, which is a
  different cut-off; we use the cut-off that matches the other two filters' ``d_s``.)
"""

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

import torch
from einops import rearrange

from .. import progress
from ..options import check_choice, check_range

PassRunner = Callable[[torch.Tensor], torch.Tensor]

FILTERS = ("butterworth", "gaussian", "ideal")


@dataclass(frozen=True)
class FreeInitOptions:
    """FreeInit settings (what a FF_FREEINIT socket carries). ``iterations`` counts sampling passes (1 = off)."""

    iterations: int = 3
    method: str = "butterworth"
    order: int = 4
    spatial_cutoff: float = 0.25
    temporal_cutoff: float = 0.25

    def __post_init__(self) -> None:
        check_range("iterations", self.iterations, 1)
        check_choice("method", self.method, FILTERS)
        check_range("order", self.order, 1)
        check_range("spatial_cutoff", self.spatial_cutoff, 0.0, 1.0, low_open=True)
        check_range("temporal_cutoff", self.temporal_cutoff, 0.0, 1.0, low_open=True)


def squared_frequency_distance(
    frames: int, height: int, width: int, spatial_cutoff: float, temporal_cutoff: float
) -> torch.Tensor:
    """``d^2 [F, h, w]`` of every (fftshifted) frequency bin from the centre, temporal axis rescaled."""

    def axis(n):
        return 2.0 * torch.arange(n, dtype=torch.float64) / n - 1.0

    t = axis(frames) * (spatial_cutoff / temporal_cutoff)
    return t[:, None, None] ** 2 + axis(height)[None, :, None] ** 2 + axis(width)[None, None, :] ** 2


def low_pass_filter(frames: int, height: int, width: int, options: FreeInitOptions) -> torch.Tensor:
    """The low-pass mask ``L [F, h, w]`` (float32, in fftshifted layout: DC in the middle) for ``options``."""
    d2 = squared_frequency_distance(frames, height, width, options.spatial_cutoff, options.temporal_cutoff)
    ds2 = options.spatial_cutoff**2
    if options.method == "gaussian":
        mask = torch.exp(-d2 / (2 * ds2))
    elif options.method == "butterworth":
        mask = 1.0 / (1.0 + (d2 / ds2) ** options.order)
    else:
        mask = (d2 <= ds2).double()
    return mask.float()


def frequency_mix(low_source: torch.Tensor, high_source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Low frequencies of ``low_source`` plus high frequencies of ``high_source`` (both ``[F, C, h, w]``).

    3-D FFT over (frames, height, width) per channel; ``mask [F, h, w]`` in fftshifted layout weighs the
    low-pass part, ``1 - mask`` the high-pass part.
    """
    dims = (-3, -2, -1)

    def spectrum(x):
        return torch.fft.fftshift(torch.fft.fftn(rearrange(x.double(), "f c h w -> c f h w"), dim=dims), dim=dims)

    m = mask.double()
    mixed = spectrum(low_source) * m + spectrum(high_source) * (1.0 - m)
    out = torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real
    return rearrange(out, "c f h w -> f c h w").to(low_source.dtype)


def diffuse_to_last_timestep(latent: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """VP forward diffusion of a clean ``latent`` to the last training timestep with the given ``noise``."""
    abar = float(alphas_cumprod[-1])
    return latent * math.sqrt(abar) + noise * math.sqrt(1.0 - abar)


def reinitialize_noise(
    latent: torch.Tensor,
    first_noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator,
    options: FreeInitOptions,
) -> torch.Tensor:
    """Next pass's initial noise: low frequencies of the re-noised ``latent``, high ones fresh from ``generator``."""
    noised = diffuse_to_last_timestep(latent, first_noise, alphas_cumprod)
    fresh = torch.randn(latent.shape, generator=generator, device=generator.device, dtype=torch.float32)
    mask = low_pass_filter(latent.shape[0], latent.shape[2], latent.shape[3], options).to(latent.device)
    return frequency_mix(noised, fresh.to(device=latent.device, dtype=latent.dtype), mask)


def sample_with_freeinit(
    run: PassRunner,
    noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator,
    options: FreeInitOptions,
    *,
    steps: Optional[int] = None,
    progress_offset: int = 0,
    progress_total: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``run(noise) -> clean VP latent`` ``options.iterations`` times, re-initialising the noise in between.

    Returns ``(latent, noise_of_last_pass)``. Fresh noise is drawn from ``generator`` once per re-initialisation,
    after the pass before it. With ``steps`` (the steps of one pass) the passes report progress as one bar:
    pass k's step s as ``progress_offset + k * steps + s`` of ``progress_total``.
    """
    total = progress_total if progress_total is not None else progress_offset + options.iterations * (steps or 0)

    def run_pass(k, initial):
        if steps is None:
            return run(initial)
        with progress_stage(progress_offset + k * steps, total):
            return run(initial)

    latent = run_pass(0, noise)
    current = noise
    for k in range(1, options.iterations):
        current = reinitialize_noise(latent, noise, alphas_cumprod, generator, options)
        latent = run_pass(k, current)
    return latent, current


@contextlib.contextmanager
def progress_stage(done_before: int, grand_total: int) -> Iterator[None]:
    """Inside the block a loop's ``progress.report(step, n)`` reaches the host as
    ``report(done_before + step, grand_total)``, so several sampling passes fill one progress bar."""
    outer = progress.current_sink()

    def forward(step, total, preview):
        outer.progress(done_before + step, grand_total, preview)

    with progress.use_sink(progress.ProgressSink(forward, outer.should_stop)):
        yield
