"""PyTorch (SDPA) implementations of every pattern: the CPU path and the reference the kernels are checked against.

Cross-frame attention here gathers the source frames' keys/values into a new tensor and calls SDPA; the Triton
kernel reads them in place. Window attention builds a boolean band mask.
"""

import torch
import torch.nn.functional as F

from .patterns import CrossFrame, Window


def band_mask(q_len, k_len, radius, device):
    """Boolean ``[q_len, k_len]`` mask, True where ``|i - j| <= radius``."""
    rows = torch.arange(q_len, device=device)[:, None]
    cols = torch.arange(k_len, device=device)[None, :]
    return (rows - cols).abs() <= radius


def merge_band(mask, band):
    """Intersect a user mask (None, boolean True=attend, or additive float) with a boolean band mask."""
    if mask is None:
        return band
    if mask.dtype == torch.bool:
        return mask & band
    return mask.masked_fill(~band, float("-inf"))


def cross_frame_index(pattern, batch_frames, device):
    """For each ``b*F + f`` batch row, the batch rows of its source frames: ``[B*F, len(sources)]``."""
    if batch_frames % pattern.num_frames:
        raise ValueError(
            f"attention pattern cross_frame: batch {batch_frames} is not a multiple of num_frames={pattern.num_frames}"
        )
    frames = pattern.num_frames
    per_frame = torch.tensor([pattern.source_frames(f) for f in range(frames)], device=device)
    video_start = torch.arange(0, batch_frames, frames, device=device).repeat_interleave(frames)
    return video_start[:, None] + per_frame.repeat(batch_frames // frames, 1)


def gather_cross_frame(tensor, pattern):
    """Concatenate, along the sequence axis, the source frames' rows of ``[B*F, heads, seq, d]`` (a copy)."""
    index = cross_frame_index(pattern, tensor.shape[0], tensor.device)
    gathered = tensor[index]  # [B*F, sources, heads, seq, d]
    return gathered.permute(0, 2, 1, 3, 4).flatten(2, 3)


def sdpa_attention(q, k, v, mask=None, pattern=None):
    """Attention through ``F.scaled_dot_product_attention`` for a parsed pattern (None, Window, CrossFrame)."""
    if pattern is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if isinstance(pattern, Window):
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"attention pattern window: needs self-attention (q_len == k_len), got {q.shape[-2]} and {k.shape[-2]}"
            )
        band = band_mask(q.shape[-2], k.shape[-2], pattern.radius, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=merge_band(mask, band))
    if isinstance(pattern, CrossFrame):
        if mask is not None:
            raise ValueError("attention pattern cross_frame: masks are not supported with cross-frame attention")
        return F.scaled_dot_product_attention(q, gather_cross_frame(k, pattern), gather_cross_frame(v, pattern))
    raise ValueError(f"attention: unsupported pattern object {pattern!r}")


def math_attention(q, k, v, mask=None, pattern=None):
    """Float64 attention written out (softmax(q k^T / sqrt(d)) v), for tests; fully masked rows give zeros."""
    q, k, v = q.double(), k.double(), v.double()
    if isinstance(pattern, CrossFrame):
        k, v = gather_cross_frame(k, pattern), gather_cross_frame(v, pattern)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if isinstance(pattern, Window):
        band = band_mask(q.shape[-2], k.shape[-2], pattern.radius, q.device)
        mask = merge_band(mask, band)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v
