"""Host side of the Triton kernels: checks, launch parameters, lazy compilation, clear errors.

Nothing here imports triton at module import time. Kernels are wrapped (``triton.jit`` + ``triton.autotune``;
the interpreter when ``TRITON_INTERPRET`` is set) the first time they are launched. Triton fixes its
own library for one mode when it is imported, so ``TRITON_INTERPRET=1`` must be set before the first
``import triton`` of the process (the tests run the interpreter in a subprocess for that reason).

Kernel choice for a call: a ``CrossFrame`` pattern -> cross-frame kernel; both lengths <= ``PACKED_MAX_LEN``
-> packed short-sequence kernel (temporal attention); otherwise the streaming flash kernel.
"""

import math

import torch

from .configs import PACKED, STREAMING, allowed_entries, config_entry, gpu_family, interpreting, triton_configs
from .patterns import CrossFrame, Window

PACKED_MAX_LEN = 64
MAX_HEAD_DIM = 256
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

_TRITON_IMPORT = {}
_KERNELS = {}
_KERNEL_FUNCTIONS = {
    "flash": ("flash_attention", "flash_attention_kernel"),
    "packed": ("packed_attention", "packed_attention_kernel"),
    "cross_frame": ("cross_frame_attention", "cross_frame_attention_kernel"),
}


class TritonUnavailable(RuntimeError):
    """backend='triton' was requested but cannot run here (not installed, no GPU and no interpreter)."""


def triton_import_error():
    """None when ``import triton`` works, else the ImportError text (cached)."""
    if "error" not in _TRITON_IMPORT:
        try:
            import triton  # noqa: F401

            _TRITON_IMPORT["error"] = None
        except ImportError as error:
            _TRITON_IMPORT["error"] = str(error) or type(error).__name__
    return _TRITON_IMPORT["error"]


def triton_available():
    """True when the triton package can be imported."""
    return triton_import_error() is None


def _prune(table, configs, kwargs, fits=lambda config: True):
    """Keep the configs listed for this family and padded head dim that fit; in the interpreter keep one, so
    nothing is benchmarked."""
    family = gpu_family()
    allowed = allowed_entries(table, family, kwargs["BLOCK_D"])
    kept = [config for config in configs if config_entry(config) in allowed and fits(config)]
    kept.sort(key=lambda config: allowed.index(config_entry(config)))
    return kept[:1] if family == "interpreter" else kept


def _prune_streaming(configs, named_args, **kwargs):
    """Prune hook of the flash and cross-frame kernels."""
    return _prune(STREAMING, configs, kwargs)


def _prune_packed(configs, named_args, **kwargs):
    """Prune hook of the packed kernel: also drop tiles too small to hold one whole sequence."""

    def fits(config):
        return config.kwargs["BLOCK_M"] >= named_args["q_len"] and config.kwargs["BLOCK_N"] >= named_args["k_len"]

    return _prune(PACKED, configs, kwargs, fits)


# kernel name -> (config table, autotune key, prune hook)
_AUTOTUNE = {
    "flash": (STREAMING, ["q_len", "k_len", "HEAD_DIM", "HAS_WINDOW"], _prune_streaming),
    "packed": (PACKED, ["q_len", "k_len", "HEAD_DIM", "HAS_WINDOW"], _prune_packed),
    "cross_frame": (STREAMING, ["q_len", "k_len", "HEAD_DIM", "NUM_SOURCES"], _prune_streaming),
}


def _kernel_function(name):
    """The plain Python kernel function called ``name`` (its module imports triton)."""
    import importlib

    module_name, fn_name = _KERNEL_FUNCTIONS[name]
    return getattr(importlib.import_module(f".{module_name}", __package__), fn_name)


def _build_kernel(name):
    """Wrap the named kernel function with ``triton.jit`` and its autotuner (configs, key, prune hook)."""
    import triton

    table, key, prune = _AUTOTUNE[name]
    # triton.jit gives the interpreter's wrapper when TRITON_INTERPRET was set before triton was imported
    autotuner = triton.autotune(configs=triton_configs(table), key=key, prune_configs_by={"early_config_prune": prune})
    return autotuner(triton.jit(_kernel_function(name)))


def get_kernel(name):
    """The autotuned kernel ``name`` (flash | packed | cross_frame) for the current mode and GPU family."""
    cache_key = (name, interpreting(), gpu_family())
    if cache_key not in _KERNELS:
        _KERNELS[cache_key] = _build_kernel(name)
    return _KERNELS[cache_key]


def key_bias(mask, batch, heads, q_len, k_len):
    """Turn a key-padding mask into an fp32 ``[batch, k_len]`` additive bias, or None if it is not one.

    Accepted: boolean (True = attend) or additive float masks that broadcast to ``[batch, heads, q_len,
    k_len]`` and vary only over batch and key position (e.g. ``[B, 1, 1, k_len]``).
    """
    if mask is None:
        return None
    if mask.dim() > 4:
        return None
    shape = (1,) * (4 - mask.dim()) + tuple(mask.shape)
    if shape[1] != 1 or shape[2] != 1 or shape[0] not in (1, batch) or shape[3] not in (1, k_len):
        return None
    rows = mask.reshape(shape)[:, 0, 0, :].expand(batch, k_len)
    if rows.dtype == torch.bool:
        zeros = torch.zeros((), dtype=torch.float32, device=rows.device)
        return torch.where(rows, zeros, torch.full_like(zeros, float("-inf")))
    return rows.to(torch.float32)


def unsupported_reason(q, k, v, mask, pattern):
    """Why the Triton kernels cannot take this call (a sentence), or None when they can."""
    if not (q.dim() == k.dim() == v.dim() == 4):
        return f"q, k, v must be 4-D [batch, heads, seq, head_dim], got {q.dim()}-D, {k.dim()}-D, {v.dim()}-D"
    if q.dtype not in SUPPORTED_DTYPES or not (q.dtype == k.dtype == v.dtype):
        return f"q, k, v must share one of {SUPPORTED_DTYPES}, got {q.dtype}, {k.dtype}, {v.dtype}"
    if not (q.device == k.device == v.device):
        return f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}"
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        return f"batch/heads/key lengths disagree: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if not (q.shape[3] == k.shape[3] == v.shape[3]):
        return f"q, k, v must share one head_dim, got {q.shape[3]}, {k.shape[3]}, {v.shape[3]}"
    if q.shape[3] > MAX_HEAD_DIM:
        return f"head_dim {q.shape[3]} > {MAX_HEAD_DIM}"
    if min(q.shape) == 0 or k.shape[2] == 0:
        return "empty tensors"
    if isinstance(pattern, CrossFrame):
        if mask is not None:
            return "masks are not supported with cross-frame attention"
        if q.shape[0] % pattern.num_frames:
            return f"batch {q.shape[0]} is not a multiple of num_frames={pattern.num_frames}"
    elif mask is not None and mask.device != q.device:
        return f"mask on {mask.device} but q, k, v on {q.device}"
    elif mask is not None and key_bias(mask, q.shape[0], q.shape[1], q.shape[2], k.shape[2]) is None:
        return f"only key-padding masks ([B, 1, 1, k_len]) are supported, got mask shape {tuple(mask.shape)}"
    if isinstance(pattern, Window) and q.shape[2] != k.shape[2]:
        return f"window attention needs q_len == k_len, got {q.shape[2]} and {k.shape[2]}"
    return None


def _check_runnable(q):
    """Raise TritonUnavailable unless triton is importable and the tensors can run (CUDA or interpreter)."""
    error = triton_import_error()
    if error is not None:
        raise TritonUnavailable(
            f"attention: backend='triton' requested but triton is not installed ({error}); "
            "install it (pip install triton) or use backend='sdpa' / 'auto'"
        )
    if not q.is_cuda and not interpreting():
        raise TritonUnavailable(
            f"attention: backend='triton' needs CUDA tensors (got device {q.device}); on CPU set "
            "TRITON_INTERPRET=1 (before triton is imported) to run the kernels in the Triton interpreter, "
            "or use backend='sdpa' / 'auto'"
        )
    if interpreting() and not _triton_imported_for_interpreter():
        raise TritonUnavailable(
            "attention: TRITON_INTERPRET=1 was set after triton had been imported in this process; Triton "
            "builds its standard library for one mode at import time, so set it before the first import"
        )


def _triton_imported_for_interpreter():
    """True when triton's own library functions were built for the interpreter (env set before import)."""
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    return not isinstance(tl.standard.zeros, JITFunction)


def _strides(tensor):
    """The four strides of a ``[b, h, seq, d]`` tensor."""
    return tuple(tensor.stride())


def row_alignment(*tensors):
    """Largest power of two ALIGN (<= 16 bytes worth of elements) dividing every row start of the tensors.

    Every stride but the head-dim one and every base address (in elements) must be a multiple of it, and the
    head dim must be contiguous; otherwise 1. The kernels pass it to ``tl.multiple_of`` for vector loads.
    """
    align = 16 // tensors[0].element_size()
    for tensor in tensors:
        if tensor.stride(-1) != 1:
            return 1
        for stride in tensor.stride()[:-1]:
            align = math.gcd(align, stride)
        align = math.gcd(align, tensor.data_ptr() // tensor.element_size())
    return align


def _launch_flags(q, k, v, out):
    """Constexpr launch flags shared by all kernels: fp32 dots in the interpreter, full fp32 precision for fp32,
    the true and padded head dims, and the row alignment."""
    interp = interpreting()
    precision = "ieee" if (q.dtype == torch.float32 or interp) else "tf32"
    head_dim = q.shape[3]
    return {
        "DOT_FP32": interp,
        "INPUT_PRECISION": precision,
        "HEAD_DIM": head_dim,
        "ALIGN": row_alignment(q, k, v, out),
        "BLOCK_D": max(16, 1 << (head_dim - 1).bit_length()),
    }


def triton_attention(q, k, v, mask=None, pattern=None):
    """Run the matching Triton kernel; raises TritonUnavailable / ValueError with a clear reason."""
    _check_runnable(q)
    reason = unsupported_reason(q, k, v, mask, pattern)
    if reason is not None:
        raise ValueError(f"attention: backend='triton' cannot run this call: {reason}")
    batch, heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    qk_scale = (1.0 / math.sqrt(head_dim)) * 1.4426950408889634  # true head dim; exp2 domain
    flags = _launch_flags(q, k, v, out)
    tensors_and_strides = (q, k, v, out)
    strides = _strides(q) + _strides(k) + _strides(v) + _strides(out)
    try:
        if isinstance(pattern, CrossFrame):
            _launch_cross_frame(
                tensors_and_strides, strides, pattern, batch, heads, q_len, k_len, head_dim, qk_scale, flags
            )
        else:
            bias = key_bias(mask, batch, heads, q_len, k_len)
            window = pattern.radius if isinstance(pattern, Window) else 0
            short = max(q_len, k_len) <= PACKED_MAX_LEN
            _launch_self_or_cross(
                tensors_and_strides,
                strides,
                bias,
                window,
                isinstance(pattern, Window),
                short,
                batch,
                heads,
                q_len,
                k_len,
                head_dim,
                qk_scale,
                flags,
            )
    except RuntimeError as error:
        if "active drivers" in str(error):
            raise TritonUnavailable(
                "attention: backend='triton' found no GPU driver Triton can use (Triton: "
                f"{error}); use backend='sdpa' / 'auto', or TRITON_INTERPRET=1 on CPU"
            ) from error
        raise
    return out


def _launch_self_or_cross(
    tensors, strides, bias, window, has_window, short, batch, heads, q_len, k_len, head_dim, qk_scale, flags
):
    """Launch the packed kernel (short sequences) or the flash kernel (everything else)."""
    q, k, v, out = tensors
    bias_arg = bias if bias is not None else out  # never read when HAS_BIAS is False
    bias_strides = tuple(bias.stride()) if bias is not None else (0, 0)
    common = dict(HAS_BIAS=bias is not None, HAS_WINDOW=has_window, **flags)
    if short:
        num_seqs = batch * heads

        def grid(meta):
            per_block = min(meta["BLOCK_M"] // q_len, meta["BLOCK_N"] // k_len)
            return (triton_cdiv(num_seqs, per_block),)

        get_kernel("packed")[grid](
            q, k, v, out, bias_arg, *strides, *bias_strides, heads, num_seqs, q_len, k_len, qk_scale, window, **common
        )
    else:

        def grid(meta):
            return (triton_cdiv(q_len, meta["BLOCK_M"]), batch * heads)

        get_kernel("flash")[grid](
            q, k, v, out, bias_arg, *strides, *bias_strides, heads, q_len, k_len, qk_scale, window, **common
        )


def _launch_cross_frame(tensors, strides, pattern, batch, heads, q_len, k_len, head_dim, qk_scale, flags):
    """Launch the cross-frame kernel for a CrossFrame pattern (sources become constexpr codes)."""
    from .cross_frame_attention import SOURCE_CODES

    q, k, v, out = tensors
    codes = [SOURCE_CODES[source] for source in pattern.sources] + [0] * (3 - len(pattern.sources))

    def grid(meta):
        return (triton_cdiv(q_len, meta["BLOCK_M"]), batch * heads)

    get_kernel("cross_frame")[grid](
        q,
        k,
        v,
        out,
        *strides,
        heads,
        pattern.num_frames,
        q_len,
        k_len,
        qk_scale,
        NUM_SOURCES=len(pattern.sources),
        SOURCE_0=codes[0],
        SOURCE_1=codes[1],
        SOURCE_2=codes[2],
        **flags,
    )


def triton_cdiv(a, b):
    """Ceiling division for grid sizes."""
    return -(-a // b)


_TRITON_DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def compile_for_target(name, capability, dtype, constexprs, num_warps=4, num_stages=2, ints=None):
    """Compile kernel ``name`` ahead of time for a CUDA capability (e.g. 80, 90); no GPU needed.

    ``constexprs`` gives every constexpr parameter (BLOCK_M, BLOCK_N, BLOCK_D, flags). ``ints`` gives
    representative values of integer arguments, specialised as a real launch would (1 -> constant, multiple of
    16 -> divisibility hint); by default every ``stride_*d`` is 1 (contiguous head dim). Pointers are taken as
    16-byte aligned. Returns the compiled kernel (``.metadata.shared`` bytes of shared memory, ``.asm["cubin"]``).
    Used by the compile test and ``bench/attention.py --compile`` to check GPU configs on a machine without one.
    """
    import inspect

    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _kernel_function(name)
    params = list(inspect.signature(fn).parameters.values())
    missing = [p.name for p in params if p.annotation is tl.constexpr and p.name not in constexprs]
    if missing:
        raise ValueError(f"compile_for_target({name}): constexprs missing {missing}")
    ints = dict({p.name: 1 for p in params if p.name.startswith("stride_") and p.name.endswith("d")}, **(ints or {}))
    signature, fixed, attrs = {}, {}, {}
    for index, param in enumerate(params):
        if param.name in constexprs or ints.get(param.name) == 1:
            signature[param.name] = "constexpr"
            fixed[(index,)] = constexprs.get(param.name, 1)
        elif param.name in ("Q", "K", "V", "Out", "Bias"):
            signature[param.name] = "*fp32" if param.name == "Bias" else "*" + _TRITON_DTYPE_NAMES[dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif param.name == "qk_scale":
            signature[param.name] = "fp32"
        else:
            signature[param.name] = "i32"
            if param.name in ints and ints[param.name] % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=triton.jit(fn), signature=signature, constexprs=fixed, attrs=attrs)
    return triton.compile(
        source, target=GPUTarget("cuda", capability, 32), options={"num_warps": num_warps, "num_stages": num_stages}
    )


def cubin_resource_usage(cubin):
    """``(registers, stack bytes)`` per thread of a compiled kernel, read with the cuobjdump bundled with triton
    (no GPU needed); stack > 0 means register spills. ``(-1, -1)`` when the tool's output has no figures."""
    import os
    import re
    import subprocess
    import tempfile

    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(cubin)
        text = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    match = re.search(r"REG:(\d+) STACK:(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
