"""Boot, static and settings routes of the canvas host (every route under /api/x and /x)."""

import json
from pathlib import Path

import pytest
from test_server_support import make_server, server  # noqa: F401  (fixture)

BOOT_JSON_ROUTES = [
    "/users",
    "/settings",
    "/extensions",
    "/object_info",
    "/features",
    "/system_stats",
    "/i18n",
    "/embeddings",
    "/experiment/models",
    "/global_subgraphs",
    "/workflow_templates",
    "/prompt",
    "/jobs",
    "/queue",
    "/history",
    "/object_info/FrameFoldTestLoop",
]


@pytest.mark.parametrize("prefix", ["/api", ""])
def test_every_boot_route_answers_json_under_both_prefixes(server, prefix):
    for route in BOOT_JSON_ROUTES:
        status, headers, body = server.request("GET", prefix + route)
        assert status == 200, (prefix + route, status, body[:200])
        assert headers["Content-Type"].startswith("application/json"), route
        json.loads(body)


def test_boot_route_contents(server):
    users = server.get_json("/api/users")
    assert users == {"storage": "server", "migrated": True} and "users" not in users
    assert server.get_json("/api/extensions") == ["/extensions/framefold/framefold_text.js"]  # the shipped extension
    info = server.get_json("/api/object_info")
    assert set(info) == {
        "FrameFoldTestSource",
        "FrameFoldTestLoop",
        "FrameFoldTestSave",
        "FrameFoldTestFail",
        "FrameFoldTestGate",
    }
    assert info["FrameFoldTestLoop"]["input_order"]["required"] == ["source", "steps", "step_delay"]
    assert info["FrameFoldTestSave"]["output_node"] is True
    assert info["FrameFoldTestSave"]["python_module"] == "custom_nodes.framefold"
    assert server.get_json("/api/object_info/Nope") == {}
    assert set(server.get_json("/api/object_info/FrameFoldTestLoop")) == {"FrameFoldTestLoop"}
    features = server.get_json("/api/features")
    assert features == {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}
    stats = server.get_json("/api/system_stats")
    assert stats["system"]["required_frontend_version"] == "1.58.1" and stats["devices"][0]["type"] in ("cpu", "cuda")
    assert server.get_json("/api/prompt") == {"exec_info": {"queue_remaining": 0}}
    assert server.get_json("/api/jobs") == {
        "jobs": [],
        "pagination": {"offset": 0, "limit": 0, "total": 0, "has_more": False},
    }
    assert server.get_json("/api/queue") == {"queue_running": [], "queue_pending": []}
    assert server.get_json("/internal/logs/raw")["entries"] == []
    assert server.get_json("/internal/files/output") == []
    assert server.get_json("/templates/index.json") == []
    assert server.get_json("/templates/index.fr.json") == []
    assert server.get_json("/templates/index_logo.json") == {}
    assert server.request("GET", "/templates/other.txt")[0] == 404
    assert "checkpoints" in server.get_json("/internal/folder_paths")


def test_frontend_is_served_at_root_with_no_store_and_js_type(server):
    status, headers, body = server.request("GET", "/")
    assert status == 200 and b"<html" in body.lower() and headers["Cache-Control"] == "no-store"
    status, headers, body = server.request("GET", "/scripts/app.js")
    assert status == 200 and headers["Content-Type"].startswith("application/javascript")
    assert headers["Cache-Control"] == "no-store"
    index = body.decode() if False else server.request("GET", "/")[2].decode()
    asset = index.split('src="./assets/')[1].split('"')[0]
    status, headers, _ = server.request("GET", "/assets/" + asset)
    assert status == 200 and headers["Content-Type"].startswith("application/javascript")
    status, headers, _ = server.request("GET", "/materialdesignicons.min.css")
    assert status == 200 and headers["Cache-Control"] == "no-store" and headers["Content-Type"].startswith("text/css")
    assert server.request("GET", "/../../etc/passwd")[0] in (403, 404)
    assert server.request("GET", "/%2e%2e/%2e%2e/etc/passwd")[0] in (403, 404)
    assert server.request("GET", "/no-such-file.js")[0] == 404
    # No CORS headers, and OPTIONS is not answered with CORS approval.
    status, headers, _ = server.request("GET", "/api/users")
    assert not any(k.lower().startswith("access-control") for k in headers)
    status, headers, _ = server.request("OPTIONS", "/api/prompt")
    assert status != 200 and not any(k.lower().startswith("access-control") for k in headers)


def test_settings_persist_across_restarts(tmp_path):
    srv = make_server(tmp_path)
    try:
        settings = srv.get_json("/api/settings")
        assert settings == {"Comfy.Notification.ShowVersionUpdates": False}
        assert "Comfy.TutorialCompleted" not in settings
        assert srv.request("POST", "/api/settings/Comfy.ColorPalette", json_body="light")[0] == 200
        assert srv.request("POST", "/settings", json_body={"A.b": 3, "C.d": {"x": [1]}})[0] == 200
        assert srv.get_json("/api/settings/Comfy.ColorPalette") == "light"
        assert srv.get_json("/settings/Missing.Key") is None
        assert srv.request("POST", "/api/settings", json_body=[1, 2])[0] == 400
    finally:
        srv.stop()
    stored = json.loads((tmp_path / "user" / "default" / "comfy.settings.json").read_text())
    assert stored["A.b"] == 3 and stored["Comfy.ColorPalette"] == "light"
    srv = make_server(tmp_path)
    try:
        assert srv.get_json("/api/settings") == {
            "Comfy.Notification.ShowVersionUpdates": False,
            "Comfy.ColorPalette": "light",
            "A.b": 3,
            "C.d": {"x": [1]},
        }
    finally:
        srv.stop()


def test_workflow_templates_list_and_serve_example_workflows(server, tmp_path, monkeypatch):
    host = server.host
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "text_to_video.json").write_text('{"nodes": [], "links": [], "version": 0.4}')
    (examples / "text_to_video.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    (examples / "notes.txt").write_text("x")
    monkeypatch.setattr(host, "example_dir", examples)
    assert server.get_json("/api/workflow_templates") == {"framefold": ["text_to_video"]}
    for prefix in ("/api", ""):
        body = server.get_json(prefix + "/workflow_templates/framefold/text_to_video.json")
        assert body["version"] == 0.4
    status, headers, body = server.request("GET", "/api/workflow_templates/framefold/text_to_video.jpg")
    assert status == 200 and body == b"\xff\xd8\xff\xd9"
    assert server.request("GET", "/api/workflow_templates/other/text_to_video.json")[0] == 404
    assert server.request("GET", "/api/workflow_templates/framefold/..%2F..%2Fsetup.py")[0] in (403, 404)
    assert server.request("GET", "/api/workflow_templates/framefold/missing.json")[0] == 404
    assert server.request("GET", "/api/workflow_templates/framefold/missing.jpg")[0] == 404
    (examples / "text_to_video.jpg").unlink()  # no shipped thumbnail: a drawn placeholder instead
    status, headers, body = server.request("GET", "/api/workflow_templates/framefold/text_to_video.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_extensions_lists_pack_web_js_and_serves_it(server, tmp_path, monkeypatch):
    web_dir = tmp_path / "web"
    (web_dir / "js").mkdir(parents=True)
    (web_dir / "js" / "main.js").write_text("export const x = 1;\n")
    (web_dir / "README.md").write_text("x")
    monkeypatch.setattr(server.host, "web_dir", web_dir)
    assert server.get_json("/api/extensions") == ["/extensions/framefold/js/main.js"]
    real_web = Path(__file__).resolve().parent.parent / "web"  # the pack's real web dir is what is mounted
    shipped = sorted(p for p in real_web.rglob("*") if p.is_file())[0]
    status, _, body = server.request("GET", f"/extensions/framefold/{shipped.relative_to(real_web).as_posix()}")
    assert status == 200 and body == shipped.read_bytes()
    assert server.request("GET", "/extensions/framefold/../../setup.py")[0] in (403, 404)
    assert server.request("GET", "/extensions/framefold/%2e%2e/%2e%2e/setup.py")[0] in (403, 404)
