"""Temporal layers: AnimateDiff motion modules (v1 / v2 / v3) and the VidRD Temp-Conv layer.

A motion module set (:class:`MotionModule`) is a separate ``nn.Module`` whose parameter names are exactly
those of the released AnimateDiff files (``down_blocks.L.motion_modules.i.temporal_transformer...``,
``up_blocks...``, v2: ``mid_block.motion_modules.0...``). It is attached to a UNet without copying the UNet
(``unet.with_motion(mm)`` in ``unet.py``): the UNet asks :meth:`MotionModule.slots` where each temporal
layer goes (after the ResBlock and the spatial transformer of an input/output block, before any
up-sampler; in the middle block after its transformer).

Each temporal layer sees ``x [(b f), c, h, w]``, attends along f for every pixel, and returns
``x + motion_scale * residual``; an untrained layer (zero ``proj_out``) is therefore an identity.

Positional table: ``pos_encoder.pe`` is ``[1, L, C]`` (L = 24 for v1, 32 for v2/v3). A window of more
than L frames raises a ValueError naming L: the module was never trained beyond L positions and a silent
extension would give degraded motion; long videos go through context windows of at most L frames (the
bundle's ``frame_window``).
"""

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .layers import Attention, FeedForward, add_residual

MOTION_VERSIONS = ("v1", "v2", "v3", "custom")


def sinusoidal_position_table(length: int, channels: int) -> torch.Tensor:
    """AnimateDiff's fixed positional table ``[1, length, channels]``: sin on even, cos on odd channels."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(1, length, channels)
    table[0, :, 0::2] = torch.sin(position * div_term)
    table[0, :, 1::2] = torch.cos(position * div_term)
    return table


class PositionalEncoding(nn.Module):
    """Holds the ``pe`` table (a saved buffer, as in the released files) and adds it to frame tokens."""

    pe: torch.Tensor  # the table buffer, [1, L, C]

    def __init__(self, channels, max_len):
        super().__init__()
        self.register_buffer("pe", sinusoidal_position_table(max_len, channels))

    @property
    def max_len(self) -> int:
        """Number of frame positions the table covers."""
        return int(self.pe.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[N, f, C]`` plus the first f rows of the table."""
        frames = x.shape[1]
        if frames > self.max_len:
            raise ValueError(
                f"motion module positional table covers {self.max_len} frames but one window has {frames}; "
                f"use a context window (frame_window) of at most {self.max_len} frames"
            )
        return x + self.pe[:, :frames].to(x.dtype)


class TemporalAttention(Attention):
    """Self-attention across frames for every pixel, with the positional table added to its input."""

    def __init__(self, dim, heads, dim_head, pe_length):
        super().__init__(dim, None, heads, dim_head)
        self.pos_encoder = PositionalEncoding(dim, pe_length)

    def forward(  # type: ignore[override]  # frames attend to frames: no context, no mask
        self, x: torch.Tensor, *, backend: str = "auto", pattern: Any = None
    ) -> torch.Tensor:
        """x ``[(b h w), f, C]``."""
        return super().forward(self.pos_encoder(x), backend=backend, pattern=pattern)


class TemporalTransformerBlock(nn.Module):
    """AnimateDiff block: ``attention_blocks.i`` each after ``norms.i``, then ``ff`` after ``ff_norm``."""

    def __init__(self, dim, heads, dim_head, pe_length, attention_blocks=2, ff_mult=4):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, dim_head, pe_length) for _ in range(attention_blocks)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(attention_blocks)])
        self.ff = FeedForward(dim, mult=ff_mult)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, *, backend: str = "auto", pattern: Any = None) -> torch.Tensor:
        """x ``[(b h w), f, dim]``."""
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = add_residual(attn(norm(x), backend=backend, pattern=pattern), x)
        return add_residual(self.ff(self.ff_norm(x)), x)


class TemporalTransformer(nn.Module):
    """GroupNorm, ``proj_in``, temporal transformer blocks, ``proj_out`` (zero-initialised)."""

    def __init__(self, channels, heads=8, pe_length=24, depth=1, attention_blocks=2, norm_groups=32, ff_mult=4):
        super().__init__()
        dim_head = channels // heads
        inner = heads * dim_head
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [
                TemporalTransformerBlock(inner, heads, dim_head, pe_length, attention_blocks, ff_mult)
                for _ in range(depth)
            ]
        )
        self.proj_out = nn.Linear(inner, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def residual(
        self,
        x: torch.Tensor,
        num_frames: int,
        *,
        norm_across_frames: bool = False,
        backend: str = "auto",
        pattern: Any = None,
    ) -> torch.Tensor:
        """The temporal residual for x ``[(b f), c, h, w]`` (same shape; not yet added to x)."""
        n, c, h, w = x.shape
        if norm_across_frames:
            video = rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)
            normed = F.group_norm(video, self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps)
            tokens = rearrange(normed, "b c f h w -> (b h w) f c")
        else:
            tokens = rearrange(self.norm(x), "(b f) c h w -> (b h w) f c", f=num_frames)
        # with b = 1 the rearrange is a strided view; F.linear on it would expand the weight per pixel
        tokens = tokens.contiguous()
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, backend=backend, pattern=pattern)
        tokens = self.proj_out(tokens)
        return rearrange(tokens, "(b h w) f c -> (b f) c h w", h=h, w=w)


class VanillaTemporalModule(nn.Module):
    """One AnimateDiff motion module (``temporal_transformer``) applied as a scaled residual."""

    def __init__(self, channels, heads=8, pe_length=24, depth=1, attention_blocks=2, norm_groups=32, ff_mult=4):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels, heads, pe_length, depth, attention_blocks, norm_groups, ff_mult
        )

    @property
    def max_frames(self) -> int:
        """Longest window the positional table covers."""
        return self.temporal_transformer.transformer_blocks[0].attention_blocks[0].pos_encoder.max_len

    def forward(
        self,
        x: torch.Tensor,
        num_frames: int,
        *,
        scale: float = 1.0,
        norm_across_frames: bool = False,
        backend: str = "auto",
        pattern: Any = None,
    ) -> torch.Tensor:
        """x ``[(b f), c, h, w]`` -> ``x + scale * temporal residual``."""
        if scale == 0:
            return x
        res = self.temporal_transformer.residual(
            x, num_frames, norm_across_frames=norm_across_frames, backend=backend, pattern=pattern
        )
        return x + res if scale == 1 else x + scale * res


class MotionBlock(nn.Module):
    """The motion modules of one UNet level (``motion_modules.i``)."""

    def __init__(self, channels, count, **module_kwargs):
        super().__init__()
        self.motion_modules = nn.ModuleList([VanillaTemporalModule(channels, **module_kwargs) for _ in range(count)])


@dataclass(frozen=True)
class MotionModuleConfig:
    """Shape and behaviour of a motion module set.

    block_channels: channels of the UNet levels, top (highest resolution) first.
    layers_per_block: motion modules per down level (= the UNet's num_res_blocks); up levels get one more.
    mid_block: v2 adds one module after the middle block's transformer.
    pe_length: positional table length = the longest frame window (24 for v1, 32 for v2/v3).
    unet_joint_groupnorm: the UNet's ResBlock / output GroupNorms share statistics across the frames of
      a video (AnimateDiff v1 was trained that way); v2/v3 use per-frame GroupNorm.
    norm_across_frames: the motion modules' own GroupNorm shares statistics across frames. The reference
      AnimateDiff code normalises per frame (False); diffusers' AnimateDiffTransformer3D normalises the
      ``[b, c, f, h, w]`` video jointly (True reproduces diffusers' outputs).
    """

    block_channels: tuple = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    mid_block: bool = False
    num_heads: int = 8
    pe_length: int = 24
    transformer_layers: int = 1
    attention_blocks: int = 2
    norm_groups: int = 32
    ff_mult: int = 4
    version: str = "custom"
    unet_joint_groupnorm: bool = False
    norm_across_frames: bool = False

    def __post_init__(self):
        object.__setattr__(self, "block_channels", tuple(self.block_channels))  # JSON gives a list
        if self.version not in MOTION_VERSIONS:
            raise ValueError(f"MotionModuleConfig.version must be one of {MOTION_VERSIONS}, got {self.version!r}")
        for c in self.block_channels:
            if c % self.num_heads or c % self.norm_groups:
                raise ValueError(
                    f"MotionModuleConfig: channels {c} must be divisible by num_heads {self.num_heads} "
                    f"and norm_groups {self.norm_groups}"
                )

    @classmethod
    def for_version(cls, version: str, **overrides: Any) -> "MotionModuleConfig":
        """The released SD1.5 layout of AnimateDiff ``v1`` / ``v2`` / ``v3`` (override any field)."""
        presets = {
            "v1": dict(mid_block=False, pe_length=24, unet_joint_groupnorm=True),
            "v2": dict(mid_block=True, pe_length=32, unet_joint_groupnorm=False),
            "v3": dict(mid_block=False, pe_length=32, unet_joint_groupnorm=False),
        }
        if version not in presets:
            raise ValueError(f"unknown AnimateDiff version {version!r}; expected v1, v2 or v3")
        return cls(version=version, **{**presets[version], **overrides})

    def with_options(self, **changes: Any) -> "MotionModuleConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


class MotionModule(nn.Module):
    """A set of AnimateDiff motion modules for every level of a UNet (released key layout)."""

    def __init__(self, config: MotionModuleConfig):
        super().__init__()
        self.config = config
        kwargs = dict(
            heads=config.num_heads,
            pe_length=config.pe_length,
            depth=config.transformer_layers,
            attention_blocks=config.attention_blocks,
            norm_groups=config.norm_groups,
            ff_mult=config.ff_mult,
        )
        self.down_blocks = nn.ModuleList(
            [MotionBlock(c, config.layers_per_block, **kwargs) for c in config.block_channels]
        )
        self.up_blocks = nn.ModuleList(
            [MotionBlock(c, config.layers_per_block + 1, **kwargs) for c in reversed(config.block_channels)]
        )
        self.mid_block = MotionBlock(config.block_channels[-1], 1, **kwargs) if config.mid_block else None

    @property
    def max_frames(self) -> int:
        """Longest frame window the positional tables cover (the bundle's ``frame_window``)."""
        first: Any = self.down_blocks[0]
        return first.motion_modules[0].max_frames

    def check_fits(self, unet_config: Any) -> None:
        """Raise a ValueError if this set cannot be attached to a UNet with ``unet_config``."""
        expected = tuple(unet_config.model_channels * m for m in unet_config.channel_mult)
        problems = []
        if tuple(self.config.block_channels) != expected:
            problems.append(f"level channels {tuple(self.config.block_channels)} vs UNet {expected}")
        if self.config.layers_per_block != unet_config.num_res_blocks:
            problems.append(
                f"{self.config.layers_per_block} modules per level vs UNet num_res_blocks {unet_config.num_res_blocks}"
            )
        if problems:
            raise ValueError("motion module does not fit this UNet: " + "; ".join(problems))

    def slots(self, unet_config: Any) -> Dict[Tuple[str, int], "VanillaTemporalModule"]:
        """Where each module goes: ``{("input", n) | ("middle", 0) | ("output", n): module}``.

        Down level L, module i follows ``input_blocks[1 + L*(R+1) + i]``; up level L (lowest resolution
        first), module i follows ``output_blocks[L*(R+1) + i]``; R = num_res_blocks.
        """
        self.check_fits(unet_config)
        per_level = unet_config.num_res_blocks + 1
        slots = {}
        block: Any
        for level, block in enumerate(self.down_blocks):
            for i, module in enumerate(block.motion_modules):
                slots[("input", 1 + level * per_level + i)] = module
        for level, block in enumerate(self.up_blocks):
            for i, module in enumerate(block.motion_modules):
                slots[("output", level * per_level + i)] = module
        if self.mid_block is not None:
            slots[("middle", 0)] = self.mid_block.motion_modules[0]
        return slots


class TemporalConv(nn.Module):
    """VidRD Temp-Conv / the "1" of a (2+1)D conv: 3D convolutions over time only, as a residual.

    GroupNorm-SiLU-Conv3d(k x 1 x 1) twice over the ``[b, c, f, h, w]`` video; the last conv starts at
    zero so an untrained layer is an identity (VidRD §4.1: "last layer zeroed, residual connection").
    """

    def __init__(self, channels, kernel_frames=3, norm_groups=32):
        super().__init__()
        pad = (kernel_frames // 2, 0, 0)
        self.norm1 = nn.GroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv3d(channels, channels, (kernel_frames, 1, 1), padding=pad)
        self.norm2 = nn.GroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv3d(channels, channels, (kernel_frames, 1, 1), padding=pad)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, num_frames: int, *, scale: float = 1.0) -> torch.Tensor:
        """x ``[(b f), c, h, w]`` -> ``x + scale * temporal residual``."""
        if scale == 0:
            return x
        video = rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)
        h = self.conv1(F.silu(self.norm1(video)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + scale * rearrange(h, "b c f h w -> (b f) c h w")
