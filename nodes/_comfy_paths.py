"""ComfyUI ``folder_paths`` registration of the model folders FrameFold reads and core ComfyUI does not define.

The names are the ones the popular packs use (AnimateDiff-Evolved: ``animatediff_models``,
``animatediff_motion_lora``; frame interpolation packs: ``frame_interpolation`` and ``vfi_models``), so one models
folder serves all of them. ComfyUI reads ``extra_model_paths.yaml`` before it imports custom nodes, so an entry made
there exists already: its folders are kept first, the standard ``models/<name>`` folder is added after them, and an
entry without extensions (what ``add_model_folder_path`` creates) gets ComfyUI's model extensions. Core's own entries
(``controlnet``, ``upscale_models``) are never changed.
"""

import os
from typing import Any, Dict, List, Tuple

# FrameFold model kind -> the folder_paths names searched for it (first = the one FrameFold registers as its own).
COMFY_FOLDER_NAMES: Dict[str, Tuple[str, ...]] = {
    "animatediff_models": ("animatediff_models",),
    "animatediff_motion_lora": ("animatediff_motion_lora",),
    "upscale_models": ("upscale_models",),
    "frame_interpolation": ("frame_interpolation", "vfi_models"),
    "controlnet": ("controlnet",),
}


def comfy_folder_names(kind: str) -> Tuple[str, ...]:
    """The ``folder_paths`` names whose folders hold models of FrameFold's ``kind`` (aliases included)."""
    return COMFY_FOLDER_NAMES.get(kind, (kind,))


def register_model_folders(folder_paths: Any) -> List[str]:
    """Register every folder name of :data:`COMFY_FOLDER_NAMES` with ComfyUI's ``folder_paths`` module.

    A missing name gets ``[models_dir/<name>]`` and ComfyUI's model extensions; a name that exists keeps its folders
    (yaml entries first) and only gains what it lacks. Returns the names that were missing.
    """
    table = folder_paths.folder_names_and_paths
    extensions = set(folder_paths.supported_pt_extensions)
    added = []
    for names in COMFY_FOLDER_NAMES.values():
        for name in names:
            default_dir = os.path.join(folder_paths.models_dir, name)
            if name not in table:
                table[name] = ([default_dir], set(extensions))
                added.append(name)
                continue
            paths, exts = table[name]
            if default_dir not in paths:
                paths.append(default_dir)
            if isinstance(exts, set) and not exts:
                exts.update(extensions)
    return added


def register_if_inside_comfyui() -> List[str]:
    """Inside ComfyUI, :func:`register_model_folders` with its ``folder_paths``; elsewhere do nothing."""
    try:
        import folder_paths  # type: ignore
    except ImportError:
        return []
    return register_model_folders(folder_paths)
