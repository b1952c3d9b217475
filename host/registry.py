"""The node registry: node classes by name, rendered as ComfyUI's ``/object_info`` JSON.

The registry also knows how the canvas lays out a node's widgets (``widget_layout``), which the
workflow converter needs to read positional ``widgets_values``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")


@dataclass(frozen=True)
class WidgetSlot:
    """One value slot of ``widgets_values``: an input's value, or an extra value the canvas adds.

    ``kind`` is ``"input"`` (the value of input ``name``), ``"control"`` (control_after_generate of
    input ``name``), ``"filter"`` (the combo control's filter string) or ``"upload"`` (upload button).
    """

    kind: str
    name: str


def input_type_name(spec: Any) -> str:
    """The type of an input spec ``[TYPE, {options}]``: a list of options is reported as ``"COMBO"``."""
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(kind, (list, tuple)):
        return "COMBO"
    return str(kind)


def input_options(spec: Any) -> dict:
    """The options dict of an input spec (empty when absent)."""
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def combo_choices(spec: Any) -> list:
    """The allowed values of a combo input spec (old list style or ``COMBO`` with ``options``)."""
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(kind, (list, tuple)):
        return list(kind)
    return list(input_options(spec).get("options", []))


def is_widget(spec: Any) -> bool:
    """True when the canvas shows the input as a widget (not a socket-only input)."""
    if input_options(spec).get("forceInput"):
        return False
    return input_type_name(spec) in WIDGET_TYPES


def has_control_after_generate(name: str, spec: Any) -> bool:
    """Whether the canvas adds a control_after_generate value after this widget (protocol 6.3)."""
    kind = input_type_name(spec)
    flag = input_options(spec).get("control_after_generate")
    if kind == "INT":
        if flag is None:
            return name in ("seed", "noise_seed")
        return bool(flag)
    if kind in ("FLOAT", "COMBO"):
        return bool(flag)
    return False


class NodeRegistry:
    """Node classes by class name, with their display names and the pack name ComfyUI would use."""

    def __init__(self, class_mappings, display_names=None, pack_name="framefold"):
        self._classes = dict(class_mappings)
        self._display = dict(display_names or {})
        self.pack_name = pack_name

    def get(self, class_type: str) -> Any:
        """The node class registered as ``class_type``, or None."""
        return self._classes.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and class_type in self._classes

    def names(self) -> list[str]:
        """All registered class names, sorted."""
        return sorted(self._classes)

    def display_name(self, class_type: str) -> str:
        """The readable name of a class (falls back to the class name)."""
        return self._display.get(class_type, class_type)

    def input_types(self, class_type: str) -> dict:
        """``INPUT_TYPES()`` of a class, evaluated now (upload combos re-list their folder)."""
        cls = self._classes[class_type]
        types = cls.INPUT_TYPES() or {}
        return {
            "required": dict(types.get("required", {}) or {}),
            "optional": dict(types.get("optional", {}) or {}),
            "hidden": dict(types.get("hidden", {}) or {}),
        }

    def ordered_inputs(self, class_type: str, input_types: dict | None = None) -> list[tuple[str, Any, str]]:
        """``[(name, spec, section)]`` in canvas order: required, then optional (hidden excluded)."""
        types = input_types or self.input_types(class_type)
        return [(n, s, sec) for sec in ("required", "optional") for n, s in types[sec].items()]

    def widget_layout(self, class_type: str, input_types: dict | None = None) -> list[WidgetSlot]:
        """The slots of ``widgets_values`` in the order the canvas creates widgets (protocol 6.3)."""
        types = input_types or self.input_types(class_type)
        slots = []
        upload_added = False
        for name, spec, _section in self.ordered_inputs(class_type, types):
            if not is_widget(spec):
                continue
            slots.append(WidgetSlot("input", name))
            if has_control_after_generate(name, spec):
                slots.append(WidgetSlot("control", name))
                if input_type_name(spec) == "COMBO":
                    slots.append(WidgetSlot("filter", name))
        for name, spec in types["required"].items():
            opts = input_options(spec)
            if input_type_name(spec) == "COMBO" and any(opts.get(f) for f in UPLOAD_FLAGS):
                if not upload_added:
                    slots.append(WidgetSlot("upload", name))
                    upload_added = True
        return slots

    def return_types(self, class_type: str) -> list:
        """``RETURN_TYPES`` of a class as a list."""
        return list(getattr(self._classes[class_type], "RETURN_TYPES", ()) or ())

    def is_output_node(self, class_type: str) -> bool:
        """True when the class is an output node (``OUTPUT_NODE``)."""
        return bool(getattr(self._classes[class_type], "OUTPUT_NODE", False))

    def node_info(self, class_type: str) -> dict:
        """One node definition exactly as ComfyUI's ``/object_info`` renders a classic V1 node."""
        cls = self._classes[class_type]
        raw = {sec: dict(v or {}) for sec, v in (cls.INPUT_TYPES() or {}).items()}
        raw.setdefault("required", {})
        outputs = self.return_types(class_type)
        info = {
            "input": raw,
            "input_order": {sec: list(v) for sec, v in raw.items()},
            "output": [list(o) if isinstance(o, (list, tuple)) else o for o in outputs],
            "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(outputs)),
            "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs),
            "name": class_type,
            "display_name": self.display_name(class_type),
            "description": getattr(cls, "DESCRIPTION", "") or "",
            "python_module": f"custom_nodes.{self.pack_name}",
            "category": getattr(cls, "CATEGORY", "sd"),
            "output_node": self.is_output_node(class_type),
            "search_aliases": list(getattr(cls, "SEARCH_ALIASES", []) or []),
        }
        if getattr(cls, "INPUT_IS_LIST", False):
            info["is_input_list"] = True
        if hasattr(cls, "OUTPUT_TOOLTIPS"):
            info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
        for attr, key in (
            ("HAS_INTERMEDIATE_OUTPUT", "has_intermediate_output"),
            ("DEPRECATED", "deprecated"),
            ("EXPERIMENTAL", "experimental"),
            ("DEV_ONLY", "dev_only"),
        ):
            if getattr(cls, attr, False):
                info[key] = True
        return info

    def object_info(self) -> dict:
        """All node definitions: ``{class_name: node_info}`` (the ``GET /api/object_info`` body).

        A class whose definition cannot be rendered is left out and logged (as ComfyUI does), so one
        broken node cannot blank the whole canvas.
        """
        info = {}
        for name in self._classes:
            try:
                info[name] = self.node_info(name)
            except Exception:
                log.exception("node class %s: INPUT_TYPES or its attributes failed; left out of object_info", name)
        return info


def default_registry(pack_name: str = "framefold") -> NodeRegistry:
    """The registry of FrameFold's own nodes (``framefold.NODE_CLASS_MAPPINGS``)."""
    from ..nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    return NodeRegistry(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, pack_name=pack_name)
