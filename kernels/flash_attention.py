"""Fused attention with an online softmax (flash-attention style forward) for spatial self- and cross-attention.

One program computes a ``BLOCK_M``-row tile of queries of one (batch, head) and streams the keys/values in
``BLOCK_N`` blocks, keeping a running max ``m``, running sum ``l`` and an fp32 accumulator, so the ``q_len x
k_len`` score matrix never exists in memory. Any lengths (tails masked), head dims up to 256 (padded to the
power of two ``BLOCK_D`` with masked loads; the scale uses the true head dim). Optional per-key additive bias
(key padding) and an optional band ``|i - j| <= window`` (the key loop then only visits the band).

This module imports triton; it is only imported lazily by ``kernels.triton_backend``. The kernel below is a
plain function: ``triton_backend`` wraps it with ``triton.jit`` or the interpreter when first needed.
"""

import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)


def flash_attention_kernel(
    Q,
    K,
    V,
    Out,
    Bias,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_om,
    stride_od,
    stride_bias_b,
    stride_bias_n,
    num_heads,
    q_len,
    k_len,
    qk_scale,
    window,
    HAS_BIAS: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    DOT_FP32: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Out[b, h, m-tile] = softmax(Q K^T * scale + bias) V over the keys of the same (b, h)."""
    start_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    b = (batch_head // num_heads).to(tl.int64)
    h = (batch_head % num_heads).to(tl.int64)

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM

    # element offsets of whole rows; ALIGN (checked by the host) lets the compiler vectorise the loads
    q_rows = tl.multiple_of(b * stride_qb + h * stride_qh + offs_m * stride_qm, ALIGN)
    q = tl.load(
        Q + q_rows[:, None] + offs_d[None, :] * stride_qd, mask=(offs_m[:, None] < q_len) & d_ok[None, :], other=0.0
    )
    if DOT_FP32:
        q = q.to(tl.float32)
    k_head = b * stride_kb + h * stride_kh
    v_head = b * stride_vb + h * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)

    if HAS_WINDOW:
        # only key blocks that intersect the band of this query tile
        lo = (tl.maximum(start_m * BLOCK_M - window, 0) // BLOCK_N) * BLOCK_N
        hi = tl.minimum(start_m * BLOCK_M + BLOCK_M + window, k_len)
    else:
        lo = 0
        hi = k_len

    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < k_len
        # K is loaded transposed, [BLOCK_D, BLOCK_N], so the score tile is a plain q @ k
        k_rows = tl.multiple_of(k_head + cols * stride_kn, ALIGN)
        k = tl.load(K + k_rows[None, :] + offs_d[:, None] * stride_kd, mask=col_ok[None, :] & d_ok[:, None], other=0.0)
        if DOT_FP32:
            k = k.to(tl.float32)
        s = tl.dot(q, k, input_precision=INPUT_PRECISION) * qk_scale
        if HAS_BIAS:
            bias = tl.load(Bias + b * stride_bias_b + cols * stride_bias_n, mask=col_ok, other=0.0)
            s = s + bias.to(tl.float32)[None, :] * LOG2E
        valid = col_ok[None, :]
        if HAS_WINDOW:
            valid = valid & (tl.abs(offs_m[:, None] - cols[None, :]) <= window)
        s = tl.where(valid, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        # rows with every key masked so far keep m = -inf; shift by 0 instead so exp2 gives 0, not NaN
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_shift[:, None])
        alpha = tl.exp2(m_i - m_shift)
        l_i = l_i * alpha + tl.sum(p, 1)

        v_rows = tl.multiple_of(v_head + cols * stride_vn, ALIGN)
        v = tl.load(V + v_rows[:, None] + offs_d[None, :] * stride_vd, mask=col_ok[:, None] & d_ok[None, :], other=0.0)
        if DOT_FP32:
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=INPUT_PRECISION)
        m_i = m_new

    # fully masked rows (l = 0) come out as zeros
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_rows = tl.multiple_of(b * stride_ob + h * stride_oh + offs_m * stride_om, ALIGN)
    tl.store(
        Out + o_rows[:, None] + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty),
        mask=(offs_m[:, None] < q_len) & d_ok[None, :],
    )
