"""/view, /upload/image and /userdata: behaviour, name clashes, previews and path guards."""

import json
import uuid

import cv2
import numpy as np
from test_server_support import make_server, server  # noqa: F401  (fixture)


def multipart(fields, files):
    """A multipart/form-data body: ``files`` maps field -> (filename, bytes)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(server, filename, data, path="/api/upload/image", **fields):
    body, headers = multipart(fields, {"image": (filename, data)})
    status, _, reply = server.request("POST", path, body=body, headers=headers)
    return status, (json.loads(reply) if status == 200 else reply)


def png_bytes(height=6, width=5, alpha=True):
    image = np.zeros((height, width, 4 if alpha else 3), np.uint8)
    image[..., 0] = 10
    image[..., 1] = 200
    image[..., 2] = 30
    if alpha:
        image[..., 3] = np.arange(width, dtype=np.uint8)[None, :] * 50
    return cv2.imencode(".png", image)[1].tobytes()


# ---------------------------------------------------------------------------------------------------
# userdata


def test_userdata_save_list_move_delete(server):
    flow = json.dumps({"nodes": [], "links": [], "version": 0.4}).encode()
    status, _, body = server.request(
        "POST", "/api/userdata/workflows%2Fmy%20flow.json?overwrite=true&full_info=true", body=flow
    )
    assert status == 200
    info = json.loads(body)
    assert info["path"] == "workflows/my flow.json" and info["size"] == len(flow)
    assert isinstance(info["modified"], int) and isinstance(info["created"], int)
    status, _, body = server.request("POST", "/userdata/workflows%2Fsub%2Fb.json", body=b"{}")
    assert status == 200 and json.loads(body) == "workflows/sub/b.json"
    status, _, _ = server.request("POST", "/api/userdata/workflows%2Fsub%2Fb.json?overwrite=false", body=b"{}")
    assert status == 409
    listing = server.get_json("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true")
    assert [entry["path"] for entry in listing] == ["my flow.json", "sub/b.json"]
    assert server.get_json("/api/userdata?dir=workflows") == ["my flow.json"]
    assert server.get_json("/api/userdata?dir=workflows&recurse=true&split=true") == [
        ["my flow.json", "my flow.json"],
        ["sub/b.json", "sub", "b.json"],
    ]
    assert server.get_json("/api/userdata?dir=subgraphs") == []  # created empty at start
    assert server.request("GET", "/api/userdata?dir=missing")[0] == 404
    assert server.request("GET", "/api/userdata")[0] == 400
    status, headers, body = server.request("GET", "/api/userdata/workflows%2Fmy%20flow.json")
    assert status == 200 and body == flow
    assert headers["Content-Disposition"].startswith("attachment") and headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = server.request(
        "POST", "/api/userdata/workflows%2Fmy%20flow.json/move/workflows%2Frenamed.json?overwrite=false&full_info=true"
    )
    assert status == 200 and json.loads(body)["path"] == "workflows/renamed.json"
    assert server.request("GET", "/api/userdata/workflows%2Fmy%20flow.json")[0] == 404
    assert server.request("POST", "/api/userdata/workflows%2Fmissing.json/move/workflows%2Fx.json")[0] == 404
    assert (
        server.request("POST", "/api/userdata/workflows%2Frenamed.json/move/workflows%2Fsub%2Fb.json?overwrite=false")[
            0
        ]
        == 409
    )
    assert server.request("DELETE", "/api/userdata/workflows%2Frenamed.json")[0] == 204
    assert server.request("DELETE", "/userdata/workflows%2Frenamed.json")[0] == 404
    assert server.get_json("/api/userdata?dir=workflows&recurse=true") == ["sub/b.json"]
    assert (server.dirs["user"] / "default" / "workflows" / "sub" / "b.json").read_bytes() == b"{}"
    # user.css is served inline; percent left in a name is decoded once more like ComfyUI does.
    server.request("POST", "/api/userdata/user.css", body=b"body{}")
    status, headers, _ = server.request("GET", "/api/userdata/user.css")
    assert status == 200 and "Content-Disposition" not in headers
    status, _, body = server.request("POST", "/api/userdata/workflows%252Fdouble.json", body=b"1")
    assert status == 200 and json.loads(body) == "workflows/double.json"


USERDATA_ESCAPES = [
    ("GET", "/api/userdata/..%2F..%2Fsecret.txt"),
    ("GET", "/api/userdata/%2E%2E%2Fsecret.txt"),
    ("GET", "/api/userdata/%252E%252E%252Fsecret.txt"),  # double-encoded
    ("GET", "/api/userdata/%2Fetc%2Fpasswd"),
    ("GET", "/api/userdata/workflows%2F..%2F..%2F..%2Fsecret.txt"),
    ("GET", "/api/userdata/escape%2Fsecret.txt"),  # symlink out of the user folder
    ("POST", "/api/userdata/..%2Fplanted.json"),
    ("POST", "/api/userdata/escape%2Fplanted.json"),
    ("DELETE", "/api/userdata/..%2F..%2Fsecret.txt"),
    ("POST", "/api/userdata/workflows%2Fa.json/move/..%2F..%2Fplanted.json"),
    ("GET", "/api/userdata?dir=..%2F.."),
    ("GET", "/api/userdata?dir=/etc"),
    ("GET", "/api/userdata?dir=escape"),
    ("GET", "/api/userdata/a%5C..%5C..%5Csecret.txt"),  # backslashes
]


def test_userdata_traversal_attempts_are_refused(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (server.dirs["user"] / "secret.txt").write_text("user-dir secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    root = server.dirs["user"] / "default"
    root.mkdir(parents=True, exist_ok=True)
    (root / "escape").symlink_to(outside)
    (root / "workflows").mkdir(exist_ok=True)
    (root / "workflows" / "a.json").write_text("{}")
    for method, path in USERDATA_ESCAPES:
        status, _, body = server.request(method, path, body=b"x" if method == "POST" else None)
        assert status in (400, 403, 404), (method, path, status)
        assert b"top secret" not in body and b"user-dir secret" not in body, (method, path)
    assert not (tmp_path / "planted.json").exists() and not (outside / "planted.json").exists()
    assert not (server.dirs["user"] / "planted.json").exists()
    assert (root / "workflows" / "a.json").exists() and secret.exists()
    # Reserved users.
    status, _, _ = server.request("GET", "/api/userdata?dir=workflows", headers={"Comfy-User": "__system"})
    assert status == 403


# ---------------------------------------------------------------------------------------------------
# upload + view


def test_upload_name_clash_subfolder_and_overwrite(server):
    status, reply = upload(server, "clip.mp4", b"AAAA")
    assert status == 200 and reply == {"name": "clip.mp4", "subfolder": "", "type": "input"}
    assert upload(server, "clip.mp4", b"AAAA")[1]["name"] == "clip.mp4"  # identical bytes reuse the name
    assert upload(server, "clip.mp4", b"BBBB")[1]["name"] == "clip (1).mp4"
    assert upload(server, "clip.mp4", b"CCCC")[1]["name"] == "clip (2).mp4"
    assert upload(server, "clip.mp4", b"DDDD", overwrite="true")[1]["name"] == "clip.mp4"
    assert (server.dirs["input"] / "clip.mp4").read_bytes() == b"DDDD"
    status, reply = upload(server, "x.png", b"PNG", path="/upload/image", subfolder="shots/a", type="temp")
    assert status == 200 and reply == {"name": "x.png", "subfolder": "shots/a", "type": "temp"}
    assert (server.dirs["temp"] / "shots" / "a" / "x.png").read_bytes() == b"PNG"
    status, _, _ = server.request("POST", "/api/upload/image", body=b"", headers={"Content-Type": "text/plain"})
    assert status == 400


def test_upload_size_limit(tmp_path):
    srv = make_server(tmp_path, max_upload_mb=0.01)
    try:
        status, _ = upload(srv, "big.bin", b"x" * 20000)
        assert status == 413
        assert srv.get_json("/api/features")["max_upload_size"] == int(0.01 * 1024 * 1024)
        assert upload(srv, "small.bin", b"x" * 100)[0] == 200
    finally:
        srv.stop()


UPLOAD_ESCAPES = [
    ({"subfolder": "../.."}, "evil.png"),
    ({"subfolder": "/tmp"}, "evil.png"),
    ({"subfolder": "escape"}, "evil.png"),  # symlink out of the input folder
    ({"subfolder": "a/../../.."}, "evil.png"),
    ({}, "../evil.png"),
    ({}, "..\\\\evil.png"),  # quoted-string escape: the server sees ..\evil.png
    ({}, ".."),
    ({"type": "models"}, "evil.png"),
]


def test_upload_traversal_attempts_are_refused(server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (server.dirs["input"] / "escape").symlink_to(outside)
    for fields, name in UPLOAD_ESCAPES:
        status, _ = upload(server, name, b"evil", **fields)
        assert status == 400, (fields, name, status)
    planted = [p for p in tmp_path.rglob("evil*")]
    assert planted == [], planted


def test_view_serves_files_previews_and_channels(server):
    out = server.dirs["output"]
    (out / "sub").mkdir()
    png = png_bytes()
    (out / "sub" / "a.png").write_bytes(png)
    (server.dirs["input"] / "in.png").write_bytes(png)
    (out / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    status, headers, body = server.request("GET", "/api/view?filename=a.png&subfolder=sub&type=output&rand=0.1")
    assert status == 200 and body == png and headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert server.request("GET", "/view?filename=in.png+[input]")[2] == png
    assert server.request("GET", "/view?filename=in.png%20%5Binput%5D")[2] == png
    status, headers, _ = server.request("GET", "/api/view?filename=clip.mp4")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    status, headers, body = server.request("GET", "/api/view?filename=a.png&subfolder=sub&preview=webp;50")
    assert status == 200 and headers["Content-Type"] == "image/webp" and body[8:12] == b"WEBP"
    status, headers, body = server.request("GET", "/api/view?filename=a.png&subfolder=sub&preview=jpeg;80")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    status, _, body = server.request("GET", "/api/view?filename=a.png&subfolder=sub&channel=rgb")
    rgb = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (6, 5, 3) and rgb[0, 0].tolist() == [10, 200, 30]
    status, _, body = server.request("GET", "/api/view?filename=a.png&subfolder=sub&channel=a")
    alpha = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (6, 5, 4) and alpha[0, :, 3].tolist() == [0, 50, 100, 150, 200]
    assert alpha[..., :3].max() == 0
    assert server.request("GET", "/api/view?filename=nothing.png")[0] == 404
    assert server.request("GET", "/api/view")[0] == 400


def test_view_serves_dangerous_types_as_attachments(server):
    out = server.dirs["output"]
    (out / "page.html").write_text("<script>alert(1)</script>")
    (out / "pic.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (out / "data.xml").write_text("<a/>")
    (out / "code.js").write_text("alert(1)")
    for name in ("page.html", "pic.svg", "data.xml", "code.js"):
        status, headers, _ = server.request("GET", f"/api/view?filename={name}")
        assert status == 200 and headers["Content-Type"] == "application/octet-stream", name
        assert (
            headers["Content-Disposition"].startswith("attachment") and headers["X-Content-Type-Options"] == "nosniff"
        )
    (out / 'say "hi".txt').write_text("hi")
    status, headers, body = server.request("GET", "/api/view?filename=say%20%22hi%22.txt")
    assert status == 200 and body == b"hi" and headers["Content-Disposition"] == 'filename="say \\"hi\\".txt"'
    status, headers, _ = server.request("GET", "/api/view?filename=pic.svg", headers={"Sec-Fetch-Dest": "image"})
    assert headers["Content-Type"] == "image/svg+xml" and headers["X-Content-Type-Options"] == "nosniff"


VIEW_ESCAPES = [
    ("filename=../secret.txt", 400),
    ("filename=..%2F..%2Fsecret.txt", 400),
    ("filename=%2Fetc%2Fpasswd", 400),
    ("filename=/etc/passwd", 400),
    ("filename=secret.txt&subfolder=..", 403),
    ("filename=secret.txt&subfolder=../..", 403),
    ("filename=secret.txt&subfolder=/tmp", 403),
    ("filename=secret.txt&subfolder=%2Fetc", 403),
    ("filename=secret.txt&subfolder=escape", 403),  # symlink out of the output folder
    ("filename=link.txt", 403),  # a file symlink pointing outside
    ("filename=secret.txt&type=models", 400),
    ("filename=secret.txt&type=..", 400),
    ("filename=..%5Csecret.txt", 400),
    ("filename=secret.txt [..]", 400),
    ("filename=secret.txt%00.png", 400),
    ("filename=secret.txt [models]", 404),  # unknown annotation stays part of the (missing) name
]


def test_view_traversal_attempts_are_refused(server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (tmp_path / "secret.txt").write_text("top secret")
    (server.dirs["output"] / "escape").symlink_to(outside)
    (server.dirs["output"] / "link.txt").symlink_to(outside / "secret.txt")
    for query, expected in VIEW_ESCAPES:
        status, _, body = server.request("GET", "/api/view?" + query.replace(" ", "%20"))
        assert status == expected, (query, status)
        assert b"top secret" not in body
    assert len(VIEW_ESCAPES) + len(UPLOAD_ESCAPES) + len(USERDATA_ESCAPES) >= 15
