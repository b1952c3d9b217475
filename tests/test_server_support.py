"""Shared helpers for the canvas-host tests: test-only nodes, a server thread, tiny HTTP/WS clients.

The nodes here exist only for tests, so the server tests do not depend on FrameFold's real nodes.
The module also tests the pure helpers of the host (Host parsing, path containment, previews).
"""

import asyncio
import http.client
import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from aiohttp import web

from framefold.host.executor import Executor
from framefold.host.registry import NodeRegistry
from framefold.host.server import HOST_KEY, create_app
from framefold.host.server_security import PathRefused, contained_path, refusal_reason, split_host_port
from framefold.host.server_worker import encode_preview_jpeg, latent_to_rgb, preview_frame
from framefold.nodes._folders import io_dir
from framefold.pipelines import progress

# ---------------------------------------------------------------------------------------------------
# Test-only nodes


class FrameFoldTestSource:
    """Emits an integer."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ("FF_TEST",)
    FUNCTION = "run"
    DESCRIPTION = "test source"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": 1, "max": 100, "tooltip": "a value"})}}

    def run(self, value):
        return (value,)


class FrameFoldTestLoop:
    """Loops ``steps`` times, reporting progress with a latent preview each step."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ("FF_TEST",)
    FUNCTION = "run"
    last_step = 0  # the step the loop last reached (read by the interrupt test)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("FF_TEST", {"tooltip": "upstream"}),
                "steps": ("INT", {"default": 3, "min": 1, "max": 10000, "tooltip": "loop length"}),
                "step_delay": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "sleep"}),
            }
        }

    def run(self, source, steps, step_delay):
        generator = torch.Generator().manual_seed(source)
        for step in range(steps):
            if step_delay:
                time.sleep(step_delay)
            latent = torch.randn(2, 4, 8, 8, generator=generator)
            FrameFoldTestLoop.last_step = step + 1
            progress.report(step + 1, steps, preview=latent)
        return (source + steps,)


class FrameFoldTestSave:
    """Output node: writes a small file (an MP4 when ``video`` is true) and previews it."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "value": ("FF_TEST", {"tooltip": "what to save"}),
                "filename_prefix": ("STRING", {"default": "test", "tooltip": "file name prefix"}),
                "video": ("BOOLEAN", {"default": False, "tooltip": "write an mp4"}),
            }
        }

    def run(self, value, filename_prefix, video):
        out = io_dir("output")
        index = len(list(out.glob(f"{filename_prefix}_*"))) + 1
        if video:
            name = f"{filename_prefix}_{index:05d}_.mp4"
            write_test_mp4(out / name, value)
            return {"ui": {"images": [{"filename": name, "subfolder": "", "type": "output"}], "animated": [True]}}
        name = f"{filename_prefix}_{index:05d}_.txt"
        (out / name).write_text(str(value))
        return {"ui": {"images": [{"filename": name, "subfolder": "", "type": "output"}]}}


class FrameFoldTestFail:
    """Always raises (to test execution_error)."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ("FF_TEST",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("FF_TEST", {"tooltip": "upstream"})}}

    def run(self, source):
        raise ValueError("test failure on purpose")


class FrameFoldTestGate:
    """Output node that blocks until the test opens ``FrameFoldTestGate.gate`` (deterministic queue tests)."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    gate = threading.Event()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": 0, "max": 100, "tooltip": "cache breaker"})}}

    def run(self, value):
        deadline = time.monotonic() + 30
        while not FrameFoldTestGate.gate.wait(0.01):
            progress.check_interrupt()
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
        return {}


def gate_prompt(value=0):
    """A single Gate node: the worker stays busy until ``FrameFoldTestGate.gate`` is set."""
    FrameFoldTestGate.gate.clear()
    return {"1": {"class_type": "FrameFoldTestGate", "inputs": {"value": value}}}


TEST_NODES = {
    cls.__name__: cls
    for cls in (FrameFoldTestSource, FrameFoldTestLoop, FrameFoldTestSave, FrameFoldTestFail, FrameFoldTestGate)
}


def write_test_mp4(path, seed, frames=8, size=64):
    """A tiny H.264 MP4 whose frames move (so a browser shows an animation)."""
    import av

    tmp = Path(str(path) + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.zeros((size, size, 3), np.uint8)
            image[:, :, 0] = (seed * 40) % 256
            image[:, (i * size // frames) : (i * size // frames) + 8, 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def make_registry():
    """A registry of the test-only nodes."""
    return NodeRegistry(TEST_NODES, {k: k.replace("FrameFoldTest", "Test ") for k in TEST_NODES})


def loop_prompt(steps=3, delay=0.0, value=1, video=False, prefix="test"):
    """Source -> Loop -> Save as an API prompt."""
    return {
        "1": {"class_type": "FrameFoldTestSource", "inputs": {"value": value}},
        "2": {"class_type": "FrameFoldTestLoop", "inputs": {"source": ["1", 0], "steps": steps, "step_delay": delay}},
        "3": {
            "class_type": "FrameFoldTestSave",
            "inputs": {"value": ["2", 0], "filename_prefix": prefix, "video": video},
        },
    }


# ---------------------------------------------------------------------------------------------------
# A server in a background thread


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """Runs an aiohttp app on 127.0.0.1:<free port> in its own thread and event loop."""

    def __init__(self, app):
        self.app = app
        self.port = None
        self.loop = asyncio.new_event_loop()
        self._runner = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self):
        self._thread.start()

        async def boot():
            self._runner = web.AppRunner(self.app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(30)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def host(self):
        return self.app[HOST_KEY]

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, json_body=None):
        """(status, headers, body bytes) of one HTTP request; ``path`` is sent raw (no re-encoding)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Host": f"127.0.0.1:{self.port}"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in hdrs.items():
                conn.putheader(key, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get_json(self, path, **kw):
        status, _, body = self.request("GET", path, **kw)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def post_json(self, path, payload, expect=200):
        status, _, body = self.request("POST", path, json_body=payload)
        assert status == expect, (path, status, body[:500])
        return json.loads(body) if body else None

    def queue_prompt(self, prompt, client_id=None, **extra):
        payload = {"prompt": prompt, "client_id": client_id or "tester", **extra}
        return self.post_json("/api/prompt", payload)

    def wait_idle(self, timeout=30):
        """Block until the queue is empty and nothing runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.host.queue.remaining() == 0:
                return
            time.sleep(0.02)
        raise AssertionError("queue did not drain")


def make_server(tmp_path, registry=None, **kwargs):
    """A started ServerThread over the test registry with fresh folders under ``tmp_path``."""
    registry = registry or make_registry()
    dirs = {name: tmp_path / name for name in ("input", "output", "temp", "user")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    app = create_app(
        executor=Executor(registry),
        registry=registry,
        input_dir=dirs["input"],
        output_dir=dirs["output"],
        temp_dir=dirs["temp"],
        user_dir=dirs["user"],
        **kwargs,
    )
    server = ServerThread(app).start()
    server.dirs = dirs
    return server


async def ws_collect(server, client_id, until, timeout=30, send_flags=True, on_open=None):
    """Connect to /ws as ``client_id`` and collect messages until ``until(messages)`` is true.

    Text frames are stored as dicts; binary frames as ``{"binary": bytes}``.
    """
    import aiohttp

    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.base}/ws?clientId={client_id}", headers={"Origin": server.base}) as ws:
            deadline = time.monotonic() + timeout

            async def receive_until(condition):
                while not condition(messages):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise AssertionError(f"timed out; got {[m.get('type') for m in messages]}")
                    msg = await ws.receive(timeout=remaining)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        messages.append(json.loads(msg.data))
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        messages.append({"type": "<binary>", "binary": msg.data})
                    else:
                        raise AssertionError(f"socket closed: {msg.type}")

            await receive_until(lambda m: any(x["type"] == "status" for x in m))
            if send_flags:
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "feature_flags",
                            "data": {"supports_preview_metadata": True, "supports_progress_text_metadata": True},
                        }
                    )
                )
                await receive_until(lambda m: any(x["type"] == "feature_flags" for x in m))
            if on_open is not None:
                await asyncio.get_running_loop().run_in_executor(None, on_open)
            await receive_until(until)
    return messages


@pytest.fixture
def server(tmp_path):
    srv = make_server(tmp_path)
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------------------------------
# Tests of the pure helpers


def test_split_host_port_handles_ipv6_and_ports():
    assert split_host_port("[::1]:8188") == ("::1", "8188")
    assert split_host_port("LocalHost:80") == ("localhost", "80")
    assert split_host_port("127.0.0.1") == ("127.0.0.1", None)


def test_refusal_reason_rules():
    allowed = frozenset({"localhost", "127.0.0.1", "::1"})
    assert refusal_reason({"Host": "127.0.0.1:1"}, allowed) is None
    assert refusal_reason({"Host": "[::1]:1", "Origin": "http://[::1]:1"}, allowed) is None
    assert refusal_reason({"Host": "evil.example:1"}, allowed) is not None
    assert refusal_reason({"Host": "localhost:1", "Origin": "http://evil.example"}, allowed) is not None
    assert refusal_reason({"Host": "localhost:1", "Origin": "http://localhost:2"}, allowed) is not None
    assert refusal_reason({"Host": "localhost:1", "Sec-Fetch-Site": "cross-site"}, allowed) is not None
    assert refusal_reason({}, allowed) is not None


def test_contained_path_refuses_escapes(tmp_path):
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "link").symlink_to(outside)
    assert contained_path(base, "sub/x.json") == (base / "sub" / "x.json").resolve()
    for bad in ("../x", "sub/../../x", "/etc/passwd", "link/x", "a\\..\\b", "x\x00y"):
        with pytest.raises(PathRefused):
            contained_path(base, bad)


def test_latent_preview_is_a_jpeg_of_the_expected_size():
    latent = torch.randn(3, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    rgb = latent_to_rgb(latent)
    assert rgb.shape == (8, 12, 3) and rgb.dtype == np.uint8
    jpeg = encode_preview_jpeg(latent)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    import cv2

    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (8 * 32, 12 * 32)
    frame = preview_frame(jpeg, {"node_id": "2"})
    kind, length = struct.unpack(">II", frame[:8])
    assert kind == 4 and json.loads(frame[8 : 8 + length]) == {"node_id": "2"} and frame[8 + length :] == jpeg
    assert struct.unpack(">II", preview_frame(jpeg)[:8]) == (1, 1)


def test_latent_preview_accepts_other_channel_counts():
    rgb = latent_to_rgb(torch.linspace(-1, 1, 16 * 5 * 6).reshape(1, 16, 5, 6))
    assert rgb.shape == (5, 6, 3) and rgb.max() > 200 and rgb.min() < 50
