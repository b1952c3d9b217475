"""The measured table behind ``backend="auto"``: which shape classes run FrameFold's Triton kernels on a GPU.

``bench/attention.py`` times SDPA and the Triton kernels for every shape class on the GPU it runs on and writes
a table: per (shape class, dtype) the faster backend, the times and the largest difference. ``auto`` then uses
Triton for a class only when the table was measured on a GPU of the same name and says Triton won there.
Without a table (no GPU has run the benchmark), ``auto`` is SDPA everywhere.

Where tables are read from: ``$FRAMEFOLD_ATTENTION_TABLE`` if set, else the user cache
(``$XDG_CACHE_HOME`` or ``~/.cache``)``/framefold/attention_auto.json``, else ``attention_auto.json`` in this
folder (a table shipped with the package). A file is read once per process, on the first CUDA call of ``auto``.
"""

import json
import os
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

import torch

TABLE_VERSION = 1
FILE_NAME = "attention_auto.json"
ENV_TABLE = "FRAMEFOLD_ATTENTION_TABLE"
SHAPE_CLASSES = ("spatial", "cross", "temporal", "window", "cross_frame")

_cache: Dict[str, FrozenSet[Tuple[str, torch.dtype]]] = {}


def default_path() -> Path:
    """Where the benchmark writes its table: $FRAMEFOLD_ATTENTION_TABLE, else the user cache folder."""
    if os.environ.get(ENV_TABLE):
        return Path(os.environ[ENV_TABLE])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "framefold" / FILE_NAME


def candidate_paths() -> List[Path]:
    """Tables in the order they are tried."""
    return [default_path(), Path(__file__).resolve().parent / FILE_NAME]


def _dtype(name: str) -> Optional[torch.dtype]:
    """``float16`` -> torch.float16 (None for unknown names)."""
    value = getattr(torch, str(name), None)
    return value if isinstance(value, torch.dtype) else None


def parse_table(data: dict, device_name: str) -> FrozenSet[Tuple[str, torch.dtype]]:
    """The (shape class, dtype) pairs a table assigns to Triton on ``device_name`` (empty for another GPU)."""
    if not isinstance(data, dict) or data.get("version") != TABLE_VERSION or data.get("device") != device_name:
        return frozenset()
    chosen = set()
    for entry in data.get("entries", []):
        if not isinstance(entry, dict) or entry.get("backend") != "triton":
            continue
        dtype = _dtype(entry.get("dtype", ""))
        if entry.get("class") in SHAPE_CLASSES and dtype is not None:
            chosen.add((entry["class"], dtype))
    return frozenset(chosen)


def triton_classes(device: torch.device) -> FrozenSet[Tuple[str, torch.dtype]]:
    """The (shape class, dtype) pairs measured faster with Triton on this CUDA device's GPU model."""
    name = torch.cuda.get_device_name(device)
    if name not in _cache:
        found: FrozenSet[Tuple[str, torch.dtype]] = frozenset()
        for path in candidate_paths():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found = parse_table(data, name)
            if found:
                break
        _cache[name] = found
    return _cache[name]


def build_table(
    rows: Iterable[dict], device_name: str, *, min_speedup: float = 1.05, max_difference: float = 2e-2
) -> dict:
    """A table from benchmark rows ``{"class", "dtype", "sdpa_ms", "triton_ms", "max_diff"}``.

    A (class, dtype) goes to Triton only if every measured workload of that class was at least ``min_speedup``
    times faster with Triton and within ``max_difference`` of SDPA; a failed row keeps the class on SDPA.
    """
    grouped: Dict[Tuple[str, str], List[dict]] = {}
    for row in rows:
        grouped.setdefault((row["class"], row["dtype"]), []).append(row)
    entries = []
    for (shape_class, dtype), group in sorted(grouped.items()):
        ok = all(
            r.get("triton_ms") and r.get("sdpa_ms") and r["sdpa_ms"] / r["triton_ms"] >= min_speedup
            and r.get("max_diff", float("inf")) <= max_difference
            for r in group
        )  # fmt: skip
        entries.append(
            {
                "class": shape_class,
                "dtype": dtype,
                "backend": "triton" if ok else "sdpa",
                "workloads": len(group),
                "min_speedup": min((r["sdpa_ms"] / r["triton_ms"] for r in group if r.get("triton_ms")), default=None),
            }
        )
    return {"version": TABLE_VERSION, "device": device_name, "entries": entries}


def write_table(table: dict, path: Optional[Path] = None) -> Path:
    """Write ``table`` as JSON (to a temp name, then renamed); returns the path. Later reads see it."""
    path = Path(path) if path is not None else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=2) + "\n")
    os.replace(tmp, path)
    _cache.clear()
    return path
