"""Shared building blocks of the diffusion UNet (and other models that want them).

Parameter names follow the original latent-diffusion (LDM / CompVis) layout so that SD checkpoints load
1:1: a ResBlock has ``in_layers.{0,2}``, ``emb_layers.1``, ``out_layers.{0,3}``, ``skip_connection``; a
spatial transformer has ``norm``, ``proj_in``, ``transformer_blocks.N.{attn1,attn2,ff,norm1,norm2,norm3}``,
``proj_out``; attention has ``to_q``, ``to_k``, ``to_v``, ``to_out.0``; feed-forward has ``net.0.proj``
(GEGLU) and ``net.2``.

Frames are folded into the batch (``[(b f), c, h, w]``) for every layer here; only ``group_norm`` with
``num_frames`` looks across frames (AnimateDiff v1's joint GroupNorm).
"""

import math
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...kernels import attention as kernel_attention


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal timestep features ``[N, dim]`` laid out ``[cos | sin]`` (LDM / SD convention)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    args = timesteps.float()[:, None] * torch.exp(exponent)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def group_norm(x: torch.Tensor, norm: nn.GroupNorm, num_frames: Optional[int] = None) -> torch.Tensor:
    """Apply GroupNorm module ``norm`` to ``x [(b f), c, h, w]``.

    With ``num_frames`` the statistics are shared by all frames of one video (AnimateDiff v1 was trained
    with the SD GroupNorms normalising ``[b, c, f, h, w]`` jointly); without it each frame is normalised
    on its own, exactly as the image model does.
    """
    if num_frames is None or num_frames == 1:
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    video = rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)
    video = F.group_norm(video, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return rearrange(video, "b c f h w -> (b f) c h w")


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, with the timestep embedding added in between, plus a skip path."""

    def __init__(self, channels, emb_channels, out_channels=None, norm_groups=32, dropout=0.0):
        super().__init__()
        out_channels = out_channels or channels
        self.channels = channels
        self.out_channels = out_channels
        self.in_layers = nn.Sequential(
            nn.GroupNorm(norm_groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(norm_groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, joint_frames: Optional[int] = None) -> torch.Tensor:
        """x ``[N, C, h, w]``, emb ``[N, E]``; ``joint_frames`` = F to share GroupNorm stats across frames."""
        inplace = not torch.is_grad_enabled()  # without autograd, reuse buffers instead of allocating
        h = F.silu(group_norm(x, self.in_layers[0], joint_frames), inplace=inplace)
        h = self.in_layers[2](h)
        emb_out = self.emb_layers[1](F.silu(emb))[:, :, None, None]
        h = h.add_(emb_out) if inplace else h + emb_out
        h = F.silu(group_norm(h, self.out_layers[0], joint_frames), inplace=inplace)
        h = self.out_layers[3](self.out_layers[2](h))
        skip = self.skip_connection(x)
        return h.add_(skip) if inplace else skip + h


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (LDM name ``op``)."""

    def __init__(self, channels, out_channels=None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve height and width."""
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution."""

    def __init__(self, channels, out_channels=None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Double height and width (or resize to ``size`` when the skip has an odd size)."""
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


def add_residual(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out + x``; in place into the fresh ``out`` when autograd is off (one large buffer less)."""
    return out + x if torch.is_grad_enabled() else out.add_(x)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[N, L, heads*d] -> [N, heads, L, d]`` (a view, no copy)."""
    n, length, inner = x.shape
    return x.view(n, length, heads, inner // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[N, heads, L, d] -> [N, L, heads*d]``."""
    n, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * d)


class Attention(nn.Module):
    """Multi-head (self or cross) attention; the scores are computed by ``kernels.attention``."""

    def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64, dropout=0.0):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def project_qkv(
        self, x: torch.Tensor, context: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v ``[N, heads, L, d]`` (views of the projections, no copy)."""
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        return split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads)

    def forward(
        self,
        x: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        *,
        backend: str = "auto",
        pattern: Any = None,
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x ``[N, L, query_dim]``; context ``[Nc, S, context_dim]`` (None = self-attention).

        When Nc < N (Nc divides N: one context per video, frames adjacent in the batch), k and v are
        computed once per context and the queries of the frames sharing it are attended together: the
        same result as repeating the context per frame, without recomputing its projections.
        """
        n, length, _ = x.shape
        group = 1
        if context is not None and context.shape[0] != n and mask is not None:
            context = context.repeat_interleave(n // context.shape[0], dim=0)  # a mask is per query row
        if context is not None and context.shape[0] != n:
            if n % context.shape[0]:
                raise ValueError(f"attention: context batch {context.shape[0]} does not divide query batch {n}")
            group = n // context.shape[0]
            x = x.reshape(context.shape[0], group * length, x.shape[-1])
        q, k, v = self.project_qkv(x, context)
        out = kernel_attention(q, k, v, mask=mask, pattern=pattern, backend=backend)
        out = self.to_out(merge_heads(out))
        return out.reshape(n, length, out.shape[-1]) if group != 1 else out


class GEGLU(nn.Module):
    """Linear projection to twice the width, then ``hidden * gelu(gate)``."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim_in] -> [..., dim_out]``."""
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return hidden * F.gelu(gate)
        return F.gelu(gate).mul_(hidden)  # inference: one buffer less


class FeedForward(nn.Module):
    """GEGLU feed-forward: ``net.0`` (GEGLU to mult*dim), ``net.1`` dropout, ``net.2`` back to dim."""

    def __init__(self, dim, mult=4, dropout=0.0):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim] -> [..., dim]``."""
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text, feed-forward; each pre-LayerNorm with a residual."""

    def __init__(self, dim, heads, dim_head, context_dim, dropout=0.0):
        super().__init__()
        self.attn1 = Attention(dim, None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = Attention(dim, context_dim, heads, dim_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, *, backend: str = "auto", self_pattern: Any = None
    ) -> torch.Tensor:
        """x ``[N, hw, dim]``, context ``[N, L, context_dim]``; ``self_pattern`` applies to attn1 only."""
        x = add_residual(self.attn1(self.norm1(x), backend=backend, pattern=self_pattern), x)
        x = add_residual(self.attn2(self.norm2(x), context, backend=backend), x)
        return add_residual(self.ff(self.norm3(x)), x)


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the h*w tokens of an image feature map, conditioned on text."""

    def __init__(self, channels, heads, dim_head, depth=1, context_dim=768, use_linear=False, norm_groups=32):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        if use_linear:
            self.proj_in = nn.Linear(channels, inner)
            self.proj_out = nn.Linear(inner, channels)
        else:
            self.proj_in = nn.Conv2d(channels, inner, 1)
            self.proj_out = nn.Conv2d(inner, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)]
        )

    @staticmethod
    def _as_linear_weight(proj):
        """A 1x1 conv or a Linear as a ``[out, in]`` matrix (a 1x1 conv is a per-pixel matmul)."""
        return proj.weight.reshape(proj.weight.shape[0], -1)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, *, backend: str = "auto", self_pattern: Any = None
    ) -> torch.Tensor:
        """x ``[N, C, h, w]``, context ``[N or 1, L, D]``; returns x plus the transformer's residual.

        ``self_pattern``: an attention pattern for the self-attention (e.g. cross-frame), or None.
        """
        n, c, h, w = x.shape
        # a contiguous token matrix: matmul on a strided 3D view would fall back to a batched matmul
        tokens = rearrange(self.norm(x), "n c h w -> n (h w) c").contiguous()
        tokens = F.linear(tokens, self._as_linear_weight(self.proj_in), self.proj_in.bias)
        for block in self.transformer_blocks:
            tokens = block(tokens, context, backend=backend, self_pattern=self_pattern)
        tokens = F.linear(tokens, self._as_linear_weight(self.proj_out), self.proj_out.bias)
        return x + rearrange(tokens, "n (h w) c -> n c h w", h=h, w=w)


def feather(length: int, ramp: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blend weights for overlapping tiles: linear ramps of ``ramp`` samples at the requested ends, 1
    elsewhere (all > 0). Used by the VAE's tiled decode and the upscalers' tiles."""
    w = torch.ones(length)
    if ramp <= 0:
        return w
    ramp = min(ramp, length)
    up = (torch.arange(ramp, dtype=torch.float32) + 1.0) / (ramp + 1.0)
    if ramp_start:
        w[:ramp] = torch.minimum(w[:ramp], up)
    if ramp_end:
        w[length - ramp :] = torch.minimum(w[length - ramp :], up.flip(0))
    return w
