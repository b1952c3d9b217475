"""Entry points between frames and latents: an empty video latent, VAE encode and decode of whole videos.

Latents here are raw VAE latents, as in ComfyUI's LATENT (the sampler applies the model's scale, see
:meth:`~.models.bundle.DiffusionModel.latents_in`). Sizes are in pixels everywhere here (frame size, tile size, tile
overlap), as :meth:`~.models.vae.VAE.encode` and :meth:`~.models.vae.VAE.decode` take them. Bad values raise
:class:`~.options.OptionError` naming the field
or input (``images``, ``samples``, ``vae``).
"""

from dataclasses import dataclass
from typing import Optional

import torch

from .device import compute_device, decode_with_fp32_retry
from .memory import check_decode_memory
from .models.vae import VAE
from .offload import default_placement
from .options import OptionError, check_choice, check_range, check_type

ENCODE_MODES = ("mean", "sample")
# How an image whose sides are not multiples of the VAE downscale is fitted: "crop" (centred, what ComfyUI's VAE
# Encode does), "pad" (centred, edge pixels repeated) or "resize" (bilinear, to the nearest multiple).
SIZE_POLICIES = ("crop", "pad", "resize")


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
    """mode: "mean" (the posterior mean, deterministic) or "sample" (a draw seeded by ``seed``); frames per chunk;
    how sides that are not multiples of the downscale are fitted (:data:`SIZE_POLICIES`)."""

    mode: str = "mean"
    seed: int = 0
    frame_chunk: int = 16
    size_policy: str = "crop"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ENCODE_MODES)
        check_choice("size_policy", self.size_policy, SIZE_POLICIES)
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


def fit_to_multiple(images: torch.Tensor, multiple: int, policy: str = "crop", field: str = "images") -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` with H and W made multiples of ``multiple`` by ``policy`` (:data:`SIZE_POLICIES`);
    returned unchanged when they already are. ``field`` names the input in errors."""
    check_choice("size_policy", policy, SIZE_POLICIES)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise OptionError(field, f"frames [F,H,W,C], got {getattr(images, 'shape', type(images).__name__)}")
    height, width = images.shape[1], images.shape[2]
    if height % multiple == 0 and width % multiple == 0:
        return images
    if policy == "crop":
        if height < multiple or width < multiple:
            raise OptionError(field, f"at least {multiple}x{multiple} pixels to crop, got {width}x{height}")
        h, w = height // multiple * multiple, width // multiple * multiple
        top, left = (height - h) // 2, (width - w) // 2
        return images[:, top : top + h, left : left + w]
    x = images.permute(0, 3, 1, 2)
    if policy == "pad":
        dh, dw = -height % multiple, -width % multiple
        x = torch.nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    else:
        size = [max(multiple, int(n / multiple + 0.5) * multiple) for n in (height, width)]  # half rounds up
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).contiguous()


def encode_video(vae: VAE, images: torch.Tensor, options: EncodeOptions) -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` in 0..1 (sides fitted to the downscale by ``options.size_policy``) -> raw VAE latents ``[F, C, H/d, W/d]`` (float32, CPU)."""
    check_type("vae", vae, VAE, "a VAE from a FrameFold loader")
    images = fit_to_multiple(images, vae.downscale, options.size_policy)
    sample = options.mode == "sample"
    generator: Optional[torch.Generator] = torch.Generator().manual_seed(int(options.seed)) if sample else None
    return vae.encode(images, sample=sample, generator=generator, frame_chunk=options.frame_chunk, scaled=False)


def decode_video(vae: VAE, latents: torch.Tensor, options: DecodeOptions) -> torch.Tensor:
    """Raw VAE latents ``[F, C, h, w]`` -> IMAGE ``[F, h*d, w*d, 3]`` float32 in 0..1 on the CPU.

    Refused before compute when the decode would not fit (:func:`~.memory.check_decode_memory`); a reduced-precision
    decode that overflows is redone in fp32 (:func:`~.device.decode_with_fp32_retry`)."""
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
    tile_latent = options.tile_size // d  # the pre-flight counts latent pixels
    check_decode_memory(
        vae, tuple(latents.shape), options.frame_chunk, tile_latent, compute_device(), temporal=options.temporal
    )
    with default_placement().use(vae):
        return decode_with_fp32_retry(
            vae,
            latents,
            frame_chunk=options.frame_chunk,
            tile=options.tile_size,
            tile_overlap=options.tile_overlap,
            temporal=options.temporal,
            scaled=False,
        )
