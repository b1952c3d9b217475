"""The three kernels compile ahead of time for real GPU targets (sm80, sm90) on a machine without a GPU.

The interpreter tests check the numbers; this checks what the interpreter cannot: that the Triton compiler
accepts the kernels (constexpr globals, types, dot shapes) down to a cubin, and that the small configs fit in
shared memory. Runs in a subprocess with a fresh Triton cache so it really compiles, and without
TRITON_INTERPRET (triton must be imported in compile mode).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SM80_SHARED_LIMIT = 163 * 1024  # A100 opt-in shared memory per block (sm86/89 have less: 99 KiB)


def test_kernels_compile_for_sm80_and_sm90(tmp_path):
    """Each kernel, with bias/window/cross-frame features on, compiles to a cubin for sm80 (fp16) / sm90 (bf16)
    at head dim 40, without register spills and with vectorised loads."""
    pytest.importorskip("triton", reason="compiling the kernels needs the triton package (a test dependency)")
    code = textwrap.dedent("""
        import json, sys
        import torch
        from framefold.kernels.triton_backend import compile_for_target, cubin_resource_usage

        common = dict(DOT_FP32=False, INPUT_PRECISION="tf32", HEAD_DIM=40, ALIGN=8, BLOCK_D=64, BLOCK_M=64, BLOCK_N=32)
        jobs = [
            ("flash", 80, torch.float16, dict(HAS_BIAS=True, HAS_WINDOW=True)),
            ("packed", 90, torch.bfloat16, dict(HAS_BIAS=True, HAS_WINDOW=True, BLOCK_N=64)),
            ("cross_frame", 80, torch.float16, dict(NUM_SOURCES=2, SOURCE_0=0, SOURCE_1=1, SOURCE_2=0)),
        ]
        report = {}
        for name, capability, dtype, extra in jobs:
            strides = {f"stride_{t}{axis}": size for t in "qkvo"
                       for axis, size in (("m", 40), ("n", 40), ("h", 40 * 256), ("b", 40 * 256 * 8))}
            kernel = compile_for_target(name, capability, dtype, {**common, **extra}, ints=strides)
            registers, stack = cubin_resource_usage(kernel.asm["cubin"])
            ptx = kernel.asm["ptx"]
            report[name] = {"shared": kernel.metadata.shared, "cubin": len(kernel.asm.get("cubin", b"")),
                            "stack": stack, "registers": registers,
                            "vector_loads": ptx.count("ld.global.v4") + ptx.count("cp.async.cg.shared.global")}
        print(json.dumps(report))
    """)
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path / "triton-cache"), TRITON_DEFAULT_FP_FUSION="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == {"flash", "packed", "cross_frame"}
    for name, info in report.items():
        assert info["cubin"] > 0, f"{name}: no cubin produced"
        assert 0 < info["shared"] <= SM80_SHARED_LIMIT, f"{name}: shared memory {info['shared']} bytes"
        assert info["stack"] == 0, f"{name}: {info['stack']} bytes of register spills"
        # head dim 40 with 16-byte aligned rows (ALIGN=8): the row-alignment hints must give 16-byte loads
        assert info["vector_loads"] > 0, f"{name}: no vectorised global loads"


def test_compile_for_target_names_missing_constexprs():
    """Forgetting a constexpr is a clear error, not a compiler traceback."""
    pytest.importorskip("triton", reason="needs the triton package (a test dependency)")
    import torch

    from framefold.kernels.triton_backend import compile_for_target

    with pytest.raises(ValueError, match="constexprs missing.*BLOCK_M"):
        compile_for_target("flash", 80, torch.float16, {"HAS_BIAS": True})
