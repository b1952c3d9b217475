"""The canvas host: an aiohttp server that serves the official ComfyUI frontend for FrameFold's nodes.

:func:`create_app` builds the application (every route of protocol §0, under ``/api/x`` and ``/x``,
the ``/ws`` websocket, the static frontend at ``/``); :func:`serve` runs it. One worker thread runs
the queue through the same :class:`~.executor.Executor` the CLI uses. Security defaults follow
protocol §10: loopback bind, Host allow-list, cross-site refusal, contained file paths.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import math
import mimetypes
import os
import platform
import re
import socket
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ..pipelines.video.naming import clean_stale_temp_files
from .registry import NodeRegistry
from .server_files import BodyRefused, FileRoutes, read_json_body
from .server_security import is_loopback_name, normalise_allowed_hosts, origin_guard_middleware
from .server_state import JobQueryError, PromptItem, PromptQueue, now_ms, parse_job_query, split_secrets
from .server_worker import QueueWorker

log = logging.getLogger("framefold.server")

PACKAGE_DIR = Path(__file__).resolve().parent.parent
FRONTEND_VERSION = "1.58.1"
NO_STORE_SUFFIXES = (".js", ".css", ".mjs")
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("application/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("video/webm", ".webm")
mimetypes.add_type("image/webp", ".webp")


def frontend_static_dir() -> Path:
    """The static folder of the pinned ``comfyui_frontend_package``."""
    return Path(str(importlib.resources.files("comfyui_frontend_package") / "static"))


def _version(module_name, attribute="__version__"):
    try:
        module = __import__(module_name)
        return str(getattr(module, attribute, "unknown"))
    except Exception:
        return "unknown"


def placeholder_thumbnail(title: str, size: tuple[int, int] = (384, 256)) -> bytes:
    """A plain JPEG card with the template's title, for example workflows without a thumbnail."""
    import cv2
    import numpy as np

    width, height = size
    image = np.full((height, width, 3), (46, 38, 32), np.uint8)
    cv2.rectangle(image, (12, 12), (width - 13, height - 13), (120, 96, 70), 2)
    label = title.replace("_", " ")[:28]
    scale = 0.8
    (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    origin = (max(16, (width - text_w) // 2), (height + text_h) // 2)
    cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 225, 215), 2, cv2.LINE_AA)
    return cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 85])[1].tobytes()


class MessageBus:
    """Websocket fan-out. Thread-safe ``send``; one async task delivers messages in order."""

    def __init__(self, queue):
        self.queue = queue
        self.sockets = {}
        self.flags = {}
        self.loop = None
        self._outbox = None
        self._task = None

    async def start(self) -> None:
        """Bind to the running loop and start the delivery task."""
        self.loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._task = asyncio.ensure_future(self._deliver())

    async def stop(self) -> None:
        """Stop delivering and close every socket."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for ws in list(self.sockets.values()):
            await ws.close()

    def _enqueue(self, entry):
        if self.loop is None or self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._outbox.put_nowait(entry)
        else:
            self.loop.call_soon_threadsafe(self._outbox.put_nowait, entry)

    def send(self, kind: str, data: Any, sid: str | None = None) -> None:
        """Queue a JSON message for ``sid`` (all sockets when None). Callable from any thread."""
        self._enqueue((json.dumps({"type": kind, "data": data}, default=str), sid))

    def send_bytes(self, payload: bytes, sid: str | None) -> None:
        """Queue a binary frame for ``sid``. Callable from any thread."""
        self._enqueue((bytes(payload), sid))

    def status_data(self, sid: str | None = None) -> dict:
        """The ``status`` payload (``sid`` included for the connect message)."""
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}}
        if sid is not None:
            data["sid"] = sid
        return data

    def broadcast_status(self) -> None:
        """Send the queue length to every socket."""
        self.send("status", self.status_data())

    def client_flag(self, sid: str | None, name: str) -> bool:
        """A feature flag the client ``sid`` announced."""
        return bool((self.flags.get(sid) or {}).get(name))

    async def _deliver(self):
        while True:
            payload, sid = await self._outbox.get()
            targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
            for ws in targets:
                if ws is None or ws.closed:
                    continue
                try:
                    if isinstance(payload, bytes):
                        await ws.send_bytes(payload)
                    else:
                        await ws.send_str(payload)
                except Exception as exc:  # a client went away mid-send
                    log.debug("websocket send failed: %s", exc)


def _json_body_error(kind, message, details=""):
    return {"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


def _is_canonical_uuid(value):
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class CanvasHost:
    """The routes that need the queue, the executor or the registry."""

    def __init__(self, executor, registry, files, max_upload_bytes):
        self.executor = executor
        self.registry = registry
        self.files = files
        self.max_upload_bytes = max_upload_bytes
        self.pack = getattr(registry, "pack_name", "framefold")
        self.queue = PromptQueue()
        self.bus = MessageBus(self.queue)
        self.queue.changed = self.bus.broadcast_status
        self.worker = QueueWorker(self.queue, executor, self.bus)
        self.web_dir = PACKAGE_DIR / "web"
        self.example_dir = PACKAGE_DIR / "example_workflows"

    def feature_flags(self) -> dict:
        """Server feature flags (protocol §3.2): minimal on purpose."""
        return {"supports_preview_metadata": True, "max_upload_size": self.max_upload_bytes}

    # -- lifecycle -----------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        """Start the message bus and the worker thread."""
        await self.bus.start()
        self.worker.start()

    async def on_shutdown(self, app: web.Application) -> None:
        """Close websockets so the server can stop."""
        for ws in list(self.bus.sockets.values()):
            await ws.close(code=1001, message=b"server shutdown")

    async def on_cleanup(self, app: web.Application) -> None:
        """Stop the worker and the bus."""
        await asyncio.get_running_loop().run_in_executor(None, self.worker.stop)
        await self.bus.stop()

    # -- boot routes ---------------------------------------------------------------------------
    async def users(self, request: web.Request) -> web.StreamResponse:
        """Single-user mode: no ``users`` key."""
        return web.json_response({"storage": "server", "migrated": True})

    async def features(self, request: web.Request) -> web.StreamResponse:
        """GET /features: the server feature flags."""
        return web.json_response(self.feature_flags())

    async def extensions(self, request: web.Request) -> web.StreamResponse:
        """URLs of the pack's web JS files."""
        urls = []
        if self.web_dir.is_dir():
            for path in sorted(self.web_dir.rglob("*.js")):
                if path.is_file():
                    urls.append(f"/extensions/{self.pack}/{path.relative_to(self.web_dir).as_posix()}")
        return web.json_response(urls)

    async def object_info(self, request: web.Request) -> web.StreamResponse:
        """GET /object_info: every node definition."""
        info = await asyncio.get_running_loop().run_in_executor(None, self.registry.object_info)
        return web.json_response(info)

    async def object_info_one(self, request: web.Request) -> web.StreamResponse:
        """GET /object_info/{class}: one definition, or {} when unknown."""
        name = request.match_info["node_class"]
        if name not in self.registry:
            return web.json_response({})
        return web.json_response({name: self.registry.node_info(name)})

    async def system_stats(self, request: web.Request) -> web.StreamResponse:
        """Cheap system description for the about panel."""
        import torch

        ram_total = ram_free = 0
        try:
            pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            ram_total = pages * page_size
            ram_free = os.sysconf("SC_AVPHYS_PAGES") * page_size
        except (ValueError, OSError, AttributeError):
            pass
        device = {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": ram_total,
            "vram_free": ram_free,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            device = {
                "name": torch.cuda.get_device_name(0),
                "type": "cuda",
                "index": 0,
                "vram_total": total,
                "vram_free": free,
                "torch_vram_total": total,
                "torch_vram_free": free,
            }
        from .. import __version__

        return web.json_response(
            {
                "system": {
                    "os": platform.system().lower(),
                    "ram_total": ram_total,
                    "ram_free": ram_free,
                    "comfyui_version": __version__,
                    "required_frontend_version": FRONTEND_VERSION,
                    "python_version": sys.version,
                    "pytorch_version": torch.__version__,
                    "embedded_python": False,
                    "argv": ["framefold", "serve"],
                },
                "devices": [device],
            }
        )

    async def i18n(self, request: web.Request) -> web.StreamResponse:
        """Translations from ``<pack>/locales/<lang>/*.json`` (empty when the pack has none)."""
        result = {}
        locales = PACKAGE_DIR / "locales"
        if locales.is_dir():
            for lang_dir in sorted(p for p in locales.iterdir() if p.is_dir()):
                entry = {}
                for name in ("main", "nodeDefs", "commands", "settings"):
                    path = lang_dir / f"{name}.json"
                    if path.is_file():
                        try:
                            data = json.loads(path.read_text(encoding="utf-8"))
                        except ValueError:
                            continue
                        if name == "main" and isinstance(data, dict):
                            entry.update(data)
                        else:
                            entry[name] = data
                result[lang_dir.name] = entry
        return web.json_response(result)

    async def empty_list(self, request: web.Request) -> web.StreamResponse:
        """A JSON [] (routes with nothing to list in this host, e.g. /embeddings)."""
        return web.json_response([])

    async def empty_object(self, request: web.Request) -> web.StreamResponse:
        """A JSON {} (routes with nothing to report, e.g. /global_subgraphs)."""
        return web.json_response({})

    async def experiment_models(self, request: web.Request) -> web.StreamResponse:
        """GET /experiment/models: the model folders and their extensions."""
        from ..nodes import _folders

        return web.json_response(
            [
                {
                    "name": kind,
                    "folders": [str(p) for p in _folders.model_search_dirs(kind)],
                    "extensions": list(_folders.MODEL_EXTENSIONS),
                }
                for kind in _folders.MODEL_KINDS
            ]
        )

    async def experiment_models_folder(self, request: web.Request) -> web.StreamResponse:
        """GET /experiment/models/{folder}: the model files of one folder."""
        from ..nodes import _folders

        kind = request.match_info["folder"]
        if kind not in _folders.MODEL_KINDS:
            return web.Response(status=404)
        entries = []
        for index, base in enumerate(_folders.model_search_dirs(kind)):
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.is_file() and path.suffix.lower() in _folders.MODEL_EXTENSIONS:
                    stat = path.stat()
                    entries.append(
                        {
                            "name": path.relative_to(base).as_posix(),
                            "pathIndex": index,
                            "modified": stat.st_mtime,
                            "created": stat.st_ctime,
                            "size": stat.st_size,
                        }
                    )
        return web.json_response(entries)

    async def workflow_templates(self, request: web.Request) -> web.StreamResponse:
        """``{pack: [example workflow names]}``."""
        names = []
        if self.example_dir.is_dir():
            names = sorted(p.stem for p in self.example_dir.glob("*.json") if p.is_file())
        return web.json_response({self.pack: names})

    async def workflow_template_file(self, request: web.Request) -> web.StreamResponse:
        """A file of the pack's ``example_workflows`` folder (JSON or thumbnail)."""
        from .server_security import PathRefused, contained_path

        if request.match_info["pack"] != self.pack:
            return web.Response(status=404)
        name = request.match_info["name"]
        if "/" in name or not self.example_dir.is_dir():
            return web.Response(status=404)
        try:
            path = contained_path(self.example_dir, name)
        except PathRefused:
            return web.Response(status=403)
        if not path.is_file():
            stem, _, suffix = name.rpartition(".")
            if suffix == "jpg" and (self.example_dir / f"{stem}.json").is_file():
                # The template browser asks for a thumbnail of every example; draw one when none ships.
                return web.Response(
                    body=placeholder_thumbnail(stem),
                    content_type="image/jpeg",
                    headers={"X-Content-Type-Options": "nosniff"},
                )
            return web.Response(status=404)
        return web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff"})

    async def core_templates(self, request: web.Request) -> web.StreamResponse:
        """``/templates/index*.json``: no core templates in this host (an empty JSON list/object)."""
        name = request.match_info["name"]
        if name == "index_logo.json":
            return web.json_response({})
        if re.fullmatch(r"index(\.[A-Za-z_-]+)?\.json", name):
            return web.json_response([])
        return web.Response(status=404)

    # -- execution -----------------------------------------------------------------------------
    async def get_prompt(self, request: web.Request) -> web.StreamResponse:
        """GET /prompt: the queue length (the frontend's polling fallback)."""
        return web.json_response({"exec_info": {"queue_remaining": self.queue.remaining()}})

    async def post_prompt(self, request: web.Request) -> web.StreamResponse:
        """Validate and queue a prompt; 400 in ComfyUI's shape when no output survives validation."""
        try:
            body = await read_json_body(request)
        except BodyRefused as exc:
            return web.json_response(
                _json_body_error("invalid_prompt", "Request body is not a valid prompt", exc.message), status=exc.status
            )
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict):
            return web.json_response(
                _json_body_error("no_prompt", "No prompt provided", "No prompt provided"), status=400
            )
        prompt_id = body.get("prompt_id")
        if prompt_id is not None:
            if not _is_canonical_uuid(prompt_id):
                return web.json_response(
                    _json_body_error(
                        "invalid_prompt", "Invalid prompt_id", "prompt_id must be a canonical lowercase UUID"
                    ),
                    status=400,
                )
            if self.queue.knows(prompt_id):
                return web.json_response(
                    _json_body_error(
                        "invalid_prompt", "Duplicate prompt_id", f"prompt_id {prompt_id} is already known"
                    ),
                    status=400,
                )
        else:
            prompt_id = str(uuid.uuid4())
        targets = body.get("partial_execution_targets")
        if targets is not None:
            if not isinstance(targets, list):
                return web.json_response(
                    _json_body_error("invalid_prompt", "partial_execution_targets must be a list"), status=400
                )
            targets = [str(t) for t in targets]
        prompt = body["prompt"]
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.executor.validate, prompt, targets)
        except Exception as exc:  # a broken node definition must not turn into an HTML 500 page
            log.exception("validation raised")
            return web.json_response(
                _json_body_error(
                    "exception_during_validation", "Validation raised an exception", f"{type(exc).__name__}: {exc}"
                ),
                status=500,
            )
        if not result.ok:
            error = result.error or {
                "type": "invalid_prompt",
                "message": "Prompt failed validation",
                "details": "",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": result.node_errors or {}}, status=400)
        if "number" in body:
            try:
                number = float(body["number"])
            except (TypeError, ValueError, OverflowError):
                number = math.nan
            if not math.isfinite(number):
                return web.json_response(
                    _json_body_error("invalid_prompt", "number must be a finite number"), status=400
                )
        else:
            number = self.queue.next_number(front=bool(body.get("front")))
        raw_extra = body.get("extra_data")
        extra_data, secrets = split_secrets(raw_extra if isinstance(raw_extra, dict) else {})
        extra_data["create_time"] = now_ms()
        if body.get("client_id") is not None:
            extra_data["client_id"] = str(body["client_id"])
        item = PromptItem(
            number=number,
            prompt_id=prompt_id,
            prompt=prompt,
            extra_data=extra_data,
            outputs=[str(o) for o in result.outputs],
            targets=targets,
            secrets=secrets,
            create_time=extra_data["create_time"],
        )
        self.queue.put(item)
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors or {}})

    async def interrupt(self, request: web.Request) -> web.StreamResponse:
        """Interrupt the running prompt (only the given ``prompt_id`` if the body names one)."""
        prompt_id = None
        if request.can_read_body:
            try:
                body = await read_json_body(request)
                prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
            except BodyRefused:
                prompt_id = None
        self.worker.interrupt(prompt_id)
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.StreamResponse:
        """Forget cached node outputs before the next prompt (models held by the cache go with them)."""
        try:
            body = await read_json_body(request)
        except BodyRefused:
            body = {}
        if isinstance(body, dict) and (body.get("unload_models") or body.get("free_memory")):
            self.worker.request_free()
        return web.Response(status=200)

    async def jobs(self, request: web.Request) -> web.StreamResponse:
        """GET /jobs: filtered, sorted, paginated jobs (400 on a bad query)."""
        try:
            statuses, limit, offset, sort_by, descending, workflow_id = parse_job_query(request.query)
        except JobQueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.queue.list_jobs(statuses, limit, offset, sort_by, descending, workflow_id))

    async def job(self, request: web.Request) -> web.StreamResponse:
        """GET /jobs/{id}: one job with outputs and workflow, 404 when unknown."""
        detail = self.queue.job_detail(request.match_info["job_id"])
        if detail is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(detail)

    def _cancel(self, job_id):
        removed = self.queue.delete_pending([job_id])
        return bool(removed) or self.worker.interrupt(job_id)

    async def cancel_job(self, request: web.Request) -> web.StreamResponse:
        """POST /jobs/{id}/cancel: drop it from the queue or interrupt it; idempotent."""
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def cancel_jobs(self, request: web.Request) -> web.StreamResponse:
        """POST /jobs/cancel: cancel several jobs (400 on malformed ids)."""
        try:
            body = await read_json_body(request)
        except BodyRefused as exc:
            return web.json_response({"error": f"body must be JSON: {exc.message}"}, status=exc.status)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            return web.json_response({"error": "job_ids must be a non-empty list of ids"}, status=400)
        cancelled = False
        for job_id in ids:
            cancelled = self._cancel(job_id) or cancelled
        return web.json_response({"cancelled": cancelled})

    async def get_queue(self, request: web.Request) -> web.StreamResponse:
        """GET /queue: running and pending queue tuples."""
        return web.json_response(self.queue.queue_snapshot())

    @staticmethod
    async def _delete_or_clear(request, clear, delete):
        """Apply a ``{"clear": true}`` / ``{"delete": [ids]}`` body (the /queue and /history POST shape)."""
        try:
            body = await read_json_body(request)
        except BodyRefused as exc:
            return web.json_response({"error": f"body must be JSON: {exc.message}"}, status=exc.status)
        if isinstance(body, dict):
            if body.get("clear"):
                clear()
            if isinstance(body.get("delete"), list):
                delete([str(i) for i in body["delete"]])
        return web.Response(status=200)

    async def post_queue(self, request: web.Request) -> web.StreamResponse:
        """POST /queue: delete pending items or clear the queue."""
        return await self._delete_or_clear(request, self.queue.clear_pending, self.queue.delete_pending)

    async def get_history(self, request: web.Request) -> web.StreamResponse:
        """GET /history?max_items=&offset=: finished prompts."""
        try:
            max_items = int(request.query["max_items"]) if request.query.get("max_items") else None
            offset = int(request.query.get("offset") or -1)
        except ValueError:
            return web.json_response({"error": "max_items and offset must be integers"}, status=400)
        return web.json_response(self.queue.history(max_items, offset))

    async def get_history_one(self, request: web.Request) -> web.StreamResponse:
        """GET /history/{id}: one finished prompt or {}."""
        return web.json_response(self.queue.history_entry(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.StreamResponse:
        """POST /history: delete entries or clear the history."""
        return await self._delete_or_clear(request, self.queue.clear_history, self.queue.delete_history)

    # -- internal ------------------------------------------------------------------------------
    async def internal_logs(self, request: web.Request) -> web.StreamResponse:
        """GET /internal/logs: this host keeps no log buffer."""
        return web.json_response("")

    async def internal_logs_raw(self, request: web.Request) -> web.StreamResponse:
        """GET /internal/logs/raw: an empty terminal buffer."""
        return web.json_response({"entries": [], "size": {"cols": 80, "rows": 24}})

    async def internal_logs_subscribe(self, request: web.Request) -> web.StreamResponse:
        """PATCH /internal/logs/subscribe: accepted; no log messages are pushed."""
        return web.Response(status=200)

    async def internal_folder_paths(self, request: web.Request) -> web.StreamResponse:
        """GET /internal/folder_paths: model folders by kind."""
        from ..nodes import _folders

        return web.json_response(
            {kind: [str(p) for p in _folders.model_search_dirs(kind)] for kind in _folders.MODEL_KINDS}
        )

    async def internal_files(self, request: web.Request) -> web.StreamResponse:
        """GET /internal/files/{input|output|temp}: file names, newest first."""
        kind = request.match_info["kind"]
        if kind not in ("input", "output", "temp"):
            return web.json_response({"error": "unknown folder"}, status=400)
        base = self.files.dirs[kind]
        entries = [p for p in base.iterdir() if p.is_file() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return web.json_response([f"{p.name} [{kind}]" for p in entries])

    # -- websocket -----------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """``/ws``: clientId handshake, status on connect, feature flag exchange."""
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        sid = request.query.get("clientId") or ""
        if not CLIENT_ID_PATTERN.match(sid):
            sid = uuid.uuid4().hex
        self.bus.sockets[sid] = ws
        self.bus.send("status", self.bus.status_data(sid), sid)
        current = self.worker.current
        if current is not None and current.sid == sid:
            executing = current.executing_message()
            if executing is not None:
                self.bus.send("executing", executing, sid)
        flags_answered = False
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("type") == "feature_flags":
                    self.bus.flags[sid] = data.get("data") if isinstance(data.get("data"), dict) else {}
                    if not flags_answered:
                        flags_answered = True
                        self.bus.send("feature_flags", self.feature_flags(), sid)
        finally:
            if self.bus.sockets.get(sid) is ws:
                del self.bus.sockets[sid]
                self.bus.flags.pop(sid, None)
        return ws


HOST_KEY = web.AppKey("framefold_host", CanvasHost)


def _static_headers_middleware():
    """JS as application/javascript; ``Cache-Control: no-store`` for /, JS, CSS and index*.json."""

    @web.middleware
    async def static_headers(request, handler):
        """Adjust headers of the response the next handler produced."""
        response = await handler(request)
        path = request.path
        name = path.rsplit("/", 1)[-1]
        if path.endswith((".js", ".mjs")) and isinstance(response, web.StreamResponse):
            response.headers["Content-Type"] = "application/javascript"
        if path == "/" or path.endswith(NO_STORE_SUFFIXES) or (name.startswith("index") and name.endswith(".json")):
            response.headers["Cache-Control"] = "no-store"
        return response

    return static_headers


def _add_api_route(router, method, path, handler):
    """Register ``path`` both as ``/api<path>`` and bare ``<path>`` (as ComfyUI does)."""
    router.add_route(method, "/api" + path, handler)
    router.add_route(method, path, handler)


def create_app(
    *,
    executor: Any = None,
    registry: NodeRegistry | None = None,
    input_dir: str | Path,
    output_dir: str | Path,
    temp_dir: str | Path,
    user_dir: str | Path,
    max_upload_mb: float = 100,
    allowed_hosts: tuple = (),
) -> web.Application:
    """Build the canvas host application.

    ``executor`` defaults to ``Executor(registry)``; ``registry`` defaults to the executor's registry or
    FrameFold's own. The folders are also installed as the pack's io folders (``set_io_dirs``) so nodes
    save where ``/view`` looks. ``allowed_hosts`` extends the Host allow-list beyond loopback names.
    """
    from ..nodes._folders import set_io_dirs

    if executor is None:
        from .executor import Executor

        executor = Executor(registry)
    if registry is None:
        registry = getattr(executor, "registry", None)
        if registry is None:
            from .registry import default_registry

            registry = default_registry()
    dirs = {"input": Path(input_dir), "output": Path(output_dir), "temp": Path(temp_dir), "user": Path(user_dir)}
    set_io_dirs(**dirs)
    for stale in clean_stale_temp_files(dirs["output"]):
        log.info("removed a temp file left by a killed run: %s", stale)
    files = FileRoutes(dirs)
    max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    host = CanvasHost(executor, registry, files, max_upload_bytes)

    app = web.Application(
        client_max_size=max_upload_bytes,
        middlewares=[origin_guard_middleware(normalise_allowed_hosts(allowed_hosts)), _static_headers_middleware()],
    )
    app[HOST_KEY] = host
    app.on_startup.append(host.on_startup)
    app.on_shutdown.append(host.on_shutdown)
    app.on_cleanup.append(host.on_cleanup)

    router = app.router
    router.add_get("/ws", host.websocket)
    router.add_get("/api/ws", host.websocket)
    routes = [
        ("GET", "/users", host.users),
        ("GET", "/features", host.features),
        ("GET", "/settings", files.get_settings),
        ("POST", "/settings", files.post_settings),
        ("GET", "/settings/{id}", files.get_setting),
        ("POST", "/settings/{id}", files.post_setting),
        ("GET", "/extensions", host.extensions),
        ("GET", "/object_info", host.object_info),
        ("GET", "/object_info/{node_class}", host.object_info_one),
        ("GET", "/system_stats", host.system_stats),
        ("GET", "/i18n", host.i18n),
        ("GET", "/embeddings", host.empty_list),
        ("GET", "/experiment/models", host.experiment_models),
        ("GET", "/experiment/models/{folder}", host.experiment_models_folder),
        ("GET", "/global_subgraphs", host.empty_object),
        ("GET", "/global_subgraphs/{id}", host.empty_object),
        ("GET", "/workflow_templates", host.workflow_templates),
        ("GET", "/workflow_templates/{pack}/{name}", host.workflow_template_file),
        ("GET", "/prompt", host.get_prompt),
        ("POST", "/prompt", host.post_prompt),
        ("POST", "/interrupt", host.interrupt),
        ("POST", "/free", host.free),
        ("GET", "/jobs", host.jobs),
        ("POST", "/jobs/cancel", host.cancel_jobs),
        ("GET", "/jobs/{job_id}", host.job),
        ("POST", "/jobs/{job_id}/cancel", host.cancel_job),
        ("GET", "/queue", host.get_queue),
        ("POST", "/queue", host.post_queue),
        ("GET", "/history", host.get_history),
        ("POST", "/history", host.post_history),
        ("GET", "/history/{prompt_id}", host.get_history_one),
        ("GET", "/view", files.view),
        ("POST", "/upload/image", files.upload_image),
        ("GET", "/userdata", files.list_userdata),
        ("GET", "/userdata/{file}", files.get_userdata),
        ("POST", "/userdata/{file}", files.post_userdata),
        ("DELETE", "/userdata/{file}", files.delete_userdata),
        ("POST", "/userdata/{file}/move/{dest}", files.move_userdata),
    ]
    for method, path, handler in routes:
        _add_api_route(router, method, path, handler)
    router.add_get("/internal/logs", host.internal_logs)
    router.add_get("/internal/logs/raw", host.internal_logs_raw)
    router.add_route("PATCH", "/internal/logs/subscribe", host.internal_logs_subscribe)
    router.add_get("/internal/folder_paths", host.internal_folder_paths)
    router.add_get("/internal/files/{kind}", host.internal_files)
    router.add_get("/templates/{name}", host.core_templates)
    if host.web_dir.is_dir():
        router.add_static(f"/extensions/{host.pack}/", host.web_dir, follow_symlinks=False)

    static_dir = frontend_static_dir()

    async def index(request):
        """GET /: the app shell, never cached."""
        return web.FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-store"})

    async def empty_user_css(request):
        """GET /user.css: an empty stylesheet."""
        # index.html links ./user.css; ComfyUI has none in its static root either (user styles live in userdata).
        return web.Response(text="", content_type="text/css", headers={"Cache-Control": "no-store"})

    router.add_get("/", index)
    router.add_get("/user.css", empty_user_css)
    router.add_static("/", static_dir, follow_symlinks=False)
    return app


def _bind_hosts(listen):
    """The addresses to bind from a comma-separated ``listen`` string."""
    return [h.strip().strip("[]") for h in str(listen).split(",") if h.strip()] or ["127.0.0.1"]


def _extra_allowed_hosts(bind_hosts):
    """Host names a LAN client may use when we listen beyond loopback."""
    names = set()
    for host in bind_hosts:
        if is_loopback_name(host):
            continue
        if host in ("0.0.0.0", "::", ""):
            names.add(socket.gethostname())
            names.add(socket.getfqdn())
            try:
                for info in socket.getaddrinfo(socket.gethostname(), None):
                    names.add(info[4][0])
            except OSError:
                pass
        else:
            names.add(host)
    return sorted(n for n in names if n)


def _url_host(host):
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def startup_lines(bind_hosts: list, url: str) -> list[str]:
    """What ``serve`` prints: the URL, plus a warning when any bind address is not loopback."""
    lines = [f"FrameFold canvas: {url}"]
    exposed = [h for h in bind_hosts if not is_loopback_name(h)]
    if exposed:
        lines.append(
            f"WARNING: listening on {', '.join(exposed)} - anyone who can reach this machine can run "
            "workflows and read its outputs. Keep the default 127.0.0.1 unless you trust the network."
        )
    return lines


def serve(
    listen: str = "127.0.0.1",
    port: int = 8188,
    open_browser: bool = False,
    max_upload_mb: float = 100,
    output_dir: str | Path | None = None,
    input_dir: str | Path | None = None,
    user_dir: str | Path | None = None,
    temp_dir: str | Path | None = None,
    allowed_hosts: tuple = (),
    executor: Any = None,
) -> None:
    """Run the canvas host until interrupted; print the URL (and a warning for non-loopback binds)."""
    from ..nodes._folders import io_dir

    bind_hosts = _bind_hosts(listen)
    dirs: dict[str, Any] = {
        "input_dir": Path(input_dir) if input_dir else io_dir("input"),
        "output_dir": Path(output_dir) if output_dir else io_dir("output"),
        "temp_dir": Path(temp_dir) if temp_dir else io_dir("temp"),
        "user_dir": Path(user_dir) if user_dir else io_dir("user"),
    }
    app = create_app(
        executor=executor,
        max_upload_mb=max_upload_mb,
        allowed_hosts=tuple(allowed_hosts) + tuple(_extra_allowed_hosts(bind_hosts)),
        **dirs,
    )

    async def run():
        """Bind, print the URL, serve until cancelled."""
        runner = web.AppRunner(app)
        await runner.setup()
        for host in bind_hosts:
            await web.TCPSite(runner, host, port).start()
        actual_port = port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                actual_port = address[1]
                break
        url = f"http://{_url_host(bind_hosts[0])}:{actual_port}/"
        for line in startup_lines(bind_hosts, url):
            print(line, flush=True)
        if open_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print("FrameFold canvas stopped.", flush=True)
