"""Cross-frame attention: the queries of frame f attend to the keys/values of frame 0 and/or frame f-1.

Layout: q, k, v are ``[B*F, heads, tokens, head_dim]`` with the F frames of one video contiguous in the batch
(row ``b*F + f``). A program takes a ``BLOCK_M`` query tile of row ``b*F + f`` and streams the keys of each
source frame in turn, straight from K/V through the batch stride (no gathered copy), with one online softmax
across all sources. Sources are constexpr codes (``SOURCE_CODES``): first = 0 (row ``b*F``), previous = 1
(row ``b*F + max(f-1, 0)``), self = 2 (row ``b*F + f``); the first ``NUM_SOURCES`` of ``SOURCE_0..2`` are used,
in that order.

Imported lazily by ``kernels.triton_backend``; the kernel is a plain function wrapped there.
"""

import triton.language as tl

SOURCE_CODES = {"first": 0, "previous": 1, "self": 2}
FIRST = tl.constexpr(SOURCE_CODES["first"])
PREVIOUS = tl.constexpr(SOURCE_CODES["previous"])


def cross_frame_attention_kernel(
    Q,
    K,
    V,
    Out,
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
    num_heads,
    num_frames,
    q_len,
    k_len,
    qk_scale,
    NUM_SOURCES: tl.constexpr,
    SOURCE_0: tl.constexpr,
    SOURCE_1: tl.constexpr,
    SOURCE_2: tl.constexpr,
    DOT_FP32: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Out[bf, h, m-tile] = softmax over the concatenated keys of the source frames of row bf."""
    start_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    row = batch_head // num_heads
    h = (batch_head % num_heads).to(tl.int64)
    frame = row % num_frames
    video_start = row - frame

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM

    # element offsets of whole rows; ALIGN (checked by the host) lets the compiler vectorise the loads
    q_rows = tl.multiple_of(row.to(tl.int64) * stride_qb + h * stride_qh + offs_m * stride_qm, ALIGN)
    q = tl.load(
        Q + q_rows[:, None] + offs_d[None, :] * stride_qd, mask=(offs_m[:, None] < q_len) & d_ok[None, :], other=0.0
    )
    if DOT_FP32:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)

    for i in tl.static_range(NUM_SOURCES):
        if i == 0:
            source = SOURCE_0
        elif i == 1:
            source = SOURCE_1
        else:
            source = SOURCE_2
        if source == FIRST:
            source_row = video_start
        elif source == PREVIOUS:
            source_row = video_start + tl.maximum(frame - 1, 0)
        else:
            source_row = row
        k_head = source_row.to(tl.int64) * stride_kb + h * stride_kh
        v_head = source_row.to(tl.int64) * stride_vb + h * stride_vh

        for start_n in range(0, k_len, BLOCK_N):
            cols = start_n + offs_n
            col_ok = cols < k_len
            k_rows = tl.multiple_of(k_head + cols * stride_kn, ALIGN)
            k = tl.load(
                K + k_rows[None, :] + offs_d[:, None] * stride_kd, mask=col_ok[None, :] & d_ok[:, None], other=0.0
            )
            if DOT_FP32:
                k = k.to(tl.float32)
            s = tl.dot(q, k, input_precision=INPUT_PRECISION) * qk_scale
            s = tl.where(col_ok[None, :], s, float("-inf"))

            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp2(s - m_new[:, None])  # every block has >= 1 valid key, so m_new is finite
            alpha = tl.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)

            v_rows = tl.multiple_of(v_head + cols * stride_vn, ALIGN)
            v = tl.load(
                V + v_rows[:, None] + offs_d[None, :] * stride_vd, mask=col_ok[:, None] & d_ok[None, :], other=0.0
            )
            if DOT_FP32:
                v = v.to(tl.float32)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=INPUT_PRECISION)
            m_i = m_new

    out = acc / l_i[:, None]
    o_rows = tl.multiple_of(row.to(tl.int64) * stride_ob + h * stride_oh + offs_m * stride_om, ALIGN)
    tl.store(
        Out + o_rows[:, None] + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty),
        mask=(offs_m[:, None] < q_len) & d_ok[None, :],
    )
