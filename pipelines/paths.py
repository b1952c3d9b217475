"""Path containment: the one check every file-taking node and server route uses.

A user-supplied, '/'-separated relative path is joined to a base folder and refused when it is
malformed (NUL, backslash), absolute, goes up with ``..``, or whose real path (symlinks followed)
leaves the base.
"""

from __future__ import annotations

import os
from pathlib import Path


class PathRefused(ValueError):
    """A user-supplied path would leave its folder, or is malformed."""


def is_within(path: str | os.PathLike, base: str | os.PathLike) -> bool:
    """True when the real path of ``path`` equals the real path of ``base`` or lies under it."""
    path_real, base_real = Path(os.path.realpath(path)), Path(os.path.realpath(base))
    return path_real == base_real or base_real in path_real.parents


def contained_path(base: str | os.PathLike, *parts: str | None, links_may_leave: bool = False) -> Path:
    """Resolve ``parts`` (user-supplied, '/'-separated) inside ``base``; raise :class:`PathRefused` otherwise.

    Refused: NUL bytes, backslashes, absolute paths (also drive letters), ``..`` segments and anything
    whose real path (symlinks followed) leaves ``base``. Empty parts are skipped. With
    ``links_may_leave`` (model folders, where creators symlink files from other drives) the name is
    checked lexically and symlinks inside the folder may point anywhere.
    """
    base_real = Path(os.path.realpath(base))
    relative: list[str] = []
    for part in parts:
        if part is None or part == "":
            continue
        if not isinstance(part, str):
            raise PathRefused(f"path part {part!r} is not a string")
        if "\x00" in part or "\\" in part:
            raise PathRefused(f"malformed path {part!r}")
        if part.startswith("/") or Path(part).is_absolute() or (len(part) > 1 and part[1] == ":"):
            raise PathRefused(f"absolute path {part!r}")
        segments = [s for s in part.split("/") if s not in ("", ".")]
        if any(s == ".." for s in segments):
            raise PathRefused(f"path {part!r} goes up a folder")
        relative += segments
    if links_may_leave:
        return base_real.joinpath(*relative)
    candidate = Path(os.path.realpath(base_real.joinpath(*relative)))
    if not (candidate == base_real or base_real in candidate.parents):
        raise PathRefused("path leaves its folder")
    return candidate


def relative_posix(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """``path`` relative to ``base`` (real paths) with '/' separators."""
    return Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(base))).as_posix()
