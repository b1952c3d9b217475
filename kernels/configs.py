"""Autotune config lists per GPU family and padded head dim, and the tiny list the Triton interpreter runs.

Each entry is ``(BLOCK_M, BLOCK_N, num_warps, num_stages)``, listed under the padded head dim ``BLOCK_D``
(64 for head dims <= 64, i.e. SD1.5's 40; 128 for 80; 256 for 160). No GPU has timed these yet; they were chosen
from an ahead-of-time compile sweep for sm80 and sm90 (``python bench/attention.py --compile``, fp16, ALIGN=8,
2026-11-21) keeping only configs that fit the shared memory of the family and compile WITHOUT register spills
for every kernel that shares the list (flash and cross-frame share STREAMING). The autotuner then times the
survivors on the real GPU. ``other`` (pre-Ampere, consumer parts) gets one small safe config.
"""

import os

# flash (spatial self/cross) and cross-frame kernels: a query tile of BLOCK_M rows streams BLOCK_N keys at a time.
STREAMING = {
    "sm90": {
        64: [(128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4), (64, 32, 4, 2)],
        128: [(128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 2)],
        256: [(128, 32, 8, 3), (64, 32, 4, 2)],
    },
    "sm80": {
        64: [(128, 64, 8, 3), (128, 32, 4, 3), (64, 64, 4, 3), (64, 32, 4, 2)],
        128: [(128, 64, 8, 3), (128, 32, 4, 3), (64, 32, 4, 2)],
        256: [(64, 64, 8, 2), (64, 32, 8, 2)],
    },
    "other": {64: [(64, 32, 4, 2)], 128: [(64, 32, 4, 2)], 256: [(64, 32, 8, 2)]},
    "interpreter": {64: [(64, 32, 1, 1)], 128: [(64, 32, 1, 1)], 256: [(64, 32, 1, 1)]},
}

# packed short-sequence kernel: one tile holds several whole sequences (BLOCK_M query rows, BLOCK_N key rows);
# every list has a 64x64 tile so any sequence of up to 64 (PACKED_MAX_LEN) fits.
PACKED = {
    "sm90": {
        64: [(128, 128, 8, 1), (128, 128, 4, 1), (64, 64, 4, 1)],
        128: [(128, 128, 8, 1), (64, 64, 4, 1)],
        256: [(64, 64, 8, 1)],
    },
    "sm80": {
        64: [(128, 128, 8, 1), (64, 64, 4, 1)],
        128: [(128, 128, 8, 1), (64, 64, 4, 1)],
        256: [(64, 64, 8, 1)],
    },
    "other": {64: [(64, 64, 4, 1)], 128: [(64, 64, 4, 1)], 256: [(64, 64, 8, 1)]},
    "interpreter": {
        64: [(128, 128, 1, 1), (64, 64, 1, 1)],
        128: [(128, 128, 1, 1), (64, 64, 1, 1)],
        256: [(128, 128, 1, 1), (64, 64, 1, 1)],
    },
}


def interpreting():
    """True when the Triton interpreter is requested (TRITON_INTERPRET set), read at call time."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def gpu_family():
    """``interpreter``, ``sm90`` (Hopper and newer), ``sm80`` (Ampere/Ada) or ``other``."""
    if interpreting():
        return "interpreter"
    import torch

    if not torch.cuda.is_available():
        return "other"
    major, _ = torch.cuda.get_device_capability()
    if major >= 9:
        return "sm90"
    if major == 8:
        return "sm80"
    return "other"


def head_dim_bucket(block_d):
    """The table key for a padded head dim: 64, 128 or 256."""
    return 64 if block_d <= 64 else 128 if block_d <= 128 else 256


def allowed_entries(table, family, block_d):
    """The ``(BLOCK_M, BLOCK_N, num_warps, num_stages)`` entries of ``table`` for a family and padded head dim."""
    return table[family][head_dim_bucket(block_d)]


def triton_configs(table, family=None):
    """Every distinct config of a table for a family (default: this machine's), as ``triton.Config`` objects.

    The autotuner holds them all; its prune hook keeps those listed for the call's ``BLOCK_D``.
    """
    import triton

    family = family or gpu_family()
    entries = []
    for bucket in sorted(table[family]):
        entries += [entry for entry in table[family][bucket] if entry not in entries]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in entries]


def config_entry(config):
    """``(BLOCK_M, BLOCK_N, num_warps, num_stages)`` of a ``triton.Config``."""
    return (config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_warps, config.num_stages)
