"""The ``.latent`` files of the input and output folders: new names, the list a node offers, and resolving a name.

Files are named like ComfyUI's Save Latent (``output/latents/<prefix>_00001_.latent`` by default); names from the output folder carry an ``" [output]"`` suffix.
"""

import os
from pathlib import Path
from typing import List

from ..pipelines.loading.files import LATENT_EXTENSION
from ..pipelines.paths import PathRefused, contained_path
from ._errors import NodeInputError
from ._folders import io_dir

_FOLDER_TAGS = {"input": "", "output": " [output]"}


def unique_latent_path(node_class: str, filename_prefix: str) -> Path:
    """A new ``output/<subfolders>/<name>_<n>_.latent`` path for ``filename_prefix`` ``[<subfolders>/]<name>``, with
    ComfyUI's Save Latent naming: ``n`` (5 digits) is one above the highest number already used for ``name``."""
    output = io_dir("output")
    prefix = filename_prefix.strip().replace("\\", "/")
    subfolder, _, name = prefix.rpartition("/")
    try:
        folder = contained_path(output, subfolder) if subfolder else output
    except PathRefused:
        folder = None
    if folder is None or not name or name.startswith("."):
        raise NodeInputError(
            node_class,
            "filename_prefix",
            f"a file name prefix inside the output folder, e.g. 'latents/x', got {prefix!r}",
        )
    folder.mkdir(parents=True, exist_ok=True)
    used = [0]
    for existing in os.listdir(folder):
        head, digits = existing[: len(name) + 1], existing[len(name) + 1 :].split("_")[0]
        if head == f"{name}_" and digits.isdigit():
            used.append(int(digits))
    return folder / f"{name}_{max(used) + 1:05d}_{LATENT_EXTENSION}"


def list_latent_files() -> List[str]:
    """'.latent' files of the input folder (plain names) and the output folder (' [output]' suffix)."""
    names = []
    for folder, tag in _FOLDER_TAGS.items():
        base = io_dir(folder, create=False)
        found = []
        for root, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.endswith(LATENT_EXTENSION) and not name.startswith("."):
                    found.append((Path(root) / name).relative_to(base).as_posix() + tag)
        names += sorted(found)
    return names


def resolve_latent_file(node_class: str, name: str) -> Path:
    """Full path of a name from :func:`list_latent_files`, refusing paths outside the folder."""
    folder = "input"
    if name.endswith(" [output]"):
        name, folder = name[: -len(" [output]")], "output"
    base = io_dir(folder)
    try:
        path = contained_path(base, name) if name else None
    except PathRefused:
        path = None
    if path is None:
        raise NodeInputError(node_class, "latent", f"a .latent file inside the {folder} folder, got {name!r}")
    if not path.is_file():
        raise NodeInputError(node_class, "latent", f"an existing .latent file in {base}, got {name!r}")
    return path
