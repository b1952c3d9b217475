"""Validation of an API prompt before any compute, reported in ComfyUI's ``node_errors`` shape.

Every problem is collected (not just the first): unknown classes, missing or badly linked inputs,
type mismatches, literal coercion, ranges, combo choices, ``VALIDATE_INPUTS`` and cycles.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from .registry import NodeRegistry, combo_choices, input_options, input_type_name
from .workflow import WorkflowError, is_link, normalize_api


@dataclass
class ValidationResult:
    """Outcome of validating a prompt.

    ``ok`` follows ComfyUI: true when at least one output node survives (``outputs`` lists those);
    ``node_errors`` may still name broken branches. ``prompt`` is the coerced API graph to execute.
    """

    ok: bool
    error: dict | None = None
    node_errors: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    prompt: dict | None = None


def _error(kind, message, details="", **extra):
    """One entry of a node's ``errors`` list."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def types_match(output_type: Any, input_type: Any) -> bool:
    """Whether an output socket type may feed an input type (``*`` matches all; comma lists intersect)."""
    a = "COMBO" if isinstance(output_type, (list, tuple)) else str(output_type)
    b = str(input_type)
    if a == "*" or b == "*" or a == b:
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def coerce_literal(value: Any, spec: Any) -> tuple[Any, str | None]:
    """``(coerced_value, None)`` or ``(None, reason)`` for a literal given to an input of ``spec``."""
    kind = input_type_name(spec)
    if kind == "INT":
        if isinstance(value, bool):
            return None, f"expected an integer, got {value!r}"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str):
            try:
                return int(value.strip()), None
            except ValueError:
                pass
        return None, f"expected an integer, got {value!r}"
    if kind == "FLOAT":
        if isinstance(value, bool):
            return None, f"expected a number, got {value!r}"
        number = None
        try:
            if isinstance(value, (int, float)):
                number = float(value)
            elif isinstance(value, str):
                number = float(value.strip())
        except (ValueError, OverflowError):  # not a number, or an integer beyond float range
            pass
        if number is not None and math.isfinite(number):
            return number, None
        return None, f"expected a finite number, got {value!r}"
    if kind == "STRING":
        if isinstance(value, str):
            return value, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value), None
        return None, f"expected text, got {value!r}"
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value, None
        if value in (0, 1) and not isinstance(value, float):
            return bool(value), None
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", None
        return None, f"expected true or false, got {value!r}"
    if kind == "COMBO":
        return value, None
    return None, f"expected a link from a node's {kind} output, got the literal {value!r}"


def _on_step(value: int, options: dict) -> bool:
    """Whether an INT lies on its widget's ``step`` grid, counted from ``min`` (the canvas rounds to it)."""
    step = options.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step <= 1:
        return True
    base = options.get("min", 0)
    return not isinstance(base, int) or (value - base) % step == 0


def _nearest_steps(value: int, options: dict) -> str:
    """The allowed values on either side of ``value``, for the message."""
    step, base = options["step"], options.get("min", 0)
    below = value - (value - base) % step
    return f"{below} or {below + step}"


def _validate_inputs_params(cls):
    """``(names, takes_all)`` of a class's VALIDATE_INPUTS signature, or None when it has none."""
    fn = getattr(cls, "VALIDATE_INPUTS", None)
    if fn is None:
        return None
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return {n for n, p in params.items() if p.kind != p.VAR_KEYWORD}, takes_all


def _check_node(node_id, node, prompt, registry):
    """Validate one known node's inputs; returns ``(errors, coerced_inputs)``."""
    class_type = node["class_type"]
    cls = registry.get(class_type)
    inputs = node.get("inputs") or {}
    try:
        types = registry.input_types(class_type)
    except Exception as exc:  # e.g. a folder listing that failed
        return [
            _error(
                "exception_during_validation", f"INPUT_TYPES raised {type(exc).__name__}: {exc}", "", input_name=None
            )
        ], dict(inputs)
    errors = []
    coerced = dict(inputs)
    custom = _validate_inputs_params(cls)
    custom_names, custom_all = custom if custom else (set(), False)
    custom_values, linked_types = {}, {}
    for section in ("required", "optional"):
        for name, spec in types[section].items():
            kind = input_type_name(spec)
            options = input_options(spec)
            if name not in inputs:
                if section == "required":
                    errors.append(_error("required_input_missing", "Required input is missing", name, input_name=name))
                continue
            value = inputs[name]
            if is_link(value):
                origin_id, slot = str(value[0]), value[1]
                origin = prompt.get(origin_id)
                if origin is None:
                    errors.append(
                        _error(
                            "bad_linked_input",
                            f"Input links to node {origin_id}, which does not exist",
                            name,
                            input_name=name,
                            linked_node=[origin_id, slot],
                        )
                    )
                    continue
                if origin.get("class_type") not in registry:
                    continue  # reported on the origin node itself
                outputs = registry.return_types(origin["class_type"])
                if not 0 <= slot < len(outputs):
                    errors.append(
                        _error(
                            "bad_linked_input",
                            f"Input links to output {slot} of node {origin_id} ({origin['class_type']}), "
                            f"which has {len(outputs)} outputs",
                            name,
                            input_name=name,
                            linked_node=[origin_id, slot],
                        )
                    )
                    continue
                linked_types[name] = outputs[slot]
                if not (custom and "input_types" in custom_names) and not types_match(outputs[slot], kind):
                    received = "COMBO" if isinstance(outputs[slot], (list, tuple)) else outputs[slot]
                    errors.append(
                        _error(
                            "return_type_mismatch",
                            f"Return type mismatch between linked nodes: {name}, received_type({received}) "
                            f"mismatch input_type({kind})",
                            name,
                            input_name=name,
                            received_type=received,
                            linked_node=[origin_id, slot],
                        )
                    )
                continue
            value, reason = coerce_literal(value, spec)
            if reason:
                errors.append(
                    _error(
                        "invalid_input_type",
                        f"Failed to convert an input value to a {kind} value: {reason}",
                        name,
                        input_name=name,
                        received_value=inputs[name],
                    )
                )
                continue
            coerced[name] = value
            if name in custom_names or custom_all:
                custom_values[name] = value
                if name in custom_names:
                    continue  # VALIDATE_INPUTS owns this input's range / choice checks
            if kind in ("INT", "FLOAT"):
                if isinstance(value, float) and math.isnan(value):
                    errors.append(_error("invalid_input_type", "Value is not a number", name, input_name=name))
                elif "min" in options and value < options["min"]:
                    errors.append(
                        _error(
                            "value_smaller_than_min",
                            f"Value {value} smaller than min of {options['min']}",
                            name,
                            input_name=name,
                            received_value=value,
                        )
                    )
                elif "max" in options and value > options["max"]:
                    errors.append(
                        _error(
                            "value_bigger_than_max",
                            f"Value {value} bigger than max of {options['max']}",
                            name,
                            input_name=name,
                            received_value=value,
                        )
                    )
                elif kind == "INT" and not _on_step(value, options):
                    errors.append(
                        _error(
                            "value_not_on_step",
                            f"Value {value} is not on the widget's step of {options['step']} "
                            f"(counted from {options.get('min', 0)}); nearest allowed: {_nearest_steps(value, options)}",
                            name,
                            input_name=name,
                            received_value=value,
                        )
                    )
            elif kind == "COMBO":
                choices = combo_choices(spec)
                if value not in choices:
                    shown = ", ".join(repr(c) for c in choices[:20]) + (" ..." if len(choices) > 20 else "")
                    errors.append(
                        _error(
                            "value_not_in_list",
                            f"Value not in list: {name}: {value!r} not in [{shown}]",
                            name,
                            input_name=name,
                            received_value=value,
                        )
                    )
    if custom:
        kwargs = dict(custom_values)
        if "input_types" in custom_names:
            kwargs["input_types"] = linked_types
        if not custom_all:
            kwargs = {k: v for k, v in kwargs.items() if k in custom_names}
        try:
            verdict = cls.VALIDATE_INPUTS(**kwargs)
        except Exception as exc:  # a broken validator is reported, not raised
            errors.append(
                _error(
                    "exception_during_validation",
                    f"VALIDATE_INPUTS raised {type(exc).__name__}: {exc}",
                    "",
                    input_name=None,
                )
            )
        else:
            if verdict is not True:
                # like ComfyUI, the error names the input a validator was given (when it checks exactly one)
                checked = [k for k in kwargs if k != "input_types"]
                input_name = checked[0] if len(checked) == 1 else None
                details = f"{input_name} - {verdict}" if input_name else ""
                errors.append(
                    _error(
                        "custom_validation_failed",
                        f"Custom validation failed for node: {verdict}",
                        details,
                        input_name=input_name,
                    )
                )
    return errors, coerced


def _ancestors(prompt, roots):
    """Ids of ``roots`` and every node they depend on (links into missing nodes are ignored)."""
    seen, stack = set(), [r for r in roots if r in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        for value in (prompt[node_id].get("inputs") or {}).values():
            if is_link(value) and str(value[0]) in prompt:
                stack.append(str(value[0]))
    return seen


def find_cycles(prompt: dict, node_ids: set | list) -> set:
    """Ids of nodes (among ``node_ids``) that sit on a dependency cycle."""
    graph = {
        n: [str(v[0]) for v in (prompt[n].get("inputs") or {}).values() if is_link(v) and str(v[0]) in node_ids]
        for n in node_ids
    }
    index, low, on_stack, stack, counter, cyclic = {}, {}, set(), [], [0], set()

    def strongconnect(start):
        # Iterative Tarjan: deep graphs must not hit Python's recursion limit.
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cyclic.update(component)

    for n in graph:
        if n not in index:
            strongconnect(n)
    return cyclic


def validate_prompt(prompt: Any, registry: NodeRegistry, targets: list | None = None) -> ValidationResult:
    """Validate an API prompt; every problem is reported at once in ``node_errors``."""
    try:
        prompt = normalize_api(prompt)
    except WorkflowError as exc:
        return ValidationResult(False, _error("invalid_prompt", "Invalid prompt", str(exc)), {}, [], None)
    node_errors: dict = {}

    def add(node_id, errors):
        if errors:
            entry = node_errors.setdefault(
                node_id, {"errors": [], "dependent_outputs": [], "class_type": prompt[node_id].get("class_type")}
            )
            entry["errors"].extend(errors)

    unknown = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        if class_type not in registry:
            unknown.append(node_id)
            add(
                node_id,
                [
                    _error(
                        "missing_node_type",
                        f"Node type {class_type!r} does not exist",
                        f"Node ID '#{node_id}'",
                        node_id=node_id,
                        class_type=class_type,
                        node_title=(node.get("_meta") or {}).get("title", class_type),
                    )
                ],
            )
    if targets:
        outputs = [str(t) for t in targets]
        missing = [t for t in outputs if t not in prompt]
        if missing:
            return ValidationResult(
                False,
                _error("invalid_prompt", "Invalid prompt", f"execution targets {missing} are not nodes of the prompt"),
                node_errors,
                [],
                prompt,
            )
    else:
        outputs = [
            n
            for n, node in prompt.items()
            if node.get("class_type") in registry and registry.is_output_node(node["class_type"])
        ]
    needed = _ancestors(prompt, outputs)
    for node_id in sorted(needed, key=_id_key):
        if node_id in unknown:
            continue
        errors, coerced = _check_node(node_id, prompt[node_id], prompt, registry)
        prompt[node_id]["inputs"] = coerced
        add(node_id, errors)
    for node_id in sorted(find_cycles(prompt, needed), key=_id_key):
        add(node_id, [_error("dependency_cycle", "Dependency cycle detected", f"Node ID '#{node_id}'")])
    valid_outputs = []
    for out in outputs:
        deps = _ancestors(prompt, [out])
        failing = [n for n in deps if n in node_errors]
        for n in failing:
            node_errors[n]["dependent_outputs"].append(out)
        if not failing:
            valid_outputs.append(out)
    error = None
    if unknown:
        first = prompt[unknown[0]].get("class_type")
        error = _error(
            "missing_node_type",
            f"Cannot execute because node {first} does not exist.",
            f"Node ID '#{unknown[0]}'",
            node_id=unknown[0],
            class_type=first,
        )
    elif not outputs:
        error = _error(
            "prompt_no_outputs",
            "Prompt has no outputs",
            "the workflow contains no output node (a node that saves or previews a result)",
        )
    elif not valid_outputs:
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", _summary(node_errors))
    ok = error is None
    return ValidationResult(ok, error, node_errors, valid_outputs if ok else [], prompt)


def _id_key(node_id):
    """Sort node ids numerically where possible ("2" before "10")."""
    return tuple((0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in str(node_id).split(":"))


def _summary(node_errors):
    """One line per node error, for ``details``."""
    return "\n".join(
        f"{e['message']}: {e['details']}" if e["details"] else e["message"]
        for entry in node_errors.values()
        for e in entry["errors"]
    )


def format_validation(result: Any) -> str:
    """Human-readable rendering of a ValidationResult for the terminal."""
    lines = []
    if result.error:
        lines.append(f"{result.error['message']}" + (f" ({result.error['type']})" if result.error.get("type") else ""))
    for node_id in sorted(result.node_errors, key=_id_key):
        entry = result.node_errors[node_id]
        for err in entry["errors"]:
            name = (err.get("extra_info") or {}).get("input_name")
            where = f"node {node_id} ({entry['class_type']})" + (f", input '{name}'" if name else "")
            lines.append(f"  {where}: {err['message']} [{err['type']}]")
    if not lines and not result.ok:
        lines.append("invalid prompt")
    return "\n".join(lines)
