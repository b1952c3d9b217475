"""Server strictness: finite numbers only, Origin ports with defaults, body size limits, history before success."""

import asyncio
import json
import threading
import time

import pytest
from test_server_support import loop_prompt, make_server, server, ws_collect  # noqa: F401  (fixture)

from framefold.host.registry import NodeRegistry
from framefold.host.server_files import MAX_SETTING_BYTES, MAX_SETTINGS_FILE_BYTES, MAX_USERDATA_BYTES
from framefold.host.server_security import refusal_reason
from framefold.pipelines import progress

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "host, origin, allowed",
    [
        ("127.0.0.1:8188", "http://127.0.0.1", False),  # no port = 80, not 8188
        ("127.0.0.1:8188", "http://127.0.0.1:8188", True),
        ("127.0.0.1:80", "http://127.0.0.1", True),
        ("localhost", "http://localhost:80", True),
        ("localhost", "http://localhost:8188", False),
        ("localhost:443", "https://localhost", True),
        ("127.0.0.1:8188", "https://127.0.0.1:8188", True),
    ],
)
def test_origin_and_host_ports_compare_with_scheme_defaults(host, origin, allowed):
    reason = refusal_reason({"Host": host, "Origin": origin}, LOOPBACK)
    assert (reason is None) == allowed, reason


@pytest.mark.parametrize(
    "body",
    [
        b'{"prompt": {"1": {"class_type": "FrameFoldTestSource", "inputs": {"value": NaN}}}}',
        b'{"prompt": {"1": {"class_type": "FrameFoldTestSource", "inputs": {"value": 1e999}}}}',
        b'{"prompt": {"1": {"class_type": "FrameFoldTestSource", "inputs": {"value": -Infinity}}}}',
    ],
)
def test_non_finite_numbers_in_a_prompt_are_refused_with_400(server, body):
    status, _, answer = server.request("POST", "/api/prompt", body=body, headers=JSON)
    assert status == 400
    error = json.loads(answer)
    assert error["error"]["type"] == "invalid_prompt" and "finite" in error["error"]["details"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999", '"nan"', '"inf"'])
def test_non_finite_queue_numbers_are_refused_and_never_emitted(server, number):
    body = json.dumps({"prompt": loop_prompt(steps=1)})[:-1] + f', "number": {number}}}'
    status, _, answer = server.request("POST", "/api/prompt", body=body.encode(), headers=JSON)
    assert status == 400, answer
    assert server.get_json("/api/queue") == {"queue_running": [], "queue_pending": []}
    for route in ("/api/history", "/api/jobs", "/api/queue"):
        _, _, raw = server.request("GET", route)
        assert b"NaN" not in raw and b"Infinity" not in raw


def test_settings_and_userdata_have_size_limits(server):
    big = json.dumps("x" * MAX_SETTING_BYTES).encode()
    status, _, _ = server.request("POST", "/api/settings/Comfy.Big", body=big, headers=JSON)
    assert status == 413
    status, _, _ = server.request("POST", "/api/settings/Comfy.Nan", body=b"NaN", headers=JSON)
    assert status == 400
    chunk = json.dumps("y" * (MAX_SETTING_BYTES // 2)).encode()
    statuses = [
        server.request("POST", f"/api/settings/Comfy.Part{k}", body=chunk, headers=JSON)[0]
        for k in range(MAX_SETTINGS_FILE_BYTES // (MAX_SETTING_BYTES // 2) + 2)
    ]
    assert statuses[0] == 200 and statuses[-1] == 413  # the stored total is bounded too
    assert len(json.dumps(server.get_json("/api/settings"))) <= MAX_SETTINGS_FILE_BYTES
    status, _, _ = server.request(
        "POST", "/api/userdata/workflows%2Fhuge.json", body=b"0" * (MAX_USERDATA_BYTES + 1), headers=JSON
    )
    assert status == 413
    assert not (server.dirs["user"] / "default" / "workflows" / "huge.json").exists()


def test_history_exists_when_execution_success_arrives(server):
    holder = {}

    def queue():
        holder["id"] = server.queue_prompt(loop_prompt(steps=2), client_id="client-h")["prompt_id"]

    seen = {}

    async def collect():
        def until(messages):
            if messages and messages[-1]["type"] == "execution_success" and "history" not in seen:
                _, _, raw = server.request("GET", f"/api/history/{holder['id']}")
                seen["history"] = json.loads(raw)
            return "history" in seen

        return await ws_collect(server, "client-h", until, on_open=queue)

    asyncio.run(collect())
    assert holder["id"] in seen["history"]
    assert seen["history"][holder["id"]]["status"]["status_str"] == "success"


class FrameFoldTestKeepOnInterrupt:
    """Output node that works until interrupted, then keeps its latents the way FrameFoldVAEDecode does."""

    CATEGORY = "FrameFold/test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    started = threading.Event()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        FrameFoldTestKeepOnInterrupt.started.set()
        try:
            for _ in range(3000):
                progress.check_interrupt()
                time.sleep(0.01)
        except progress.Interrupted as e:
            raise progress.Interrupted(f"{e}; the latents were saved to /out/latents/kept.latent") from e
        return {}


def test_server_interrupt_says_where_the_latents_were_saved(tmp_path):
    registry = NodeRegistry({"FrameFoldTestKeepOnInterrupt": FrameFoldTestKeepOnInterrupt})
    server = make_server(tmp_path, registry=registry)
    try:
        FrameFoldTestKeepOnInterrupt.started.clear()
        prompt_id = server.queue_prompt({"1": {"class_type": "FrameFoldTestKeepOnInterrupt", "inputs": {}}})[
            "prompt_id"
        ]
        assert FrameFoldTestKeepOnInterrupt.started.wait(30)
        assert server.request("POST", "/api/interrupt")[0] == 200
        server.wait_idle()
        entry = server.get_json(f"/api/history/{prompt_id}")[prompt_id]
        kind, data = entry["status"]["messages"][-1]
        assert kind == "execution_interrupted"
        assert data["exception_message"].endswith("the latents were saved to /out/latents/kept.latent")
    finally:
        server.stop()
