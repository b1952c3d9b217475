"""File helpers of the video nodes: input-video names, output prefixes (inside the folder, writable)."""

import hashlib
import os
import re
import time
from pathlib import Path

from ..pipelines.paths import PathRefused, contained_path
from ..pipelines.video import VIDEO_EXTENSIONS
from ._errors import NodeInputError
from ._folders import io_dir

_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")
_DATE_TOKEN = re.compile(r"%date:([^%]+)%")
_DATE_PARTS = {
    "yyyy": "%Y",
    "yy": "%y",
    "MM": "%m",
    "M": "%m",
    "dd": "%d",
    "d": "%d",
    "hh": "%H",
    "h": "%H",
    "mm": "%M",
    "m": "%M",
    "ss": "%S",
    "s": "%S",
}
_NAMED_TOKENS = (("year", "%Y"), ("month", "%m"), ("day", "%d"), ("hour", "%H"), ("minute", "%M"), ("second", "%S"))


def list_input_videos() -> list[str]:
    """Video files under the input folder as 'sub/dir/name.ext' (hidden files and folders skipped)."""
    base = io_dir("input", create=False)
    names = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                names.append((Path(root) / name).relative_to(base).as_posix())
    return sorted(names)


def resolve_input_video(node_class: str, name: str) -> Path:
    """Absolute path of an input-folder video name (an ' [output]'/' [temp]' annotation picks that folder)."""
    folder = "input"
    match = _ANNOTATION.match(name or "") if isinstance(name, str) else None
    if match:
        name, folder = match.group(1), match.group(2)
    base = io_dir(folder)
    try:
        path = contained_path(base, name) if isinstance(name, str) and name else None
    except PathRefused:
        path = None
    if path is None:
        raise NodeInputError(node_class, "video", f"a file name inside the {folder} folder, got {name!r}")
    if not path.is_file():
        raise NodeInputError(
            node_class, "video", f"an existing video file in the {folder} folder ({base}), got {name!r}"
        )
    return path


def expand_date_tokens(prefix: str, now: "time.struct_time | None" = None) -> str:
    """Replace ComfyUI's %date:yyyy-MM-dd% style and %year%/%month%/%day%/%hour%/%minute%/%second% tokens."""
    now = now or time.localtime()

    def date(match: re.Match) -> str:
        fmt = re.sub(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s", lambda m: _DATE_PARTS[m.group(0)], match.group(1))
        return time.strftime(fmt, now)

    prefix = _DATE_TOKEN.sub(date, prefix)
    for token, fmt in _NAMED_TOKENS:
        prefix = prefix.replace(f"%{token}%", time.strftime(fmt, now))
    return prefix


def output_target(node_class: str, filename_prefix: str, folder: str = "output") -> "tuple[Path, str, str]":
    """(target folder, subfolder, base name) of a ComfyUI-style prefix; refused unless it stays inside the
    folder and the nearest existing folder on the way is writable. Creates nothing."""
    prefix = expand_date_tokens(str(filename_prefix).strip()).replace("\\", "/")
    subfolder, _, base_name = prefix.rpartition("/")
    out = io_dir(folder, create=False)
    try:
        target_dir = contained_path(out, subfolder) if base_name and not prefix.startswith("/") else None
    except PathRefused:
        target_dir = None
    if target_dir is None or base_name in (".", ".."):
        raise NodeInputError(
            node_class,
            "filename_prefix",
            f"a relative name inside the {folder} folder (sub-folders allowed), got {filename_prefix!r}",
        )
    existing = target_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise NodeInputError(
            node_class, "filename_prefix", f"a writable folder; {existing} is not writable (or not a folder)"
        )
    return target_dir, subfolder, base_name


def file_signature(path: Path) -> str:
    """A cheap change marker of a file: size and modification time, hashed."""
    stat = path.stat()
    return hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
