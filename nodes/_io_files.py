"""Files of the input / output / temp folders that nodes read: listing them, and resolving a chosen name safely.

A name may carry ComfyUI's folder annotation, ``"clip.mp4 [output]"``: the file is then looked up in that folder
(the input folder without one). Every name is resolved inside its folder (``pipelines/paths.py``
``contained_path``), so ``../`` and absolute paths are refused.
"""

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, List, Union

from ..pipelines.paths import PathRefused, contained_path
from ._errors import NodeInputError
from ._folders import io_dir

_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")


def list_io_files(folder: str, accept: Callable[[str], bool], tag: str = "") -> List[str]:
    """Sorted ``sub/dir/name.ext`` names (plus ``tag``) of the files under the ``folder`` io folder whose name
    ``accept`` takes; hidden files and folders are skipped."""
    base = io_dir(folder, create=False)
    names = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and accept(name):
                names.append((Path(root) / name).relative_to(base).as_posix() + tag)
    return sorted(names)


def resolve_io_file(node_class: str, input_name: str, name: str, kind: str) -> Path:
    """Absolute path of an existing file chosen by ``name`` (annotated or not), or a NodeInputError naming
    ``input_name`` that says a ``kind`` (e.g. "video file") was expected."""
    folder = "input"
    match = _ANNOTATION.match(name) if isinstance(name, str) else None
    if match:
        name, folder = match.group(1), match.group(2)
    base = io_dir(folder)
    try:
        path = contained_path(base, name) if isinstance(name, str) and name else None
    except PathRefused:
        path = None
    if path is None:
        raise NodeInputError(node_class, input_name, f"a {kind} inside the {folder} folder, got {name!r}")
    if not path.is_file():
        raise NodeInputError(
            node_class, input_name, f"an existing {kind} in the {folder} folder ({base}), got {name!r}"
        )
    return path


def file_signature(path: Path) -> str:
    """A cheap change marker of a file: size and modification time, hashed."""
    stat = path.stat()
    return hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()


def io_file_verdict(node_class: str, input_name: str, name: str, kind: str) -> Union[bool, str]:
    """A VALIDATE_INPUTS verdict: True when ``name`` resolves (:func:`resolve_io_file`), else the error message."""
    try:
        resolve_io_file(node_class, input_name, name, kind)
    except NodeInputError as e:
        return str(e)
    return True


def io_file_changed(node_class: str, input_name: str, name: str, kind: str) -> Union[str, float]:
    """An IS_CHANGED marker: the file's :func:`file_signature`, or NaN (always re-run) when it does not resolve."""
    try:
        return file_signature(resolve_io_file(node_class, input_name, name, kind))
    except NodeInputError:
        return float("nan")
