"""The executor: runs an API prompt's output nodes and their ancestors, with an output cache.

The server and the CLI drive it the same way: ``Executor.execute(prompt, hooks=...)`` where the
hooks object receives ComfyUI-ordered events (start, cached, per-node start/progress/finished/
executed, then success, error or interrupted). Progress and interrupt reach node code through
``pipelines.progress``: a sink is installed around every node call.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..nodes._errors import NodeInputError
from ..pipelines import progress
from .validate import ValidationResult, validate_prompt
from .workflow import is_link

__all__ = ["ExecutionHooks", "ExecutionResult", "Executor", "ValidationResult"]


class ExecutionHooks:
    """Receives execution events; every method is a no-op here. The server and CLI subclass it."""

    def execution_start(self, prompt_id: str | None) -> None:
        """The prompt started running."""

    def execution_cached(self, prompt_id: str | None, node_ids: list) -> None:
        """These nodes will not run: their outputs come from the cache."""

    def node_start(self, prompt_id: str | None, node_id: str) -> None:
        """A node starts executing."""

    def node_progress(self, prompt_id: str | None, node_id: str, value: Any, max_value: int, preview: Any) -> None:
        """A node reported progress; ``preview`` is a latent ``[F,C,h,w]`` tensor or None."""

    def node_executed(self, prompt_id: str | None, node_id: str, ui: dict) -> None:
        """A node produced a non-empty ui dict (also re-sent for cached output nodes)."""

    def node_finished(self, prompt_id: str | None, node_id: str) -> None:
        """A node finished executing."""

    def execution_error(
        self,
        prompt_id: str | None,
        node_id: str,
        node_type: str,
        exception: BaseException,
        traceback_lines: list,
        executed: list,
    ) -> None:
        """A node raised; nothing after it runs."""

    def execution_interrupted(
        self, prompt_id: str | None, node_id: str, node_type: str, executed: list, message: str | None = None
    ) -> None:
        """The user interrupted the prompt while ``node_id`` was running (or between nodes); ``message`` is
        the interrupt's text (it names where sampled latents were saved, when they were)."""

    def execution_success(self, prompt_id: str | None) -> None:
        """Every requested output was produced."""


@dataclass
class ExecutionResult:
    """Outcome of ``Executor.execute``: status, the ui dict of each node that produced one, the error."""

    status: str
    outputs: dict = field(default_factory=dict)
    error: dict | None = None
    executed: list = field(default_factory=list)


@dataclass
class _CacheEntry:
    outputs: list  # per output slot, the list of items (ComfyUI's per-item representation)
    ui: dict


class _NodeFailed(Exception):
    """Internal: carries the node that failed and the original exception."""

    def __init__(self, node_id, exception, interrupted=False):
        super().__init__(str(exception))
        self.node_id = node_id
        self.exception = exception
        self.interrupted = interrupted


def _stable_repr(value):
    """A deterministic text for a literal input (for cache signatures)."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _call_with_accepted(fn, kwargs):
    """Call ``fn`` with the keyword arguments its signature accepts (all of them if it takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(**kwargs)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def _execution_order(prompt, outputs):
    """Ancestors of ``outputs`` in dependency order (depth first, outputs in the given order)."""
    order, done = [], set()

    def visit(node_id):
        stack = [(node_id, False)]
        while stack:
            current, expanded = stack.pop()
            if current in done:
                continue
            if expanded:
                done.add(current)
                order.append(current)
                continue
            stack.append((current, True))
            parents = [str(v[0]) for v in prompt[current]["inputs"].values() if is_link(v)]
            for parent in reversed(parents):
                if parent not in done:
                    stack.append((parent, False))

    for out in outputs:
        visit(out)
    return order


def _merge_ui(parts):
    """Concatenate the ui dicts of per-item calls key by key (every value is a list)."""
    merged = {}
    for ui in parts:
        for key, value in (ui or {}).items():
            merged.setdefault(key, []).extend(value if isinstance(value, (list, tuple)) else [value])
    return merged


class Executor:
    """Validates and runs API prompts; keeps node outputs cached between runs."""

    def __init__(self, registry=None):
        if registry is None:
            from .registry import default_registry

            registry = default_registry()
        self.registry = registry
        self._cache = {}
        self._interrupt = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def validate(self, prompt: dict, targets: list | None = None) -> ValidationResult:
        """Validate a prompt (API format) without running anything."""
        return validate_prompt(prompt, self.registry, targets=targets)

    def interrupt(self) -> None:
        """Ask the running prompt to stop at its next progress report or interrupt check (thread-safe)."""
        self._interrupt.set()

    def clear_cache(self) -> None:
        """Forget every cached node output (frees models held by the cache)."""
        self._cache.clear()

    def execute(
        self,
        prompt: dict,
        *,
        prompt_id: str | None = None,
        extra_data: dict | None = None,
        targets: list | None = None,
        hooks: ExecutionHooks | None = None,
    ) -> ExecutionResult:
        """Validate and run ``prompt``; returns an ExecutionResult. Runs one prompt at a time."""
        hooks = hooks or ExecutionHooks()
        prompt_id = prompt_id or str(uuid.uuid4())
        extra_data = extra_data or {}
        with self._lock:
            self._interrupt.clear()
            checked = self.validate(prompt, targets=targets)
            if not checked.ok:
                error = dict(checked.error or {})
                error["node_errors"] = checked.node_errors
                return ExecutionResult("error", {}, error, [])
            return self._run(checked.prompt, checked.outputs, prompt_id, extra_data, hooks)

    # ------------------------------------------------------------------ internals

    def _run(self, prompt, outputs, prompt_id, extra_data, hooks):
        """Run the validated prompt's needed nodes in order, using and refreshing the cache."""
        order = _execution_order(prompt, outputs)
        signatures = self._signatures(prompt, order, extra_data)
        cached = [n for n in order if signatures[n] in self._cache]
        hooks.execution_start(prompt_id)
        hooks.execution_cached(prompt_id, list(cached))
        values, ui_outputs, executed = {}, {}, []
        try:
            for node_id in order:
                entry = self._cache.get(signatures[node_id])
                if entry is not None:
                    values[node_id] = entry.outputs
                    executed.append(node_id)
                    if entry.ui:
                        ui_outputs[node_id] = entry.ui
                        hooks.node_executed(prompt_id, node_id, entry.ui)
                    continue
                if self._interrupt.is_set():
                    raise _NodeFailed(node_id, progress.Interrupted("interrupted by the user"), interrupted=True)
                hooks.node_start(prompt_id, node_id)
                entry = self._run_node(prompt, node_id, values, prompt_id, extra_data, hooks)
                self._cache[signatures[node_id]] = entry
                values[node_id] = entry.outputs
                executed.append(node_id)
                hooks.node_finished(prompt_id, node_id)
                if entry.ui:
                    ui_outputs[node_id] = entry.ui
                    hooks.node_executed(prompt_id, node_id, entry.ui)
        except _NodeFailed as failure:
            node_type = prompt[failure.node_id]["class_type"]
            self._keep_only(set(signatures[n] for n in executed))
            if failure.interrupted:
                message = str(failure.exception) or "Interrupted"
                _call_with_accepted(
                    hooks.execution_interrupted,
                    {
                        "prompt_id": prompt_id,
                        "node_id": failure.node_id,
                        "node_type": node_type,
                        "executed": list(executed),
                        "message": message,
                    },
                )
                error = {
                    "node_id": failure.node_id,
                    "node_type": node_type,
                    "exception_message": message,
                    "exception_type": "InterruptedError",
                    "traceback": [],
                    "executed": list(executed),
                }
                return ExecutionResult("interrupted", ui_outputs, error, executed)
            exc = failure.exception
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
            hooks.execution_error(prompt_id, failure.node_id, node_type, exc, lines, list(executed))
            error = {
                "node_id": failure.node_id,
                "node_type": node_type,
                "exception_message": str(exc),
                "exception_type": f"{type(exc).__module__}.{type(exc).__name__}",
                "traceback": lines,
                "executed": list(executed),
                "current_inputs": {},
                "current_outputs": {},
            }
            return ExecutionResult("error", ui_outputs, error, executed)
        self._keep_only(set(signatures.values()))
        hooks.execution_success(prompt_id)
        return ExecutionResult("success", ui_outputs, None, executed)

    def _keep_only(self, keep):
        """Drop cache entries not used by the latest run (ComfyUI's classic cache policy)."""
        for key in list(self._cache):
            if key not in keep:
                del self._cache[key]

    def _hidden_values(self, class_type, node_id, prompt, extra_data):
        """Values of the hidden inputs a class asks for (UNIQUE_ID, PROMPT, EXTRA_PNGINFO, ...)."""
        hidden = self.registry.input_types(class_type)["hidden"]
        values = {}
        for name, spec in hidden.items():
            kind = spec[0] if isinstance(spec, (list, tuple)) else spec
            if kind == "UNIQUE_ID":
                values[name] = node_id
            elif kind == "PROMPT":
                values[name] = prompt
            elif kind == "EXTRA_PNGINFO":
                values[name] = extra_data.get("extra_pnginfo")
            elif kind == "DYNPROMPT":
                values[name] = None
            elif kind == "AUTH_TOKEN_COMFY_ORG":
                values[name] = extra_data.get("auth_token_comfy_org")
            elif kind == "API_KEY_COMFY_ORG":
                values[name] = extra_data.get("api_key_comfy_org")
            elif kind == "COMFY_USAGE_SOURCE":
                values[name] = extra_data.get("comfy_usage_source")
        return values

    def _signatures(self, prompt, order, extra_data):
        """Cache key of every node: class, literal inputs, IS_CHANGED and the upstream signatures."""
        signatures = {}
        for node_id in order:
            node = prompt[node_id]
            class_type = node["class_type"]
            cls = self.registry.get(class_type)
            parts = [class_type]
            literals = {}
            for name in sorted(node["inputs"]):
                value = node["inputs"][name]
                if is_link(value):
                    parts.append(f"{name}<-{signatures[str(value[0])]}[{value[1]}]")
                else:
                    literals[name] = value
                    parts.append(f"{name}={_stable_repr(value)}")
            hidden = self.registry.input_types(class_type)["hidden"]
            if getattr(cls, "NOT_IDEMPOTENT", False) or hidden:
                parts.append(f"id={node_id}")
            if any(
                (s[0] if isinstance(s, (list, tuple)) else s) in ("PROMPT", "EXTRA_PNGINFO") for s in hidden.values()
            ):
                parts.append(_stable_repr(prompt))
                parts.append(_stable_repr(extra_data.get("extra_pnginfo")))
            if hasattr(cls, "IS_CHANGED"):
                kwargs = dict(literals)
                kwargs.update(self._hidden_values(class_type, node_id, prompt, extra_data))
                try:
                    changed = _call_with_accepted(cls.IS_CHANGED, kwargs)
                except Exception:  # an IS_CHANGED that fails means "always re-run", like ComfyUI
                    changed = float("nan")
                if isinstance(changed, float) and math.isnan(changed):
                    changed = uuid.uuid4().hex
                parts.append(f"changed={_stable_repr(changed)}")
            signatures[node_id] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return signatures

    def _node_inputs(self, node, values):
        """Each declared input as a list of items: linked inputs carry the upstream slot's items, literals one."""
        types = self.registry.input_types(node["class_type"])
        declared = set(types["required"]) | set(types["optional"])
        items = {}
        for name, value in node["inputs"].items():
            if name not in declared:
                continue  # like ComfyUI, inputs the class does not declare are not passed
            if is_link(value):
                items[name] = values[str(value[0])][value[1]]
            else:
                items[name] = [value]
        return items

    def _run_node(self, prompt, node_id, values, prompt_id, extra_data, hooks):
        """Call one node's function (once per item unless INPUT_IS_LIST) under a progress sink."""
        node = prompt[node_id]
        class_type = node["class_type"]
        cls = self.registry.get(class_type)
        items = self._node_inputs(node, values)
        hidden = self._hidden_values(class_type, node_id, prompt, extra_data)
        sink = progress.ProgressSink(
            on_progress=lambda step, total, preview: hooks.node_progress(prompt_id, node_id, step, total, preview),
            should_stop=self._interrupt.is_set,
        )
        n_returns = len(getattr(cls, "RETURN_TYPES", ()) or ())
        output_is_list = list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * n_returns)
        if getattr(cls, "INPUT_IS_LIST", False):
            calls = [{**items, **{k: [v] for k, v in hidden.items()}}]
        else:
            count = max((len(v) for v in items.values()), default=1)
            if any(len(v) == 0 for v in items.values()):
                count = 0
            calls = [{**{k: v[min(i, len(v) - 1)] for k, v in items.items()}, **hidden} for i in range(count)]
        outputs = [[] for _ in range(n_returns)]
        ui_parts = []
        try:
            instance = cls()
            function = getattr(instance, cls.FUNCTION)
            with progress.use_sink(sink):
                for kwargs in calls:
                    progress.check_interrupt()
                    result = function(**kwargs)
                    self._collect(class_type, result, outputs, output_is_list, ui_parts)
        except progress.Interrupted as exc:
            raise _NodeFailed(node_id, exc, interrupted=True) from None
        except NodeInputError as exc:
            exc.args = (f"Node {node_id} ({class_type}): {exc}",)
            raise _NodeFailed(node_id, exc) from None
        except Exception as exc:
            raise _NodeFailed(node_id, exc) from None
        return _CacheEntry(outputs, _merge_ui(ui_parts))

    @staticmethod
    def _collect(class_type, result, outputs, output_is_list, ui_parts):
        """Append one call's return value (tuple or {"result", "ui"}) to the per-slot item lists."""
        ui = None
        if isinstance(result, dict):
            if "expand" in result:
                raise NotImplementedError(f"{class_type}: node expansion ('expand') is not supported by this host")
            ui = result.get("ui")
            result = result.get("result", ())
        if result is None:
            result = ()
        if not isinstance(result, (tuple, list)):
            raise TypeError(f"{class_type} returned {type(result).__name__}; expected a tuple matching RETURN_TYPES")
        if len(result) < len(outputs):
            raise TypeError(f"{class_type} returned {len(result)} values; RETURN_TYPES has {len(outputs)}")
        for slot in range(len(outputs)):
            if output_is_list[slot] and isinstance(result[slot], (list, tuple)):
                outputs[slot].extend(result[slot])
            else:
                outputs[slot].append(result[slot])
        if ui:
            ui_parts.append(ui)
