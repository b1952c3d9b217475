"""Prompt queue, history and the ``/api/jobs`` view of both (thread-safe, no aiohttp here).

The web handlers add and remove queue items; the worker thread takes the next item, runs it and
files a history record. All state sits behind one lock. Shapes follow ComfyUI: a queue item is the
tuple ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``, a history entry is
``{"prompt", "outputs", "meta", "status"}``, and a job is the object the 1.58 frontend validates.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import mimetypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SECRET_EXTRA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
MAX_HISTORY = 10000
MEDIA_KEYS = ("images", "video", "audio")


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (what ComfyUI puts in timestamps)."""
    return int(time.time() * 1000)


def split_secrets(extra_data: dict) -> tuple[dict, dict]:
    """Return (extra_data without secret keys, dict of the secret keys)."""
    public = {k: v for k, v in (extra_data or {}).items() if k not in SECRET_EXTRA_KEYS}
    secrets = {k: v for k, v in (extra_data or {}).items() if k in SECRET_EXTRA_KEYS}
    return public, secrets


@dataclass
class PromptItem:
    """One queued prompt. ``extra_data`` is already stripped of secrets (kept apart in ``secrets``)."""

    number: float
    prompt_id: str
    prompt: dict
    extra_data: dict
    outputs: list
    targets: list | None = None
    secrets: dict = field(default_factory=dict)
    seq: int = 0
    create_time: int = 0
    start_time: int | None = None

    @property
    def client_id(self) -> str | None:
        """The websocket id that queued the prompt (or None)."""
        return self.extra_data.get("client_id")

    def as_tuple(self) -> list:
        """ComfyUI's queue tuple ``[number, prompt_id, prompt, extra_data, outputs]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, list(self.outputs)]

    def workflow_id(self) -> str | None:
        """The UI graph id carried in ``extra_pnginfo.workflow.id`` (or None)."""
        workflow = (self.extra_data.get("extra_pnginfo") or {}).get("workflow") or {}
        value = workflow.get("id") if isinstance(workflow, dict) else None
        return str(value) if value is not None else None


@dataclass
class HistoryRecord:
    """A finished prompt: the queue item plus what the run produced."""

    item: PromptItem
    outputs: dict
    meta: dict
    status_str: str  # "success" | "error"
    messages: list
    interrupted: bool = False
    error: dict | None = None  # execution_error payload for failures
    end_time: int | None = None

    def as_history_entry(self) -> dict:
        """The ``/api/history`` entry for this record."""
        return {
            "prompt": self.item.as_tuple(),
            "outputs": self.outputs,
            "meta": self.meta,
            "status": {
                "status_str": self.status_str,
                "completed": self.status_str == "success",
                "messages": self.messages,
            },
        }

    def job_status(self) -> str:
        """completed / failed / cancelled, as ComfyUI's jobs view maps history."""
        if self.status_str == "success":
            return "completed"
        return "cancelled" if self.interrupted else "failed"


def _output_items(outputs):
    """(node_id, media_key, item) for every file item in a history ``outputs`` dict."""
    for node_id, ui in (outputs or {}).items():
        if not isinstance(ui, dict):
            continue
        for key, values in ui.items():
            if key == "animated" or not isinstance(values, (list, tuple)):
                continue
            for value in values:
                if isinstance(value, dict) and value.get("filename"):
                    yield str(node_id), key, value


def preview_output(outputs: dict) -> dict | None:
    """The job's thumbnail item: the first image/video/audio file, videos tagged with their MIME type."""
    for node_id, key, item in _output_items(outputs):
        if key not in MEDIA_KEYS:
            continue
        preview = {k: v for k, v in item.items() if k in ("filename", "subfolder", "type", "display_name")}
        preview.setdefault("subfolder", "")
        preview.setdefault("type", "output")
        preview["nodeId"] = node_id
        preview["mediaType"] = key
        mime = mimetypes.guess_type(item["filename"])[0] or ""
        if mime.startswith("video/") or mime.startswith("audio/"):
            preview["format"] = mime
        elif "format" in item:
            preview["format"] = item["format"]
        return preview
    return None


def output_counts(outputs: dict) -> tuple[int, int]:
    """(outputs_count, previewable_outputs_count) of a history ``outputs`` dict."""
    items = list(_output_items(outputs))
    return len(items), sum(1 for _, key, _ in items if key in MEDIA_KEYS)


class JobQueryError(ValueError):
    """Bad ``/api/jobs`` query parameter (answered with 400)."""


def parse_job_query(query: Any) -> tuple:
    """Validate the ``/api/jobs`` query; return (statuses, limit, offset, sort_by, descending, workflow_id)."""
    raw_status = query.get("status")
    statuses = None
    if raw_status:
        statuses = [s.strip() for s in raw_status.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in JOB_STATUSES]
        if unknown:
            raise JobQueryError(f"invalid status {unknown}; valid: {', '.join(JOB_STATUSES)}")
    limit = None
    if query.get("limit") not in (None, ""):
        try:
            limit = int(query["limit"])
        except ValueError:
            raise JobQueryError("limit must be an integer") from None
        if limit <= 0:
            raise JobQueryError("limit must be a positive integer")
    offset = 0
    if query.get("offset") not in (None, ""):
        try:
            offset = int(query["offset"])
        except ValueError:
            raise JobQueryError("offset must be an integer") from None
        if offset < 0:
            raise JobQueryError("offset must be non-negative")
    sort_by = query.get("sort_by") or "created_at"
    if sort_by not in ("created_at", "execution_duration"):
        raise JobQueryError("sort_by must be 'created_at' or 'execution_duration'")
    sort_order = (query.get("sort_order") or "desc").lower()
    if sort_order not in ("asc", "desc"):
        raise JobQueryError("sort_order must be 'asc' or 'desc'")
    return statuses, limit, offset, sort_by, sort_order == "desc", query.get("workflow_id") or None


class PromptQueue:
    """Pending prompts (a priority heap), the running one, and the history, behind one lock."""

    def __init__(self):
        self._lock = threading.Condition()
        self._heap = []
        self._seq = itertools.count()
        self._number = itertools.count()
        self._running = None
        self._history = {}  # prompt_id -> HistoryRecord, insertion ordered
        self._closed = False
        self.changed = None  # callable() invoked after the queue length changed (set by the server)

    # -- queue ---------------------------------------------------------------------------------
    def next_number(self, front: bool = False) -> float:
        """The next priority number; ``front`` puts the prompt ahead of everything queued."""
        number = next(self._number)
        return -number if front else number

    def put(self, item: PromptItem) -> None:
        """Queue ``item``."""
        with self._lock:
            item.seq = next(self._seq)
            item.create_time = item.create_time or now_ms()
            heapq.heappush(self._heap, (item.number, item.seq, item))
            self._lock.notify_all()
        self._notify()

    def take(self, timeout: float | None = None) -> PromptItem | None:
        """Block until an item is pending, mark it running and return it (None on close/timeout)."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._heap and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(remaining)
            if self._closed:
                return None
            _, _, item = heapq.heappop(self._heap)
            item.start_time = now_ms()
            self._running = item
        return item

    def finish(self, record: HistoryRecord) -> None:
        """File the running item's history record and clear the running slot."""
        with self._lock:
            record.end_time = record.end_time or now_ms()
            self._history[record.item.prompt_id] = record
            while len(self._history) > MAX_HISTORY:
                self._history.pop(next(iter(self._history)))
            if self._running is record.item:
                self._running = None

    def notify_changed(self) -> None:
        """Tell the server the queue length changed (after a run's final messages were sent)."""
        self._notify()

    def close(self) -> None:
        """Wake the worker so it can stop."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _notify(self):
        if self.changed is not None:
            self.changed()

    @property
    def running(self) -> PromptItem | None:
        """The running item or None."""
        with self._lock:
            return self._running

    def remaining(self) -> int:
        """Pending + running count (ComfyUI's ``queue_remaining``)."""
        with self._lock:
            return len(self._heap) + (1 if self._running is not None else 0)

    def pending_items(self) -> list:
        """Pending items in execution order."""
        with self._lock:
            return [entry[2] for entry in sorted(self._heap)]

    def delete_pending(self, prompt_ids: list) -> int:
        """Remove pending items by id; return how many were removed."""
        wanted = set(prompt_ids)
        with self._lock:
            kept = [entry for entry in self._heap if entry[2].prompt_id not in wanted]
            removed = len(self._heap) - len(kept)
            heapq.heapify(kept)
            self._heap = kept
        if removed:
            self._notify()
        return removed

    def clear_pending(self) -> int:
        """Remove every pending item."""
        with self._lock:
            removed = len(self._heap)
            self._heap = []
        if removed:
            self._notify()
        return removed

    def queue_snapshot(self) -> dict:
        """``/api/queue``: running and pending tuples."""
        with self._lock:
            running = [self._running.as_tuple()] if self._running is not None else []
            pending = [entry[2].as_tuple() for entry in sorted(self._heap)]
        return {"queue_running": copy.deepcopy(running), "queue_pending": copy.deepcopy(pending)}

    def knows(self, prompt_id: str) -> bool:
        """True when the id is pending, running or in history."""
        with self._lock:
            return (
                prompt_id in self._history
                or (self._running is not None and self._running.prompt_id == prompt_id)
                or any(entry[2].prompt_id == prompt_id for entry in self._heap)
            )

    # -- history -------------------------------------------------------------------------------
    def history(self, max_items: int | None = None, offset: int = -1) -> dict:
        """``/api/history`` like ComfyUI: ``offset`` counts from the oldest entry; a negative offset with
        ``max_items`` means the newest ``max_items`` entries."""
        with self._lock:
            records = list(self._history.values())
        if offset < 0:
            offset = max(0, len(records) - max_items) if max_items is not None else 0
        records = records[offset:]
        if max_items is not None:
            records = records[:max_items]
        return {r.item.prompt_id: copy.deepcopy(r.as_history_entry()) for r in records}

    def history_entry(self, prompt_id: str) -> dict:
        """``/api/history/{id}``: ``{id: entry}`` or ``{}``."""
        with self._lock:
            record = self._history.get(prompt_id)
        return {prompt_id: copy.deepcopy(record.as_history_entry())} if record else {}

    def delete_history(self, prompt_ids: list) -> None:
        """Forget finished prompts by id."""
        with self._lock:
            for prompt_id in prompt_ids:
                self._history.pop(prompt_id, None)

    def clear_history(self) -> None:
        """Forget every finished prompt."""
        with self._lock:
            self._history.clear()

    # -- jobs ----------------------------------------------------------------------------------
    def _all_jobs(self):
        """(job dict, record or item) for running, pending and finished prompts."""
        with self._lock:
            running = self._running
            pending = [entry[2] for entry in sorted(self._heap)]
            records = list(self._history.values())
        jobs = []
        if running is not None:
            jobs.append((_job_from_item(running, "in_progress"), running))
        jobs += [(_job_from_item(item, "pending"), item) for item in pending]
        jobs += [(_job_from_record(record), record) for record in records]
        return jobs

    def list_jobs(
        self,
        statuses: list | None = None,
        limit: int | None = None,
        offset: int = 0,
        sort_by: str = "created_at",
        descending: bool = True,
        workflow_id: str | None = None,
    ) -> dict:
        """``/api/jobs``: filtered, sorted, paginated job list and its pagination block."""
        jobs = [job for job, _ in self._all_jobs()]
        if statuses is not None:
            jobs = [job for job in jobs if job["status"] in statuses]
        if workflow_id is not None:
            jobs = [job for job in jobs if job.get("workflow_id") == workflow_id]
        if sort_by == "execution_duration":

            def key(job):
                """Duration, then creation time."""
                start, end = job.get("execution_start_time"), job.get("execution_end_time")
                return ((end - start) if start is not None and end is not None else 0, job["create_time"])
        else:

            def key(job):
                """Creation time, then priority."""
                return (job["create_time"], job["priority"])

        jobs.sort(key=key, reverse=descending)
        total = len(jobs)
        page = jobs[offset : offset + limit] if limit is not None else jobs[offset:]
        pagination = {
            "offset": offset,
            "limit": limit if limit is not None else len(page),
            "total": total,
            "has_more": offset + len(page) < total,
        }
        return {"jobs": page, "pagination": pagination}

    def job_detail(self, prompt_id: str) -> dict | None:
        """``/api/jobs/{id}``: the job plus outputs, workflow and execution status; None if unknown."""
        for job, source in self._all_jobs():
            if job["id"] != prompt_id:
                continue
            detail = dict(job)
            item = source.item if isinstance(source, HistoryRecord) else source
            detail["workflow"] = {"prompt": copy.deepcopy(item.prompt), "extra_data": copy.deepcopy(item.extra_data)}
            if isinstance(source, HistoryRecord):
                entry = source.as_history_entry()
                detail["outputs"] = copy.deepcopy(entry["outputs"])
                detail["execution_status"] = copy.deepcopy(entry["status"])
                detail["execution_meta"] = copy.deepcopy(entry["meta"])
                detail["update_time"] = source.end_time
            return detail
        return None


def _job_from_item(item, status):
    """A pending or running job object."""
    return {
        "id": item.prompt_id,
        "status": status,
        "priority": item.number,
        "create_time": item.create_time,
        "execution_start_time": item.start_time if status == "in_progress" else None,
        "execution_end_time": None,
        "outputs_count": None,
        "previewable_outputs_count": None,
        "preview_output": None,
        "workflow_id": item.workflow_id(),
    }


def _job_from_record(record):
    """A finished job object."""
    outputs_count, previewable = output_counts(record.outputs)
    job = {
        "id": record.item.prompt_id,
        "status": record.job_status(),
        "priority": record.item.number,
        "create_time": record.item.create_time,
        "execution_start_time": record.item.start_time,
        "execution_end_time": record.end_time,
        "outputs_count": outputs_count,
        "previewable_outputs_count": previewable,
        "preview_output": preview_output(record.outputs),
        "workflow_id": record.item.workflow_id(),
    }
    if record.job_status() == "failed" and record.error:
        job["execution_error"] = {
            "node_id": str(record.error.get("node_id") or ""),
            "node_type": str(record.error.get("node_type") or ""),
            "exception_message": str(record.error.get("exception_message") or ""),
            "exception_type": str(record.error.get("exception_type") or ""),
            "traceback": [str(line) for line in record.error.get("traceback") or []],
            "prompt_id": record.item.prompt_id,
            "executed": [str(n) for n in record.error.get("executed") or []],
        }
    return job
