"""``framefold batch``: many jobs with a results manifest, resume and failure isolation.

The driver (this module) expands JOBS into jobs (``batch_jobs``), validates every one before any compute,
skips the ones the manifest (``batch_manifest``) already has with matching outputs, orders the rest so
loaders and text encodes are reused, and hands them to a backend: child worker processes
(``batch_worker.ProcessPool``) or Ray actors (``batch_ray.RayPool``). Only the driver writes the manifest
and moves outputs into place, so a lost worker never leaves a half-written result.

Exit codes: 0 every job succeeded, 1 a job is invalid or failed (or the batch was interrupted), 2 JOBS
themselves could not be read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .batch_jobs import Job, build_jobs, cli_variants, reuse_order
from .batch_manifest import BatchLocked, Manifest
from .registry import NodeRegistry
from .workflow import WorkflowError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
CRASH_CLASS = "WorkerCrashed"


class Backend(Protocol):
    """Where jobs run: a pool of workers that keep models loaded between jobs."""

    name: str

    def free_slots(self) -> int:
        """How many more jobs can be submitted now."""
        ...

    def submit(self, job_id: str, payload: dict[str, Any], staging: Path) -> dict[str, Any]:
        """Start a job; its files must end up in ``staging``. Returns worker info (e.g. ``pid``)."""
        ...

    def wait(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """``(job_id, result)`` of jobs that finished; a lost worker gives ``status == "lost"``."""
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...


@dataclass
class BatchOptions:
    """How a batch runs (the ``framefold batch`` flags)."""

    output_dir: Path
    input_dir: str | None = None
    retry_failed: bool = False
    only_failed: bool = False
    crash_retries: int = 1
    quiet: bool = False
    on_dispatch: Callable[[Job, dict[str, Any]], None] | None = None  # called after each submit (tests use it)


@dataclass
class BatchOutcome:
    """What a batch run did: the final record per job (in job order) and the ids this run executed."""

    jobs: list[Job]
    records: dict[str, dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every job's latest record is ``ok``, else 1."""
        ok = all(self.records.get(j.id, {}).get("status") == "ok" for j in self.jobs)
        return EXIT_OK if ok and not self.interrupted else EXIT_FAILED


def _base_record(job: Job, run_id: str) -> dict[str, Any]:
    """Record fields every status shares."""
    return {"id": job.id, "run": run_id, "index": job.index, "workflow": job.workflow, "params": job.params}


def plan(jobs: list[Job], manifest: Manifest, options: BatchOptions) -> tuple[list[Job], list[Job]]:
    """``(to_run, skipped)``: resume rules applied to the valid jobs.

    Skipped: ``ok`` records whose outputs still match; failed jobs unless ``retry_failed``/``only_failed``;
    with ``only_failed`` also every job that has no failed record.
    """
    latest = manifest.latest()
    to_run: list[Job] = []
    skipped: list[Job] = []
    for job in jobs:
        if not job.valid:
            continue
        status = latest.get(job.id, {}).get("status")
        if options.only_failed:
            run = status == "failed"
        elif status == "ok":
            run = not manifest.outputs_match(latest[job.id])
        elif status == "failed":
            run = options.retry_failed
        else:
            run = True
        (to_run if run else skipped).append(job)
    return reuse_order(to_run), skipped


class _Progress:
    """An overall progress bar (tqdm on stderr) with per-job status lines and an ETA."""

    def __init__(self, total: int, quiet: bool) -> None:
        from tqdm import tqdm

        self.counts: Counter[str] = Counter()
        self.quiet = quiet
        self.bar = tqdm(total=total, desc="batch", unit="job", file=sys.stderr, disable=quiet or total == 0)

    def job_done(self, job: Job, record: dict[str, Any]) -> None:
        """Advance the bar and print one line for the job."""
        self.counts[record["status"]] += 1
        self.bar.set_postfix({k: v for k, v in sorted(self.counts.items())}, refresh=False)
        self.bar.update(1)
        if not self.quiet:
            detail = f"{record.get('seconds', 0):.2f}s"
            if record["status"] != "ok":
                error = record.get("error") or {}
                where = f"node {error.get('node')} ({error.get('class')}): " if error.get("node") else ""
                detail = f"{where}{error.get('message')}"
            self.bar.write(f"{record['status']:7s} {job.id} {job.label()}  {detail}", file=sys.stderr)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def _finish(
    job: Job, result: dict[str, Any], attempts: int, failures: list[dict[str, Any]], manifest: Manifest, run_id: str
) -> dict[str, Any]:
    """Turn a worker result into a manifest record; a success's staging folder is moved into place."""
    record = _base_record(job, run_id)
    staging = manifest.staging_path(job.id)
    for key in ("seconds", "peak_memory", "computed", "worker", "error"):
        record[key] = result.get(key)
    record["status"] = result["status"] if result["status"] in ("ok", "failed") else "failed"
    record["attempts"] = attempts
    record["worker_failures"] = failures
    if record["status"] == "ok":
        record["outputs"] = manifest.commit_outputs(job.id, staging)
    else:
        record["outputs"] = []
        shutil.rmtree(staging, ignore_errors=True)
    manifest.append(record)
    return record


def _crash_record(
    job: Job, attempts: int, failures: list[dict[str, Any]], manifest: Manifest, run_id: str
) -> dict[str, Any]:
    """The failed record of a job whose worker died on every attempt."""
    record = _base_record(job, run_id)
    last = failures[-1]
    record.update(
        status="failed",
        outputs=[],
        attempts=attempts,
        worker_failures=failures,
        seconds=last["seconds"],
        peak_memory=None,
        computed=None,
        worker=last.get("worker"),
        error={"node": None, "class": CRASH_CLASS, "input": None, "message": last["message"], "type": CRASH_CLASS},
    )
    shutil.rmtree(manifest.staging_path(job.id), ignore_errors=True)
    manifest.append(record)
    return record


def execute(
    to_run: list[Job], backend: Backend, manifest: Manifest, options: BatchOptions, run_id: str
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Run the jobs on the backend; a lost worker's job is retried ``crash_retries`` times, then failed.

    Returns ``(records written, interrupted)``.
    """
    pending = deque(to_run)
    by_id = {job.id: job for job in to_run}
    attempts: Counter[str] = Counter()
    failures: dict[str, list[dict[str, Any]]] = {job.id: [] for job in to_run}
    started: dict[str, float] = {}
    workers: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    progress = _Progress(len(to_run), options.quiet)
    running = 0
    try:
        while pending or running:
            while pending and backend.free_slots() > 0:
                job = pending.popleft()
                attempts[job.id] += 1
                staging = manifest.staging_dir(job.id)
                started[job.id] = time.perf_counter()
                workers[job.id] = backend.submit(job.id, job.payload(), staging)
                running += 1
                if options.on_dispatch is not None:
                    options.on_dispatch(job, workers[job.id])
            for job_id, result in backend.wait(0.5):
                running -= 1
                job = by_id[job_id]
                if result["status"] == "lost":
                    seconds = round(time.perf_counter() - started[job_id], 4)
                    worker = workers[job_id]
                    failures[job_id].append({"message": result["message"], "seconds": seconds, "worker": worker})
                    if attempts[job_id] <= options.crash_retries:
                        pending.appendleft(job)
                        continue
                    record = _crash_record(job, attempts[job_id], failures[job_id], manifest, run_id)
                else:
                    record = _finish(job, result, attempts[job_id], failures[job_id], manifest, run_id)
                records[job_id] = record
                progress.job_done(job, record)
    except KeyboardInterrupt:
        return records, True
    finally:
        progress.close()
    return records, False


def _invalid_records(jobs: list[Job], manifest: Manifest, run_id: str) -> dict[str, dict[str, Any]]:
    """Record each invalid job (unless its latest record already says the same)."""
    latest = manifest.latest()
    records = {}
    for job in jobs:
        if job.valid:
            continue
        record = _base_record(job, run_id)
        record.update(status="invalid", outputs=[], error=job.errors[0], errors=job.errors, attempts=0)
        previous = latest.get(job.id)
        if previous and previous.get("status") == "invalid" and previous.get("errors") == job.errors:
            records[job.id] = previous
            continue
        manifest.append(record)
        records[job.id] = record
    return records


def run_batch(jobs: list[Job], backend_factory: Callable[[int], Backend], options: BatchOptions) -> BatchOutcome:
    """Validate-report, plan, run and record a batch; ``backend_factory(n_jobs)`` builds the backend."""
    manifest = Manifest(options.output_dir)
    manifest.lock()
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        manifest.discard_unfinished()
        records = _invalid_records(jobs, manifest, run_id)
        to_run, skipped = plan(jobs, manifest, options)
        latest = manifest.latest()
        records.update({job.id: latest[job.id] for job in skipped})
        interrupted = False
        if to_run:
            backend = backend_factory(len(to_run))
            try:
                _, interrupted = execute(to_run, backend, manifest, options, run_id)
            finally:
                backend.close()
        latest = manifest.latest()  # the manifest is the truth, also after an interrupt between two steps
        records.update({job.id: latest[job.id] for job in to_run if job.id in latest})
        ran = [job.id for job in to_run if latest.get(job.id, {}).get("run") == run_id]
        outcome = BatchOutcome(jobs, records, ran, [j.id for j in skipped], interrupted)
    finally:
        manifest.discard_unfinished()
        manifest.unlock()
    return outcome


# ---------------------------------------------------------------------------------------------- reporting


def print_invalid(jobs: list[Job]) -> None:
    """Every invalid job and its problems, together, before anything runs."""
    invalid = [j for j in jobs if not j.valid]
    if not invalid:
        return
    print(f"{len(invalid)} of {len(jobs)} jobs are invalid and will not run:", file=sys.stderr)
    for job in invalid:
        print(f"  {job.id} {job.label()}", file=sys.stderr)
        for error in job.errors:
            where = f"node {error['node']} ({error['class']})" if error.get("node") else "workflow"
            where += f", input '{error['input']}'" if error.get("input") else ""
            print(f"    {where}: {error['message']}", file=sys.stderr)


def summary_table(outcome: BatchOutcome) -> str:
    """A text table: one row per job (id, status, seconds, parameters or error) and the totals."""
    rows = [("id", "status", "seconds", "job / error")]
    for job in outcome.jobs:
        record = outcome.records.get(job.id, {})
        status = record.get("status", "not run")
        if job.id in outcome.skipped:
            status += " (earlier)"
        error = record.get("error") or {}
        detail = job.label()
        if error:
            detail += f"  -> {error.get('class') or ''} {error.get('message')}".replace("\n", " ")
        seconds = record.get("seconds")
        rows.append((job.id, status, f"{seconds:.2f}" if isinstance(seconds, (int, float)) else "-", detail))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    counts = Counter(outcome.records.get(j.id, {}).get("status", "not run") for j in outcome.jobs)
    totals = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines.append(f"{len(outcome.jobs)} jobs: {totals}; ran {len(outcome.ran)}, kept {len(outcome.skipped)} from before")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line


def add_batch_parser(sub: Any) -> None:
    """Register the ``batch`` sub-command on the ``framefold`` parser's sub-parsers."""
    batch = sub.add_parser(
        "batch",
        help="run many jobs with a results manifest, resume and failure isolation (locally or on Ray)",
        description="JOBS: workflow files, folders of them, job files (.jsonl/.csv with a 'workflow' column and "
        "NODE.INPUT columns) or sweep specs (.json with workflow/set/product/zip).",
    )
    batch.add_argument("jobs", nargs="+", metavar="JOBS", help="workflow, folder, job file or sweep spec")
    batch.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="fixed override")
    batch.add_argument(
        "--sweep", action="append", default=[], metavar="NODE.INPUT=A,B|N..M", help="product axis (repeatable)"
    )
    batch.add_argument(
        "--zip", action="append", default=[], metavar="NODE.INPUT=A,B|N..M", help="zipped axis (equal lengths)"
    )
    batch.add_argument("--output-dir", default="output/batch", help="batch folder: batch.jsonl and jobs/<id>/")
    batch.add_argument("--input-dir", default=None, help="where input files are read (default ./input)")
    batch.add_argument("--retry-failed", action="store_true", help="also re-run jobs recorded as failed")
    batch.add_argument("--only-failed", action="store_true", help="re-run only the jobs recorded as failed")
    batch.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    batch.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    batch.add_argument("--crash-retries", type=int, default=1, help="re-runs of a job whose worker died (default 1)")
    batch.add_argument("--report", default=None, metavar="FILE.html|FILE.md", help="write a contact sheet")
    batch.add_argument("--dry-run", action="store_true", help="validate and list the jobs; run nothing")
    batch.add_argument("--quiet", action="store_true", help="no progress bar or per-job lines")
    batch.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: a local ray.init() without ADDRESS, else a cluster address ('auto', 'ray://host:10001'); "
        "write it after JOBS",
    )
    batch.add_argument("--ray-cpus-per-worker", type=int, default=1, help="CPU cores per Ray actor without GPUs")
    batch.add_argument("--ray-workers", type=int, default=None, help="number of Ray actors (default: one per GPU)")
    batch.set_defaults(func=cmd_batch)


def _backend_factory(args: argparse.Namespace) -> Callable[[int], Backend]:
    """The backend the flags ask for, built lazily (after validation) for ``n`` jobs."""
    if args.ray is not None:
        from .batch_ray import RayPool

        def make_ray(n: int) -> Backend:
            return RayPool(
                address=None if args.ray == "local" else args.ray,
                workers=args.ray_workers,
                cpus_per_worker=args.ray_cpus_per_worker,
                input_dir=args.input_dir,
                threads=args.threads,
                max_workers=n,
            )

        return make_ray
    from .batch_worker import ProcessPool

    def make_local(n: int) -> Backend:
        return ProcessPool(min(args.workers, n), args.input_dir, args.threads)

    return make_local


def cmd_batch(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold batch``: expand, validate, run, record and summarise."""
    if args.input_dir is not None:
        from ..nodes import _folders

        _folders.set_io_dirs(input=args.input_dir)  # validation lists input files from here
    try:
        jobs = build_jobs(args.jobs, cli_variants(args.set, args.sweep, args.zip), registry)
    except (WorkflowError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print_invalid(jobs)
    valid = sum(j.valid for j in jobs)
    print(f"{len(jobs)} jobs, {valid} valid", file=sys.stderr)
    if args.dry_run:
        for job in jobs:
            print(f"{job.id}  {'valid  ' if job.valid else 'INVALID'}  {job.label()}")
        return EXIT_OK if valid == len(jobs) else EXIT_FAILED
    options = BatchOptions(
        output_dir=Path(args.output_dir),
        input_dir=args.input_dir,
        retry_failed=args.retry_failed,
        only_failed=args.only_failed,
        crash_retries=args.crash_retries,
        quiet=args.quiet,
    )
    try:
        outcome = run_batch(jobs, _backend_factory(args), options)
    except BatchLocked as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_FAILED
    print(summary_table(outcome))
    if outcome.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
    if args.report:
        from .batch_report import write_report

        print(f"wrote {write_report(outcome, Manifest(options.output_dir), Path(args.report))}")
    return outcome.exit_code
