"""The measured auto table (kernels/auto_table.py): built from benchmark rows, read per GPU model, used by auto.

No GPU here: the CUDA device name is monkeypatched and ``auto``'s decision is checked on stand-in tensors that
say they are CUDA tensors. That proves the table logic and the dispatch decision, not kernel speed.
"""

import json
from types import SimpleNamespace

import pytest
import torch

from framefold import kernels
from framefold.kernels import auto_table, triton_backend

GPU = "NVIDIA H200"


def _row(cls, speedup, diff=1e-3, dtype="float16"):
    return {"class": cls, "dtype": dtype, "sdpa_ms": 1.0 * speedup, "triton_ms": 1.0, "max_diff": diff}


def test_build_table_needs_a_win_on_every_workload_of_a_class():
    rows = [
        _row("temporal", 1.8),
        _row("temporal", 1.3),
        _row("spatial", 2.0),
        _row("spatial", 0.9),  # one slower workload keeps the class on SDPA
        _row("cross", 1.5, diff=0.5),  # inaccurate
        {"class": "window", "dtype": "float16", "sdpa_ms": None, "triton_ms": None},  # failed
    ]
    table = auto_table.build_table(rows, GPU)
    backends = {e["class"]: e["backend"] for e in table["entries"]}
    assert backends == {"temporal": "triton", "spatial": "sdpa", "cross": "sdpa", "window": "sdpa"}
    assert auto_table.parse_table(table, GPU) == frozenset({("temporal", torch.float16)})


def test_a_table_from_another_gpu_or_version_is_ignored():
    table = auto_table.build_table([_row("temporal", 2.0)], GPU)
    assert auto_table.parse_table(table, "NVIDIA A100-SXM4-80GB") == frozenset()
    assert auto_table.parse_table({**table, "version": 99}, GPU) == frozenset()
    assert auto_table.parse_table("not a table", GPU) == frozenset()  # type: ignore[arg-type]


@pytest.fixture
def table_file(tmp_path, monkeypatch):
    """A table written where the benchmark writes it ($FRAMEFOLD_ATTENTION_TABLE), the GPU name faked."""
    path = tmp_path / "attention_auto.json"
    monkeypatch.setenv(auto_table.ENV_TABLE, str(path))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: GPU)
    auto_table._cache.clear()
    yield path
    auto_table._cache.clear()


def test_written_table_is_read_back(table_file):
    assert auto_table.triton_classes(torch.device("cuda", 0)) == frozenset()  # nothing measured yet: SDPA
    written = auto_table.write_table(auto_table.build_table([_row("temporal", 2.0, dtype="bfloat16")], GPU))
    assert written == table_file and json.loads(table_file.read_text())["device"] == GPU
    assert auto_table.triton_classes(torch.device("cuda", 0)) == frozenset({("temporal", torch.bfloat16)})


def _cuda_like(shape, dtype=torch.float16):
    """A stand-in with what ``auto`` reads from a CUDA tensor."""
    return SimpleNamespace(is_cuda=True, shape=shape, dtype=dtype, device=torch.device("cuda", 0))


def test_auto_follows_the_table_on_cuda(table_file, monkeypatch):
    monkeypatch.setattr(triton_backend, "triton_available", lambda: True)
    monkeypatch.setattr(triton_backend, "unsupported_reason", lambda *args: None)
    temporal = _cuda_like((4096, 8, 16, 40))
    spatial = _cuda_like((32, 8, 4096, 40))
    assert not kernels._auto_uses_triton(temporal, temporal, temporal, None, None)  # no table: SDPA
    auto_table.write_table(auto_table.build_table([_row("temporal", 2.0), _row("spatial", 0.5)], GPU))
    assert kernels._auto_uses_triton(temporal, temporal, temporal, None, None)
    assert not kernels._auto_uses_triton(spatial, spatial, spatial, None, None)
    fp32 = _cuda_like((4096, 8, 16, 40), torch.float32)
    assert not kernels._auto_uses_triton(fp32, fp32, fp32, None, None)  # measured for fp16 only
