"""The official ComfyUI canvas (comfyui-frontend-package) against our host, driven by headless Chromium.

Uses the system Chromium (/usr/bin/chromium) through Python Playwright; never downloads a browser.
Screenshots of each state go to ``test-artifacts/`` (git-ignored). The server runs in a thread on
a free loopback port with fresh folders; FrameFold's real nodes are registered together with the
test-only nodes of ``test_server_support``, whose Loop node reports progress with latent previews and
whose Save node writes an MP4 (fast and independent of model weights).
"""

import json
import os
import time
from pathlib import Path

import pytest
from test_server_support import TEST_NODES, FrameFoldTestLoop, ServerThread, loop_prompt, write_test_mp4

from framefold.host.executor import Executor
from framefold.host.registry import NodeRegistry, default_registry
from framefold.host.server import create_app
from framefold.host.workflow import api_to_ui, ui_to_api

CHROMIUM = "/usr/bin/chromium"


def browser_missing():
    """Why the browser tests cannot run here (no Chromium, no Playwright), or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python Playwright is not installed (pip install -e '.[test]')"
    return None


def browser_mark():
    """Skip the browser tests with the reason where they cannot run, unless FRAMEFOLD_REQUIRE_BROWSER=1
    (set by .ci/run), where a missing browser must fail them instead of hiding them."""
    reason = browser_missing()
    required = os.environ.get("FRAMEFOLD_REQUIRE_BROWSER") == "1"
    return pytest.mark.skipif(reason is not None and not required, reason=f"browser test skipped: {reason}")


pytestmark = browser_mark()
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Optional user files the canvas probes on every boot; protocol §2.2: "404 on any of these is fine".
OPTIONAL_PROBES = (
    "/api/userdata/user.css",
    "/api/userdata/comfy.templates.json",
    "/api/userdata/workflows%2F.index.json",
)
TEMPLATE = "browser_loop_video"
LONG_TEMPLATE = "browser_long_loop"
PACKAGE_EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"
# Every shipped example (example_workflows/*.json) is opened in the canvas, plus the test-only template.
OPENED_TEMPLATES = [TEMPLATE] + sorted(p.stem for p in PACKAGE_EXAMPLES.glob("*.json"))
VIRTUAL_NODES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")


class PageLog:
    """Console errors, page errors and failed responses seen by the page."""

    def __init__(self, base):
        self.base = base
        self.console_errors = []
        self.page_errors = []
        self.bad_responses = []

    def attach(self, page):
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("response", lambda r: self.bad_responses.append((r.status, r.url)) if r.status >= 400 else None)

    def unexplained(self):
        """Errors left after removing the 404s of optional probes (each logs one console error)."""
        probes = [
            (s, u)
            for s, u in self.bad_responses
            if s == 404 and u.startswith(self.base) and u[len(self.base) :] in OPTIONAL_PROBES
        ]
        others = [r for r in self.bad_responses if r not in probes]
        errors = list(self.console_errors)
        for _ in probes:
            for i, text in enumerate(errors):
                if text.startswith("Failed to load resource: the server responded with a status of 404"):
                    del errors[i]
                    break
        return {"console": errors, "page": self.page_errors, "responses": others}

    def reset(self):
        self.console_errors.clear()
        self.page_errors.clear()
        self.bad_responses.clear()


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    """A running host plus a Chromium page (fresh profile) with its error log."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is required for the browser test"
    ARTIFACTS.mkdir(exist_ok=True)
    tmp = tmp_path_factory.mktemp("canvas")
    real = default_registry()
    registry = NodeRegistry(
        {**{n: real.get(n) for n in real.names()}, **TEST_NODES},
        {
            **{n: real.display_name(n) for n in real.names()},
            **{k: k.replace("FrameFoldTest", "Test ") for k in TEST_NODES},
        },
    )
    dirs = {name: tmp / name for name in ("input", "output", "temp", "user")}
    app = create_app(
        executor=Executor(registry),
        registry=registry,
        input_dir=dirs["input"],
        output_dir=dirs["output"],
        temp_dir=dirs["temp"],
        user_dir=dirs["user"],
    )
    server = ServerThread(app).start()
    server.dirs = dirs
    examples = tmp / "examples"
    examples.mkdir()
    template = api_to_ui(loop_prompt(steps=20, delay=0.1, value=3, video=True, prefix="browser"), registry)
    (examples / f"{TEMPLATE}.json").write_text(json.dumps(template))
    for path in PACKAGE_EXAMPLES.glob("*.json"):
        (examples / path.name).write_bytes(path.read_bytes())
    long_run = api_to_ui(loop_prompt(steps=400, delay=0.05, value=4, video=False, prefix="long"), registry)
    (examples / f"{LONG_TEMPLATE}.json").write_text(json.dumps(long_run))
    server.host.example_dir = examples
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        log = PageLog(server.base)
        log.attach(page)
        try:
            yield server, page, log, registry, real
        finally:
            context.close()
            server.stop()


def _boot(page, url):
    page.goto(url)
    page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=60000)


def _close_template_browser(page):
    """A first boot with no workflow opens the template browser; close it if it shows up."""
    dialog = page.get_by_role("dialog")
    try:
        dialog.first.wait_for(timeout=3000)
    except Exception:  # playwright TimeoutError: no dialog this time
        return
    page.keyboard.press("Escape")
    dialog.first.wait_for(state="hidden", timeout=5000)


def test_canvas_boots_with_framefold_nodes_and_no_console_errors(canvas):
    server, page, log, registry, real = canvas
    _boot(page, server.base + "/")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "canvas_boot.png"))
    registered = page.evaluate("Object.keys(LiteGraph.registered_node_types).filter(k => k.startsWith('FrameFold'))")
    assert set(registered) == set(registry.names())
    # Each real node comes up with exactly the widgets its definition asks for, in order.
    widgets = page.evaluate(
        """(names) => Object.fromEntries(names.map(name => {
        const node = LiteGraph.createNode(name);
        return [name, (node.widgets || []).map(w => w.name)];
    }))""",
        registry.names(),
    )
    for name in real.names():
        expected = [
            s.name if s.kind == "input" else "control_after_generate"
            for s in real.widget_layout(name)
            if s.kind in ("input", "control")
        ]
        got = [w for w in widgets[name] if w not in ("upload", "control_filter_list")]
        assert got == expected, (name, got, expected)
    assert widgets["FrameFoldTestLoop"] == ["steps", "step_delay"]
    assert log.unexplained() == {"console": [], "page": [], "responses": []}


@pytest.mark.parametrize("name", OPENED_TEMPLATES)
def test_template_opens_without_missing_nodes_and_converts_like_the_host(canvas, name):
    """``/?template=<name>&source=framefold`` loads the example; the canvas's API prompt equals ui_to_api's."""
    server, page, log, registry, _ = canvas
    log.reset()
    ui_graph = json.loads((server.host.example_dir / f"{name}.json").read_text())
    _boot(page, f"{server.base}/?template={name}&source=framefold")
    # wait for this template's node types (the previous template may have had as many nodes)
    expected_types = json.dumps(sorted(n["type"] for n in ui_graph["nodes"]), separators=(",", ":"))
    page.wait_for_function(
        f"JSON.stringify(app.graph.nodes.map(n => n.type).sort()) === {json.dumps(expected_types)}", timeout=30000
    )
    missing = page.evaluate(f"""app.graph.nodes.map(n => n.type)
        .filter(t => !LiteGraph.registered_node_types[t] && !{list(VIRTUAL_NODES)}.includes(t))""")
    assert missing == []
    prompt = page.evaluate("(async () => (await app.graphToPrompt()).output)()")
    canvas_view = {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    host_view = {k: (v["class_type"], v["inputs"]) for k, v in ui_to_api(ui_graph, registry).items()}
    assert canvas_view == host_view
    page.screenshot(path=str(ARTIFACTS / f"canvas_template_{name}.png"))
    assert log.unexplained() == {"console": [], "page": [], "responses": []}


def test_template_runs_with_progress_outline_and_video_preview(canvas):
    server, page, log, registry, _ = canvas
    log.reset()
    _boot(page, f"{server.base}/?template={TEMPLATE}&source=framefold")
    page.wait_for_function("app.graph.nodes.length === 3", timeout=30000)
    types = page.evaluate("app.graph.nodes.map(n => n.type).sort()")
    assert types == ["FrameFoldTestLoop", "FrameFoldTestSave", "FrameFoldTestSource"]
    page.screenshot(path=str(ARTIFACTS / "canvas_template.png"))

    FrameFoldTestLoop.last_step = 0
    page.evaluate("app.queuePrompt(0, 1)")
    progress_seen = []
    deadline = time.monotonic() + 60
    shot_taken = False
    while time.monotonic() < deadline:
        value = page.evaluate("app.graph.getNodeById(2).progress")
        if value is not None and (not progress_seen or progress_seen[-1] != value):
            progress_seen.append(value)
        if not shot_taken and value is not None and value >= 0.3:
            page.screenshot(path=str(ARTIFACTS / "canvas_running.png"))
            shot_taken = True
            preview_count = page.evaluate("(app.graph.getNodeById(2).imgs || []).length")
            assert preview_count >= 1  # the latent preview (binary websocket frame) is on the node
        if FrameFoldTestLoop.last_step == 20 and server.host.queue.remaining() == 0:
            break
        page.wait_for_timeout(100)
    assert shot_taken and len(progress_seen) >= 3 and progress_seen == sorted(progress_seen), progress_seen

    page.wait_for_selector("video", timeout=30000)
    page.wait_for_function(
        "(() => { const v = document.querySelector('video'); return v && v.readyState >= 2; })()", timeout=30000
    )
    video = page.evaluate("""(() => { const v = document.querySelector('video');
        return {src: v.src, width: v.videoWidth, duration: v.duration}; })()""")
    assert "/api/view?filename=browser_00001_.mp4" in video["src"] and "type=output" in video["src"]
    assert video["width"] == 64 and video["duration"] > 0.5  # 8 frames at 8 fps: an animation, not a still
    page.screenshot(path=str(ARTIFACTS / "canvas_video_preview.png"))

    jobs = server.get_json("/api/jobs?status=completed,failed,cancelled&limit=64&offset=0")["jobs"]
    assert jobs[0]["status"] == "completed"
    assert jobs[0]["preview_output"]["filename"] == "browser_00001_.mp4"
    assert jobs[0]["preview_output"]["format"] == "video/mp4"
    # The prompt the canvas sent matches the template's API graph.
    sent = server.get_json(f"/api/jobs/{jobs[0]['id']}")["workflow"]["prompt"]
    assert {k: (v["class_type"], v["inputs"]) for k, v in sent.items()} == {
        k: (v["class_type"], v["inputs"])
        for k, v in loop_prompt(steps=20, delay=0.1, value=3, video=True, prefix="browser").items()
    }
    assert log.unexplained() == {"console": [], "page": [], "responses": []}


def test_saved_workflow_is_listed_after_reload(canvas):
    server, page, log, _, _ = canvas
    log.reset()
    _boot(page, server.base + "/")
    saved = page.evaluate("""async () => {
        const node = LiteGraph.createNode('FrameFoldTestSource');
        app.graph.add(node);
        const api = window.comfyAPI.api.api;
        const res = await api.storeUserData('workflows/browser_saved.json', JSON.stringify(app.graph.serialize()),
            {overwrite: true, stringify: false, throwOnError: true, full_info: true});
        return [res.status, await res.json()];
    }""")
    assert saved[0] == 200 and saved[1]["path"] == "workflows/browser_saved.json"
    stored = json.loads((server.dirs["user"] / "default" / "workflows" / "browser_saved.json").read_text())
    assert any(node["type"] == "FrameFoldTestSource" for node in stored["nodes"])
    page.reload()
    page.wait_for_function("window.app && window.app.graph", timeout=60000)
    page.evaluate("app.extensionManager.command.execute('Workspace.ToggleSidebarTab.workflows')")
    page.get_by_text("browser_saved").first.wait_for(timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "canvas_workflow_browser.png"))
    paths = page.evaluate("app.extensionManager.workflow.workflows.map(w => w.path)")
    assert "workflows/browser_saved.json" in paths
    # Opening it from the browser loads the saved graph back.
    page.get_by_text("browser_saved").first.click()
    page.wait_for_function("app.graph.nodes.some(n => n.type === 'FrameFoldTestSource')", timeout=15000)
    assert log.unexplained() == {"console": [], "page": [], "responses": []}


def test_cancel_button_interrupts_the_running_job(canvas):
    server, page, log, _, _ = canvas
    log.reset()
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.post_data)) if "/interrupt" in r.url else None)
    _boot(page, f"{server.base}/?template={LONG_TEMPLATE}&source=framefold")
    page.wait_for_function(
        "app.graph.nodes.some(n => n.widgets && n.widgets.some(w => w.value === 400))", timeout=30000
    )
    FrameFoldTestLoop.last_step = 0
    page.evaluate("app.queuePrompt(0, 1)")
    deadline = time.monotonic() + 30
    while FrameFoldTestLoop.last_step < 5 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    running = server.get_json("/api/jobs?status=in_progress")["jobs"]
    assert len(running) == 1
    page.get_by_role("button", name="Cancel current run").click()
    deadline = time.monotonic() + 30
    while server.host.queue.remaining() and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert FrameFoldTestLoop.last_step < 400
    job = server.get_json(f"/api/jobs/{running[0]['id']}")
    assert job["status"] == "cancelled"
    assert [(m, json.loads(body or "{}").get("prompt_id")) for m, _, body in sent] == [("POST", running[0]["id"])]
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "canvas_cancelled.png"))
    assert log.unexplained() == {"console": [], "page": [], "responses": []}


def test_real_load_and_save_video_nodes_run_from_the_canvas(canvas, tmp_path):
    """Upload a clip through the canvas API, wire FrameFold's Load Video -> Save Video, run, see the <video>."""
    server, page, log, _, _ = canvas
    log.reset()
    clip = tmp_path / "upload.mp4"
    write_test_mp4(clip, seed=2, frames=8, size=64)
    _boot(page, server.base + "/")
    _close_template_browser(page)
    page.evaluate("app.extensionManager.command.execute('Comfy.NewBlankWorkflow')")
    page.wait_for_function("app.graph.nodes.length === 0", timeout=15000)
    uploaded = page.evaluate(
        """async (bytes) => {
        const form = new FormData();
        form.append('image', new Blob([new Uint8Array(bytes)], {type: 'video/mp4'}), 'canvas clip.mp4');
        form.append('subfolder', 'clips');
        const res = await window.comfyAPI.api.api.fetchApi('/upload/image', {method: 'POST', body: form});
        return [res.status, await res.json()];
    }""",
        list(clip.read_bytes()),
    )
    assert uploaded == [200, {"name": "canvas clip.mp4", "subfolder": "clips", "type": "input"}]
    # The server re-lists the input folder in INPUT_TYPES, so refreshed definitions offer the new clip.
    page.evaluate("app.refreshComboInNodes()")
    options = page.evaluate("""(() => { const n = LiteGraph.createNode('FrameFoldLoadVideo');
        return n.widgets.find(w => w.name === 'video').options.values; })()""")
    assert "clips/canvas clip.mp4" in options
    page.evaluate("""async () => {
        const load = LiteGraph.createNode('FrameFoldLoadVideo');
        load.pos = [80, 120];
        app.graph.add(load);
        load.widgets.find(w => w.name === 'video').value = 'clips/canvas clip.mp4';
        const save = LiteGraph.createNode('FrameFoldSaveVideo');
        save.pos = [520, 120];
        app.graph.add(save);
        save.widgets.find(w => w.name === 'filename_prefix').value = 'real/clip';
        load.connect(0, save, 0);
        await app.queuePrompt(0, 1);
    }""")
    # Load Video previews its input clip; the Save Video node's <video> is the one showing output/real/.
    saved_video = """[...document.querySelectorAll('video')].find(v => v.src.includes('subfolder=real'))"""
    page.wait_for_function(f"(() => {{ const v = {saved_video}; return v && v.readyState >= 2; }})()", timeout=60000)
    video = page.evaluate(
        f"(() => {{ const v = {saved_video}; return {{src: v.src, width: v.videoWidth, duration: v.duration}}; }})()"
    )
    assert "filename=clip_00001_.mp4" in video["src"] and video["width"] == 64 and video["duration"] > 0.5
    assert (server.dirs["output"] / "real" / "clip_00001_.mp4").is_file()
    assert page.evaluate("app.graph.nodes.filter(n => n.has_errors).length") == 0
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "canvas_real_save_video.png"))
    job = server.get_json("/api/jobs?status=completed&limit=1")["jobs"][0]
    assert job["preview_output"]["subfolder"] == "real" and job["preview_output"]["format"] == "video/mp4"
    assert log.unexplained() == {"console": [], "page": [], "responses": []}
