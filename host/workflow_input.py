"""The one reader of untrusted workflow input: bytes or parsed JSON -> a checked structure, or WorkflowError.

Every way a workflow arrives (a file, a folder of files, PNG/video metadata, an HTTP body, ``--set``)
goes through :func:`parse_workflow_bytes` or :func:`check_json_tree`, and the converters check the
shape of each format (:func:`ui_shape_problems`, :func:`api_shape_problems`) before reading it, so any
input gives either a workflow or a message naming where it is wrong (node id, field).

Limits (stated, enforced before any conversion):

- ``MAX_WORKFLOW_BYTES`` = 32 MiB of JSON text per workflow (file, embedded metadata or request body);
- ``MAX_JSON_DEPTH`` = 64 levels of nested arrays/objects;
- ``MAX_STRING_CHARS`` = 1,000,000 characters per string value;
- ``MAX_NODES`` = 10,000 nodes in a graph after subgraph expansion (an API prompt likewise);
- ``MAX_SUBGRAPH_DEPTH`` = 16 levels of subgraphs inside subgraphs.

Reroute chains and bypassed nodes are followed iteratively, so a chain is bounded only by ``MAX_NODES``.
Numbers must be finite: ``NaN``/``Infinity`` literals and overflowing values (``1e999``) are refused.
"""

import json
import math
from typing import Any, TypeGuard

MAX_WORKFLOW_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_STRING_CHARS = 1_000_000
MAX_NODES = 10_000
MAX_SUBGRAPH_DEPTH = 16


class WorkflowError(ValueError):
    """A workflow that cannot be read or converted; the message lists every problem found."""

    def __init__(self, problems: "str | list[str]") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def _refuse_constant(name: str) -> float:
    raise ValueError(f"the number {name} is not allowed (only finite numbers)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range (only finite numbers)")
    return value


def parse_json_text(text: "str | bytes", where: str) -> Any:
    """Strict JSON (finite numbers only; UTF-8/16/32 bytes) checked by :func:`check_json_tree`."""
    if len(text) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{where}: {len(text)} bytes is larger than the limit of {MAX_WORKFLOW_BYTES} bytes")
    if isinstance(text, (bytes, bytearray)) and text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise WorkflowError(f"{where}: nested deeper than the limit of {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise WorkflowError(f"{where}: not a JSON text (the bytes are not UTF-8, UTF-16 or UTF-32)") from None
    except ValueError as exc:  # JSONDecodeError, a refused constant, an integer with too many digits
        raise WorkflowError(f"{where}: not valid JSON ({exc})") from None
    check_json_tree(data, where)
    return data


def check_json_tree(data: Any, where: str) -> None:
    """Raise WorkflowError unless ``data`` is plain JSON within the depth and string limits, numbers finite.

    Walks iteratively, so a structure of any depth is reported instead of overflowing the stack.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        kind = type(value)
        if kind is dict or kind is list:
            if depth > MAX_JSON_DEPTH:
                raise WorkflowError(f"{where}: nested deeper than the limit of {MAX_JSON_DEPTH} levels")
            if kind is dict:
                for key, item in value.items():
                    if type(key) is not str:
                        raise WorkflowError(f"{where}: object key {key!r} is not a string")
                    if len(key) > MAX_STRING_CHARS:
                        raise WorkflowError(f"{where}: an object key is longer than {MAX_STRING_CHARS} characters")
                    push((item, depth + 1))
            else:
                for item in value:
                    push((item, depth + 1))
        elif kind is str:
            if len(value) > MAX_STRING_CHARS:
                raise WorkflowError(
                    f"{where}: a string of {len(value)} characters ({value[:40]!r}...) is longer than the limit of "
                    f"{MAX_STRING_CHARS}"
                )
        elif kind is float:
            if not math.isfinite(value):
                raise WorkflowError(f"{where}: the number {value} is not allowed; only finite numbers")
        elif value is not None and kind is not bool and kind is not int:
            if isinstance(value, (dict, list, tuple)):  # subclasses and tuples (Python callers): as arrays/objects
                push((dict(value) if isinstance(value, dict) else list(value), depth))
            elif isinstance(value, float):
                push((float(value), depth))
            elif not isinstance(value, (str, int)):
                raise WorkflowError(f"{where}: a value of type {type(value).__name__} is not JSON")


# --------------------------------------------------------------------------- shape checks


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    """A node id: an integer or a non-empty string."""
    return _is_int(value) or (isinstance(value, str) and bool(value))


def _list_of_objects(owner: str, field: str, value: Any, problems: list[str], optional: bool = True) -> list:
    """``value`` when it is an array of objects (None allowed when optional), else a problem and []."""
    if value is None and optional:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{owner}: '{field}' must be an array of objects, got {_kind(value)}")
        return []
    return value


def _node_shape_problems(node: dict, prefix: str, index: int, problems: list[str]) -> None:
    """Problems of one UI node object (``prefix`` names the subgraph it sits in, or is empty)."""
    node_id = node.get("id")
    if not _is_id(node_id):
        problems.append(f"{prefix}nodes[{index}]: 'id' must be an integer or a non-empty string, got {_kind(node_id)}")
        return
    where = f"{prefix}node {node_id}"
    if not isinstance(node.get("type"), str) or not node.get("type"):
        problems.append(f"{where}: 'type' must be a non-empty string, got {_kind(node.get('type'))}")
    if node.get("mode") is not None and not _is_int(node.get("mode")):
        problems.append(f"{where}: 'mode' must be an integer, got {_kind(node.get('mode'))}")
    if node.get("title") is not None and not isinstance(node.get("title"), str):
        problems.append(f"{where}: 'title' must be a string, got {_kind(node.get('title'))}")
    for index, inp in enumerate(_list_of_objects(where, "inputs", node.get("inputs"), problems)):
        field = f"inputs[{index}]"
        if not isinstance(inp.get("name"), str):
            problems.append(f"{where}: {field}.name must be a string, got {_kind(inp.get('name'))}")
        if inp.get("link") is not None and not _is_int(inp.get("link")):
            problems.append(f"{where}: {field}.link must be a link id (integer) or null, got {_kind(inp.get('link'))}")
        if inp.get("type") is not None and not isinstance(inp.get("type"), str):
            problems.append(f"{where}: {field}.type must be a string, got {_kind(inp.get('type'))}")
        widget = inp.get("widget")
        if widget is not None and not (isinstance(widget, dict) and isinstance(widget.get("name"), str)):
            problems.append(f"{where}: {field}.widget must be an object with a 'name' string")
    for index, out in enumerate(_list_of_objects(where, "outputs", node.get("outputs"), problems)):
        if out.get("type") is not None and not isinstance(out.get("type"), (str, list)):
            problems.append(f"{where}: outputs[{index}].type must be a string, got {_kind(out.get('type'))}")
    values = node.get("widgets_values")
    if values is not None and not isinstance(values, (list, dict)):
        problems.append(f"{where}: 'widgets_values' must be an array or an object, got {_kind(values)}")
    named = node.get("widgets_values_named")
    if named is not None and not isinstance(named, dict):
        problems.append(f"{where}: 'widgets_values_named' must be an object, got {_kind(named)}")


def _link_shape_problems(links: Any, owner: str, problems: list[str]) -> None:
    """Problems of a ``links`` array in either schema (arrays of 5-6 items or objects)."""
    if links is None:
        return
    if not isinstance(links, list):
        problems.append(f"{owner}: 'links' must be an array, got {_kind(links)}")
        return
    for index, link in enumerate(links):
        if isinstance(link, dict):
            fields = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
        elif isinstance(link, list) and len(link) >= 5:
            fields = link[:5]
        else:
            problems.append(f"{owner}: links[{index}] must be [id, origin, slot, target, slot, type] or an object")
            continue
        link_id, origin, origin_slot, target, target_slot = fields
        if not (_is_int(link_id) and _is_id(origin) and _is_id(target)):
            problems.append(f"{owner}: links[{index}] needs an integer id and node ids for origin and target")
        elif not (_is_int(origin_slot) and _is_int(target_slot) and origin_slot >= 0):
            problems.append(f"{owner}: links[{index}] slots must be integers (origin slot >= 0)")


def ui_shape_problems(graph: dict) -> list[str]:
    """Every structural problem of a UI-format graph (nodes, links, subgraph definitions), as messages."""
    problems: list[str] = []
    for index, node in enumerate(_list_of_objects("workflow", "nodes", graph.get("nodes"), problems, optional=False)):
        _node_shape_problems(node, "", index, problems)
    _link_shape_problems(graph.get("links"), "workflow", problems)
    definitions = graph.get("definitions")
    if definitions is None:
        return problems
    if not isinstance(definitions, dict):
        return problems + [f"workflow: 'definitions' must be an object, got {_kind(definitions)}"]
    for index, sub in enumerate(
        _list_of_objects("workflow definitions", "subgraphs", definitions.get("subgraphs"), problems)
    ):
        sub_id = sub.get("id")
        owner = f"subgraph {sub_id}" if isinstance(sub_id, str) and sub_id else f"subgraphs[{index}]"
        if not (isinstance(sub_id, str) and sub_id):
            problems.append(f"{owner}: 'id' must be a non-empty string, got {_kind(sub_id)}")
            continue
        for k, node in enumerate(_list_of_objects(owner, "nodes", sub.get("nodes"), problems)):
            _node_shape_problems(node, f"{owner} ", k, problems)
        _link_shape_problems(sub.get("links"), owner, problems)
        for field in ("inputs", "outputs"):
            for k, item in enumerate(_list_of_objects(owner, field, sub.get(field), problems)):
                if item.get("name") is not None and not isinstance(item.get("name"), str):
                    problems.append(f"{owner}: {field}[{k}].name must be a string, got {_kind(item.get('name'))}")
                if item.get("type") is not None and not isinstance(item.get("type"), str):
                    problems.append(f"{owner}: {field}[{k}].type must be a string, got {_kind(item.get('type'))}")
    return problems


def api_shape_problems(prompt: dict) -> list[str]:
    """Every structural problem of an API prompt (``{node_id: {"class_type", "inputs", "_meta"}}``)."""
    problems: list[str] = []
    if len(prompt) > MAX_NODES:
        return [f"the prompt has {len(prompt)} nodes, more than the limit of {MAX_NODES}"]
    for node_id, node in prompt.items():
        where = f"node {node_id}"
        if not isinstance(node, dict):
            problems.append(f"{where}: expected an object with 'class_type' and 'inputs', got {_kind(node)}")
            continue
        if not isinstance(node.get("class_type"), str):
            problems.append(f"{where}: 'class_type' must be a string, got {_kind(node.get('class_type'))}")
        if node.get("inputs") is not None and not isinstance(node.get("inputs"), dict):
            problems.append(f"{where}: 'inputs' must be an object of input values, got {_kind(node.get('inputs'))}")
        if node.get("_meta") is not None and not isinstance(node.get("_meta"), dict):
            problems.append(f"{where}: '_meta' must be an object, got {_kind(node.get('_meta'))}")
    return problems
