"""Cross-site, foreign-Origin and foreign-Host requests are refused on every route, /ws included."""

import asyncio

import aiohttp
import pytest
from test_server_support import loop_prompt, make_server, server  # noqa: F401  (fixture)

ROUTES = [
    ("GET", "/"),
    ("GET", "/api/object_info"),
    ("GET", "/settings"),
    ("GET", "/scripts/app.js"),
    ("POST", "/api/prompt"),
    ("POST", "/api/interrupt"),
    ("GET", "/api/view?filename=x.png"),
    ("GET", "/api/userdata?dir=workflows"),
    ("GET", "/internal/logs"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Host": "evil.example"},  # DNS rebinding: the attacker's name resolves to 127.0.0.1
        {"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"},
        {"Host": "127.0.0.1.evil.example:{port}"},
    ],
    ids=["cross-site", "foreign-origin", "null-origin", "foreign-host", "rebinding-matching-origin", "lookalike"],
)
def test_foreign_requests_get_403(server, headers):
    headers = {k: v.format(port=server.port) for k, v in headers.items()}
    for method, path in ROUTES:
        body = b"{}" if method == "POST" else None
        status, _, reply = server.request(method, path, body=body, headers=headers)
        assert status == 403, (method, path, headers, status)
        assert b"<html" not in reply.lower()
    assert server.host.queue.remaining() == 0


def test_same_origin_and_loopback_names_pass(server):
    port = server.port
    for headers in (
        {},
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
        {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        {"Host": f"[::1]:{port}"},
        {"Host": "localhost"},
        {"Sec-Fetch-Site": "none"},
    ):
        status, _, _ = server.request("GET", "/api/users", headers=headers)
        assert status == 200, headers
    status, _, _ = server.request(
        "GET", "/api/users", headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port + 1}"}
    )
    assert status == 403


def test_configured_host_names_are_allowed(tmp_path):
    srv = make_server(tmp_path, allowed_hosts=("studio.lan",))
    try:
        assert srv.request("GET", "/api/users", headers={"Host": f"studio.lan:{srv.port}"})[0] == 200
        assert srv.request("GET", "/api/users", headers={"Host": f"other.lan:{srv.port}"})[0] == 403
    finally:
        srv.stop()


async def _ws_status(server, headers):
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(f"{server.base}/ws", headers=headers) as ws:
                message = await ws.receive(timeout=10)
                return 101, message.type
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, None


def test_websocket_upgrade_is_guarded(server):
    status, kind = asyncio.run(_ws_status(server, {"Origin": server.base}))
    assert status == 101 and kind == aiohttp.WSMsgType.TEXT
    assert asyncio.run(_ws_status(server, {"Origin": "http://evil.example"}))[0] == 403
    assert asyncio.run(_ws_status(server, {"Sec-Fetch-Site": "cross-site"}))[0] == 403
    assert asyncio.run(_ws_status(server, {"Host": "evil.example", "Origin": "http://evil.example"}))[0] == 403


def test_cross_site_prompt_does_not_queue(server):
    status, _, _ = server.request(
        "POST", "/api/prompt", json_body={"prompt": loop_prompt()}, headers={"Origin": "http://evil.example"}
    )
    assert status == 403
    assert server.get_json("/api/jobs")["pagination"]["total"] == 0
