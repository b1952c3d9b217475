"""The Triton attention kernels, run in the Triton interpreter on CPU, against a float64 reference.

Triton builds its own library for one mode when it is first imported, so ``TRITON_INTERPRET=1`` must be set
before that import. To keep the variable (and an interpreter-mode triton) out of the other tests of the pytest
process, this module runs every case in ONE subprocess (``python this_file.py --worker out.json``) and each
pytest test asserts on its case's recorded errors. Shapes are tiny: each case launches a few programs.
"""

import json
import os
import subprocess
import sys
import traceback

import pytest
import torch

CASES = {}


def case(name):
    """Register a case: a function returning ``[(label, max_error, tolerance), ...]``, run in the worker."""

    def register(fn):
        CASES[name] = fn
        return fn

    return register


def randn(*shape, seed=0, dtype=torch.float32):
    """Deterministic normal tensor."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).to(dtype)


def triton_error(q, k, v, mask=None, pattern=None):
    """Max |triton - float64 reference| for one call (also checks shape and dtype of the output)."""
    from framefold import kernels
    from framefold.kernels.reference import math_attention

    out = kernels.attention(q, k, v, mask=mask, pattern=pattern, backend="triton")
    reference = math_attention(q, k, v, mask=mask, pattern=kernels.parse_pattern(pattern))
    if out.shape != reference.shape or out.dtype != q.dtype:
        raise AssertionError(f"output {tuple(out.shape)} {out.dtype}, expected {tuple(reference.shape)} {q.dtype}")
    return (out.double() - reference).abs().max().item()


ATOL = 2e-5


def _flash_case(head_dim, q_len, k_len):
    """Streaming kernel: spatial self-attention / cross-attention with ragged lengths and padded head dims."""

    def run():
        from framefold.kernels.triton_backend import PACKED_MAX_LEN

        assert max(q_len, k_len) > PACKED_MAX_LEN
        q = randn(1, 2, q_len, head_dim, seed=1)
        k, v = randn(1, 2, k_len, head_dim, seed=2), randn(1, 2, k_len, head_dim, seed=3)
        return [("flash", triton_error(q, k, v), ATOL)]

    return run


def _packed_case(head_dim, seq_len):
    """Packed kernel: many short (temporal) sequences, lengths that do not divide the tile."""

    def run():
        q, k, v = (randn(5, 3, seq_len, head_dim, seed=s) for s in (4, 5, 6))
        return [("packed", triton_error(q, k, v), ATOL)]

    return run


for _d in (40, 80, 160):
    for _lq, _lk in ((70, 70), (45, 77), (97, 33)):
        case(f"flash_d{_d}_q{_lq}_k{_lk}")(_flash_case(_d, _lq, _lk))
    for _len in (8, 16, 24):
        case(f"packed_d{_d}_len{_len}")(_packed_case(_d, _len))


@case("packed_temporal_layout_views")
def _packed_views():
    """Temporal q/k/v as strided views of a ``[(b h w), frames, heads, 3d]`` projection."""
    tokens = randn(12, 16, 2, 3 * 40, seed=7)
    q, k, v = (t.permute(0, 2, 1, 3) for t in tokens.chunk(3, dim=-1))
    assert not q.is_contiguous()
    return [("views", triton_error(q, k, v), ATOL)]


@case("window_packed")
def _window_packed():
    """Sliding-window band on short sequences (packed kernel), including radius 0 and a 64-frame video."""
    checks = []
    for seq_len, radius in ((24, 3), (16, 0), (64, 8)):
        q, k, v = (randn(3, 2, seq_len, 40, seed=s) for s in (8, 9, 10))
        checks.append((f"len{seq_len}_r{radius}", triton_error(q, k, v, pattern=f"window:{radius}"), ATOL))
    return checks


@case("window_long_flash")
def _window_flash():
    """Sliding-window band on long sequences (streaming kernel visits only the band's key blocks)."""
    from framefold import kernels

    checks = []
    for seq_len, radius in ((100, 10), (130, 40)):
        q, k, v = (randn(1, 2, seq_len, 40, seed=s) for s in (11, 12, 13))
        checks.append((f"len{seq_len}_r{radius}", triton_error(q, k, v, pattern=kernels.Window(radius)), ATOL))
    return checks


def _cross_frame_case(sources):
    """Cross-frame pattern over two videos of three frames (rows b*F + f); also equals gather + SDPA."""

    def run():
        from framefold import kernels

        frames = 3
        q, k, v = (randn(2 * frames, 2, 37, 40, seed=s) for s in (14, 15, 16))
        pattern = f"cross_frame:{sources}:{frames}"
        out = kernels.attention(q, k, v, pattern=pattern, backend="triton")
        gathered = kernels.attention(q, k, v, pattern=pattern, backend="sdpa")
        return [
            ("vs_float64", triton_error(q, k, v, pattern=pattern), ATOL),
            ("vs_gather_sdpa", (out - gathered).abs().max().item(), ATOL),
        ]

    return run


for _sources in ("first", "previous", "first+previous", "previous+self", "first+previous+self"):
    case(f"cross_frame_{_sources}")(_cross_frame_case(_sources))


@case("cross_frame_first_is_attention_to_frame_zero")
def _cross_frame_first():
    """'first': each frame's output is plain attention of its queries to frame 0's keys/values (streaming)."""
    from framefold import kernels
    from framefold.kernels.reference import math_attention

    frames = 4
    q, k, v = (randn(frames, 1, 70, 80, seed=s) for s in (17, 18, 19))
    pattern = kernels.parse_pattern("cross_frame:first", num_frames=frames)
    out = kernels.attention(q, k, v, pattern=pattern, backend="triton")
    return [
        (f"frame{f}", (out[f : f + 1].double() - math_attention(q[f : f + 1], k[:1], v[:1])).abs().max().item(), ATOL)
        for f in range(frames)
    ]


@case("key_padding_masks")
def _key_padding():
    """Boolean and additive key-padding masks on both kernels; a fully masked row gives zeros."""
    from framefold import kernels

    checks = []
    for k_len in (16, 77):
        q, k, v = randn(3, 2, 70, 40, seed=20), randn(3, 2, k_len, 40, seed=21), randn(3, 2, k_len, 40, seed=22)
        keep = torch.ones(3, 1, 1, k_len, dtype=torch.bool)
        keep[0, ..., 5:] = False
        keep[2] = False
        checks.append((f"bool_k{k_len}", triton_error(q, k, v, mask=keep), ATOL))
        out = kernels.attention(q, k, v, mask=keep, backend="triton")
        checks.append((f"fully_masked_zero_k{k_len}", out[2].abs().max().item(), 0.0))
        additive = torch.zeros(3, 1, 1, k_len)
        additive[1, ..., :4] = -1.5
        additive[0, ..., 7:] = float("-inf")
        checks.append((f"additive_k{k_len}", triton_error(q[:, :, :16], k, v, mask=additive), ATOL))
    return checks


@case("expanded_context_and_head_views")
def _expanded_context():
    """Cross-attention with a stride-0 batch (context expanded over frames) and heads split from [N, L, h*d]."""
    q = randn(4, 90, 2 * 40, seed=23).unflatten(-1, (2, 40)).transpose(1, 2)
    k = randn(1, 2, 77, 40, seed=24).expand(4, -1, -1, -1)
    v = randn(1, 2, 77, 40, seed=25).expand(4, -1, -1, -1)
    return [("expanded", triton_error(q, k, v), ATOL)]


@case("half_precision_inputs")
def _half_precision():
    """fp16/bf16 storage (the interpreter computes the dots in fp32), output in the input dtype."""
    checks = []
    for dtype, atol in ((torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
        for q_len in (16, 80):
            q, k, v = (randn(2, 2, q_len, 64, seed=s, dtype=dtype) for s in (26, 27, 28))
            checks.append((f"{dtype}_len{q_len}", triton_error(q, k, v), atol))
    return checks


@case("tiny_animated_unet_triton_equals_sdpa")
def _tiny_unet():
    """A tiny UNet + motion module (random weights) gives the same output with backend 'triton' and 'sdpa', with
    no pattern, a temporal window, and cross-frame spatial self-attention; both patterns change the output."""
    from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
    from framefold.pipelines.models.unet import UNetConfig, UNetModel

    torch.manual_seed(0)
    unet = UNetModel(
        UNetConfig(
            model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
        )
    )
    motion = MotionModule(MotionModuleConfig(block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4))
    model = unet.with_motion(motion).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():  # non-zero everywhere, so the motion layers are not identities
            noise = torch.randn(param.shape, generator=generator) * 0.1
            param.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)
    frames = 5
    x = torch.randn(frames, 4, 4, 4, generator=generator)
    timesteps = torch.full((frames,), 500)
    context = torch.randn(1, 7, 64, generator=generator)
    checks, sdpa_outputs = [], {}
    with torch.no_grad():
        for pattern in (None, "window:1", "cross_frame:first+previous"):
            outputs = {
                backend: model(
                    x, timesteps, context, num_frames=frames, attention_backend=backend, temporal_pattern=pattern
                )
                for backend in ("sdpa", "triton")
            }
            scale = outputs["sdpa"].abs().max().item()
            relative = (outputs["triton"] - outputs["sdpa"]).abs().max().item() / scale
            checks.append((f"pattern={pattern}", relative, 1e-5))
            sdpa_outputs[pattern] = outputs["sdpa"]
    # each pattern must change the result, else the comparison above would not exercise it
    for pattern in ("window:1", "cross_frame:first+previous"):
        effect = (sdpa_outputs[pattern] - sdpa_outputs[None]).abs().max().item()
        checks.append((f"{pattern}_changes_output", 0.0 if effect > 1e-4 else 1.0, 0.0))
    return checks


def run_worker(out_path):
    """Run every case in this (interpreter-mode) process and write ``{name: {"checks"|"error": ...}}`` as JSON."""
    torch.set_num_threads(1)
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("worker needs TRITON_INTERPRET=1")
    results = {}
    for name, fn in CASES.items():
        try:
            results[name] = {"checks": [list(check) for check in fn()]}
        except Exception:  # recorded and reported by the matching pytest test
            results[name] = {"error": traceback.format_exc()}
    with open(out_path + ".tmp", "w") as handle:
        json.dump(results, handle)
    os.replace(out_path + ".tmp", out_path)


@pytest.fixture(scope="module")
def interpreter_results(tmp_path_factory):
    """Run all cases once in a subprocess with TRITON_INTERPRET=1; return the recorded results."""
    pytest.importorskip("triton", reason="the Triton kernels need the triton package (a test dependency)")
    out_path = str(tmp_path_factory.mktemp("kernels_interp") / "results.json")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", out_path],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"interpreter worker failed:\n{proc.stdout}\n{proc.stderr}"
    with open(out_path) as handle:
        return json.load(handle)


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_reference_in_interpreter(interpreter_results, name):
    """Each kernel case agrees with the float64 reference (and gather + SDPA) within tolerance."""
    result = interpreter_results[name]
    assert "error" not in result, result.get("error")
    assert result["checks"], "case recorded no checks"
    for label, error, tolerance in result["checks"]:
        assert error <= tolerance, f"{name}/{label}: max error {error:.3g} > {tolerance:.3g}"


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    run_worker(sys.argv[2])
