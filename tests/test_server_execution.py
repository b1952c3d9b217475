"""Queueing and running prompts through the canvas host: validation, order, interrupt, websocket."""

import asyncio
import json
import struct
import time
import uuid

import cv2
import numpy as np
from test_server_support import FrameFoldTestGate, FrameFoldTestLoop, gate_prompt, loop_prompt, server, ws_collect  # noqa: F401  (server is a fixture)


def _types(messages):
    return [m["type"] for m in messages if m["type"] != "<binary>"]


def _until_type(kind, prompt_id=None):
    def done(messages):
        return any(
            m["type"] == kind and (prompt_id is None or (m.get("data") or {}).get("prompt_id") == prompt_id)
            for m in messages
        )

    return done


def test_invalid_prompt_is_refused_with_comfyui_error_shape(server):
    bad = loop_prompt()
    bad["2"]["inputs"]["steps"] = 0
    status, _, body = server.request("POST", "/api/prompt", json_body={"prompt": bad, "client_id": "x"})
    assert status == 400
    payload = json.loads(body)
    assert payload["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(payload["error"]) >= {"type", "message", "details", "extra_info"}
    node = payload["node_errors"]["2"]
    assert node["class_type"] == "FrameFoldTestLoop" and node["dependent_outputs"] == ["3"]
    error = node["errors"][0]
    assert error["type"] == "value_smaller_than_min" and error["extra_info"]["input_name"] == "steps"
    assert set(error) >= {"type", "message", "details", "extra_info"}

    status, _, body = server.request(
        "POST", "/prompt", json_body={"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}
    )
    assert status == 400 and json.loads(body)["error"]["type"] == "missing_node_type"
    no_output = {"1": {"class_type": "FrameFoldTestSource", "inputs": {"value": 1}}}
    status, _, body = server.request("POST", "/api/prompt", json_body={"prompt": no_output})
    assert status == 400 and json.loads(body)["error"]["type"] == "prompt_no_outputs"
    status, _, body = server.request("POST", "/api/prompt", json_body={"client_id": "x"})
    assert status == 400 and json.loads(body)["error"]["type"] == "no_prompt"
    status, _, body = server.request("POST", "/api/prompt", json_body={"prompt": loop_prompt(), "prompt_id": "ABC"})
    assert status == 400 and json.loads(body)["node_errors"] == {}
    status, _, _ = server.request(
        "POST", "/api/prompt", body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert server.get_json("/api/jobs")["pagination"]["total"] == 0


def test_twenty_prompts_complete_in_queue_order_and_are_listed_as_jobs(server):
    blocker = server.queue_prompt(gate_prompt())["prompt_id"]
    ids = []
    for i in range(20):
        reply = server.queue_prompt(
            loop_prompt(steps=1, value=i + 1),
            extra_data={"extra_pnginfo": {"workflow": {"id": f"wf-{i % 2}"}}, "api_key_comfy_org": "SECRET-KEY"},
        )
        assert reply["node_errors"] == {} and isinstance(reply["number"], (int, float))
        ids.append(reply["prompt_id"])
    pending = server.get_json("/api/jobs?status=in_progress,pending&limit=200&offset=0")
    assert [j["status"] for j in pending["jobs"]] == ["pending"] * 20 + ["in_progress"]  # newest first
    assert [j["id"] for j in pending["jobs"]][:20] == list(reversed(ids))
    assert server.get_json("/api/prompt") == {"exec_info": {"queue_remaining": 21}}
    FrameFoldTestGate.gate.set()
    server.wait_idle()
    history = server.get_json("/api/history")
    assert list(history) == [blocker] + ids  # insertion order = execution order
    starts = [server.get_json(f"/api/jobs/{pid}")["execution_start_time"] for pid in ids]
    assert starts == sorted(starts)
    done = server.get_json("/api/jobs?status=completed,failed,cancelled&limit=200&offset=0")
    assert done["pagination"] == {"offset": 0, "limit": 200, "total": 21, "has_more": False}
    assert [j["id"] for j in done["jobs"]] == list(reversed([blocker] + ids))  # newest first
    job = done["jobs"][0]
    assert job["status"] == "completed" and isinstance(job["create_time"], int)
    assert job["outputs_count"] == 1 and job["previewable_outputs_count"] == 1
    assert job["preview_output"]["nodeId"] == "3" and job["preview_output"]["mediaType"] == "images"
    assert job["workflow_id"] == "wf-1"
    page = server.get_json("/api/jobs?status=completed&limit=5&offset=5&sort_order=asc")
    assert [j["id"] for j in page["jobs"]] == ids[4:9]
    assert page["pagination"] == {"offset": 5, "limit": 5, "total": 21, "has_more": True}
    assert server.get_json("/api/jobs?workflow_id=wf-0")["pagination"]["total"] == 10
    assert server.get_json("/api/jobs?sort_by=execution_duration&limit=1")["jobs"][0]["id"] == blocker
    assert server.get_json(f"/api/jobs/{blocker}")["outputs_count"] == 0
    for bad in ("status=bogus", "limit=0", "limit=x", "offset=-1", "sort_by=name", "sort_order=up"):
        assert server.request("GET", "/api/jobs?" + bad)[0] == 400, bad
    detail = server.get_json(f"/api/jobs/{ids[3]}")
    assert detail["outputs"]["3"]["images"][0]["filename"].startswith("test_")
    assert detail["workflow"]["prompt"]["1"]["inputs"]["value"] == 4
    assert "SECRET-KEY" not in json.dumps(server.get_json("/api/history")) + json.dumps(detail)
    assert server.request("GET", "/api/jobs/" + str(uuid.uuid4()))[0] == 404
    entry = server.get_json(f"/api/history/{ids[0]}")[ids[0]]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    assert entry["prompt"][1] == ids[0] and entry["prompt"][4] == ["3"]
    assert list(server.get_json("/api/history?max_items=3")) == ids[-3:]
    assert list(server.get_json("/api/history?max_items=2&offset=1")) == ids[:2]
    server.post_json("/api/history", {"delete": [ids[0]]})
    assert server.get_json(f"/api/history/{ids[0]}") == {}
    server.post_json("/history", {"clear": True})
    assert server.get_json("/api/history") == {}


def test_front_priority_and_pending_cancellation(server):
    blocker = server.queue_prompt(gate_prompt())["prompt_id"]
    first = server.queue_prompt(loop_prompt(steps=1, value=1))["prompt_id"]
    second = server.queue_prompt(loop_prompt(steps=1, value=2))["prompt_id"]
    front = server.queue_prompt(loop_prompt(steps=1, value=3), front=True)["prompt_id"]
    dropped = server.queue_prompt(loop_prompt(steps=1, value=4))["prompt_id"]
    gone = server.queue_prompt(loop_prompt(steps=1, value=5))["prompt_id"]
    queue = server.get_json("/api/queue")
    assert [item[1] for item in queue["queue_pending"]] == [front, first, second, dropped, gone]
    assert server.post_json(f"/api/jobs/{dropped}/cancel", {}) == {"cancelled": True}
    assert server.post_json(f"/api/jobs/{dropped}/cancel", {}) == {"cancelled": False}
    server.post_json("/api/queue", {"delete": [gone]})
    assert server.post_json("/api/jobs/cancel", {"job_ids": "nope"}, expect=400)
    FrameFoldTestGate.gate.set()
    server.wait_idle()
    assert list(server.get_json("/api/history")) == [blocker, front, first, second]


def test_websocket_message_sequence_for_one_run(server):
    holder = {}

    def queue():
        holder["id"] = server.queue_prompt(loop_prompt(steps=3), client_id="client-a")["prompt_id"]

    messages = asyncio.run(
        ws_collect(
            server,
            "client-a",
            lambda m: bool(m) and m[-1]["type"] == "status" and any(x["type"] == "execution_success" for x in m),
            on_open=queue,
        )
    )
    prompt_id = holder["id"]
    assert messages[0] == {
        "type": "status",
        "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "client-a"},
    }
    assert messages[1]["type"] == "feature_flags" and messages[1]["data"]["supports_preview_metadata"] is True
    expected = (
        [
            "status",
            "feature_flags",
            "status",
            "status",
            "execution_start",
            "execution_cached",
            "progress_state",
            "executing",
            "progress_state",
            "progress_state",
            "executing",
        ]
        + ["progress", "progress_state"] * 3
        + [
            "progress_state",
            "progress_state",
            "executing",
            "progress_state",
            "executed",
            "execution_success",
            "executing",
            "status",
        ]
    )
    assert _types(messages) == expected
    text = [m for m in messages if m["type"] != "<binary>"]
    assert [m["data"]["status"]["exec_info"]["queue_remaining"] for m in text if m["type"] == "status"] == [0, 1, 1, 0]
    assert [m["data"]["node"] for m in text if m["type"] == "executing"] == ["1", "2", "3", None]
    assert text[-2]["data"] == {"node": None, "prompt_id": prompt_id}
    assert text[5]["data"]["nodes"] == [] and text[5]["data"]["prompt_id"] == prompt_id
    states = [m["data"] for m in text if m["type"] == "progress_state"]
    running = states[3]["nodes"]["2"]
    assert running["state"] == "running" and running["display_node_id"] == "2" and running["node_id"] == "2"
    assert states[3]["nodes"]["1"]["state"] == "finished"
    assert [s["nodes"]["2"]["value"] for s in states[2:6]] == [0, 1, 2, 3]
    assert all(entry["display_node_id"] == node for s in states for node, entry in s["nodes"].items())
    assert states[-1]["nodes"]["3"]["state"] == "finished" and len(states[-1]["nodes"]) == 3
    assert [m["data"]["value"] for m in text if m["type"] == "progress"] == [1, 2, 3]
    executed = next(m["data"] for m in text if m["type"] == "executed")
    assert executed["node"] == "3" and executed["display_node"] == "3" and executed["prompt_id"] == prompt_id
    assert executed["output"]["images"][0]["type"] == "output"
    binaries = [m["binary"] for m in messages if m["type"] == "<binary>"]
    assert len(binaries) == 3  # one preview per step, as ComfyUI's KSampler sends
    for frame in binaries:
        kind, length = struct.unpack(">II", frame[:8])
        meta = json.loads(frame[8 : 8 + length])
        assert kind == 4 and meta == {
            "node_id": "2",
            "display_node_id": "2",
            "parent_node_id": None,
            "real_node_id": "2",
            "prompt_id": prompt_id,
            "image_type": "image/jpeg",
        }
        image = cv2.imdecode(np.frombuffer(frame[8 + length :], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (384, 384, 3)
    first_binary = next(i for i, m in enumerate(messages) if m["type"] == "<binary>")
    assert messages[first_binary - 1]["type"] == "progress_state"  # previews follow the step's progress

    # A second identical run: everything cached, the output node's ui re-sent.
    holder.clear()
    messages = asyncio.run(
        ws_collect(
            server,
            "client-a",
            lambda m: bool(m) and m[-1]["type"] == "status" and any(x["type"] == "execution_success" for x in m),
            on_open=queue,
        )
    )
    assert _types(messages) == [
        "status",
        "feature_flags",
        "status",
        "status",
        "execution_start",
        "execution_cached",
        "executed",
        "execution_success",
        "executing",
        "status",
    ]
    cached = next(m["data"] for m in messages if m["type"] == "execution_cached")
    assert sorted(cached["nodes"]) == ["1", "2", "3"]


def test_messages_go_only_to_the_prompts_client(server):
    def queue():
        server.queue_prompt(loop_prompt(steps=2), client_id="someone-else")
        server.wait_idle()

    messages = asyncio.run(
        ws_collect(server, "watcher", lambda m: [x["type"] for x in m].count("status") >= 4, on_open=queue)
    )
    assert set(_types(messages)) == {"status", "feature_flags"}


def test_interrupt_stops_a_running_prompt_within_one_step(server):
    holder = {}
    executor = server.host.executor
    original = executor.interrupt

    def recording_interrupt():
        holder.setdefault("at", FrameFoldTestLoop.last_step)  # the step reached when the flag is set
        original()

    executor.interrupt = recording_interrupt

    def wait_for_step(step):
        deadline = time.monotonic() + 20
        while FrameFoldTestLoop.last_step < step and time.monotonic() < deadline:
            time.sleep(0.01)
        assert FrameFoldTestLoop.last_step >= step

    def queue_then_interrupt():
        holder["id"] = server.queue_prompt(loop_prompt(steps=2000, delay=0.02, value=7), client_id="c")["prompt_id"]
        wait_for_step(5)
        assert server.request("POST", "/api/interrupt", json_body={"prompt_id": str(uuid.uuid4())})[0] == 200
        wait_for_step(FrameFoldTestLoop.last_step + 3)  # a foreign prompt id does not interrupt
        assert "at" not in holder
        assert server.request("POST", "/api/interrupt")[0] == 200

    FrameFoldTestLoop.last_step = 0
    messages = asyncio.run(
        ws_collect(
            server,
            "c",
            lambda m: bool(m) and m[-1]["type"] == "status" and any(x["type"] == "execution_interrupted" for x in m),
            on_open=queue_then_interrupt,
        )
    )
    assert FrameFoldTestLoop.last_step <= holder["at"] + 1
    types = _types(messages)
    assert "execution_success" not in types and "execution_error" not in types
    assert types[-3:] == ["execution_interrupted", "executing", "status"]
    data = next(m["data"] for m in messages if m["type"] == "execution_interrupted")
    assert data["node_id"] == "2" and data["node_type"] == "FrameFoldTestLoop" and data["executed"] == ["1"]
    job = server.get_json(f"/api/jobs/{holder['id']}")
    assert job["status"] == "cancelled" and job["execution_status"]["status_str"] == "error"
    # The worker goes on with the next prompt.
    after = server.queue_prompt(loop_prompt(steps=1, value=8))["prompt_id"]
    server.wait_idle()
    assert server.get_json(f"/api/jobs/{after}")["status"] == "completed"


def test_cancel_of_the_running_job_interrupts_it(server):
    FrameFoldTestLoop.last_step = 0
    running = server.queue_prompt(loop_prompt(steps=2000, delay=0.02, value=9))["prompt_id"]
    deadline = time.monotonic() + 20
    while FrameFoldTestLoop.last_step < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.get_json("/api/jobs?status=in_progress")["jobs"][0]["id"] == running
    assert server.post_json("/api/jobs/cancel", {"job_ids": [running]}) == {"cancelled": True}
    server.wait_idle()
    assert server.get_json(f"/api/jobs/{running}")["status"] == "cancelled"


def test_node_exception_is_reported_as_execution_error(server):
    prompt = {
        "1": {"class_type": "FrameFoldTestSource", "inputs": {"value": 3}},
        "2": {"class_type": "FrameFoldTestFail", "inputs": {"source": ["1", 0]}},
        "3": {"class_type": "FrameFoldTestSave", "inputs": {"value": ["2", 0], "filename_prefix": "x", "video": False}},
    }
    holder = {}

    def queue():
        holder["id"] = server.queue_prompt(prompt, client_id="e")["prompt_id"]

    messages = asyncio.run(
        ws_collect(
            server,
            "e",
            lambda m: bool(m) and m[-1]["type"] == "status" and any(x["type"] == "execution_error" for x in m),
            on_open=queue,
        )
    )
    assert _types(messages)[-3:] == ["execution_error", "executing", "status"]
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "FrameFoldTestFail"
    assert error["exception_message"] == "test failure on purpose" and error["exception_type"] == "ValueError"
    assert error["executed"] == ["1"] and any("test failure on purpose" in line for line in error["traceback"])
    job = server.get_json(f"/api/jobs/{holder['id']}")
    assert job["status"] == "failed" and job["execution_error"]["node_id"] == "2"
    assert job["execution_error"]["exception_type"] == "ValueError"
    listed = server.get_json("/api/jobs?status=failed")["jobs"][0]
    assert listed["execution_error"]["traceback"] == error["traceback"]


def test_websocket_reconnect_keeps_client_id_and_mints_new_ones(server):
    first = asyncio.run(ws_collect(server, "keep-me", lambda m: len(m) >= 1, send_flags=False))
    assert first[0]["data"]["sid"] == "keep-me"
    odd = asyncio.run(ws_collect(server, "bad%20id!", lambda m: len(m) >= 1, send_flags=False))
    assert len(odd[0]["data"]["sid"]) == 32 and odd[0]["data"]["sid"] != "bad id!"


def test_reconnecting_client_gets_the_current_executing_message(server):
    prompt_id = server.queue_prompt(gate_prompt(), client_id="late-joiner")["prompt_id"]
    deadline = time.monotonic() + 20
    while (
        server.host.worker.current is None or server.host.worker.current.current_node is None
    ) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        messages = asyncio.run(ws_collect(server, "late-joiner", lambda m: len(m) >= 2, send_flags=False))
    finally:
        FrameFoldTestGate.gate.set()
    assert messages[0]["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert messages[1] == {"type": "executing", "data": {"node": "1", "display_node": "1", "prompt_id": prompt_id}}
    server.wait_idle()
