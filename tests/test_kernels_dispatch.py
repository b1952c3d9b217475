"""``kernels.attention`` dispatch, pattern parsing, the SDPA reference patterns, and life without triton."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from framefold import kernels
from framefold.kernels import reference, triton_backend
from framefold.kernels.patterns import CrossFrame, Window


def randn(*shape, seed=0):
    """Deterministic normal float32 tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def run_python(code):
    """Run code in a fresh interpreter (without TRITON_INTERPRET); return the completed process."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )


# -- pattern strings -------------------------------------------------------------------------------------------


def test_parse_pattern_forms():
    """Strings, objects and None parse to the documented objects."""
    assert kernels.parse_pattern(None) is None
    assert kernels.parse_pattern("") is None
    assert kernels.parse_pattern("none") is None
    assert kernels.parse_pattern("window:4") == Window(4)
    assert kernels.parse_pattern(Window(2)) == Window(2)
    assert kernels.parse_pattern("cross_frame:first:16") == CrossFrame(("first",), 16)
    assert kernels.parse_pattern("cross_frame:first+previous", num_frames=8) == CrossFrame(("first", "previous"), 8)
    assert kernels.parse_pattern("cross_frame:previous+self:4", num_frames=4) == CrossFrame(("previous", "self"), 4)


@pytest.mark.parametrize(
    "bad,message",
    [
        ("window:x", "window radius must be an integer"),
        ("window:-1", ">= 0"),
        ("cross_frame:first", "needs the frame count"),
        ("cross_frame:last:4", "unknown source"),
        ("cross_frame:first+first:4", "repeated source"),
        ("causal", "not understood"),
        (3, "must be None, a string"),
    ],
)
def test_parse_pattern_errors(bad, message):
    """Bad pattern values raise ValueError naming what was expected."""
    with pytest.raises(ValueError, match=message):
        kernels.parse_pattern(bad)


def test_parse_pattern_frame_count_must_agree():
    """A frame count in the string that disagrees with num_frames is an error, not silently overridden."""
    with pytest.raises(ValueError, match="disagrees"):
        kernels.parse_pattern("cross_frame:first:8", num_frames=16)


# -- SDPA path ---------------------------------------------------------------------------------------------------


def test_bad_backend_rejected():
    """Unknown backend names raise ValueError listing the valid ones."""
    q = randn(1, 1, 4, 8)
    with pytest.raises(ValueError, match="backend must be one of"):
        kernels.attention(q, q, q, backend="flash")


@pytest.mark.parametrize("mask_kind", [None, "bool", "additive"])
def test_sdpa_backend_passes_masks_through(mask_kind):
    """backend='sdpa' with no pattern is exactly torch SDPA, masks included."""
    q, k, v = randn(2, 2, 10, 16, seed=1), randn(2, 2, 12, 16, seed=2), randn(2, 2, 12, 16, seed=3)
    mask = None
    if mask_kind == "bool":
        mask = randn(2, 1, 10, 12, seed=4) > -0.5
    elif mask_kind == "additive":
        mask = randn(1, 2, 10, 12, seed=5)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(kernels.attention(q, k, v, mask=mask, backend="sdpa"), expected)


def test_auto_on_cpu_uses_sdpa_even_with_everything_enabled(monkeypatch):
    """On CPU, auto never calls the Triton path, even if every shape class were in the table."""

    def forbidden(*args, **kwargs):
        raise AssertionError("auto called Triton on CPU")

    monkeypatch.setattr(triton_backend, "triton_attention", forbidden)
    every = frozenset(
        (cls, dt)
        for cls in ("spatial", "cross", "temporal", "window", "cross_frame")
        for dt in (torch.float32, torch.float16, torch.bfloat16)
    )
    monkeypatch.setattr(kernels, "AUTO_TRITON", every)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    q, k, v = randn(2, 2, 16, 8, seed=6), randn(2, 2, 16, 8, seed=7), randn(2, 2, 16, 8, seed=8)
    assert torch.equal(kernels.attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert torch.equal(
        kernels.attention(q, k, v, pattern="window:2"), kernels.attention(q, k, v, pattern="window:2", backend="sdpa")
    )


def test_shape_classes():
    """The auto table's shape classes are what the docs say."""
    assert kernels.shape_class(randn(1, 1, 4096, 8), randn(1, 1, 4096, 8)) == "spatial"
    assert kernels.shape_class(randn(1, 1, 4096, 8), randn(1, 1, 77, 8)) == "cross"
    assert kernels.shape_class(randn(1, 1, 16, 8), randn(1, 1, 16, 8)) == "temporal"
    assert kernels.shape_class(randn(1, 1, 16, 8), randn(1, 1, 16, 8), Window(2)) == "window"
    assert kernels.shape_class(randn(1, 1, 16, 8), randn(1, 1, 16, 8), CrossFrame(("first",), 1)) == "cross_frame"


def _explicit_cross_frame(q, k, v, sources, frames):
    """Per-row float64 loop: row b*F+f attends to the concatenated keys of its listed source frames."""
    out = torch.empty(q.shape, dtype=torch.float64)
    for row in range(q.shape[0]):
        b, f = divmod(row, frames)
        picks = {"first": 0, "previous": max(f - 1, 0), "self": f}
        rows = [b * frames + picks[s] for s in sources]
        keys = torch.cat([k[r] for r in rows], dim=-2).double()
        values = torch.cat([v[r] for r in rows], dim=-2).double()
        weights = torch.softmax(q[row].double() @ keys.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        out[row] = weights @ values
    return out


@pytest.mark.parametrize("sources", [("first",), ("previous",), ("first", "previous"), ("self", "first")])
def test_sdpa_cross_frame_reference(sources):
    """The gather + SDPA cross-frame path equals an explicit per-frame loop."""
    frames = 4
    q, k, v = (randn(2 * frames, 2, 6, 8, seed=s) for s in (9, 10, 11))
    pattern = "cross_frame:" + "+".join(sources) + f":{frames}"
    out = kernels.attention(q, k, v, pattern=pattern, backend="sdpa")
    assert torch.allclose(out.double(), _explicit_cross_frame(q, k, v, sources, frames), atol=1e-5)


def test_sdpa_cross_frame_rejects_masks_and_bad_batch():
    """Cross-frame with a mask, or a batch that is not a multiple of num_frames, is a clear error."""
    q = randn(6, 1, 4, 8)
    with pytest.raises(ValueError, match="masks are not supported"):
        kernels.attention(
            q, q, q, mask=torch.ones(4, 4, dtype=torch.bool), pattern="cross_frame:first:3", backend="sdpa"
        )
    with pytest.raises(ValueError, match="multiple of num_frames"):
        kernels.attention(q, q, q, pattern="cross_frame:first:4", backend="sdpa")


@pytest.mark.parametrize("mask_kind", [None, "bool", "additive"])
def test_sdpa_window_reference(mask_kind):
    """Window attention through SDPA equals an explicit banded softmax in float64, combined with user masks."""
    q, k, v = (randn(3, 2, 12, 8, seed=s) for s in (12, 13, 14))
    radius = 2
    mask = None
    if mask_kind == "bool":
        mask = torch.ones(3, 1, 1, 12, dtype=torch.bool)
        mask[0, ..., 0] = False
    elif mask_kind == "additive":
        mask = randn(3, 1, 12, 12, seed=15)
    out = kernels.attention(q, k, v, mask=mask, pattern=f"window:{radius}", backend="sdpa")
    scores = q.double() @ k.double().transpose(-1, -2) / 8**0.5
    i, j = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    scores = scores.masked_fill((i - j).abs() > radius, float("-inf"))
    if mask_kind == "bool":
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask_kind == "additive":
        scores = scores + mask.double()
    expected = torch.softmax(scores, -1) @ v.double()
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_window_needs_self_attention():
    """A window over different q/k lengths is refused."""
    with pytest.raises(ValueError, match="q_len == k_len"):
        kernels.attention(randn(1, 1, 4, 8), randn(1, 1, 5, 8), randn(1, 1, 5, 8), pattern="window:1")


# -- Triton backend errors without a GPU -------------------------------------------------------------------------


def test_triton_backend_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    """backend='triton' on CPU without TRITON_INTERPRET names CUDA and the interpreter (not '0 active drivers')."""
    pytest.importorskip("triton", reason="with triton absent the 'not installed' error is tested in a subprocess")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q = randn(1, 1, 16, 8)
    with pytest.raises(triton_backend.TritonUnavailable, match="needs CUDA tensors.*TRITON_INTERPRET"):
        kernels.attention(q, q, q, backend="triton")


def test_triton_backend_rejects_unsupported_calls(monkeypatch):
    """Shapes/masks the kernels do not take raise ValueError naming the reason (checked before any launch)."""
    monkeypatch.setattr(triton_backend, "_check_runnable", lambda q: None)
    q = randn(2, 2, 16, 40)
    with pytest.raises(ValueError, match="key-padding"):
        kernels.attention(q, q, q, mask=torch.ones(16, 16, dtype=torch.bool), backend="triton")
    with pytest.raises(ValueError, match="head_dim"):
        kernels.attention(q, q, randn(2, 2, 16, 32), backend="triton")
    with pytest.raises(ValueError, match="multiple of num_frames"):
        kernels.attention(q, q, q, pattern="cross_frame:first:3", backend="triton")
    with pytest.raises(ValueError, match="head_dim 320"):
        big = randn(1, 1, 4, 320)
        kernels.attention(big, big, big, backend="triton")


def test_key_bias_accepts_key_padding_shapes_only():
    """Key-padding masks become a [B, k_len] bias; masks varying over queries or heads are not key padding."""
    keep = torch.tensor([[True, False, True]]).reshape(1, 1, 1, 3)
    bias = triton_backend.key_bias(keep, 2, 4, 5, 3)
    assert bias.shape == (2, 3) and bias[1, 1] == float("-inf") and bias[0, 0] == 0
    assert triton_backend.key_bias(torch.zeros(2, 4, 1, 3), 2, 4, 5, 3) is None
    assert triton_backend.key_bias(torch.zeros(5, 3), 2, 4, 5, 3) is None


def test_without_triton_auto_works_and_triton_errors():
    """With `import triton` failing: auto/sdpa work, backend='triton' raises TritonUnavailable saying so."""
    proc = run_python("""
        import importlib.abc, sys

        class NoTriton(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "triton" or name.startswith("triton."):
                    raise ImportError("No module named 'triton' (blocked by test)")
                return None

        sys.meta_path.insert(0, NoTriton())
        import torch
        import torch.nn.functional as F
        from framefold import kernels
        from framefold.kernels.triton_backend import TritonUnavailable, triton_available
        q = torch.randn(2, 2, 16, 8)
        assert torch.equal(kernels.attention(q, q, q), F.scaled_dot_product_attention(q, q, q))
        kernels.attention(q, q, q, pattern="cross_frame:first+previous:2")
        assert not triton_available()
        try:
            kernels.attention(q, q, q, backend="triton")
        except TritonUnavailable as error:
            assert "not installed" in str(error), error
            print("CLEAR ERROR:", error)
        else:
            raise SystemExit("backend='triton' did not raise")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "CLEAR ERROR" in proc.stdout


def test_importing_framefold_does_not_import_triton():
    """import framefold (nodes, pipelines, kernels) and an auto attention call leave triton unimported."""
    proc = run_python("""
        import sys
        import torch
        import framefold
        from framefold import kernels
        q = torch.randn(1, 2, 8, 8)
        kernels.attention(q, q, q)
        kernels.attention(q, q, q, pattern="window:2")
        loaded = sorted(name for name in sys.modules if name == "triton" or name.startswith("triton."))
        assert not loaded, loaded
        print("NO TRITON")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "NO TRITON" in proc.stdout


def test_row_alignment_for_vector_loads():
    """ALIGN is the power of two (<= 16 bytes of elements) dividing every row start; 1 when rows are not aligned."""
    half = torch.zeros(2, 8, 64, 40, dtype=torch.float16)
    assert triton_backend.row_alignment(half) == 8
    assert triton_backend.row_alignment(half.float()) == 4
    assert triton_backend.row_alignment(torch.zeros(2, 8, 64, 41, dtype=torch.float16)) == 1
    assert triton_backend.row_alignment(half.transpose(-1, -2)) == 1  # head dim not contiguous
    shifted = half.flatten()[4 : 4 + 64 * 40].view(1, 1, 64, 40)  # base address 4 elements (8 bytes) in
    assert triton_backend.row_alignment(shifted) == 4
    expanded = torch.zeros(1, 8, 77, 40, dtype=torch.float16).expand(4, -1, -1, -1)
    assert triton_backend.row_alignment(half, expanded) == 8  # a stride-0 batch is aligned


@pytest.mark.parametrize("family", ["sm80", "sm90", "other"])
def test_autotune_prune_keeps_the_listed_configs_per_head_dim(monkeypatch, family):
    """The prune hooks keep exactly the table's entries for the call's padded head dim (in table order), and the
    packed hook drops tiles that cannot hold one whole sequence; every list keeps at least one config."""
    pytest.importorskip("triton", reason="triton.Config objects need the triton package (a test dependency)")
    from framefold.kernels import configs

    monkeypatch.setattr(triton_backend, "gpu_family", lambda: family)
    for block_d in (16, 64, 128, 256):
        streaming = triton_backend._prune_streaming(
            configs.triton_configs(configs.STREAMING, family), {}, BLOCK_D=block_d
        )
        assert [configs.config_entry(c) for c in streaming] == configs.allowed_entries(
            configs.STREAMING, family, block_d
        )
        for seq_len in (16, 64):
            packed = triton_backend._prune_packed(
                configs.triton_configs(configs.PACKED, family), {"q_len": seq_len, "k_len": seq_len}, BLOCK_D=block_d
            )
            assert packed, (block_d, seq_len)
            assert all(c.kwargs["BLOCK_M"] >= seq_len and c.kwargs["BLOCK_N"] >= seq_len for c in packed)
