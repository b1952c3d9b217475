"""The one attention entry point every FrameFold model calls.

q, k, v are laid out as PyTorch's SDPA takes them: ``[batch, heads, seq, head_dim]``; the output has
the same layout as q. Triton kernels are imported lazily, never at import time.

Backends: ``sdpa`` (PyTorch, every pattern through masks / gathered keys), ``triton`` (the kernels in this
folder; CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``), ``auto`` (Triton only on CUDA and only for
the shape classes a GPU benchmark measured faster on this GPU model, see ``kernels.auto_table``, or listed in
``AUTO_TRITON``; SDPA everywhere else, always SDPA on CPU).
Patterns: see ``kernels.patterns`` (``None``, ``"window:<radius>"``, ``"cross_frame:<sources>[:<num_frames>]"``).
"""

from .patterns import CrossFrame, Window, parse_pattern
from .reference import sdpa_attention

BACKENDS = ("auto", "sdpa", "triton")

# Shape classes (see ``shape_class``) and dtypes for which ``auto`` picks Triton on every CUDA GPU. Empty: the
# choice is per GPU model, from the table bench/attention.py measures and writes (kernels/auto_table.py); with
# no table, ``auto`` is SDPA.
AUTO_TRITON = frozenset()

__all__ = ["attention", "BACKENDS", "AUTO_TRITON", "CrossFrame", "Window", "parse_pattern", "shape_class"]


def shape_class(q, k, pattern=None):
    """Name the workload class of a call: cross_frame, window, temporal, cross or spatial."""
    if isinstance(pattern, CrossFrame):
        return "cross_frame"
    if isinstance(pattern, Window):
        return "window"
    from .triton_backend import PACKED_MAX_LEN

    if max(q.shape[-2], k.shape[-2]) <= PACKED_MAX_LEN:
        return "temporal"
    return "cross" if q.shape[-2] != k.shape[-2] else "spatial"


def _auto_uses_triton(q, k, v, mask, pattern):
    """True when ``auto`` should run the Triton kernels for this call."""
    if not q.is_cuda:
        return False
    key = (shape_class(q, k, pattern), q.dtype)
    if key not in AUTO_TRITON:
        from .auto_table import triton_classes

        if key not in triton_classes(q.device):
            return False
    from .triton_backend import triton_available, unsupported_reason

    return triton_available() and unsupported_reason(q, k, v, mask, pattern) is None


def attention(q, k, v, *, mask=None, pattern=None, backend="auto"):
    """Scaled dot-product attention over ``[batch, heads, seq, head_dim]`` tensors (scale 1/sqrt(head_dim)).

    mask: optional boolean (True = attend) or additive float mask broadcastable to
    ``[batch, heads, q_len, k_len]``; the Triton kernels take key-padding masks (``[B, 1, 1, k_len]``) only.
    pattern: None, ``"window:<radius>"`` / ``Window``, or ``"cross_frame:<first|previous|self>[+...][:<F>]"``
    / ``CrossFrame`` (see ``kernels.patterns``). backend: ``auto`` | ``sdpa`` | ``triton``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"attention: backend must be one of {BACKENDS}, got {backend!r}")
    pattern = parse_pattern(pattern)
    if backend == "triton" or (backend == "auto" and _auto_uses_triton(q, k, v, mask, pattern)):
        from .triton_backend import triton_attention

        return triton_attention(q, k, v, mask=mask, pattern=pattern)
    return sdpa_attention(q, k, v, mask=mask, pattern=pattern)
