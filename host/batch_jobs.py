"""Batch jobs: what ``framefold batch JOBS`` expands into, one final API prompt per job.

JOBS may be a workflow file, a folder of workflow files, a job file (``.jsonl`` / ``.csv``: one row per job
with a ``workflow`` column and ``NODE.INPUT`` columns) or a sweep spec (``.json`` with ``workflow`` and any of
``set`` / ``product`` / ``zip``). Command-line ``--set`` / ``--sweep`` (product) / ``--zip`` apply on top of
every job. A job's id is a hash of its final API prompt, so equal jobs have equal ids.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import NodeRegistry
from .validate import format_validation, validate_prompt
from .workflow import MEDIA_SUFFIXES, WorkflowError, load_workflow

Params = dict[str, Any]
SPEC_KEYS = ("set", "product", "zip")


@dataclass
class Job:
    """One unit of work: a workflow with its parameters, the final API prompt and its id."""

    index: int
    workflow: str
    params: Params
    prompt: dict[str, Any]
    ui_graph: dict[str, Any] | None = None
    id: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the job passed validation."""
        return not self.errors

    def label(self) -> str:
        """A short readable name: the workflow file name and the parameters."""
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return Path(self.workflow).name + (f" [{params}]" if params else "")

    def payload(self) -> dict[str, Any]:
        """What a worker needs to run the job (plain JSON-able data)."""
        extra = {"extra_pnginfo": {"workflow": self.ui_graph}} if self.ui_graph is not None else {}
        return {"id": self.id, "prompt": self.prompt, "extra_data": extra}


def parse_value(text: str) -> Any:
    """A command-line or CSV value: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _split_assignment(text: str, flag: str) -> tuple[str, str]:
    """``NODE.INPUT=VALUE`` -> ``("NODE.INPUT", "VALUE")``; checks the key's shape."""
    key, sep, value = text.partition("=")
    check_key(key, flag)
    if not sep:
        raise WorkflowError(f"{flag} {text!r}: expected NODE_ID.INPUT=VALUE (for example 7.seed=42)")
    return key, value


def check_key(key: str, where: str) -> None:
    """Raise a WorkflowError unless ``key`` reads ``NODE_ID.INPUT``."""
    node_id, dot, name = key.rpartition(".")
    if not dot or not node_id or not name:
        raise WorkflowError(f"{where}: {key!r} is not a NODE_ID.INPUT name (for example 7.seed)")


def _sweep_values(text: str) -> list[Any]:
    """``A,B,C`` -> values; ``START..END`` (integers) -> the inclusive range."""
    start, dots, end = text.partition("..")
    if dots:
        try:
            return list(range(int(start), int(end) + 1))
        except ValueError:
            pass
    return [parse_value(v) for v in text.split(",")]


def variants_from_axes(fixed: Params, product: dict[str, list[Any]], zipped: dict[str, list[Any]]) -> list[Params]:
    """Every parameter set: the product of the ``product`` axes times the zipped ``zipped`` columns.

    Zipped columns must have equal lengths; ``fixed`` values are under every variant (axes win).
    """
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise WorkflowError(f"zipped parameters must have equal lengths ({sizes})")
    for key, values in list(product.items()) + list(zipped.items()):
        if not isinstance(values, list) or not values:
            raise WorkflowError(f"parameter {key}: expected a non-empty list of values")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    variants = []
    for combo in itertools.product(*product.values()):
        for row in zip_rows:
            variants.append({**fixed, **dict(zip(product, combo)), **row})
    return variants


def cli_variants(sets: list[str], sweeps: list[str], zips: list[str]) -> list[Params]:
    """Parameter sets from ``--set K=V``, ``--sweep K=A,B`` (product) and ``--zip K=A,B`` (zipped)."""
    fixed = {k: parse_value(v) for k, v in (_split_assignment(t, "--set") for t in sets)}
    product = {k: _sweep_values(v) for k, v in (_split_assignment(t, "--sweep") for t in sweeps)}
    zipped = {k: _sweep_values(v) for k, v in (_split_assignment(t, "--zip") for t in zips)}
    return variants_from_axes(fixed, product, zipped)


def _rows_from_jsonl(path: Path) -> list[Params]:
    """Job rows of a JSON-lines file (blank lines and lines starting with # skipped)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkflowError(f"{path}:{number}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise WorkflowError(f"{path}:{number}: expected an object with 'workflow' and NODE.INPUT keys")
        rows.append(row)
    return rows


def _rows_from_csv(path: Path) -> list[Params]:
    """Job rows of a CSV file with a header; empty cells leave the input as the workflow has it."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return [{k: parse_value(v) for k, v in row.items() if k and v not in (None, "")} for row in reader]


def _spec_rows(path: Path, data: dict[str, Any]) -> list[Params]:
    """Rows of a sweep spec ``{"workflow", "set", "product", "zip"}``."""
    unknown = sorted(set(data) - {"workflow", *SPEC_KEYS})
    if unknown:
        raise WorkflowError(f"{path}: unknown sweep spec keys {unknown} (known: workflow, {', '.join(SPEC_KEYS)})")
    parts = [data.get(k) or {} for k in SPEC_KEYS]
    if not all(isinstance(p, dict) for p in parts):
        raise WorkflowError(f"{path}: 'set', 'product' and 'zip' must be objects of NODE.INPUT keys")
    return [{"workflow": data["workflow"], **v} for v in variants_from_axes(*parts)]


def _is_sweep_spec(data: Any) -> bool:
    """A JSON object with a ``workflow`` key and no graph of its own."""
    return isinstance(data, dict) and isinstance(data.get("workflow"), str) and "nodes" not in data


def read_job_rows(source: str) -> list[Params]:
    """``[{"workflow": path, "NODE.INPUT": value, ...}]`` for one JOBS argument (paths made absolute)."""
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.glob("*.json") if p.is_file())
        if not found:
            raise WorkflowError(f"folder {path} contains no .json workflow")
        return [{"workflow": str(p)} for p in found]
    if not path.is_file():
        raise WorkflowError(f"jobs not found: {source}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        rows = _rows_from_jsonl(path) if suffix == ".jsonl" else _rows_from_csv(path)
    elif suffix in MEDIA_SUFFIXES:
        return [{"workflow": str(path)}]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise WorkflowError(f"{path}: not valid JSON ({exc})") from None
        if not _is_sweep_spec(data):
            return [{"workflow": str(path)}]
        rows = _spec_rows(path, data)
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("workflow"), str) or not row["workflow"]:
            raise WorkflowError(f"{path}: job {number} has no 'workflow'")
        for key in row:
            if key != "workflow":
                check_key(key, f"{path}: job {number}")
        row["workflow"] = str((path.parent / row["workflow"]).resolve())
    return rows


def prompt_id(prompt: dict[str, Any]) -> str:
    """The job id: the first 16 hex digits of the SHA-256 of the prompt's canonical JSON."""
    text = json.dumps(prompt, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def apply_params(prompt: dict[str, Any], params: Params, registry: NodeRegistry) -> list[dict[str, Any]]:
    """Set ``NODE.INPUT`` values in ``prompt``; returns errors for unknown nodes or inputs."""
    errors = []
    for key, value in params.items():
        node_id, _, name = key.rpartition(".")
        node = prompt.get(node_id)
        if node is None:
            message = f"there is no node {node_id} in the workflow (nodes: {', '.join(sorted(prompt))})"
            errors.append({"node": node_id, "class": None, "input": name, "message": message})
            continue
        class_type = node.get("class_type")
        if class_type in registry:
            types = registry.input_types(class_type)
            if name not in types["required"] and name not in types["optional"]:
                known = ", ".join(list(types["required"]) + list(types["optional"]))
                message = f"{class_type} has no input '{name}' (inputs: {known})"
                errors.append({"node": node_id, "class": class_type, "input": name, "message": message})
                continue
        node.setdefault("inputs", {})[name] = value
    return errors


def _validation_errors(checked: Any) -> list[dict[str, Any]]:
    """Error records (node, class, input, message) of a failed ValidationResult."""
    errors = []
    for node_id, entry in sorted(checked.node_errors.items()):
        for err in entry["errors"]:
            name = (err.get("extra_info") or {}).get("input_name")
            message = err["message"] + (f": {err['details']}" if err.get("details") else "")
            errors.append({"node": node_id, "class": entry["class_type"], "input": name, "message": message})
    if not errors:
        errors.append({"node": None, "class": None, "input": None, "message": format_validation(checked)})
    return errors


def build_job(index: int, row: Params, registry: NodeRegistry, cache: dict[str, Any]) -> Job:
    """Load, parameterise and validate one job; problems are kept on the job, never raised."""
    workflow = row["workflow"]
    params = {k: v for k, v in row.items() if k != "workflow"}
    if workflow not in cache:
        try:
            cache[workflow] = load_workflow(workflow, registry)
        except WorkflowError as exc:
            cache[workflow] = exc
    loaded = cache[workflow]
    if isinstance(loaded, WorkflowError):
        error = {"node": None, "class": None, "input": None, "message": f"{workflow}: {loaded}"}
        return Job(index, workflow, params, {}, None, prompt_id({"workflow": workflow, **params}), [error])
    prompt = json.loads(json.dumps(loaded[0]))
    errors = apply_params(prompt, params, registry)
    prompt_applied = not errors
    if not errors:
        checked = validate_prompt(prompt, registry)
        if checked.ok and not checked.node_errors:
            prompt = checked.prompt
        else:
            errors = _validation_errors(checked)
    ui_graph = loaded[1] if not params else None  # the saved UI graph no longer matches overridden inputs
    # parameters that could not be applied are not in the prompt, so they join the hash
    job_id = prompt_id(prompt) if prompt_applied else prompt_id({"prompt": prompt, "params": params})
    return Job(index, workflow, params, prompt, ui_graph, job_id, errors)


def build_jobs(sources: list[str], variants: list[Params], registry: NodeRegistry) -> list[Job]:
    """Every job of the batch (rows of each source times the command-line variants), validated.

    Equal jobs (same id) are kept once, at their first position.
    """
    rows = [{**row, **variant} for source in sources for row in read_job_rows(source) for variant in variants]
    cache: dict[str, Any] = {}
    jobs: list[Job] = []
    seen: set[str] = set()
    for row in rows:
        job = build_job(len(jobs), row, registry, cache)
        if job.id not in seen:
            seen.add(job.id)
            jobs.append(job)
    return jobs


def _node_signatures(prompt: dict[str, Any]) -> dict[str, str]:
    """A content hash per node covering its literals and everything upstream (like the executor cache key)."""
    signatures: dict[str, str] = {}

    def signature(node_id: str, stack: tuple[str, ...] = ()) -> str:
        if node_id in signatures:
            return signatures[node_id]
        node = prompt.get(node_id) or {}
        parts = [str(node.get("class_type"))]
        for name, value in sorted((node.get("inputs") or {}).items()):
            linked = isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt
            if linked and str(value[0]) not in stack:
                parts.append(f"{name}<-{signature(str(value[0]), stack + (node_id,))}[{value[1]}]")
            else:
                parts.append(f"{name}={json.dumps(value, sort_keys=True, default=repr)}")
        signatures[node_id] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return signatures[node_id]

    for node_id in prompt:
        signature(node_id)
    return signatures


def _depths(prompt: dict[str, Any]) -> dict[str, int]:
    """Longest distance of each node from a node without linked inputs."""
    depth: dict[str, int] = {}

    def visit(node_id: str, stack: tuple[str, ...] = ()) -> int:
        if node_id in depth:
            return depth[node_id]
        parents = [
            str(v[0])
            for v in (prompt[node_id].get("inputs") or {}).values()
            if isinstance(v, list) and len(v) == 2 and str(v[0]) in prompt and str(v[0]) not in stack
        ]
        depth[node_id] = 1 + max((visit(p, stack + (node_id,)) for p in parents), default=-1)
        return depth[node_id]

    for node_id in prompt:
        visit(node_id)
    return depth


def reuse_order(jobs: list[Job]) -> list[Job]:
    """Jobs ordered so consecutive ones share upstream work (loaders first, then text encodes, ...).

    The key lists each node's signature from the shallowest nodes down, so jobs with the same models and
    the same prompts run back to back and the executor cache serves what they share.
    """

    def key(job: Job) -> tuple[str, ...]:
        signatures = _node_signatures(job.prompt)
        depth = _depths(job.prompt)
        ordered = sorted(job.prompt, key=lambda n: (depth[n], n))
        return tuple(signatures[n] for n in ordered)

    return sorted(jobs, key=key)
