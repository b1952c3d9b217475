"""Entry points between frames and latents: an empty video latent, VAE encode and decode of whole videos.

Latents here are raw VAE latents, as in ComfyUI's LATENT (the sampler applies the model's scale, see
:meth:`~.models.bundle.DiffusionModel.latents_in`). Sizes are in pixels everywhere here (frame size, tile size, tile overlap); :func:`decode_video` converts tiles to the
latent pixels :meth:`~.models.vae.VAE.decode` takes. Bad values raise :class:`~.options.OptionError` naming the field
or input (``images``, ``samples``, ``vae``).
"""

from dataclasses import dataclass
from typing import Optional

import torch

from .models.vae import VAE
from .options import OptionError, check_choice, check_range, check_type

ENCODE_MODES = ("mean", "sample")


@dataclass(frozen=True)
class EmptyLatentOptions:
    """Video size in pixels and frame count."""

    width: int = 512
    height: int = 512
    frames: int = 16

    def __post_init__(self) -> None:
        check_range("width", self.width, 1)
        check_range("height", self.height, 1)
        check_range("frames", self.frames, 1)


@dataclass(frozen=True)
class EncodeOptions:
    """mode: "mean" (the posterior mean, deterministic) or "sample" (a draw seeded by ``seed``); frames per chunk."""

    mode: str = "mean"
    seed: int = 0
    frame_chunk: int = 16

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ENCODE_MODES)
        check_range("frame_chunk", self.frame_chunk, 1)


@dataclass(frozen=True)
class DecodeOptions:
    """Frames per chunk, spatial tile size and overlap in pixels (tile 0 = whole frames), temporal decoder on/off."""

    frame_chunk: int = 16
    tile_size: int = 0
    tile_overlap: int = 64
    temporal: bool = True

    def __post_init__(self) -> None:
        check_range("frame_chunk", self.frame_chunk, 1)
        check_range("tile_size", self.tile_size, 0)
        check_range("tile_overlap", self.tile_overlap, 0)


def empty_video_latent(vae: VAE, options: EmptyLatentOptions) -> torch.Tensor:
    """Zeros ``[frames, C, height / d, width / d]`` for the VAE's channels and downscale ``d``."""
    check_type("vae", vae, VAE, "a VAE from a FrameFold loader")
    d = vae.downscale
    for name, value in (("width", options.width), ("height", options.height)):
        if value % d:
            raise OptionError(name, f"a multiple of {d} for this VAE, got {value}")
    return torch.zeros(options.frames, vae.latent_channels, options.height // d, options.width // d)


def encode_video(vae: VAE, images: torch.Tensor, options: EncodeOptions) -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` in 0..1 -> raw VAE latents ``[F, C, H/d, W/d]`` (float32, CPU)."""
    check_type("vae", vae, VAE, "a VAE from a FrameFold loader")
    d = vae.downscale
    if images.ndim != 4 or images.shape[1] % d or images.shape[2] % d:
        raise OptionError("images", f"frames [F,H,W,C] with H and W multiples of {d}, got {tuple(images.shape)}")
    sample = options.mode == "sample"
    generator: Optional[torch.Generator] = torch.Generator().manual_seed(int(options.seed)) if sample else None
    return vae.encode(images, sample=sample, generator=generator, frame_chunk=options.frame_chunk, scaled=False)


def decode_video(vae: VAE, latents: torch.Tensor, options: DecodeOptions) -> torch.Tensor:
    """Raw VAE latents ``[F, C, h, w]`` -> IMAGE ``[F, h*d, w*d, 3]`` float32 in 0..1 on the CPU."""
    check_type("vae", vae, VAE, "a VAE from a FrameFold loader")
    if latents.ndim != 4 or latents.shape[1] != vae.latent_channels:
        got = latents.shape[1] if latents.ndim == 4 else tuple(latents.shape)
        raise OptionError(
            "samples", f"latents [F, C, h, w] with {vae.latent_channels} channels for this VAE, got {got}"
        )
    d = vae.downscale
    if options.tile_size and options.tile_size < 8 * d:
        raise OptionError(
            "tile_size", f"0 (no tiling) or at least {8 * d} pixels for this VAE, got {options.tile_size}"
        )
    return vae.decode(
        latents,
        frame_chunk=options.frame_chunk,
        tile=options.tile_size // d,
        tile_overlap=options.tile_overlap // d,
        temporal=options.temporal,
        scaled=False,
    )
