"""File routes of the canvas host: ``/view``, ``/upload/image``, ``/userdata`` and ``/settings``.

Every user-supplied path goes through :func:`contained_path`; files are written to a temp name and
renamed into place.
"""

from __future__ import annotations

import json
import mimetypes
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .server_security import PathRefused, contained_path, is_dangerous_content_type, relative_posix
from .workflow_input import WorkflowError, parse_json_text

USER_NAME = "default"
SETTINGS_FILE = "comfy.settings.json"
SEEDED_SETTINGS = {"Comfy.Notification.ShowVersionUpdates": False}
VIEW_TYPES = ("output", "input", "temp")
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024  # a prompt or other JSON request body
MAX_SETTING_BYTES = 256 * 1024  # one POST /settings or /settings/{id} body
MAX_SETTINGS_FILE_BYTES = 2 * 1024 * 1024  # all settings together (sent on every canvas load)
MAX_USERDATA_BYTES = 32 * 1024 * 1024  # one userdata file (a saved workflow)


class BodyRefused(Exception):
    """A request body that is too large or not strict JSON; ``status`` and ``message`` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused (413) when longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, f"body of {request.content_length} bytes is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:  # read(n) returns what has arrived (up to n bytes), not the whole body
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"body is larger than the limit of {limit} bytes")


async def read_json_body(request: web.Request, limit: int = MAX_JSON_BODY_BYTES) -> object:
    """A strict JSON request body (finite numbers only, nesting and string limits); BodyRefused (400/413)."""
    body = await read_body(request, limit)
    try:
        return parse_json_text(body, "request body")
    except WorkflowError as exc:
        raise BodyRefused(400, str(exc)) from None


USER_FOLDERS = ("workflows", "subgraphs")


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` (bytes) to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_info(path: str | Path, relative: str) -> dict:
    """``{"path","size","modified","created"}`` with times in ms."""
    stat = os.stat(path)
    return {
        "path": relative,
        "size": stat.st_size,
        "modified": int(stat.st_mtime * 1000),
        "created": int(stat.st_ctime * 1000),
    }


def disposition(kind: str | None, name: str) -> str:
    """A Content-Disposition value (``inline``-less like ComfyUI, or ``attachment``) with a safe quoted name."""
    safe = "".join(c for c in name if c >= " " and c != "\x7f").replace("\\", "\\\\").replace('"', '\\"')
    return f'{kind}; filename="{safe}"' if kind else f'filename="{safe}"'


def _json_error(status, message):
    return web.json_response({"error": message}, status=status)


class FileRoutes:
    """Handlers bound to the host's folders."""

    def __init__(self, dirs):
        self.dirs = {name: Path(path) for name, path in dirs.items()}
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        # The workflow browser lists these on every boot; present-but-empty beats a 404 per page load.
        for folder in USER_FOLDERS:
            (self.dirs["user"] / USER_NAME / folder).mkdir(parents=True, exist_ok=True)

    # -- users / settings ----------------------------------------------------------------------
    def user_root(self, request: web.Request) -> Path:
        """The single user's folder; ``Comfy-User`` ids starting with ``__`` are reserved (403)."""
        requested = request.headers.get("Comfy-User", "")
        if requested.startswith("__"):
            raise web.HTTPForbidden(text="reserved user id")
        root = self.dirs["user"] / USER_NAME
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _settings_path(self, request):
        return self.user_root(request) / SETTINGS_FILE

    def read_settings(self, request: web.Request) -> dict:
        """Stored settings merged over the seeded defaults."""
        path = self._settings_path(request)
        stored = {}
        if path.is_file():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                stored = {}
        return {**SEEDED_SETTINGS, **(stored if isinstance(stored, dict) else {})}

    def _write_settings(self, request, settings):
        atomic_write(self._settings_path(request), json.dumps(settings, indent=4).encode("utf-8"))

    async def get_settings(self, request: web.Request) -> web.StreamResponse:
        """GET /settings."""
        return web.json_response(self.read_settings(request))

    async def get_setting(self, request: web.Request) -> web.StreamResponse:
        """GET /settings/{id}: the value or null."""
        return web.json_response(self.read_settings(request).get(request.match_info["id"]))

    async def post_setting(self, request: web.Request) -> web.StreamResponse:
        """POST /settings/{id}: store one value (body = strict JSON, at most MAX_SETTING_BYTES)."""
        try:
            value = await read_json_body(request, MAX_SETTING_BYTES)
        except BodyRefused as exc:
            return _json_error(exc.status, exc.message)
        return self._store_settings(request, {request.match_info["id"]: value})

    async def post_settings(self, request: web.Request) -> web.StreamResponse:
        """POST /settings: merge an object of settings (strict JSON, at most MAX_SETTING_BYTES)."""
        try:
            values = await read_json_body(request, MAX_SETTING_BYTES)
        except BodyRefused as exc:
            return _json_error(exc.status, exc.message)
        if not isinstance(values, dict):
            return _json_error(400, "body must be a JSON object")
        return self._store_settings(request, values)

    def _store_settings(self, request, values):
        """Merge ``values`` into the stored settings unless the whole would pass MAX_SETTINGS_FILE_BYTES."""
        settings = self.read_settings(request)
        settings.update(values)
        size = len(json.dumps(settings, indent=4).encode("utf-8"))
        if size > MAX_SETTINGS_FILE_BYTES:
            return _json_error(
                413, f"settings would take {size} bytes, more than the limit of {MAX_SETTINGS_FILE_BYTES}"
            )
        self._write_settings(request, settings)
        return web.Response(status=200)

    # -- userdata ------------------------------------------------------------------------------
    def _user_file(self, request, raw):
        """Resolve a userdata path (one ``%2F``-encoded segment) inside the user's folder, or 403/400."""
        if "%" in raw:
            raw = unquote(raw)  # ComfyUI decodes once more when an escape survived routing
        if not raw:
            raise web.HTTPBadRequest(text="empty file name")
        root = self.user_root(request)
        try:
            return root, contained_path(root, raw)
        except PathRefused as exc:
            raise web.HTTPForbidden(text=str(exc)) from None

    async def list_userdata(self, request: web.Request) -> web.StreamResponse:
        """GET /userdata?dir=&recurse=&full_info=&split=."""
        directory = request.query.get("dir")
        if not directory:
            return _json_error(400, "dir is required")
        root, base = self._user_file(request, directory)
        if not base.is_dir():
            return web.Response(status=404)
        recurse = request.query.get("recurse", "").lower() == "true"
        full_info = request.query.get("full_info", "").lower() == "true"
        split = request.query.get("split", "").lower() == "true"
        paths = []
        base_real = Path(os.path.realpath(base))
        walker = os.walk(base_real) if recurse else [(str(base_real), [], os.listdir(base_real))]
        for folder, _dirs, names in walker:
            for name in names:
                full = Path(folder) / name
                if not full.is_file():
                    continue
                try:
                    relative = relative_posix(full, base_real)  # also drops symlinks that point outside
                except ValueError:
                    continue
                paths.append((relative, full))
        paths.sort()
        if full_info:
            return web.json_response([file_info(full, relative) for relative, full in paths])
        if split:
            return web.json_response([[relative] + relative.split("/") for relative, _ in paths])
        return web.json_response([relative for relative, _ in paths])

    async def get_userdata(self, request: web.Request) -> web.StreamResponse:
        """GET /userdata/{file}: raw bytes, forced to download (except user.css)."""
        root, path = self._user_file(request, request.match_info["file"])
        if not path.is_file():
            return web.Response(status=404)
        headers = {"X-Content-Type-Options": "nosniff"}
        if path.name != "user.css":
            headers["Content-Disposition"] = disposition("attachment", path.name)
        return web.FileResponse(path, headers=headers)

    def _saved_response(self, request, root, path):
        relative = relative_posix(path, root)
        if request.query.get("full_info", "").lower() == "true":
            return web.json_response(file_info(path, relative))
        return web.json_response(relative)

    async def post_userdata(self, request: web.Request) -> web.StreamResponse:
        """POST /userdata/{file}?overwrite=&full_info=: store the body atomically."""
        root, path = self._user_file(request, request.match_info["file"])
        overwrite = request.query.get("overwrite", "true").lower() != "false"
        if path.is_dir():
            return _json_error(400, "path is a folder")
        if path.exists() and not overwrite:
            return web.Response(status=409, text="file exists")
        try:
            body = await read_body(request, MAX_USERDATA_BYTES)
        except BodyRefused as exc:
            return _json_error(exc.status, exc.message)
        atomic_write(path, body)
        return self._saved_response(request, root, path)

    async def delete_userdata(self, request: web.Request) -> web.StreamResponse:
        """DELETE /userdata/{file}."""
        root, path = self._user_file(request, request.match_info["file"])
        if not path.is_file():
            return web.Response(status=404)
        path.unlink()
        return web.Response(status=204)

    async def move_userdata(self, request: web.Request) -> web.StreamResponse:
        """POST /userdata/{file}/move/{dest}?overwrite=&full_info=."""
        root, source = self._user_file(request, request.match_info["file"])
        _, dest = self._user_file(request, request.match_info["dest"])
        overwrite = request.query.get("overwrite", "true").lower() != "false"
        if not source.is_file():
            return web.Response(status=404)
        if dest.exists() and not overwrite:
            return web.Response(status=409, text="destination exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
        return self._saved_response(request, root, dest)

    # -- view ----------------------------------------------------------------------------------
    def _view_path(self, query):
        """Resolve ``/view`` parameters to a file (400/403/404 like ComfyUI)."""
        filename = query.get("filename")
        if not filename:
            raise web.HTTPBadRequest(text="filename is required")
        kind = query.get("type") or "output"
        for annotation in VIEW_TYPES:
            suffix = f" [{annotation}]"
            if filename.endswith(suffix):
                filename, kind = filename[: -len(suffix)], annotation
        if filename.startswith("/") or ".." in filename or "\\" in filename or "\x00" in filename:
            raise web.HTTPBadRequest(text="invalid filename")
        if kind not in VIEW_TYPES:
            raise web.HTTPBadRequest(text="type must be input, output or temp")
        base = self.dirs[kind]
        subfolder = query.get("subfolder", "")
        try:
            folder = contained_path(base, subfolder)
            path = contained_path(folder, os.path.basename(filename))
        except PathRefused:
            raise web.HTTPForbidden(text="path leaves its folder") from None
        if not path.is_file():
            raise web.HTTPNotFound()
        return path

    async def view(self, request: web.Request) -> web.StreamResponse:
        """GET /view: a file of the output/input/temp folder, optionally re-encoded as a preview."""
        path = self._view_path(request.query)
        preview = request.query.get("preview")
        channel = (request.query.get("channel") or "rgba").lower()
        if preview or channel in ("rgb", "a"):
            encoded = _reencode_image(path, preview, channel)
            if encoded is not None:
                body, content_type = encoded
                return web.Response(
                    body=body,
                    content_type=content_type,
                    headers={"Content-Disposition": disposition(None, path.name), "X-Content-Type-Options": "nosniff"},
                )
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"X-Content-Type-Options": "nosniff"}
        svg_as_image = content_type == "image/svg+xml" and request.headers.get("Sec-Fetch-Dest") == "image"
        if is_dangerous_content_type(content_type) and not svg_as_image:
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Disposition"] = disposition("attachment", path.name)
        else:
            headers["Content-Type"] = content_type
            headers["Content-Disposition"] = disposition(None, path.name)
        return web.FileResponse(path, headers=headers)

    # -- upload --------------------------------------------------------------------------------
    async def upload_image(self, request: web.Request) -> web.StreamResponse:
        """POST /upload/image (multipart ``image``, ``type``, ``subfolder``, ``overwrite``)."""
        form = await request.post()
        upload: Any = form.get("image")
        if upload is None or not hasattr(upload, "file"):
            return _json_error(400, "multipart field 'image' (a file) is required")
        name = upload.filename or ""
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            return _json_error(400, "invalid file name")
        kind = form.get("type") or "input"
        if kind not in VIEW_TYPES:
            return _json_error(400, "type must be input, output or temp")
        subfolder = str(form.get("subfolder") or "")
        overwrite = str(form.get("overwrite", "")).lower() in ("true", "1")
        base = self.dirs[kind]
        try:
            folder = contained_path(base, subfolder)
            target = contained_path(folder, name)
        except PathRefused as exc:
            return _json_error(400, f"invalid subfolder or name: {exc}")
        data = upload.file.read()
        target = _free_name(target, data) if not overwrite else target
        atomic_write(target, data)
        return web.json_response({"name": target.name, "subfolder": subfolder, "type": kind})


def _free_name(target, data):
    """``target`` or, on a clash with different bytes, ``name (n).ext``; identical bytes reuse the file."""
    candidate, counter = target, 1
    while candidate.exists():
        if candidate.is_file() and candidate.read_bytes() == data:
            return candidate
        candidate = target.with_name(f"{target.stem} ({counter}){target.suffix}")
        counter += 1
    return candidate


def _reencode_image(path, preview, channel):
    """(bytes, content type) of an image re-encoded for ``preview``/``channel``; None when not an image."""
    import cv2
    import numpy as np

    raw = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        return None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8:
        image = (image / (65535.0 if image.dtype == np.uint16 else image.max() or 1) * 255).astype(np.uint8)
    has_alpha = image.shape[2] == 4
    if preview:
        parts = preview.split(";")
        fmt = parts[0].lower()
        if fmt not in ("webp", "jpeg") or channel == "a":
            fmt = "webp"
        try:
            quality = int(parts[-1]) if len(parts) > 1 else 90
        except ValueError:
            quality = 90
        if fmt == "jpeg" or channel == "rgb":
            image = image[:, :, :3]
        flag = cv2.IMWRITE_JPEG_QUALITY if fmt == "jpeg" else cv2.IMWRITE_WEBP_QUALITY
        ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".webp", image, [int(flag), max(1, min(quality, 100))])
        return (data.tobytes(), f"image/{fmt}") if ok else None
    if channel == "rgb":
        ok, data = cv2.imencode(".png", image[:, :, :3])
    else:  # channel == "a": the alpha as an RGBA PNG with black colour
        alpha = image[:, :, 3] if has_alpha else np.full(image.shape[:2], 255, np.uint8)
        rgba = np.zeros(image.shape[:2] + (4,), np.uint8)
        rgba[:, :, 3] = alpha
        ok, data = cv2.imencode(".png", rgba)
    return (data.tobytes(), "image/png") if ok else None
