"""The ``.latent`` files of the input and output folders: saving under a new numbered name, and the list a node offers.

Files are named like ComfyUI's Save Latent (``output/latents/<prefix>_00001_.latent`` by default); names from the
output folder carry an ``" [output]"`` suffix, which ``nodes/_io_files.py`` ``resolve_io_file`` reads back.
"""

from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..pipelines.loading.files import LATENT_EXTENSION, save_latent_file
from ..pipelines.paths import PathRefused, contained_path
from ..pipelines.video.naming import claim_numbered_name, temp_name
from ._errors import NodeInputError
from ._folders import io_dir
from ._io_files import list_io_files

LATENT_SUBFOLDER = "latents"
LATENT_KIND = ".latent file"  # what a latent input expects, for resolve_io_file's messages
_FOLDER_TAGS = {"input": "", "output": " [output]"}


def save_numbered_latent(
    node_class: str, filename_prefix: str, samples: torch.Tensor, metadata: Optional[Dict[str, str]] = None
) -> Path:
    """Write raw VAE latents to the next free ``output/<subfolders>/<name>_<00001>_.latent`` for ``filename_prefix``
    ``[<subfolders>/]<name>`` (ComfyUI's Save Latent naming); returns the path.

    The prefix must stay inside the output folder (a NodeInputError of ``node_class`` otherwise). The file is
    written completely under a hidden temp name, then takes its number with an atomic create
    (``pipelines/video/naming.py`` ``claim_numbered_name``), so concurrent saves never overwrite each other.
    """
    prefix = filename_prefix.strip().replace("\\", "/")
    subfolder, _, name = prefix.rpartition("/")
    try:
        folder = contained_path(io_dir("output"), subfolder) if subfolder else io_dir("output")
    except PathRefused:
        folder = None
    if folder is None or not name or name.startswith("."):
        raise NodeInputError(
            node_class,
            "filename_prefix",
            f"a file name prefix inside the output folder, e.g. 'latents/x', got {prefix!r}",
        )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / temp_name(name + LATENT_EXTENSION, LATENT_EXTENSION)
    try:
        save_latent_file(tmp, samples, metadata)
        return claim_numbered_name(tmp, folder, name, LATENT_EXTENSION)
    finally:
        tmp.unlink(missing_ok=True)


def list_latent_files() -> List[str]:
    """'.latent' files of the input folder (plain names) and the output folder (' [output]' suffix)."""
    names: List[str] = []
    for folder, tag in _FOLDER_TAGS.items():
        names += list_io_files(folder, lambda name: name.endswith(LATENT_EXTENSION), tag)
    return names
