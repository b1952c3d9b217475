"""File helpers of the video nodes: input-video names, output prefixes (inside the folder, writable)."""

import os
import re
import time
from pathlib import Path

from ..pipelines.paths import PathRefused, contained_path
from ..pipelines.video import VIDEO_EXTENSIONS
from ._errors import NodeInputError
from ._folders import io_dir
from ._io_files import list_io_files

VIDEO_KIND = "video file"  # what a video input expects, for resolve_io_file's messages
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
    return list_io_files("input", lambda name: Path(name).suffix.lower() in VIDEO_EXTENSIONS)


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
