"""Output names that are safe under concurrency, and clean-up of temp files a killed run left behind.

A result is written completely under a hidden temp name first (:func:`temp_name`), then
:func:`claim_numbered_name` gives it the next free ``<base>_<00001>_<ext>`` name with an atomic
create of the final name: a hard link for a file (fails if the name exists), a rename for a folder
(fails if a non-empty folder has the name). Two processes that pick the same number cannot both
win; the loser takes the next number. Every saver (CLI, canvas host, batch runs) goes through here.
"""

import errno
import os
import re
import uuid
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.(tmp|old)(\.[A-Za-z0-9]+)?$")
MAX_CLAIM_ATTEMPTS = 100_000


def temp_name(final_name: str, suffix: str = "") -> str:
    """A hidden temp name beside ``final_name`` that records this process id (see :func:`clean_stale_temp_files`)."""
    return f".{final_name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}"


def numbered_name(base_name: str, counter: int, extension: str) -> str:
    """ComfyUI's ``<base>_<00001>_<ext>`` (``extension`` with its dot, or empty for a folder)."""
    return f"{base_name}_{counter:05d}_{extension}"


def next_counter(directory: Path, base_name: str) -> int:
    """One above the highest ``<base>_<n>_`` entry (file or folder) in ``directory``."""
    pattern = re.compile(re.escape(base_name) + r"_(\d+)_")
    counters = [int(m.group(1)) for m in (pattern.match(p.name) for p in directory.iterdir()) if m]
    return max(counters, default=0) + 1


def _link_or_rename(finished: Path, target: Path) -> bool:
    """Give ``finished`` the name ``target`` unless it exists; True on success."""
    if finished.is_dir():
        try:
            os.rename(finished, target)
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                return False
            raise
        return True
    try:
        os.link(finished, target)
    except FileExistsError:
        return False
    except OSError as err:  # a file system without hard links: reserve with O_EXCL, then replace
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(finished, target)
        return True
    os.unlink(finished)
    return True


def claim_numbered_name(finished: Path, directory: Path, base_name: str, extension: str) -> Path:
    """Move the finished temp file/folder ``finished`` to the next free numbered name in ``directory``."""
    counter = next_counter(directory, base_name)
    for _ in range(MAX_CLAIM_ATTEMPTS):
        target = directory / numbered_name(base_name, counter, extension)
        if not target.exists() and _link_or_rename(finished, target):
            return target
        counter += 1
    raise FileExistsError(f"{directory}: no free name for {base_name!r} after {MAX_CLAIM_ATTEMPTS} attempts")


def _process_alive(pid: int) -> bool:
    """Whether a process with this id exists (a permission error means it does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def clean_stale_temp_files(folder: Path, max_depth: int = 8) -> list[Path]:
    """Delete temp files/folders under ``folder`` whose writing process no longer runs; returns them.

    Temp names carry the writer's process id, so the temp files of a run still in progress (another
    ``framefold run`` writing into the same folder) are kept.
    """
    import shutil

    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):
        depth = len(Path(root).relative_to(folder).parts)
        for name in list(dirs) + files:
            match = _TEMP.match(name)
            if not match or _process_alive(int(match.group(1))):
                continue
            path = Path(root) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        if depth >= max_depth:
            dirs[:] = []
    return removed
