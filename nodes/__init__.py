"""ComfyUI node classes, one module per family.

Every module in this package that defines ``NODE_CLASS_MAPPINGS`` is collected here, so adding a
family is adding a file. Inside real ComfyUI each node's FUNCTION is wrapped so library progress
and interrupts reach ComfyUI's progress bar, and the model folders core does not define are registered with
``folder_paths`` (both no-ops elsewhere). Modules starting with ``_`` are helpers, not families.
"""

import importlib
import pkgutil

from ._comfy import wrap_node_class
from ._comfy_paths import register_if_inside_comfyui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def _collect_families() -> None:
    """Import each node family module and merge its mappings, refusing duplicate class names."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f".{info.name}", __name__)
        for name, cls in getattr(module, "NODE_CLASS_MAPPINGS", {}).items():
            if name in NODE_CLASS_MAPPINGS:
                raise RuntimeError(f"FrameFold node class {name!r} is defined twice (in nodes/{info.name}.py)")
            NODE_CLASS_MAPPINGS[name] = wrap_node_class(cls)
        NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}))


register_if_inside_comfyui()
_collect_families()
