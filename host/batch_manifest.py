"""The batch results manifest (``batch.jsonl``) and the job output folders it describes.

Layout of a batch output folder::

    batch.jsonl           one JSON record per finished job attempt, appended atomically (latest record wins)
    jobs/<job id>/...     the files a job wrote, moved into place in one rename once the job succeeded
    .staging/<job id>/    where a running job writes; anything here is an unfinished job and is discarded
    .lock                 held (flock) while a batch runs in this folder

A record: ``id, run, workflow, params, status ("ok" | "failed" | "invalid"), outputs [{path, size, sha256}],
seconds, peak_memory {rss_bytes, cuda_bytes}, computed (node ids that ran, the rest came from the cache),
attempts, worker, error {node, class, input, message} and worker_failures`` (crashed attempts).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

MANIFEST_NAME = "batch.jsonl"
JOBS_DIR = "jobs"
STAGING_DIR = ".staging"


class BatchLocked(RuntimeError):
    """Another batch is running in the same output folder."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder: Path) -> list[dict[str, Any]]:
    """``[{path, size, sha256}]`` of every file under ``folder`` (paths relative to it, sorted)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [
        {"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    ]


class Manifest:
    """Reads and appends ``batch.jsonl`` in a batch output folder."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / MANIFEST_NAME
        self._lock_handle: IO[str] | None = None

    # ------------------------------------------------------------------ folders

    def job_dir(self, job_id: str) -> Path:
        """Final folder of a job's outputs."""
        return self.output_dir / JOBS_DIR / job_id

    def staging_path(self, job_id: str) -> Path:
        """Where a running job writes (see ``staging_dir``)."""
        return self.output_dir / STAGING_DIR / job_id

    def staging_dir(self, job_id: str) -> Path:
        """An empty folder for a job to write into (a leftover of an interrupted attempt is removed)."""
        path = self.staging_path(job_id)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def lock(self) -> None:
        """Take the folder's lock for this process (released on exit, even on SIGKILL)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.output_dir / ".lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BatchLocked(f"another batch is running in {self.output_dir}") from None
        self._lock_handle = handle

    def unlock(self) -> None:
        """Release the folder's lock."""
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def discard_unfinished(self) -> None:
        """Remove what interrupted attempts left in the staging folder."""
        shutil.rmtree(self.output_dir / STAGING_DIR, ignore_errors=True)

    def commit_outputs(self, job_id: str, staging: Path) -> list[dict[str, Any]]:
        """Move a finished job's staging folder into place in one rename; returns its output descriptions.

        An older folder of the same job (outputs without a matching record) is replaced.
        """
        outputs = describe_files(staging)
        final = self.job_dir(job_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        return outputs

    # ------------------------------------------------------------------ records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a single write on an O_APPEND descriptor, then fsync."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=True, default=repr) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record in file order (a torn last line from a kill is ignored)."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "id" in record:
                records.append(record)
        return records

    def latest(self) -> dict[str, dict[str, Any]]:
        """The latest record of each job id."""
        return {r["id"]: r for r in self.records()}

    def outputs_match(self, record: dict[str, Any]) -> bool:
        """True when every output of an ``ok`` record exists with its recorded size and SHA-256."""
        folder = self.job_dir(record["id"])
        for item in record.get("outputs") or []:
            path = folder / item["path"]
            if not path.is_file() or path.stat().st_size != item["size"] or sha256_file(path) != item["sha256"]:
                return False
        return True
