"""Provenance written beside the workflow in saved videos, so a run can be replayed and audited.

The API ("prompt") graph already holds every input of the run; the provenance record adds what the
graph cannot know (library versions, device) and lifts the replay-relevant values out of the graph
(seeds, dtypes, attention backends) so they can be read without walking it.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import torch

# Input names whose values are collected from the prompt graph, grouped by provenance field.
PROMPT_FIELDS = {
    "seeds": ("seed", "noise_seed"),
    "dtypes": ("dtype", "weight_dtype", "precision"),
    "attention_backends": ("attention_backend", "attention"),
    "beta_schedules": ("beta_schedule",),  # FrameFold Model Sampling; absent = "auto" (see models/bundle.py)
}


def framefold_version() -> str:
    """The installed framefold version, else the one in the package's pyproject.toml, else 'unknown'."""
    try:
        from importlib.metadata import version

        return version("framefold")
    except Exception:  # not pip-installed (cloned into ComfyUI/custom_nodes)
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
        return match.group(1) if match else "unknown"
    except OSError:
        return "unknown"


def default_device_name() -> str:
    """A readable name of the device torch would compute on: the CUDA GPU if present, else 'cpu'."""
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return "cpu"


def values_from_prompt(prompt: Any) -> dict:
    """{field: [{"node", "class_type", "input", "value"}...]} for seeds/dtypes/backends set as widget values.

    Linked inputs (``[node_id, slot]`` lists) are skipped: their value lives in the upstream node,
    which is itself scanned.
    """
    found: dict[str, list] = {field: [] for field in PROMPT_FIELDS}
    if not isinstance(prompt, dict):
        return found
    for node_id, node in prompt.items():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        for field, names in PROMPT_FIELDS.items():
            for name in names:
                value = inputs.get(name)
                if value is None or isinstance(value, list):
                    continue
                found[field].append(
                    {"node": str(node_id), "class_type": node.get("class_type", ""), "input": name, "value": value}
                )
    return found


def build_provenance(
    prompt: Any = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    attention_backend: Any = None,
    extra: dict | None = None,
) -> dict:
    """The provenance record: versions, device, and the seeds/dtypes/backends of the prompt graph.

    ``device``, ``dtype`` and ``attention_backend`` override what is found or assumed when the caller
    knows them; ``extra`` adds caller fields (e.g. fps, frame count).
    """
    record = {
        "framefold_version": framefold_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device or default_device_name(),
    }
    record.update(values_from_prompt(prompt))
    if dtype is not None:
        record["dtype"] = str(dtype)
    if attention_backend is not None:
        record["attention_backend"] = str(attention_backend)
    record.update(extra or {})
    return record
