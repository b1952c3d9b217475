"""Ray backend of ``framefold batch --ray [ADDRESS]``: one actor per GPU (or per N CPU cores).

Each actor keeps a ``JobRunner`` (one Executor, models loaded once) and runs jobs as actor tasks. An actor
writes a job into a private temporary folder and returns the files' bytes, so the driver (which alone
writes the manifest and moves outputs into place) works the same on one machine and on a cluster
without a shared file system. An actor that dies (killed, OOM, segfault) is replaced and the driver
retries its job like any lost worker. ``ray`` is an optional dependency (``pip install framefold[ray]``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class BatchActor:
    """Ray actor body: a JobRunner kept for the actor's life."""

    def __init__(self, input_dir: str | None, threads: int | None) -> None:
        from .batch_worker import JobRunner

        self.runner = JobRunner(input_dir, threads)

    def info(self) -> dict[str, Any]:
        """Process id and host of this actor."""
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Run one job; the result carries ``files`` ``{relative path: bytes}`` of what it wrote."""
        folder = tempfile.mkdtemp(prefix="framefold-batch-")
        try:
            result = self.runner.run(payload, folder)
            root = Path(folder)
            files = sorted(p for p in root.rglob("*") if p.is_file()) if result["status"] == "ok" else []
            result["files"] = {p.relative_to(root).as_posix(): p.read_bytes() for p in files}
            return result
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _write_files(files: dict[str, bytes], staging: Path) -> None:
    """Write the returned files under the driver's staging folder."""
    for relative, data in files.items():
        target = staging / relative
        if staging.resolve() not in target.resolve().parents:
            raise ValueError(f"a worker returned a file outside its folder: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class RayPool:
    """Ray actors as batch workers; the driver streams their results into the manifest."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_worker: int = 1,
        input_dir: str | None = None,
        threads: int | None = None,
        max_workers: int | None = None,
    ) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        count = workers or (gpus if gpus else max(1, cpus // max(1, cpus_per_worker)))
        count = max(1, min(count, max_workers or count))
        self._options = {
            "num_gpus": 1 if gpus else 0,
            "num_cpus": 1 if gpus else cpus_per_worker,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        self._args = (input_dir, threads or (None if gpus else cpus_per_worker))
        self._actor_class: Any = ray.remote(BatchActor)
        self._actors: list[Any] = [None] * count
        self._info: list[dict[str, Any]] = [{} for _ in range(count)]
        for slot in range(count):
            self._start_actor(slot)
        self._busy: dict[int, tuple[str, Path, Any]] = {}

    def _start_actor(self, slot: int) -> None:
        """Create the actor of ``slot`` and learn its pid and host."""
        actor: Any = self._actor_class.options(**self._options).remote(*self._args)
        self._actors[slot] = actor
        self._info[slot] = self._ray.get(actor.info.remote())

    def free_slots(self) -> int:
        """Idle actors."""
        return len(self._actors) - len(self._busy)

    def submit(self, job_id: str, payload: dict[str, Any], staging: Path) -> dict[str, Any]:
        """Run the job on an idle actor; returns that actor's ``{pid, host}``."""
        slot = next(i for i in range(len(self._actors)) if i not in self._busy)
        ref = self._actors[slot].run.remote(payload)
        self._busy[slot] = (job_id, staging, ref)
        return dict(self._info[slot])

    def wait(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Results of finished tasks; a dead actor is replaced and its job reported ``lost``."""
        if not self._busy:
            return []
        refs = {entry[2]: slot for slot, entry in self._busy.items()}
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        finished = []
        for ref in ready:
            slot = refs[ref]
            job_id, staging, _ = self._busy.pop(slot)
            try:
                result = self._ray.get(ref)
                _write_files(result.pop("files", {}), staging)
            except self._ray.exceptions.RayActorError as exc:
                info = self._info[slot]
                message = f"the Ray actor (pid {info.get('pid')} on {info.get('host')}) died: {type(exc).__name__}"
                result = {"id": job_id, "status": "lost", "message": message}
                self._start_actor(slot)
            except self._ray.exceptions.RayError as exc:
                error = {"node": None, "class": None, "input": None, "message": str(exc), "type": type(exc).__name__}
                result = {"id": job_id, "status": "failed", "error": error}
            finished.append((job_id, result))
        return finished

    def close(self) -> None:
        """Kill the actors; shut Ray down when this pool started it."""
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:  # already dead
                pass
        if self._owns_ray:
            self._ray.shutdown()
