"""Batch workers: run jobs one after another with one Executor, so models stay loaded across jobs.

``JobRunner`` is the in-worker part shared by both backends. ``ProcessPool`` runs it in child processes
the driver can lose (a segfault or an OOM kill ends the child, not the batch): each child receives a job,
writes its files into the job's staging folder and answers with a result dict.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .executor import ExecutionHooks, Executor

PR_SET_PDEATHSIG = 1


def _reset_peak_rss() -> None:
    """Reset this process's peak resident set size (Linux ``clear_refs`` 5); no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int | None:
    """Peak resident set size since the last reset (``VmHWM``), or None when unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _ComputedNodes(ExecutionHooks):
    """Records the nodes that actually ran (cached nodes get no ``node_start``)."""

    def __init__(self) -> None:
        self.computed: list[str] = []

    def node_start(self, prompt_id: str | None, node_id: str) -> None:
        """Note a node that runs."""
        self.computed.append(node_id)


def _error_record(error: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's ``{node, class, input, message, type}`` from an executor error dict."""
    error = error or {}
    node_errors = error.get("node_errors") or {}
    if node_errors and "node_id" not in error:
        node_id, entry = sorted(node_errors.items())[0]
        first = entry["errors"][0]
        return {
            "node": node_id,
            "class": entry.get("class_type"),
            "input": (first.get("extra_info") or {}).get("input_name"),
            "message": first.get("message"),
            "type": first.get("type"),
        }
    return {
        "node": error.get("node_id"),
        "class": error.get("node_type"),
        "input": None,
        "message": error.get("exception_message") or error.get("message"),
        "type": error.get("exception_type") or error.get("type"),
        "traceback": "".join((error.get("traceback") or [])[-6:]),
    }


class JobRunner:
    """Runs batch jobs in this process with one Executor whose cache carries models across jobs."""

    def __init__(self, input_dir: str | None = None, threads: int | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.input_dir = input_dir
        self.executor = Executor()

    def run(self, payload: dict[str, Any], staging: str) -> dict[str, Any]:
        """Run one job, its output folder set to ``staging``; returns status, error, timing and memory."""
        from ..nodes import _folders

        _folders.set_io_dirs(output=staging, input=self.input_dir)
        _reset_peak_rss()
        cuda = _cuda_reset_peak()
        hooks = _ComputedNodes()
        start = time.perf_counter()
        try:
            result = self.executor.execute(payload["prompt"], extra_data=payload.get("extra_data"), hooks=hooks)
            status = "ok" if result.status == "success" else "failed"
            error = None if status == "ok" else _error_record(result.error)
        except Exception as exc:  # the executor reports node failures itself; this is anything else
            status = "failed"
            error = {
                "node": None,
                "class": None,
                "input": None,
                "message": str(exc),
                "type": f"{type(exc).__module__}.{type(exc).__name__}",
                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:]),
            }
        return {
            "id": payload["id"],
            "status": status,
            "error": error,
            "seconds": round(time.perf_counter() - start, 4),
            "peak_memory": {"rss_bytes": _peak_rss_bytes(), "cuda_bytes": _cuda_peak(cuda)},
            "computed": hooks.computed,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }


def _cuda_reset_peak() -> bool:
    """Reset CUDA's peak-memory counter when CUDA is in use; returns whether it is."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return torch.cuda.is_available()
    torch.cuda.reset_peak_memory_stats()
    return True


def _cuda_peak(in_use: bool) -> int | None:
    """CUDA's peak allocated bytes since the reset, or None without CUDA."""
    if not in_use:
        return None
    import torch

    return int(torch.cuda.max_memory_allocated())


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (an orphan must not finish a job).

    The parent is the forkserver, which exits when the driver does."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def worker_main(conn: Connection, input_dir: str | None, threads: int | None) -> None:
    """Child process loop: receive ``(payload, staging)``, answer the result; ``None`` or EOF ends it."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    runner = JobRunner(input_dir, threads)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        payload, staging = message
        conn.send(runner.run(payload, staging))


def _exit_description(exitcode: int | None) -> str:
    """Readable cause of a child's end: the signal name for a negative exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _worker_context() -> Any:
    """``forkserver`` with this package preloaded: a replaced worker starts in about a second and shares no
    threads or CUDA state with the driver. ``spawn`` where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    package = __name__.rpartition(".")[0]
    context.set_forkserver_preload([__name__, f"{package}.registry", f"{package.rpartition('.')[0]}.nodes"])
    return context


class _Worker:
    """One child process and the job it is running."""

    def __init__(self, context: Any, input_dir: str | None, threads: int | None) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, input_dir, threads), daemon=True)
        self.process.start()
        child.close()
        self.job_id: str | None = None


class ProcessPool:
    """``workers`` child processes, each running one job at a time; a dead child is replaced."""

    name = "process"

    def __init__(self, workers: int = 1, input_dir: str | None = None, threads: int | None = None) -> None:
        self._context = _worker_context()
        self._args = (input_dir, threads)
        self._workers = [_Worker(self._context, *self._args) for _ in range(max(1, workers))]

    def free_slots(self) -> int:
        """How many more jobs can be submitted now."""
        return sum(w.job_id is None for w in self._workers)

    def submit(self, job_id: str, payload: dict[str, Any], staging: Path) -> dict[str, Any]:
        """Hand a job to an idle worker; returns ``{"pid": ...}`` of that worker."""
        worker = next(w for w in self._workers if w.job_id is None)
        worker.job_id = job_id
        try:
            worker.conn.send((payload, str(staging)))
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; wait() reports the job as lost
        return {"pid": worker.process.pid}

    def wait(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Results that arrived within ``timeout`` s; a worker that died yields ``{"status": "lost"}``."""
        busy = [w for w in self._workers if w.job_id is not None]
        if not busy:
            return []
        handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout))
        finished = []
        for worker in busy:
            job_id = worker.job_id
            assert job_id is not None
            result = None
            if worker.conn in ready:
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    result = None
            elif worker.process.sentinel not in ready:
                continue
            if result is None:
                worker.process.join(timeout=5)
                message = f"the worker process ({worker.process.pid}) {_exit_description(worker.process.exitcode)}"
                result = {"id": job_id, "status": "lost", "message": message}
                self._workers[self._workers.index(worker)] = _Worker(self._context, *self._args)
            else:
                worker.job_id = None
            finished.append((job_id, result))
        return finished

    def close(self) -> None:
        """Stop every worker (idle ones exit; busy ones are killed)."""
        for worker in self._workers:
            try:
                if worker.job_id is None:
                    worker.conn.send(None)
                else:
                    worker.process.kill()
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
