"""Where model files and the input/output/temp folders are.

Inside ComfyUI the lookups go through ``folder_paths``. Standalone, model folders are
``$FRAMEFOLD_MODELS/<kind>`` (several roots may be joined with ``os.pathsep``) or ``./models/<kind>``,
and the package's embedded default model (``default_model/<kind>/``) is always listed first.
"""

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..pipelines.paths import PathRefused, contained_path
from ._comfy_paths import comfy_folder_names

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = PACKAGE_DIR / "default_model"

MODEL_KINDS = (
    "checkpoints",
    "vae",
    "text_encoders",
    "animatediff_models",
    "animatediff_motion_lora",
    "controlnet",
    "upscale_models",
    "frame_interpolation",
)
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")

_dirs: Dict[str, Optional[Path]] = {"output": None, "input": None, "temp": None, "user": None}


def _comfy_folder_paths() -> Any:
    """ComfyUI's folder_paths module when running inside ComfyUI, else None."""
    try:
        import folder_paths  # type: ignore

        return folder_paths
    except ImportError:
        return None


def set_io_dirs(**dirs: Optional[Union[str, Path]]) -> None:
    """Override the output/input/temp/user folders (the host does this from its command line)."""
    for name, value in dirs.items():
        if name not in _dirs:
            raise KeyError(f"unknown folder {name!r}; known: {sorted(_dirs)}")
        _dirs[name] = Path(value) if value is not None else None


def io_dir(name: str, create: bool = True) -> Path:
    """The output, input, temp or user folder; created unless ``create`` is False (listing only)."""
    fp = _comfy_folder_paths()
    chosen = _dirs.get(name)
    if chosen is not None:
        path = chosen
    elif fp is not None and name in ("output", "input", "temp", "user"):
        path = Path(getattr(fp, f"get_{name}_directory")())
    else:
        path = Path.cwd() / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def model_search_dirs(kind: str) -> List[Path]:
    """The folders searched for model files of ``kind``, in lookup order."""
    if kind not in MODEL_KINDS:
        raise KeyError(f"unknown model folder {kind!r}; known: {', '.join(MODEL_KINDS)}")
    dirs = [EMBEDDED_DIR / kind]
    fp = _comfy_folder_paths()
    if fp is not None:
        for name in comfy_folder_names(kind):
            try:
                dirs += [Path(p) for p in fp.get_folder_paths(name) if Path(p) not in dirs]
            except Exception:  # folder name unknown to this ComfyUI version
                pass
    else:
        roots = os.environ.get("FRAMEFOLD_MODELS")
        for root in roots.split(os.pathsep) if roots else [str(Path.cwd() / "models")]:
            dirs.append(Path(root) / kind)
    return dirs


def list_models(kind: str) -> List[str]:
    """Names (relative paths with '/') of the model files of ``kind``; embedded ones come first."""
    names = []
    for base in model_search_dirs(kind):
        if not base.is_dir():
            continue
        found = sorted(
            p.relative_to(base).as_posix()
            for p in base.rglob("*")
            if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS
        )
        names += [n for n in found if n not in names]
    return names


def resolve_model(kind: str, name: str) -> Path:
    """Full path of model file ``name`` of ``kind``; a clear error lists the folders searched."""
    searched = model_search_dirs(kind)
    for base in searched:
        try:
            candidate = contained_path(base, name, links_may_leave=True) if name else None
        except PathRefused:
            candidate = None
        if candidate is None:
            raise FileNotFoundError(f"model name {name!r} must be a relative path inside a '{kind}' folder")
        if candidate.is_file():
            return candidate
    listing = "\n  ".join(str(d) for d in searched)
    raise FileNotFoundError(f"{kind} file {name!r} not found. Folders searched:\n  {listing}")
