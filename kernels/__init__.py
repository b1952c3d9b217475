"""The one attention entry point every FrameFold model calls.

q, k, v are laid out as PyTorch's SDPA takes them: ``[batch, heads, seq, head_dim]``; the output has
the same layout as q. Triton kernels are imported lazily, never at import time.
"""
import torch
import torch.nn.functional as F

BACKENDS = ("auto", "sdpa", "triton")


def attention(q, k, v, *, mask=None, pattern=None, backend="auto"):
    """Scaled dot-product attention over ``[batch, heads, seq, head_dim]`` tensors.

    mask: optional boolean (True = attend) or additive float mask broadcastable to
    ``[batch, heads, q_len, k_len]``. pattern: reserved for structured patterns (cross-frame,
    sliding window). backend: ``auto`` | ``sdpa`` | ``triton``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"attention: backend must be one of {BACKENDS}, got {backend!r}")
    if pattern is not None:
        raise ValueError(f"attention: pattern {pattern!r} is not supported by this build")
    if backend == "triton":
        raise RuntimeError("attention: backend='triton' requested but Triton kernels are not available")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
