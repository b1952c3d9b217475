"""Benchmark: FrameFold's Triton attention kernels vs PyTorch SDPA on the shapes SD1.5 + AnimateDiff hit.

    python bench/attention.py [--dtype fp16|bf16] [--batch 2] [--frames 16] [--only temporal]
    python bench/attention.py --compile     # no GPU needed: compile all configs for sm80/sm90, print smem

Shapes are those of a 512x512, 16-frame generation with classifier-free guidance (batch 2): spatial
self-attention at 64x64 / 32x32 / 16x16 / 8x8 latent tokens (head dims 40 / 80 / 160 / 160, 8 heads),
cross-attention to 77 text tokens, temporal attention over 16 frames for every pixel, a 64-frame video with a
sliding window, and cross-frame attention (first / first+previous) against gather + SDPA. Both backends run
on the same device in one process; the script prints times, the speed ratio SDPA/Triton (> 1 = Triton faster)
and the max abs difference. Without CUDA it says so and runs a tiny correctness pass in the Triton interpreter.
It prints figures; it never passes or fails on time. On a GPU it also writes the table ``backend="auto"`` reads
(kernels/auto_table.py; ``--table PATH`` / ``--no-table``): Triton for a shape class only where it won every
workload of that class on this GPU model.
"""

import argparse
import os
import sys

import torch

LEVELS = [  # (latent side at 512 px, head_dim) for SD1.5's attention levels, 8 heads everywhere
    (64, 40),
    (32, 80),
    (16, 160),
    (8, 160),
]
HEADS = 8
TEXT_TOKENS = 77


def workloads(batch, frames, long_frames=64, window=8):
    """``(name, q_shape, k_shape, pattern)`` for every attention call class of one UNet step."""
    rows = batch * frames
    items = []
    for side, head_dim in LEVELS:
        tokens = side * side
        items.append(
            (
                f"spatial {side}x{side} d{head_dim}",
                (rows, HEADS, tokens, head_dim),
                (rows, HEADS, tokens, head_dim),
                None,
            )
        )
        items.append(
            (
                f"cross->77 {side}x{side} d{head_dim}",
                (rows, HEADS, tokens, head_dim),
                (rows, HEADS, TEXT_TOKENS, head_dim),
                None,
            )
        )
        seqs = batch * tokens
        items.append(
            (
                f"temporal {frames}f {side}x{side} d{head_dim}",
                (seqs, HEADS, frames, head_dim),
                (seqs, HEADS, frames, head_dim),
                None,
            )
        )
    for side, head_dim in LEVELS[:2]:
        seqs = batch * side * side
        items.append(
            (
                f"temporal {long_frames}f window:{window} {side}x{side} d{head_dim}",
                (seqs, HEADS, long_frames, head_dim),
                (seqs, HEADS, long_frames, head_dim),
                f"window:{window}",
            )
        )
    for side, head_dim in LEVELS[:3]:
        tokens = side * side
        for sources in ("first", "previous", "first+previous"):
            items.append(
                (
                    f"cross_frame:{sources} {side}x{side} d{head_dim}",
                    (rows, HEADS, tokens, head_dim),
                    (rows, HEADS, tokens, head_dim),
                    f"cross_frame:{sources}:{frames}",
                )
            )
    return items


def make_inputs(q_shape, k_shape, dtype, device, seed=0):
    """Random q, k, v with the given shapes."""
    generator = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(q_shape, generator=generator, device=device, dtype=dtype)
    k = torch.randn(k_shape, generator=generator, device=device, dtype=dtype)
    v = torch.randn(k_shape, generator=generator, device=device, dtype=dtype)
    return q, k, v


TINY_WORKLOADS = [  # every workload class at interpreter size: (name, q shape, k shape, pattern)
    ("spatial d40", (1, 2, 70, 40), (1, 2, 70, 40), None),
    ("cross->77 d80", (1, 2, 50, 80), (1, 2, 77, 80), None),
    ("spatial d160", (1, 1, 80, 160), (1, 1, 80, 160), None),
    ("temporal 16f d40", (6, 2, 16, 40), (6, 2, 16, 40), None),
    ("temporal 64f window:8 d40", (2, 2, 64, 40), (2, 2, 64, 40), "window:8"),
    ("temporal 100f window:8 d40", (1, 2, 100, 40), (1, 2, 100, 40), "window:8"),
    ("cross_frame:first d40", (6, 2, 40, 40), (6, 2, 40, 40), "cross_frame:first:3"),
    ("cross_frame:first+previous d80", (6, 1, 40, 80), (6, 1, 40, 80), "cross_frame:first+previous:3"),
]


def time_ms(fn, device, warmup=3, repeats=10):
    """Median wall time of ``fn()`` in milliseconds (CUDA events on a GPU)."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_table(items, device, dtype, repeats=10, with_float64=False, rows=None):
    """For each workload: SDPA (gather + SDPA for cross-frame) and Triton times, their ratio, max |difference|
    (and, on request, max |triton - float64 reference|). Returns the worst Triton-vs-SDPA difference.
    ``rows``: a list that receives one dict per workload (shape class, dtype, times, difference) for the
    auto table (kernels/auto_table.py)."""
    from framefold import kernels
    from framefold.kernels.reference import math_attention

    header = f"{'workload':44s} {'q shape':>24s} {'sdpa ms':>9s} {'triton ms':>9s} {'ratio':>6s} {'max diff':>9s}"
    print(header + (f" {'vs fp64':>9s}" if with_float64 else ""))
    worst = 0.0
    for name, q_shape, k_shape, pattern in items:
        q, k, v = make_inputs(q_shape, k_shape, dtype, device)
        try:

            def sdpa():
                return kernels.attention(q, k, v, pattern=pattern, backend="sdpa")

            def tri():
                return kernels.attention(q, k, v, pattern=pattern, backend="triton")

            out = tri()
            difference = (out.float() - sdpa().float()).abs().max().item()
            worst = max(worst, difference)
            sdpa_ms = time_ms(sdpa, device, repeats=repeats)
            triton_ms = time_ms(tri, device, repeats=repeats)
            line = (
                f"{name:44s} {str(tuple(q_shape)):>24s} {sdpa_ms:9.3f} {triton_ms:9.3f} "
                f"{sdpa_ms / triton_ms:6.2f} {difference:9.2e}"
            )
            if with_float64:
                reference = math_attention(q, k, v, pattern=kernels.parse_pattern(pattern))
                line += f" {(out.double() - reference).abs().max().item():9.2e}"
            print(line, flush=True)
            if rows is not None:
                rows.append(
                    {
                        "class": kernels.shape_class(q, k, kernels.parse_pattern(pattern)),
                        "dtype": str(dtype).removeprefix("torch."),
                        "sdpa_ms": sdpa_ms,
                        "triton_ms": triton_ms,
                        "max_diff": difference,
                    }
                )
        except Exception as error:  # report and continue with the other shapes
            worst = float("inf")
            if rows is not None:
                rows.append(
                    {
                        "class": kernels.shape_class(q, k, kernels.parse_pattern(pattern)),
                        "dtype": str(dtype).removeprefix("torch."),
                        "sdpa_ms": None,
                        "triton_ms": None,
                    }
                )
            print(f"{name:44s} {str(tuple(q_shape)):>24s} FAILED: {type(error).__name__}: {error}", flush=True)
        del q, k, v
        if device == "cuda":
            torch.cuda.empty_cache()
    print("ratio = SDPA time / Triton time (> 1: Triton faster); for cross_frame the SDPA column is gather + SDPA")
    return worst


def bench_gpu(args):
    """Time Triton vs SDPA for each SD1.5 + AnimateDiff workload on the current CUDA device."""
    import triton

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    print(
        f"device: {torch.cuda.get_device_name()}  capability {torch.cuda.get_device_capability()}  "
        f"dtype {args.dtype}  torch {torch.__version__}  triton {triton.__version__}"
    )
    items = [item for item in workloads(args.batch, args.frames) if args.only in item[0]]
    rows = []
    run_table(items, "cuda", dtype, repeats=args.repeats, rows=rows)
    if args.no_table:
        return
    from framefold.kernels import auto_table

    table = auto_table.build_table(rows, torch.cuda.get_device_name())
    path = auto_table.write_table(table, args.table)
    chosen = ", ".join(f"{e['class']}:{e['backend']}" for e in table["entries"])
    print(f"auto table for {table['device']} ({args.dtype}) written to {path}: {chosen}")


def interpreter_pass():
    """Tiny shapes of every workload class through the same table in the Triton interpreter (fp32, CPU)."""
    print("running a tiny correctness pass in the Triton interpreter (fp32, CPU; the times are NOT kernel speed)")
    worst = run_table(TINY_WORKLOADS, "cpu", torch.float32, repeats=1, with_float64=True)
    print(f"worst |triton - sdpa| {worst:.2e}")
    return worst


SHARED_LIMITS = {80: 163 * 1024, 86: 99 * 1024, 90: 227 * 1024}  # max shared memory per block, bytes


def contiguous_strides(head_dim, tokens=4096, heads=HEADS):
    """Representative strides of contiguous ``[batch, heads, tokens, head_dim]`` q/k/v/out (for specialisation)."""
    ints = {}
    for name in "qkvo":
        ints.update(
            {
                f"stride_{name}m": head_dim,
                f"stride_{name}n": head_dim,
                f"stride_{name}h": tokens * head_dim,
                f"stride_{name}b": heads * tokens * head_dim,
            }
        )
    return ints


def compile_sweep(dtype_name):
    """Compile every kernel x listed autotune config x SD head dim (40/80/160) for sm80 and sm90 (no GPU needed)
    and print shared memory, registers and spill bytes, so configs that cannot launch or spill are visible."""
    import time

    from framefold.kernels.configs import PACKED, STREAMING, allowed_entries
    from framefold.kernels.triton_backend import compile_for_target, cubin_resource_usage

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    kernels_and_tables = [
        ("flash", STREAMING, dict(HAS_BIAS=False, HAS_WINDOW=False)),
        ("packed", PACKED, dict(HAS_BIAS=False, HAS_WINDOW=False)),
        ("cross_frame", STREAMING, dict(NUM_SOURCES=2, SOURCE_0=0, SOURCE_1=1, SOURCE_2=0)),
    ]
    print(
        f"{'kernel':12s} {'arch':5s} {'d':>4s} {'BLOCK_D':>7s} {'M':>4s} {'N':>4s} {'warps':>5s} {'stages':>6s} "
        f"{'shared KiB':>10s} {'regs':>4s} {'stack B':>7s} {'compile s':>9s}  fits"
    )
    for name, table, flags in kernels_and_tables:
        for family, capability in (("sm80", 80), ("sm90", 90)):
            for head_dim in (40, 80, 160):
                block_d = max(16, 1 << (head_dim - 1).bit_length())
                for block_m, block_n, warps, stages in allowed_entries(table, family, block_d):
                    constexprs = dict(
                        flags,
                        DOT_FP32=False,
                        INPUT_PRECISION="tf32",
                        HEAD_DIM=head_dim,
                        ALIGN=8,
                        BLOCK_D=block_d,
                        BLOCK_M=block_m,
                        BLOCK_N=block_n,
                    )
                    ints = contiguous_strides(head_dim)
                    row = (
                        f"{name:12s} {family:5s} {head_dim:4d} {block_d:7d} {block_m:4d} {block_n:4d} {warps:5d} "
                        f"{stages:6d}"
                    )
                    start = time.time()
                    try:
                        kernel = compile_for_target(name, capability, dtype, constexprs, warps, stages, ints=ints)
                    except Exception as error:  # report and go on
                        print(f"{row} FAILED {type(error).__name__}: {str(error)[:120]}")
                        continue
                    shared = kernel.metadata.shared
                    registers, stack = cubin_resource_usage(kernel.asm["cubin"])
                    fits = " ".join(
                        f"sm{cap}"
                        for cap, limit in SHARED_LIMITS.items()
                        if shared <= limit and (cap >= 90) == (capability >= 90)
                    )
                    print(
                        f"{row} {shared / 1024:10.1f} {registers:4d} {stack:7d} {time.time() - start:9.1f}  "
                        f"{fits or 'NO'}{'  SPILLS' if stack else ''}",
                        flush=True,
                    )


def main(argv=None):
    """Parse arguments; benchmark on CUDA, else run the interpreter pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    parser.add_argument("--batch", type=int, default=2, help="videos per call (2 = classifier-free guidance)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--only", default="", help="run only workloads whose name contains this text")
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions per measurement (median)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile every kernel/config for sm80 and sm90 ahead of time (no GPU needed) and print shared memory use",
    )
    parser.add_argument(
        "--table",
        default=None,
        help="where to write the auto table on a GPU run (default: $FRAMEFOLD_ATTENTION_TABLE or "
        "~/.cache/framefold/attention_auto.json)",
    )
    parser.add_argument("--no-table", action="store_true", help="do not write the auto table")
    args = parser.parse_args(argv)
    if args.compile:
        compile_sweep(args.dtype)
        return 0
    if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        bench_gpu(args)
        return 0
    print("No CUDA device: no timings can be taken here (the speed comparison needs a GPU).")
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        print("triton is already imported without TRITON_INTERPRET; cannot start the interpreter")
        return 1
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (kernels import it lazily)
    return 0 if interpreter_pass() < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
