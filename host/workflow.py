"""Workflow JSON formats: the canvas's UI format and the API ("prompt") format, both ways.

``ui_to_api`` follows the protocol's section 6.3: positional ``widgets_values`` (with the extra
control_after_generate / upload slots), ``widgets_values_named`` when present, converted widgets,
bypassed (mode 4) and muted (mode 2) nodes, Reroute and PrimitiveNode, both link schemas.
Subgraphs are flattened: inner node ids become ``"<outer id>:<inner id>"`` like ComfyUI's.

``api_to_ui`` builds a canvas-loadable graph (version 0.4) from an API graph, laid out on a grid.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

from .registry import NodeRegistry, combo_choices, input_options, input_type_name, is_widget
from .workflow_input import (
    MAX_NODES,
    MAX_SUBGRAPH_DEPTH,
    MAX_WORKFLOW_BYTES,
    WorkflowError,
    api_shape_problems,
    check_json_tree,
    parse_json_text,
    ui_shape_problems,
)

VIRTUAL_TYPES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize", "increment-wrap")
MODE_MUTED = 2
MODE_BYPASS = 4
_PASSTHROUGH = "__passthrough__"


__all__ = ["WorkflowError", "load_workflow", "ui_to_api", "api_to_ui", "normalize_api", "convert_file"]
_ASCII_DIGITS = re.compile(r"[0-9]+")


# --------------------------------------------------------------------------- format detection


def detect_format(data: Any) -> str:
    """``"ui"`` for a canvas graph (has a ``nodes`` array), ``"api"`` for a prompt (or ``{"prompt": ...}``)."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return "ui"
    inner = data.get("prompt") if isinstance(data, dict) and isinstance(data.get("prompt"), dict) else data
    if isinstance(inner, dict) and inner and all(isinstance(v, dict) and "class_type" in v for v in inner.values()):
        return "api"
    if isinstance(inner, dict) and not inner:
        return "api"
    raise WorkflowError(
        "not a workflow: expected a UI graph (with a 'nodes' array) or an API prompt "
        "(an object of nodes that each have a 'class_type')"
    )


def unwrap_api(data: Any) -> Any:
    """The API graph itself from an API graph or a ``{"prompt": {...}}`` request body."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "class_type" not in data.get("prompt", {}):
        inner = data["prompt"]
        if all(isinstance(v, dict) and "class_type" in v for v in inner.values()):
            return inner
    return data


def unwrap_value(value: Any) -> Any:
    """Unwrap a ``{"__value__": [...]}`` literal (how the canvas sends array literals)."""
    if isinstance(value, dict) and "__value__" in value:
        return value["__value__"]
    return value


def is_link(value: Any) -> bool:
    """True for an API-format link ``[origin_id, output_index]``."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def normalize_api(data: Any) -> dict:
    """A copy of an API graph with string ids, string link origins and ``__value__`` literals unwrapped."""
    prompt = unwrap_api(data)
    if not isinstance(prompt, dict):
        raise WorkflowError("an API prompt must be a JSON object of nodes")
    check_json_tree(prompt, "prompt")
    problems = api_shape_problems(prompt)
    if problems:
        raise WorkflowError(problems)
    out = {}
    for node_id, node in prompt.items():
        node = copy.deepcopy(node)
        inputs = {}
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value):
                inputs[name] = [str(value[0]), value[1]]
            else:
                inputs[name] = unwrap_value(value)
        node["inputs"] = inputs
        out[str(node_id)] = node
    return out


MAX_PNG_BYTES = 512 * 1024 * 1024  # a PNG is read whole to find its text chunks
MEDIA_SUFFIXES = (".png", ".mp4", ".mov", ".webm", ".mkv")


def read_embedded_workflow(path: str | Path) -> Any:
    """The graph embedded in a PNG or video file like ComfyUI embeds it (``workflow`` preferred, else ``prompt``)."""
    path = Path(path)
    texts = _media_texts(path)
    texts = {str(k).lower(): v for k, v in texts.items()}  # Matroska tags come back upper-case
    for key in ("workflow", "prompt"):
        if texts.get(key):
            return parse_json_text(texts[key], f"{path}: the embedded '{key}'")
    raise WorkflowError(f"{path}: no embedded 'workflow' or 'prompt' metadata")


def _media_texts(path: Path) -> dict:
    """The text metadata of a PNG or a video container; WorkflowError when the file is not one."""
    if path.suffix.lower() == ".png":
        if path.stat().st_size > MAX_PNG_BYTES:
            raise WorkflowError(f"{path}: larger than {MAX_PNG_BYTES} bytes; not read for an embedded workflow")
        import struct
        import zlib

        from ..pipelines.video.png import read_png_text

        try:
            return read_png_text(path.read_bytes())
        except (ValueError, struct.error, zlib.error, IndexError) as exc:
            raise WorkflowError(f"{path}: not a readable PNG ({exc})") from None
    import av

    try:
        with av.open(str(path)) as container:
            texts = dict(container.metadata)
            for stream in container.streams:
                texts.update({k: v for k, v in stream.metadata.items() if k not in texts})
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"{path}: not a readable video ({exc})") from None
    return texts


def read_workflow_data(source: "str | Path | bytes | dict") -> Any:
    """The parsed, limit-checked JSON of a workflow path (JSON, PNG or video), JSON text/bytes or object."""
    if isinstance(source, (bytes, bytearray)):
        return parse_json_text(bytes(source), "workflow")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return parse_json_text(source, "workflow")
    if not isinstance(source, (str, Path)):
        check_json_tree(source, "workflow")
        return source
    path = Path(source)
    try:
        if not path.is_file():
            raise WorkflowError(f"workflow file not found: {source}" + (" (it is a folder)" if path.is_dir() else ""))
        if path.suffix.lower() in MEDIA_SUFFIXES:
            return read_embedded_workflow(path)
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            raise WorkflowError(f"{source}: larger than the limit of {MAX_WORKFLOW_BYTES} bytes")
        return parse_json_text(path.read_bytes(), str(source))
    except OSError as exc:
        raise WorkflowError(f"{source}: cannot be read ({exc.strerror or exc})") from None


def load_workflow(source: "str | Path | bytes | dict", registry: NodeRegistry) -> "tuple[dict, dict | None]":
    """``(api_prompt, ui_graph_or_None)`` from a path (JSON, or PNG/video with an embedded graph), JSON text
    or bytes, or an already parsed object. Any input gives a workflow or a WorkflowError."""
    data = read_workflow_data(source)
    if detect_format(data) == "ui":
        return ui_to_api(data, registry), data
    ui = None
    if isinstance(data, dict) and isinstance(data.get("extra_data"), dict):  # a saved POST /prompt body
        pnginfo = data["extra_data"].get("extra_pnginfo")
        ui = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return normalize_api(data), ui if isinstance(ui, dict) and isinstance(ui.get("nodes"), list) else None


# --------------------------------------------------------------------------- UI -> API


def _normalize_links(links):
    """``{link_id: (origin_id, origin_slot, target_id, target_slot, type)}`` from either link schema."""
    out = {}
    for link in links or []:
        if isinstance(link, dict):
            out[link["id"]] = (
                link["origin_id"],
                link["origin_slot"],
                link["target_id"],
                link["target_slot"],
                link.get("type"),
            )
        elif isinstance(link, (list, tuple)) and len(link) >= 5:
            out[link[0]] = (link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else None)
        else:
            raise WorkflowError(f"unreadable link entry {link!r}")
    return out


def _graph_links(graph):
    """The links of a graph, in the 0.4 (``links``) or schema-1 layout."""
    return _normalize_links(graph.get("links"))


def _flat_inputs(node, links, prefix):
    """A node's saved inputs with their link origin resolved to a global id (or None)."""
    result = []
    for inp in node.get("inputs") or []:
        link = links.get(inp.get("link")) if inp.get("link") is not None else None
        source = (prefix + str(link[0]), int(link[1])) if link is not None else None
        widget = inp.get("widget")
        result.append(
            {
                "name": inp.get("name"),
                "type": inp.get("type", "*"),
                "widget": widget.get("name") if isinstance(widget, dict) else None,
                "source": source,
            }
        )
    return result


def _flatten(graph):
    """All nodes of the graph, subgraph instances expanded, as ``{global_id: flat_node}``."""
    defs = {d["id"]: d for d in ((graph.get("definitions") or {}).get("subgraphs") or [])}
    flat: dict = {}
    _add_level(graph.get("nodes") or [], _graph_links(graph), "", defs, flat, ())
    return flat


def _count_node(flat, gid):
    """Refuse a graph that expands past ``MAX_NODES`` nodes (nested subgraphs multiply)."""
    if len(flat) >= MAX_NODES:
        raise WorkflowError(
            f"node {gid}: the graph expands to more than the limit of {MAX_NODES} nodes (subgraphs are expanded)"
        )


def _add_level(nodes, links, prefix, defs, flat, stack):
    """Add one graph level to ``flat``; a subgraph instance becomes pass-through nodes around its inner nodes."""
    for node in nodes:
        gid = prefix + str(node["id"])
        _count_node(flat, gid)
        entry = {
            "id": gid,
            "type": node.get("type"),
            "mode": node.get("mode", 0) or 0,
            "title": node.get("title"),
            "inputs": _flat_inputs(node, links, prefix),
            "outputs": [o.get("type", "*") for o in node.get("outputs") or []],
            "widgets_values": node.get("widgets_values"),
            "widgets_values_named": node.get("widgets_values_named"),
        }
        definition = defs.get(node.get("type"))
        if definition is None or entry["mode"] in (MODE_MUTED, MODE_BYPASS):
            flat[gid] = entry
            continue
        if definition["id"] in stack:
            raise WorkflowError(f"node {gid}: subgraph {definition.get('name', definition['id'])} contains itself")
        if len(stack) >= MAX_SUBGRAPH_DEPTH:
            raise WorkflowError(f"node {gid}: subgraphs nested deeper than the limit of {MAX_SUBGRAPH_DEPTH} levels")
        inner_prefix = gid + ":"
        inner_links = _graph_links(definition)
        by_name = {i["name"]: i for i in entry["inputs"]}
        promoted = _promoted_values(node, entry["inputs"])
        side_in = []
        for k, sub_input in enumerate(definition.get("inputs") or []):
            match = by_name.get(sub_input.get("name"))
            if match is None and k < len(entry["inputs"]):
                match = entry["inputs"][k]
            side = {
                "name": sub_input.get("name"),
                "type": sub_input.get("type", "*"),
                "widget": None,
                "source": match["source"] if match else None,
            }
            if match is not None and match["source"] is None and match["name"] in promoted:
                side["value"] = promoted[match["name"]]
            side_in.append(side)
        _count_node(flat, inner_prefix + "-10")
        flat[inner_prefix + "-10"] = {
            "id": inner_prefix + "-10",
            "type": _PASSTHROUGH,
            "mode": 0,
            "inputs": side_in,
            "outputs": [i["type"] for i in side_in],
        }
        side_out = [
            {"name": o.get("name"), "type": o.get("type", "*"), "widget": None, "source": None}
            for o in definition.get("outputs") or []
        ]
        for origin, origin_slot, target, target_slot, _ in inner_links.values():
            if str(target) == "-20" and 0 <= target_slot < len(side_out):
                side_out[target_slot]["source"] = (inner_prefix + str(origin), int(origin_slot))
        flat[gid] = {
            "id": gid,
            "type": _PASSTHROUGH,
            "mode": 0,
            "inputs": side_out,
            "outputs": [o["type"] for o in side_out],
        }
        _add_level(definition.get("nodes") or [], inner_links, inner_prefix, defs, flat, stack + (definition["id"],))


def _promoted_values(node, inputs):
    """Values of a subgraph instance's own widgets (inputs promoted to widgets), by input name."""
    names = [i["widget"] for i in inputs if i["widget"]]
    named = node.get("widgets_values_named")
    values = node.get("widgets_values")
    if isinstance(named, dict):
        return {n: named[n] for n in names if n in named}
    if isinstance(values, dict):
        return {n: values[n] for n in names if n in values}
    return dict(zip(names, values or []))


def _types_compatible(a, b):
    """Socket type compatibility: equal, ``*`` on either side, or comma-separated sets that intersect."""
    a, b = str(a or "*"), str(b or "*")
    if a == "*" or b == "*" or a == b:
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def _bypass_input(node, slot):
    """The input a bypassed node passes through for output ``slot`` (protocol 6.3 step 5)."""
    out_type = node["outputs"][slot] if slot < len(node["outputs"]) else "*"
    linked = [inp for inp in node["inputs"] if inp["source"] is not None]
    inputs = node["inputs"]
    if slot < len(inputs) and inputs[slot]["source"] is not None and _types_compatible(inputs[slot]["type"], out_type):
        return inputs[slot]
    for inp in linked:
        if inp["type"] == out_type:
            return inp
    for inp in linked:
        if _types_compatible(inp["type"], out_type):
            return inp
    return None


def _resolve(flat, source):
    """Follow a link origin through reroutes, bypassed nodes and subgraph borders (iteratively: a chain of
    any length is fine).

    Returns ``("link", node_id, slot)``, ``("value", v)`` for a PrimitiveNode, or None when the
    origin was dropped (muted, missing, or a bypassed node with nothing to pass through).
    """
    seen = set()
    while source is not None:
        gid, slot = source
        if source in seen:
            raise WorkflowError(f"node {gid}: reroutes or bypassed nodes form a loop")
        seen.add(source)
        node = flat.get(gid)
        if node is None:
            return None
        kind = node["type"]
        if kind in (_PASSTHROUGH, "Reroute"):
            index = 0 if kind == "Reroute" else slot
            inp = node["inputs"][index] if 0 <= index < len(node["inputs"]) else None
            if inp is not None and inp["source"] is None and "value" in inp:
                return ("value", inp["value"])
        elif kind == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return ("value", values[0]) if isinstance(values, list) and values else None
        elif kind in ("Note", "MarkdownNote") or node["mode"] == MODE_MUTED:
            return None
        elif node["mode"] == MODE_BYPASS:
            inp = _bypass_input(node, slot)
        else:
            return ("link", gid, slot)
        source = inp["source"] if inp else None
    return None


def _json_type_fits(value, spec):
    """Cheap guard against shifted widgets: can ``value``'s JSON type be this input's value?"""
    kind = input_type_name(spec)
    if kind in ("INT", "FLOAT"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "STRING":
        return isinstance(value, str)
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind == "COMBO":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return True


def _widget_values(node, registry, types, problems):
    """``{input_name: value}`` read from a node's widgets (named values preferred, else positional)."""
    class_type = node["type"]
    layout = registry.widget_layout(class_type, types)
    specs = {name: spec for name, spec, _ in registry.ordered_inputs(class_type, types)}
    named = node.get("widgets_values_named")
    positional = node.get("widgets_values")
    if not isinstance(named, dict) and isinstance(positional, dict):
        named = positional
    values = {}
    where = f"node {node['id']} ({class_type})"
    if isinstance(named, dict):
        for slot in layout:
            if slot.kind == "input" and slot.name in named:
                values[slot.name] = named[slot.name]
    else:
        positional = positional or []
        for index, slot in enumerate(layout[: len(positional)]):
            value = positional[index]
            if slot.kind == "input":
                if not _json_type_fits(value, specs[slot.name]):
                    problems.append(
                        f"{where}: widgets_values[{index}] = {value!r} cannot be input '{slot.name}' "
                        f"({input_type_name(specs[slot.name])}); the saved widgets do not match this node's definition"
                    )
                values[slot.name] = value
            elif slot.kind == "control" and value not in CONTROL_VALUES:
                problems.append(
                    f"{where}: widgets_values[{index}] = {value!r} should be the control_after_generate mode of "
                    f"'{slot.name}' (one of {', '.join(CONTROL_VALUES)}); the saved widgets do not match this node's definition"
                )
    for slot in layout:
        if slot.kind == "input" and slot.name not in values:
            options = input_options(specs[slot.name])
            if "default" in options:
                values[slot.name] = options["default"]
    return values


def _wrap_literal(value):
    """Array literals travel as ``{"__value__": [...]}`` so they cannot be taken for links."""
    return {"__value__": list(value)} if isinstance(value, (list, tuple)) else value


def ui_to_api(ui_graph: dict, registry: NodeRegistry) -> dict:
    """Convert a canvas (UI format) graph to an API prompt; raises WorkflowError listing all problems."""
    if detect_format(ui_graph) != "ui":
        raise WorkflowError("ui_to_api expects a UI-format graph (an object with a 'nodes' array)")
    check_json_tree(ui_graph, "workflow")
    shape = ui_shape_problems(ui_graph)
    if shape:
        raise WorkflowError(shape)
    flat = _flatten(ui_graph)
    problems = []
    prompt = {}
    for gid, node in flat.items():
        kind = node["type"]
        if kind == _PASSTHROUGH or kind in VIRTUAL_TYPES or node["mode"] in (MODE_MUTED, MODE_BYPASS):
            continue
        if isinstance(kind, str) and kind.startswith("workflow>"):
            problems.append(f"node {gid}: legacy group node {kind!r} is not supported; convert it to a subgraph")
            continue
        inputs = {}
        known = kind in registry
        if known:
            try:
                types = registry.input_types(kind)
            except Exception as exc:  # reported, so the other problems are still listed
                problems.append(f"node {gid} ({kind}): INPUT_TYPES raised {type(exc).__name__}: {exc}")
                continue
            inputs.update(_widget_values(node, registry, types, problems))
        for inp in node["inputs"]:
            if inp["source"] is None:
                continue
            name = inp["widget"] or inp["name"]
            origin = _resolve(flat, inp["source"])
            if origin is None:
                continue
            if origin[0] == "value":
                inputs[name] = origin[1]
            else:
                inputs[name] = [origin[1], origin[2]]
        inputs = {k: (v if is_link(v) else _wrap_literal(v)) for k, v in inputs.items()}
        title = node.get("title") or (registry.display_name(kind) if known else kind)
        prompt[gid] = {"inputs": inputs, "class_type": kind, "_meta": {"title": title}}
    if problems:
        raise WorkflowError(problems)
    return prompt


# --------------------------------------------------------------------------- API -> UI


def _numeric_ids(prompt):
    """Map API node ids to the integer ids a 0.4 canvas graph needs (numeric ids are kept)."""
    mapping = {}
    taken = {int(i) for i in prompt if _ASCII_DIGITS.fullmatch(str(i))}
    next_id = max(taken, default=0) + 1
    for node_id in prompt:
        if _ASCII_DIGITS.fullmatch(str(node_id)):
            mapping[node_id] = int(node_id)
        else:
            mapping[node_id] = next_id
            next_id += 1
    return mapping


def _depths(prompt):
    """Column of each node for the grid layout: longest chain of links leading to it."""
    depth: dict = {}
    for start in prompt:
        # Iterative depth-first walk: a chain of thousands of nodes must not hit the recursion limit.
        work, on_path = [start], set()
        while work:
            node_id = work[-1]
            if node_id in depth:
                work.pop()
                continue
            on_path.add(node_id)
            parents = [v[0] for v in prompt[node_id]["inputs"].values() if is_link(v) and v[0] in prompt]
            pending = [p for p in parents if p not in depth and p not in on_path]
            if pending:
                work.extend(pending)
                continue
            depth[node_id] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
            on_path.discard(node_id)
            work.pop()
    return depth


def _placeholder(spec):
    """The value a linked (converted) widget keeps in its slot: its default, else a neutral value."""
    options = input_options(spec)
    if "default" in options:
        return options["default"]
    kind = input_type_name(spec)
    if kind == "COMBO":
        choices = combo_choices(spec)
        return choices[0] if choices else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


def _output_type(registry, class_type, slot):
    """The socket type of output ``slot`` (a combo output is ``COMBO``)."""
    outputs = registry.return_types(class_type)
    if slot >= len(outputs):
        return "*"
    return "COMBO" if isinstance(outputs[slot], (list, tuple)) else outputs[slot]


def api_to_ui(api_prompt: dict, registry: NodeRegistry) -> dict:
    """A canvas-loadable UI graph (version 0.4) for an API prompt, nodes placed on a grid by depth."""
    prompt = normalize_api(api_prompt)
    problems = [
        f"node {i}: unknown node class {n.get('class_type')!r}"
        for i, n in prompt.items()
        if n.get("class_type") not in registry
    ]
    if problems:
        raise WorkflowError(problems)
    ids = _numeric_ids(prompt)
    depth = _depths(prompt)
    order = sorted(prompt, key=lambda i: (depth[i], ids[i]))
    rows: dict = {}
    nodes: list = []
    links: list = []
    out_links: dict = {}
    pending: list = []  # (target ui node, input index, origin api id, origin slot)
    for position, node_id in enumerate(order):
        api_node = prompt[node_id]
        kind = api_node["class_type"]
        types = registry.input_types(kind)
        ordered = registry.ordered_inputs(kind, types)
        specs = {name: spec for name, spec, _ in ordered}
        unknown = [n for n in api_node["inputs"] if n not in specs and n not in types["hidden"]]
        if unknown:
            problems.append(f"node {node_id} ({kind}): inputs {unknown} are not inputs of this class")
        inputs_ui: list = []
        for name, spec, section in [x for x in ordered if not is_widget(x[1])] + [
            x for x in ordered if is_widget(x[1])
        ]:
            entry: dict[str, Any] = {"name": name, "localized_name": name, "type": input_type_name(spec), "link": None}
            if is_widget(spec):
                entry["widget"] = {"name": name}
            elif section == "optional":
                entry["shape"] = 7
            value = api_node["inputs"].get(name)
            if is_link(value):
                pending.append((node_id, len(inputs_ui), value[0], value[1]))
            elif name in api_node["inputs"] and not is_widget(spec):
                problems.append(f"node {node_id} ({kind}): input '{name}' takes a link, got the literal {value!r}")
            inputs_ui.append(entry)
        widgets = []
        for slot in registry.widget_layout(kind, types):
            if slot.kind == "input":
                value = api_node["inputs"].get(slot.name)
                value = _placeholder(specs[slot.name]) if value is None or is_link(value) else value
            else:
                value = {"control": "fixed", "filter": "", "upload": "image"}[slot.kind]
            widgets.append(value)
        names = registry.node_info(kind)["output_name"]
        outputs_ui = [
            {
                "name": names[i] if i < len(names) else str(i),
                "localized_name": names[i] if i < len(names) else str(i),
                "type": _output_type(registry, kind, i),
                "links": [],
            }
            for i in range(len(registry.return_types(kind)))
        ]
        column = depth[node_id]
        row = rows.get(column, 0)
        height = 60 + 24 * (len(inputs_ui) + len(outputs_ui))
        rows[column] = row + height + 40
        ui_node = {
            "id": ids[node_id],
            "type": kind,
            "pos": [100 + 400 * column, 100 + row],
            "size": [340, height],
            "flags": {},
            "order": position,
            "mode": 0,
            "inputs": inputs_ui,
            "outputs": outputs_ui,
            "properties": {"Node name for S&R": kind},
            "widgets_values": widgets,
        }
        title = (api_node.get("_meta") or {}).get("title")
        if title:
            ui_node["title"] = title
        nodes.append(ui_node)
        out_links[node_id] = outputs_ui
    by_api_id = {node_id: nodes[i] for i, node_id in enumerate(order)}
    for target_id, input_index, origin_id, origin_slot in pending:
        if origin_id not in prompt:
            problems.append(f"node {target_id}: input links to node {origin_id}, which is not in the prompt")
            continue
        outputs = out_links[origin_id]
        if origin_slot >= len(outputs):
            problems.append(
                f"node {target_id}: input links to output {origin_slot} of node {origin_id}, "
                f"which has {len(outputs)} outputs"
            )
            continue
        link_id = len(links) + 1
        link_type = outputs[origin_slot]["type"]
        links.append([link_id, ids[origin_id], origin_slot, ids[target_id], input_index, link_type])
        outputs[origin_slot]["links"].append(link_id)
        by_api_id[target_id]["inputs"][input_index]["link"] = link_id
    if problems:
        raise WorkflowError(problems)
    return {
        "id": str(uuid.uuid4()),
        "revision": 0,
        "last_node_id": max(ids.values(), default=0),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }


def convert_file(source: str | Path, destination: str | Path, to: str, registry: NodeRegistry) -> Path:
    """Convert a workflow file to ``to`` (``"ui"`` or ``"api"``) and write it atomically."""
    if to not in ("ui", "api"):
        raise WorkflowError(f"--to must be 'ui' or 'api', got {to!r}")
    api, ui = load_workflow(source, registry)
    result = (ui if ui is not None else api_to_ui(api, registry)) if to == "ui" else api
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    tmp.replace(destination)
    return destination
