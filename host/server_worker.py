"""The queue worker thread and the websocket view of one run.

One thread takes prompts from :class:`PromptQueue` in priority order and runs each through the
same :class:`Executor` the CLI uses. :class:`RunMessages` turns the executor's hooks into ComfyUI's
websocket sequence (protocol §3.3): ``execution_start``, ``execution_cached``, per node
``progress_state``/``executing``/``progress``/binary previews/``executed``, then exactly one of
``execution_success``/``execution_error``/``execution_interrupted``, the history entry, ``executing
{node: null}`` and a queue ``status``. Messages leave through a thread-safe ``bus``.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import traceback
from typing import Any

import numpy as np

from .executor import ExecutionHooks
from .server_state import HistoryRecord, PromptItem, now_ms

log = logging.getLogger("framefold.server")

BINARY_PREVIEW_IMAGE = 1
BINARY_PREVIEW_WITH_METADATA = 4
PREVIEW_MAX_SIDE = 384
PREVIEW_MIN_INTERVAL_S = 0.0  # one preview per sampler step, as ComfyUI's KSampler sends
PROGRESS_MIN_INTERVAL_S = 0.05

# Fixed projection of SD-style 4-channel latents to RGB (approximate, as used for cheap previews).
SD_LATENT_RGB = np.array(
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.0026, -0.2484]],
    dtype=np.float32,
)


def full_type_name(exc: BaseException) -> str:
    """``module.QualName`` of an exception's class (bare name for builtins), like ComfyUI reports it."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"


def latent_to_rgb(latent: Any) -> np.ndarray:
    """A uint8 RGB image ``[H,W,3]`` of the first frame of a latent ``[F,C,h,w]`` (or ``[C,h,w]``)."""
    array = latent.detach().float().cpu().numpy() if hasattr(latent, "detach") else np.asarray(latent, np.float32)
    if array.ndim == 5:  # [B,C,T,h,w] video latents
        array = array[:, :, 0]
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"preview latent must be [F,C,h,w]; got shape {tuple(array.shape)}")
    channels = array.shape[0]
    if channels == 4:
        rgb = np.einsum("chw,cr->hwr", array, SD_LATENT_RGB)
        rgb = (rgb + 1.0) / 2.0
    elif channels == 3:
        rgb = np.transpose(array, (1, 2, 0))
        if rgb.min() < 0:
            rgb = (rgb + 1.0) / 2.0
    else:
        # Any other channel count: fold channels into three groups and normalise each to 0..1.
        groups = np.array_split(np.arange(channels), 3) if channels >= 3 else [np.arange(channels)] * 3
        rgb = np.stack([array[g].mean(axis=0) for g in groups], axis=-1)
        low, high = rgb.min(), rgb.max()
        rgb = (rgb - low) / (high - low + 1e-6)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_preview_jpeg(latent: Any, max_side: int = PREVIEW_MAX_SIDE, quality: int = 80) -> bytes:
    """JPEG bytes of a latent preview, upscaled so its longer side is at most ``max_side``."""
    import cv2

    rgb = latent_to_rgb(latent)
    height, width = rgb.shape[:2]
    scale = max(1, int(max_side // max(height, width)))
    if scale > 1:
        rgb = cv2.resize(rgb, (width * scale, height * scale), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("JPEG encoding of the preview failed")
    return data.tobytes()


def preview_frame(jpeg: bytes, metadata: dict | None = None) -> bytes:
    """A binary websocket frame: type 4 (with metadata JSON) when ``metadata`` is given, else type 1."""
    if metadata is None:
        return struct.pack(">II", BINARY_PREVIEW_IMAGE, 1) + jpeg
    meta = json.dumps(metadata).encode("utf-8")
    return struct.pack(">II", BINARY_PREVIEW_WITH_METADATA, len(meta)) + meta + jpeg


class RunMessages(ExecutionHooks):
    """Executor hooks for one queued prompt: websocket messages plus what the history needs."""

    def __init__(self, item, bus):
        self.item = item
        self.bus = bus
        self.sid = item.client_id
        self.nodes = {}  # node_id -> progress_state entry (non-pending nodes only)
        self.outputs = {}
        self.meta = {}
        self.history_messages = []
        self.terminal = None  # (type, data)
        self.current_node = None
        self.on_start = None  # callable(prompt_id) run when the executor starts the prompt
        self._last_progress = 0.0
        self._last_preview = 0.0

    # -- helpers -------------------------------------------------------------------------------
    def send(self, kind: str, data: dict) -> None:
        """Send a JSON message to the prompt's client."""
        if self.sid:
            self.bus.send(kind, data, self.sid)

    def _node_entry(self, node_id, state, value, max_value):
        node_id = str(node_id)
        return {
            "value": value,
            "max": max_value,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.item.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    def _send_progress_state(self):
        self.send(
            "progress_state", {"prompt_id": self.item.prompt_id, "nodes": {k: dict(v) for k, v in self.nodes.items()}}
        )

    def executing_message(self) -> dict | None:
        """The current ``executing`` message (for a client that reconnects mid-run), or None."""
        if self.current_node is None:
            return None
        return {"node": self.current_node, "display_node": self.current_node, "prompt_id": self.item.prompt_id}

    # -- hooks ---------------------------------------------------------------------------------
    def execution_start(self, prompt_id: str | None) -> None:
        """Run begins."""
        if self.on_start is not None:
            self.on_start(self.item.prompt_id)
        data = {"prompt_id": self.item.prompt_id, "timestamp": now_ms()}
        self.history_messages.append(["execution_start", data])
        self.send("execution_start", data)

    def execution_cached(self, prompt_id: str | None, node_ids: list) -> None:
        """Nodes whose outputs come from the cache."""
        ids = [str(n) for n in node_ids or []]
        data = {"nodes": ids, "prompt_id": self.item.prompt_id, "timestamp": now_ms()}
        self.history_messages.append(["execution_cached", data])
        for node_id in ids:
            self.nodes[node_id] = self._node_entry(node_id, "finished", 1, 1)
        self.send("execution_cached", data)

    def node_start(self, prompt_id: str | None, node_id: str) -> None:
        """A node starts: outline it and announce it."""
        node_id = str(node_id)
        self.current_node = node_id
        self.nodes[node_id] = self._node_entry(node_id, "running", 0, 1)
        self._send_progress_state()
        self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.item.prompt_id})

    def node_progress(self, prompt_id: str | None, node_id: str, value: int, max_value: int, preview: Any) -> None:
        """A progress step (throttled, first/last always sent) and an optional latent preview."""
        node_id = str(node_id)
        now = time.monotonic()
        edge = value <= 1 or value >= max_value
        self.nodes[node_id] = self._node_entry(node_id, "running", value, max_value)
        if edge or preview is not None or now - self._last_progress >= PROGRESS_MIN_INTERVAL_S:
            self._last_progress = now
            self.send("progress", {"value": value, "max": max_value, "prompt_id": self.item.prompt_id, "node": node_id})
            self._send_progress_state()
        if preview is not None and self.sid and (edge or now - self._last_preview >= PREVIEW_MIN_INTERVAL_S):
            self._last_preview = now
            self._send_preview(node_id, preview)

    def _send_preview(self, node_id, preview):
        try:
            jpeg = encode_preview_jpeg(preview)
        except Exception as exc:  # a bad preview must never fail the run
            log.warning("preview of node %s skipped: %s", node_id, exc)
            return
        if self.bus.client_flag(self.sid, "supports_preview_metadata"):
            meta = {
                "node_id": node_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "prompt_id": self.item.prompt_id,
                "image_type": "image/jpeg",
            }
            self.bus.send_bytes(preview_frame(jpeg, meta), self.sid)
        else:
            self.bus.send_bytes(preview_frame(jpeg), self.sid)

    def node_finished(self, prompt_id: str | None, node_id: str) -> None:
        """A node is done: its outline turns to finished."""
        node_id = str(node_id)
        entry = self.nodes.get(node_id)
        max_value = entry["max"] if entry else 1
        self.nodes[node_id] = self._node_entry(node_id, "finished", max_value, max_value)
        self._send_progress_state()

    def node_executed(self, prompt_id: str | None, node_id: str, ui: dict) -> None:
        """A node produced a ui dict (also re-sent for cached output nodes)."""
        node_id = str(node_id)
        if not ui:
            return
        self.outputs[node_id] = ui
        self.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
        self.send(
            "executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.item.prompt_id}
        )

    def execution_error(
        self,
        prompt_id: str | None,
        node_id: str,
        node_type: str,
        exception: BaseException,
        traceback_lines: list,
        executed: list,
    ) -> None:
        """The run failed in a node."""
        self.terminal = (
            "execution_error",
            {
                "prompt_id": self.item.prompt_id,
                "timestamp": now_ms(),
                "node_id": str(node_id or ""),
                "node_type": str(node_type or ""),
                "executed": [str(n) for n in executed or []],
                "exception_message": str(exception),
                "exception_type": full_type_name(exception),
                "traceback": [str(line) for line in traceback_lines or []],
                "current_inputs": {},
                "current_outputs": {},
            },
        )

    def execution_interrupted(
        self, prompt_id: str | None, node_id: str, node_type: str, executed: list, message: str | None = None
    ) -> None:
        """The user stopped the run; ``message`` says what was kept (e.g. where the latents were saved)."""
        self.terminal = (
            "execution_interrupted",
            {
                "prompt_id": self.item.prompt_id,
                "timestamp": now_ms(),
                "node_id": str(node_id or ""),
                "node_type": str(node_type or ""),
                "executed": [str(n) for n in executed or []],
                **({"exception_message": str(message)} if message else {}),
            },
        )

    def execution_success(self, prompt_id: str | None) -> None:
        """Every requested output ran."""
        self.terminal = ("execution_success", {"prompt_id": self.item.prompt_id, "timestamp": now_ms()})

    # -- end of run ----------------------------------------------------------------------------
    def finish(self, result: Any) -> HistoryRecord:
        """The history record of ``result``; the terminal message is sent by :meth:`send_terminal`, after
        the caller has stored the record (a client that reacts to ``execution_success`` finds its history)."""
        self.current_node = None
        status = getattr(result, "status", "error")
        if self.terminal is None or self.terminal[0] == "execution_success" and status != "success":
            self.terminal = self._terminal_from_result(result)
        kind, data = self.terminal
        self.history_messages.append([kind, data])
        outputs = dict(self.outputs)
        for node_id, ui in (getattr(result, "outputs", None) or {}).items():
            if ui and str(node_id) not in outputs:
                outputs[str(node_id)] = ui
                self.meta[str(node_id)] = {
                    "node_id": str(node_id),
                    "display_node": str(node_id),
                    "parent_node": None,
                    "real_node_id": str(node_id),
                }
        return HistoryRecord(
            item=self.item,
            outputs=outputs,
            meta=dict(self.meta),
            status_str="success" if kind == "execution_success" else "error",
            messages=self.history_messages,
            interrupted=kind == "execution_interrupted",
            error=data if kind == "execution_error" else None,
        )

    def send_terminal(self) -> None:
        """Send the run's terminal message (success, error or interrupted)."""
        kind, data = self.terminal
        self.send(kind, data)

    def _terminal_from_result(self, result):
        """The terminal message when the hooks did not provide one (e.g. validation failed at run time)."""
        status = getattr(result, "status", "error")
        if status == "success":
            return "execution_success", {"prompt_id": self.item.prompt_id, "timestamp": now_ms()}
        error = dict(getattr(result, "error", None) or {})
        if status == "interrupted":
            return "execution_interrupted", {
                "prompt_id": self.item.prompt_id,
                "timestamp": now_ms(),
                "node_id": str(error.get("node_id") or ""),
                "node_type": str(error.get("node_type") or ""),
                "executed": [str(n) for n in getattr(result, "executed", None) or []],
                **({"exception_message": str(error["exception_message"])} if error.get("exception_message") else {}),
            }
        message = error.get("exception_message") or error.get("message") or "execution failed"
        details = error.get("details")
        if details and details not in message:
            message = f"{message}: {details}"
        return "execution_error", {
            "prompt_id": self.item.prompt_id,
            "timestamp": now_ms(),
            "node_id": str(error.get("node_id") or ""),
            "node_type": str(error.get("node_type") or ""),
            "executed": [str(n) for n in error.get("executed") or getattr(result, "executed", None) or []],
            "exception_message": str(message),
            "exception_type": str(error.get("exception_type") or error.get("type") or "ExecutionError"),
            "traceback": [str(line) for line in error.get("traceback") or []],
            "current_inputs": {},
            "current_outputs": {},
        }


class _CrashResult:
    """Stands in for an ExecutionResult when the executor itself raised."""

    def __init__(self, exc):
        self.status = "error"
        self.outputs = {}
        self.executed = []
        self.error = {
            "node_id": "",
            "node_type": "",
            "exception_message": str(exc),
            "exception_type": full_type_name(exc),
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
        }


class QueueWorker:
    """The single thread that runs queued prompts through the executor."""

    def __init__(self, queue, executor, bus):
        self.queue = queue
        self.executor = executor
        self.bus = bus
        self.current = None  # RunMessages of the running prompt
        self._thread = None
        self._stop = threading.Event()
        self._free_requested = threading.Event()
        self._interrupted_id = None

    def start(self) -> None:
        """Start the worker thread (daemon: it never blocks interpreter exit)."""
        self._thread = threading.Thread(target=self._loop, name="framefold-queue-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to stop after the current prompt and interrupt that prompt."""
        self._stop.set()
        self.queue.close()
        if self.current is not None:
            self.executor.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only ``prompt_id`` if given); True when something was running."""
        current = self.current
        if current is None or (prompt_id and current.item.prompt_id != prompt_id):
            return False
        # Remembered so an interrupt that lands before the executor reset its flag is re-applied.
        self._interrupted_id = current.item.prompt_id
        self.executor.interrupt()
        return True

    def _reapply_interrupt(self, prompt_id):
        if self._interrupted_id == prompt_id:
            self.executor.interrupt()

    def request_free(self) -> None:
        """Clear the executor's cache before the next prompt (never during a run)."""
        self._free_requested.set()

    def _free_if_requested(self):
        if self._free_requested.is_set():
            self._free_requested.clear()
            clear = getattr(self.executor, "clear_cache", None)
            if clear is not None:
                clear()

    def _loop(self):
        while not self._stop.is_set():
            self._free_if_requested()
            item = self.queue.take(timeout=0.5)
            if item is None:
                continue
            try:
                self.run_one(item)
            except Exception:  # keep the worker alive whatever happens
                log.exception("queue worker failed on prompt %s", item.prompt_id)
                self.current = None

    def run_one(self, item: PromptItem) -> None:
        """Run one prompt and send its messages in ComfyUI's order."""
        messages = RunMessages(item, self.bus)
        messages.on_start = self._reapply_interrupt
        self._interrupted_id = None
        self.current = messages
        self.bus.broadcast_status()
        extra_data = dict(item.extra_data)
        extra_data.update(item.secrets)
        try:
            result = self.executor.execute(
                item.prompt, prompt_id=item.prompt_id, extra_data=extra_data, targets=item.targets, hooks=messages
            )
        except Exception as exc:
            log.exception("executor raised on prompt %s", item.prompt_id)
            result = _CrashResult(exc)
        record = messages.finish(result)
        self.queue.finish(record)
        messages.send_terminal()
        self.current = None
        messages.send("executing", {"node": None, "prompt_id": item.prompt_id})
        self.queue.notify_changed()
