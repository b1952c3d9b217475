"""Cascaded latent re-denoise: the temporal stage of two-stage spatial super-resolution (seed 000 §2.1).

A latent video is enlarged (or frames upscaled elsewhere are encoded), noised to strength ``s`` and denoised
again by the video model with its motion module active, so the new detail is made by a model that sees
neighbouring frames and does not flicker. A per-frame SR model can then take the result to the final size.

Memory is bounded twice: context windows (``pipelines.sampling.context``) cut the frames into windows of the
motion module's length, and spatial tiles (:func:`spatially_tiled`) cut each latent frame into overlapping tiles
blended with feathered weights. Only one window of one tile is in the UNet at a time, so a 512x512x64 video fits
where the model fits at one tile of one window.

:func:`latent_redenoise` is the single entry point (the node calls it); it uses the public sampler API
(``samplers.sample(..., denoise_strength=...)``, ``guidance.build_denoiser``, ``context.ContextOptions``).
"""

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .models.bundle import Conditioning, DiffusionModel
from .models.layers import feather
from .noise import NoisePrior
from .sampling import samplers, schedules
from .sampling.context import ContextOptions
from .sampling.guidance import build_denoiser
from .upscale import tile_starts

LATENT_UPSCALE_METHODS = ("bicubic", "bilinear", "nearest-exact", "area")

Denoise = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class RedenoiseOptions:
    """Knobs of one re-denoise pass.

    scale: latent enlargement (1 = the latent is already at the target size, e.g. encoded upscaled frames);
    method: how the latent is enlarged; strength: the denoise strength s in (0, 1] (0.3-0.6 keeps the layout);
    steps, cfg, sampler, scheduler, seed: as in the Video Sampler; tile / tile_overlap: spatial tiles in latent
    pixels (0 = whole frame; keep tiles near the size the model was trained at); context: frame windows
    (None = the motion module's window with a quarter overlap when the video is longer than one window).
    """

    scale: float = 2.0
    method: str = "bicubic"
    strength: float = 0.5
    steps: int = 10
    cfg: float = 4.5
    sampler: str = "ddim"
    scheduler: str = "trailing"
    seed: int = 0
    tile: int = 0
    tile_overlap: int = 8
    context: Optional[ContextOptions] = None

    def __post_init__(self):
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"re-denoise strength must be in (0, 1], got {self.strength}")
        if not 1.0 <= self.scale <= 8.0:
            raise ValueError(f"latent scale must be in [1, 8], got {self.scale}")
        if self.method not in LATENT_UPSCALE_METHODS:
            raise ValueError(f"latent upscale method must be one of {LATENT_UPSCALE_METHODS}, got {self.method!r}")
        if self.tile < 0 or self.tile_overlap < 0:
            raise ValueError(f"tile and tile_overlap must be >= 0, got {self.tile} and {self.tile_overlap}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def upscale_latent(samples: torch.Tensor, scale: float, method: str = "bicubic", multiple: int = 2) -> torch.Tensor:
    """``[F, C, h, w]`` -> ``[F, C, H, W]`` with H, W = h*scale, w*scale rounded to a multiple of ``multiple``."""
    if method not in LATENT_UPSCALE_METHODS:
        raise ValueError(f"latent upscale method must be one of {LATENT_UPSCALE_METHODS}, got {method!r}")
    height = max(multiple, int(samples.shape[2] * scale / multiple + 0.5) * multiple)  # halves round up
    width = max(multiple, int(samples.shape[3] * scale / multiple + 0.5) * multiple)
    if (height, width) == tuple(samples.shape[2:]):
        return samples
    kwargs = {"align_corners": False} if method in ("bicubic", "bilinear") else {}
    return F.interpolate(samples.float(), size=(height, width), mode=method, **kwargs)


def spatially_tiled(denoise: Denoise, tile: int, overlap: int, multiple: int = 2) -> Denoise:
    """A ``denoise(x, sigma)`` that runs ``denoise`` on overlapping spatial tiles of x and feather-blends them.

    Tiles and overlaps are in latent pixels, multiples of ``multiple`` (the UNet's downsampling factor).
    """

    def tiled(x: torch.Tensor, sigma: float) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        if tile <= 0 or (tile >= height and tile >= width):
            return denoise(x, sigma)
        size = max(multiple, tile // multiple * multiple)
        lap = min(overlap, size // 2) // multiple * multiple
        total = torch.zeros_like(x)
        weight = torch.zeros(height, width, dtype=x.dtype, device=x.device)
        for y0 in tile_starts(height, size, lap, multiple):
            for x0 in tile_starts(width, size, lap, multiple):
                th, tw = min(size, height - y0), min(size, width - x0)
                out = denoise(x[:, :, y0 : y0 + th, x0 : x0 + tw], sigma)
                wy = feather(th, lap, y0 > 0, y0 + th < height).to(x.device, x.dtype)
                wx = feather(tw, lap, x0 > 0, x0 + tw < width).to(x.device, x.dtype)
                w = wy[:, None] * wx[None, :]
                total[:, :, y0 : y0 + th, x0 : x0 + tw] += out * w
                weight[y0 : y0 + th, x0 : x0 + tw] += w
        return total / weight

    return tiled


def default_context(model: DiffusionModel, num_frames: int) -> Optional[ContextOptions]:
    """Windows of the motion module's length (quarter overlap) when the video is longer than one window."""
    window = getattr(model.unet, "frame_window", None) or model.frame_window
    if num_frames <= window:
        return None
    return ContextOptions(length=window, overlap=max(1, window // 4))


def latent_redenoise(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Optional[Conditioning],
    samples: torch.Tensor,
    options: RedenoiseOptions = RedenoiseOptions(),
    noise: Optional[NoisePrior] = None,
) -> torch.Tensor:
    """Enlarge the LATENT samples ``[F, C, h, w]`` (raw VAE latents) by ``options.scale`` and re-denoise them at
    ``options.strength`` in the model's latent space.

    Returns the new latent ``[F, C, h*scale, w*scale]`` (float32, CPU). The noise is drawn from ``noise``
    (i.i.d. by default) with a CPU generator seeded by ``options.seed``, so runs are reproducible. Progress is
    reported per sampler step (a step covers every window and tile).
    """
    if samples.ndim != 4:
        raise ValueError(f"expected a latent [frames, channels, h, w], got {tuple(samples.shape)}")
    window = getattr(model.unet, "frame_window", None)
    context = options.context if options.context is not None else default_context(model, samples.shape[0])
    if window and (context.length if context is not None else samples.shape[0]) > window:
        raise ValueError(f"context windows must be at most {window} frames (the motion module's length)")
    latent = upscale_latent(model.latents_in(samples.float()), options.scale, options.method)
    generator = torch.Generator(device="cpu").manual_seed(int(options.seed))
    initial = (noise or NoisePrior("iid")).sample(tuple(latent.shape), generator)
    denoiser = build_denoiser(model, positive, negative, options.cfg, context=context)
    tiled = spatially_tiled(denoiser, options.tile, options.tile_overlap)
    sigmas = schedules.denoise_sigmas(
        schedules.alphas_cumprod_from_config(model.schedule), options.steps, options.scheduler, options.strength
    )
    device = model.device
    out = samplers.sample(
        options.sampler,
        tiled,
        initial.to(device),
        sigmas,
        latent=latent.to(device=device, dtype=torch.float32),
        denoise_strength=options.strength,
        generator=generator,
    )
    return model.latents_out(out.float().cpu())
