"""KL autoencoder (the Stable Diffusion VAE) with an optional temporal-aware decoder, and the video wrapper.

Parameter names follow the original CompVis layout (``encoder.down.0.block.0.conv1.weight``,
``decoder.mid.attn_1.q.weight``, ``quant_conv``, ``post_quant_conv``) so an original-format VAE or the
``first_stage_model.*`` part of an SD checkpoint loads with no renaming. Diffusers names are mapped by
``pipelines.loading.vae_keys``.

Temporal-aware decoder (VidRD, seed 003 §4.4): a :class:`DecoderTemporalConv` (3D convolution over time only,
last layer zero-initialised, residual) follows every ResNet block of the decoder. Untrained, it is an exact
identity, so the decoder decodes exactly like the image decoder. Each DecoderTemporalConv normalises per frame, so
the only cross-frame mixing is the (3,1,1) convolutions; the decoder's temporal receptive radius is
``(number of TemporalConvs) * temporal_conv_layers * (temporal_kernel // 2)`` frames
(:meth:`Decoder.temporal_radius`). Chunked decoding adds that many context frames on each side of every
chunk and drops them after decoding, which makes chunked decode equal to decoding all frames at once.

Conventions (all in :class:`VAE`): images are ComfyUI ``IMAGE`` tensors ``[F, H, W, C]`` float in 0..1;
latents are ``[F, C, h, w]`` already multiplied by ``scaling_factor`` (and shifted by ``shift_factor``).
"""

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ...kernels import attention
from .. import progress
from .layers import feather
from .weights import HoldsWeights


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """Architecture of a KL autoencoder. Defaults are the SD1.x/SD2.x VAE (``ch 128, ch_mult 1,2,4,4``).

    A small trainable config: ``AutoencoderKLConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1,
    norm_groups=8)`` (4x downscale: 2 ** (len(ch_mult) - 1); 4 latent channels).
    """

    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: Tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    norm_groups: int = 32
    scaling_factor: float = 0.18215
    shift_factor: float = 0.0
    mid_attention: bool = True
    temporal_decoder: bool = False  # add VidRD Temp-Conv layers after each decoder ResNet block
    temporal_kernel: int = 3
    temporal_conv_layers: int = 2

    @property
    def downscale(self) -> int:
        """Pixels per latent pixel along each side."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of the latent the UNet sees."""
        return self.embed_dim


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """The VAE's GroupNorm (eps 1e-6, affine)."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice with a residual; 1x1 ``nin_shortcut`` when channels change."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, C_in, H, W]`` -> ``[N, C_out, H, W]``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels of a frame; q/k/v/proj_out are 1x1 convs (original layout)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, C, H, W]`` -> same shape."""
        n, c, height, width = x.shape
        h = self.norm(x)
        q, k, v = (rearrange(proj(h), "n c h w -> n 1 (h w) c") for proj in (self.q, self.k, self.v))
        out = attention(q, k, v)
        out = rearrange(out, "n 1 (h w) c -> n c h w", h=height, w=width)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv with the original asymmetric (right/bottom) padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, C, H, W]`` -> ``[N, C, H/2, W/2]``."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest 2x upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, C, H, W]`` -> ``[N, C, 2H, 2W]``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DecoderTemporalConv(nn.Module):
    """VidRD Temp-Conv: residual stack of per-frame GroupNorm, SiLU, (k,1,1) 3D conv; last conv zero-initialised.

    Normalisation is per frame so frames interact only through the convolutions (this keeps chunked
    decoding with ``radius`` frames of context exact).
    """

    def __init__(self, channels: int, groups: int, kernel: int = 3, layers: int = 2):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"DecoderTemporalConv: kernel must be odd, got {kernel}")
        self.norms = nn.ModuleList(_group_norm(channels, groups) for _ in range(layers))
        convs = [nn.Conv3d(channels, channels, (kernel, 1, 1), padding=(kernel // 2, 0, 0)) for _ in range(layers)]
        nn.init.zeros_(convs[-1].weight)
        nn.init.zeros_(convs[-1].bias)  # type: ignore[arg-type]  # Conv3d has a bias here
        self.convs = nn.ModuleList(convs)
        self.radius = layers * (kernel // 2)

    def reset_parameters(self) -> None:
        """Fresh weights that make the layer an identity (the last conv zero), as at construction."""
        for m in self.modules():
            if isinstance(m, (nn.GroupNorm, nn.Conv3d)):
                m.reset_parameters()
        last = self.convs[-1]
        assert isinstance(last, nn.Conv3d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # Conv3d has a bias here

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x ``[(B F), C, H, W]`` -> same shape."""
        h = x
        for norm, conv in zip(self.norms, self.convs):
            h = rearrange(F.silu(norm(h)), "(b f) c h w -> b c f h w", f=num_frames)
            h = rearrange(conv(h), "b c f h w -> (b f) c h w")
        return x + h


class Encoder(nn.Module):
    """Image -> latent moments (``2 * z_channels``), original module names."""

    def __init__(self, cfg: AutoencoderKLConfig):
        super().__init__()
        g = cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down: Any = nn.ModuleList()  # stages are plain Modules holding block / downsample
        channels = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(channels, cfg.ch * mult, g))
                channels = cfg.ch * mult
            if level != len(cfg.ch_mult) - 1:
                stage.downsample = Downsample(channels)
            self.down.append(stage)
        self.mid: Any = nn.Module()
        self.mid.block_1 = ResnetBlock(channels, channels, g)
        if cfg.mid_attention:
            self.mid.attn_1 = AttnBlock(channels, g)
        self.mid.block_2 = ResnetBlock(channels, channels, g)
        self.norm_out = _group_norm(channels, g)
        self.conv_out = nn.Conv2d(channels, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, 3, H, W]`` in -1..1 -> moments ``[N, 2*z, H/d, W/d]``."""
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid.block_1(h)
        if hasattr(self.mid, "attn_1"):
            h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent -> image, original module names; optional Temp-Conv after every ResNet block.

    ``up`` is indexed by resolution level like the original (``up.0`` is the full-resolution level and
    runs last); temporal layers are ``mid.temp_conv_1/2`` and ``up.<level>.temp_conv.<j>``.
    """

    def __init__(self, cfg: AutoencoderKLConfig):
        super().__init__()
        g = cfg.norm_groups
        temporal = cfg.temporal_decoder

        def temp_conv(c):
            """A Temp-Conv for ``c`` channels with this config's kernel and depth."""
            return DecoderTemporalConv(c, g, cfg.temporal_kernel, cfg.temporal_conv_layers)

        channels = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, channels, 3, padding=1)
        self.mid: Any = nn.Module()
        self.mid.block_1 = ResnetBlock(channels, channels, g)
        if cfg.mid_attention:
            self.mid.attn_1 = AttnBlock(channels, g)
        self.mid.block_2 = ResnetBlock(channels, channels, g)
        if temporal:
            self.mid.temp_conv_1 = temp_conv(channels)
            self.mid.temp_conv_2 = temp_conv(channels)
        stages: List[Any] = []
        for level in reversed(range(len(cfg.ch_mult))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            out_channels = cfg.ch * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(channels, out_channels, g))
                channels = out_channels
            if temporal:
                stage.temp_conv = nn.ModuleList(temp_conv(channels) for _ in stage.block)
            if level != 0:
                stage.upsample = Upsample(channels)
            stages.insert(0, stage)
        self.up: Any = nn.ModuleList(stages)
        self.norm_out = _group_norm(channels, g)
        self.conv_out = nn.Conv2d(channels, cfg.out_channels, 3, padding=1)

    @property
    def has_temporal(self) -> bool:
        """True when the decoder has Temp-Conv layers."""
        return hasattr(self.mid, "temp_conv_1")

    def temporal_radius(self) -> int:
        """Frames on each side that can influence one output frame (0 without temporal layers)."""
        return sum(m.radius for m in self.modules() if isinstance(m, DecoderTemporalConv))

    def forward(self, z: torch.Tensor, num_frames: Optional[int] = None) -> torch.Tensor:
        """z ``[(B F), z, h, w]`` -> image ``[(B F), 3, h*d, w*d]`` in about -1..1.

        With ``num_frames`` given and temporal layers present, frames are mixed over time; with
        ``num_frames=None`` each frame is decoded on its own (the image decoder).
        """
        use_temporal = self.has_temporal and num_frames is not None
        h = self.conv_in(z)
        h = self.mid.block_1(h)
        if use_temporal:
            h = self.mid.temp_conv_1(h, num_frames)
        if hasattr(self.mid, "attn_1"):
            h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        if use_temporal:
            h = self.mid.temp_conv_2(h, num_frames)
        for stage in reversed(self.up):
            for j, block in enumerate(stage.block):
                h = block(h)
                if use_temporal:
                    h = stage.temp_conv[j](h, num_frames)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """The KL-regularised autoencoder: ``encoder``, ``quant_conv``, ``post_quant_conv``, ``decoder``.

    Works on pixel tensors ``[N, 3, H, W]`` in -1..1 and unscaled latents. :class:`VAE` adds the video,
    scaling, chunking and tiling conventions.
    """

    def __init__(self, config: AutoencoderKLConfig = AutoencoderKLConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def encode_moments(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x ``[N, 3, H, W]`` in -1..1 -> (mean, logvar), each ``[N, embed_dim, H/d, W/d]``, logvar clamped."""
        moments = self.quant_conv(self.encoder(x))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def temporal_parameters(self) -> List[nn.Parameter]:
        """The Temp-Conv parameters: the only trainable ones in VidRD's decoder fine-tuning (§4.4)."""
        return [p for m in self.decoder.modules() if isinstance(m, DecoderTemporalConv) for p in m.parameters()]

    def decode(self, z: torch.Tensor, num_frames: Optional[int] = None) -> torch.Tensor:
        """Unscaled latent ``[N, embed_dim, h, w]`` -> pixels ``[N, 3, h*d, w*d]`` (about -1..1)."""
        return self.decoder(self.post_quant_conv(z), num_frames=num_frames)


def sample_latent(mean: torch.Tensor, logvar: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``mean + std * eps`` with eps drawn from ``generator`` over the whole tensor (chunking-independent)."""
    eps = torch.randn(
        mean.shape, generator=generator, dtype=torch.float32, device=generator.device if generator else "cpu"
    )
    return mean + torch.exp(0.5 * logvar) * eps.to(mean.device, mean.dtype)


def _tile_starts(size: int, tile: int, overlap: int):
    """Start offsets of tiles of ``tile`` with at least ``overlap`` overlap covering ``size``."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: float,
    out_channels: int,
) -> torch.Tensor:
    """Apply a spatial map ``fn`` tile by tile with linear blending of the overlaps.

    x ``[N, C, H, W]``; ``fn`` maps ``[N, C, th, tw]`` to ``[N, out_channels, th*scale, tw*scale]``.
    ``tile`` and ``overlap`` are in input pixels. ``tile <= 0`` or a tile covering the input: one call.
    Tiles see only their own pixels, so GroupNorm statistics and attention differ from a whole-frame pass:
    the result is an approximation whose error shrinks as tiles grow.
    """
    n, _, height, width = x.shape
    if tile <= 0 or (tile >= height and tile >= width):
        return fn(x)
    overlap = max(0, min(overlap, tile // 2))
    out_h, out_w = int(height * scale), int(width * scale)
    out = None
    weight = torch.zeros(out_h, out_w, device=x.device, dtype=torch.float32)
    ys, xs = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    for y0 in ys:
        for x0 in xs:
            progress.check_interrupt()
            th, tw = min(tile, height - y0), min(tile, width - x0)
            piece = fn(x[:, :, y0 : y0 + th, x0 : x0 + tw]).float()
            if out is None:
                out = torch.zeros(n, out_channels, out_h, out_w, device=x.device, dtype=torch.float32)
            oy, ox, oh, ow = int(y0 * scale), int(x0 * scale), piece.shape[2], piece.shape[3]
            o = int(overlap * scale)
            wy = feather(oh, o, y0 > 0, y0 + th < height).to(x.device)
            wx = feather(ow, o, x0 > 0, x0 + tw < width).to(x.device)
            w = wy[:, None] * wx[None, :]
            out[:, :, oy : oy + oh, ox : ox + ow] += piece * w
            weight[oy : oy + oh, ox : ox + ow] += w
    assert out is not None  # at least one tile
    return out / weight


class VAE(HoldsWeights):
    """What a ``FF_VAE`` socket carries: an :class:`AutoencoderKL` plus the video conventions.

    ``encode(images [F,H,W,C] 0..1) -> latents [F,C,h,w]`` (scaled) and ``decode(latents) -> images``,
    in frame chunks and optional spatial tiles so memory is bounded by the chunk and tile size, not by
    the frame count or resolution (apart from the input and output tensors themselves).
    """

    def __init__(self, model: AutoencoderKL, name: str = ""):
        self.model = model
        self.name = name

    @property
    def config(self) -> AutoencoderKLConfig:
        """The autoencoder's architecture config."""
        return self.model.config

    @property
    def downscale(self) -> int:
        """Pixels per latent pixel."""
        return self.config.downscale

    @property
    def latent_channels(self) -> int:
        """Latent channels."""
        return self.config.latent_channels

    @property
    def has_temporal_decoder(self) -> bool:
        """True when the decoder has Temp-Conv layers."""
        return self.model.decoder.has_temporal

    # --- the one place where pixel and latent conventions are converted ---
    def images_to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """ComfyUI IMAGE ``[F,H,W,C]`` 0..1 -> model input ``[F,C,H,W]`` -1..1 on the VAE's device/dtype."""
        if images.ndim != 4 or images.shape[-1] < 3:
            raise ValueError(f"expected IMAGE [F,H,W,C] with C>=3, got {tuple(images.shape)}")
        x = rearrange(images[..., :3], "f h w c -> f c h w")
        return (x * 2.0 - 1.0).to(self.device, self.dtype)

    def pixels_to_images(self, x: torch.Tensor) -> torch.Tensor:
        """Model output ``[F,C,H,W]`` -1..1 -> IMAGE ``[F,H,W,C]`` float32 0..1 on the CPU."""
        return rearrange(((x.float() + 1.0) / 2.0).clamp(0.0, 1.0), "f c h w -> f h w c").cpu()

    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent -> the UNet's latent space."""
        return (z - self.config.shift_factor) * self.config.scaling_factor

    def unscale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The UNet's latent space -> raw VAE latent."""
        return latents / self.config.scaling_factor + self.config.shift_factor

    # --- encode / decode ---
    @torch.no_grad()
    def encode(
        self,
        images: torch.Tensor,
        *,
        sample: bool = False,
        generator: Optional[torch.Generator] = None,
        frame_chunk: int = 16,
        tile: int = 0,
        tile_overlap: int = 64,
        scaled: bool = True,
    ) -> torch.Tensor:
        """IMAGE ``[F,H,W,C]`` -> scaled latents ``[F,C,H/d,W/d]`` (float32, CPU); raw VAE latents if not ``scaled``.

        ``sample=False`` returns the posterior mean; ``sample=True`` draws from it with ``generator``
        (one draw over the whole video, so the result does not depend on the chunking).
        ``tile``/``tile_overlap`` are in pixels (0 = whole frame). H and W must be multiples of the downscale.
        """
        d = self.downscale
        if images.shape[1] % d or images.shape[2] % d:
            raise ValueError(f"image size {images.shape[2]}x{images.shape[1]} must be a multiple of {d}")
        if sample and generator is None:
            raise ValueError("VAE.encode(sample=True) needs an explicit torch.Generator")
        frames = images.shape[0]
        chunk = max(1, int(frame_chunk))
        tile, tile_overlap = (int(tile) // d) * d, (int(tile_overlap) // d) * d  # tiles must align to latent pixels
        means, logvars = [], []
        for start in range(0, frames, chunk):
            x = self.images_to_pixels(images[start : start + chunk])
            c = self.latent_channels

            def moments(t):
                """Mean and logvar stacked on channels (what the tiles blend)."""
                return torch.cat(self.model.encode_moments(t), dim=1)

            m = tiled_apply(moments, x, tile, tile_overlap, 1.0 / d, 2 * c).float().cpu()
            means.append(m[:, :c])
            logvars.append(m[:, c:])
            progress.report(min(start + chunk, frames), frames)
        mean, logvar = torch.cat(means), torch.cat(logvars)
        z = sample_latent(mean, logvar, generator) if sample else mean
        return self.scale_latents(z) if scaled else z

    @torch.no_grad()
    def decode(
        self,
        latents: torch.Tensor,
        *,
        frame_chunk: int = 16,
        tile: int = 0,
        tile_overlap: int = 64,
        temporal: bool = True,
        scaled: bool = True,
    ) -> torch.Tensor:
        """Scaled latents (raw VAE latents if not ``scaled``) ``[F,C,h,w]`` -> IMAGE ``[F,h*d,w*d,3]`` float32 0..1
        on the CPU.

        Frames are decoded ``frame_chunk`` at a time. With a temporal decoder (and ``temporal=True``) each
        chunk is decoded with ``temporal_radius`` extra context frames on both sides, which are then
        dropped, so the result equals an all-at-once decode. ``tile``/``tile_overlap`` are in image
        pixels, like :meth:`encode`'s (0 = whole frame), rounded down to whole latent pixels; tiles are blended
        linearly over the overlap.
        """
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents [F,{self.latent_channels},h,w] for this VAE, got {tuple(latents.shape)}"
            )
        frames = latents.shape[0]
        chunk = max(1, int(frame_chunk))
        use_temporal = temporal and self.has_temporal_decoder
        radius = self.model.decoder.temporal_radius() if use_temporal else 0
        d = self.downscale
        tile, tile_overlap = int(tile) // d, int(tile_overlap) // d  # image pixels -> latent pixels
        out = torch.empty(frames, latents.shape[2] * d, latents.shape[3] * d, 3, dtype=torch.float32)
        for start in range(0, frames, chunk):
            stop = min(start + chunk, frames)
            lo, hi = max(0, start - radius), min(frames, stop + radius)
            z = latents[lo:hi].to(self.device, torch.float32)
            z = (self.unscale_latents(z) if scaled else z).to(self.dtype)
            num_frames = (hi - lo) if use_temporal else None

            def decode_tile(t):
                """Decode one tile of the context frames."""
                return self.model.decode(t, num_frames=num_frames)

            pixels = tiled_apply(decode_tile, z, tile, tile_overlap, d, 3)
            out[start:stop] = self.pixels_to_images(pixels[start - lo : stop - lo])
            progress.report(stop, frames)
        return out


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in module.parameters())
