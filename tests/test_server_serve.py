"""``serve()`` as the CLI runs it: prints the URL, binds where asked, warns on a non-loopback bind."""

import http.client
import json
import signal
import subprocess
import sys
import threading

from test_server_support import free_port

from framefold.host.server import _bind_hosts, startup_lines

SCRIPT = """
import sys
from framefold.host.server import serve
serve(listen=sys.argv[1], port=int(sys.argv[2]), output_dir=sys.argv[3] + "/out", input_dir=sys.argv[3] + "/in",
      user_dir=sys.argv[3] + "/user", temp_dir=sys.argv[3] + "/temp")
"""


def _get(port, path, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_startup_lines_warn_only_for_non_loopback_binds():
    assert startup_lines(["127.0.0.1"], "http://127.0.0.1:8188/") == ["FrameFold canvas: http://127.0.0.1:8188/"]
    assert len(startup_lines(["localhost", "::1"], "u")) == 1
    lines = startup_lines(["192.168.1.5"], "http://192.168.1.5:8188/")
    assert len(lines) == 2 and lines[1].startswith("WARNING: listening on 192.168.1.5")
    assert _bind_hosts("0.0.0.0, [::]") == ["0.0.0.0", "::"] and _bind_hosts("") == ["127.0.0.1"]


def test_serve_prints_url_warns_and_keeps_the_host_guard(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "0.0.0.0", str(port), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(60, process.kill)  # never hang the suite on a stuck server
    watchdog.start()
    try:
        lines = [process.stdout.readline().rstrip() for _ in range(2)]
        assert lines[0] == f"FrameFold canvas: http://127.0.0.1:{port}/", lines
        assert lines[1].startswith("WARNING: listening on 0.0.0.0"), lines
        status, body = _get(port, "/api/users")
        assert status == 200 and json.loads(body) == {"storage": "server", "migrated": True}
        assert _get(port, "/api/users", host="attacker.example")[0] == 403
        assert (tmp_path / "user" / "default" / "workflows").is_dir()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        watchdog.cancel()
    assert process.returncode == 0
