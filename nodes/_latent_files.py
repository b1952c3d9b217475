"""The ``.latent`` files of the input and output folders: saving under a new numbered name, and the list a node offers.

Files are written under ``output/latents/``; names from the output folder carry an ``" [output]"`` suffix, which
``nodes/_io_files.py`` ``resolve_io_file`` reads back.
"""

from pathlib import Path
from typing import List

import torch

from ..pipelines.loading.files import LATENT_EXTENSION, save_latent_file
from ..pipelines.video.naming import claim_numbered_name, temp_name
from ._folders import io_dir
from ._io_files import list_io_files

LATENT_SUBFOLDER = "latents"
LATENT_KIND = ".latent file"  # what a latent input expects, for resolve_io_file's messages
_FOLDER_TAGS = {"input": "", "output": " [output]"}


def save_numbered_latent(prefix: str, samples: torch.Tensor) -> Path:
    """Write ``samples`` to the next free ``output/latents/<prefix>_<00001>_.latent`` (ComfyUI's Save Latent names).

    The file is written completely under a hidden temp name, then takes its number with an atomic create
    (``pipelines/video/naming.py`` ``claim_numbered_name``), so concurrent saves never overwrite each other.
    """
    folder = io_dir("output") / LATENT_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / temp_name(prefix + LATENT_EXTENSION, LATENT_EXTENSION)
    try:
        save_latent_file(tmp, samples)
        return claim_numbered_name(tmp, folder, prefix, LATENT_EXTENSION)
    finally:
        tmp.unlink(missing_ok=True)


def list_latent_files() -> List[str]:
    """'.latent' files of the input folder (plain names) and the output folder (' [output]' suffix)."""
    names: List[str] = []
    for folder, tag in _FOLDER_TAGS.items():
        names += list_io_files(folder, lambda name: name.endswith(LATENT_EXTENSION), tag)
    return names
