"""Attention over many short sequences (temporal attention), several whole sequences per program.

Temporal attention in a video UNet runs over ``B*h*w`` sequences of only ``F`` (8-64) frames each. A
flash kernel would give each sequence its own mostly-padded tile; here one tile of ``BLOCK_M`` query rows
holds ``G = min(BLOCK_M // q_len, BLOCK_N // k_len)`` consecutive sequences, and a block-diagonal mask keeps
each query inside its own sequence. All keys of those sequences are in the tile, so one plain softmax pass
suffices (no online rescaling). Sequences are the flattened ``(batch, head)`` pairs, addressed through
strides, so q/k/v can be views. Optional band ``|i - j| <= window`` (long videos) and per-key bias.

Imported lazily by ``kernels.triton_backend``; the kernel is a plain function wrapped there.
"""

import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)


def packed_attention_kernel(
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
    num_seqs,
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
    """Attention for the G sequences ``[pid*G, pid*G + G)``, each query seeing only its own sequence's keys."""
    seqs_per_block = tl.minimum(BLOCK_M // q_len, BLOCK_N // k_len)
    first_seq = tl.program_id(0) * seqs_per_block

    rows = tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM

    row_local = rows // q_len
    row_pos = rows % q_len
    row_seq = first_seq + row_local
    row_ok = (row_local < seqs_per_block) & (row_seq < num_seqs)
    row_b = (row_seq // num_heads).to(tl.int64)
    row_h = (row_seq % num_heads).to(tl.int64)

    col_local = cols // k_len
    col_pos = cols % k_len
    col_seq = first_seq + col_local
    col_ok = (col_local < seqs_per_block) & (col_seq < num_seqs)
    col_b = (col_seq // num_heads).to(tl.int64)
    col_h = (col_seq % num_heads).to(tl.int64)

    # element offsets of whole rows; ALIGN (checked by the host) lets the compiler vectorise the loads
    q_rows = tl.multiple_of(row_b * stride_qb + row_h * stride_qh + row_pos * stride_qm, ALIGN)
    q = tl.load(Q + q_rows[:, None] + offs_d[None, :] * stride_qd, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_rows = tl.multiple_of(col_b * stride_kb + col_h * stride_kh + col_pos * stride_kn, ALIGN)
    k = tl.load(K + k_rows[None, :] + offs_d[:, None] * stride_kd, mask=col_ok[None, :] & d_ok[:, None], other=0.0)
    if DOT_FP32:
        q = q.to(tl.float32)
        k = k.to(tl.float32)

    s = tl.dot(q, k, input_precision=INPUT_PRECISION) * qk_scale
    if HAS_BIAS:
        bias = tl.load(Bias + col_b * stride_bias_b + col_pos * stride_bias_n, mask=col_ok, other=0.0)
        s = s + bias.to(tl.float32)[None, :] * LOG2E
    # block-diagonal: a query only sees the keys of its own sequence
    valid = row_ok[:, None] & col_ok[None, :] & (row_local[:, None] == col_local[None, :])
    if HAS_WINDOW:
        valid = valid & (tl.abs(row_pos[:, None] - col_pos[None, :]) <= window)
    s = tl.where(valid, s, float("-inf"))

    m = tl.max(s, 1)
    m = tl.where(m == float("-inf"), 0.0, m)  # padding rows / fully masked rows: avoid -inf - -inf
    p = tl.exp2(s - m[:, None])
    l = tl.sum(p, 1)
    # V is loaded only now, so its addresses are not live during the score computation
    v_rows = tl.multiple_of(col_b * stride_vb + col_h * stride_vh + col_pos * stride_vn, ALIGN)
    v = tl.load(V + v_rows[:, None] + offs_d[None, :] * stride_vd, mask=col_ok[:, None] & d_ok[None, :], other=0.0)
    if DOT_FP32:
        v = v.to(tl.float32)
    acc = tl.dot(p.to(v.dtype), v, input_precision=INPUT_PRECISION)
    out = acc / tl.where(l == 0.0, 1.0, l)[:, None]

    o_rows = tl.multiple_of(row_b * stride_ob + row_h * stride_oh + row_pos * stride_om, ALIGN)
    tl.store(
        Out + o_rows[:, None] + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty),
        mask=row_ok[:, None] & d_ok[None, :],
    )
