"""The shipped text_to_video example, run for real from the ComfyUI canvas and from the CLI.

Chromium opens ``/?template=text_to_video&source=framefold`` on the embedded host (real nodes, the
embedded default model, fresh folders), queues it and waits for the Save Video node's <video>. The
graph the canvas saves to the user folder is then run unchanged by ``framefold run``; same seed, so
both MP4s must decode to the same frames (within the H.264 encoder noise, see the end).
"""

import json
import time
from pathlib import Path

from test_browser_canvas import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PageLog, _boot, browser_mark
from test_server_support import ServerThread

from framefold.host.cli import main as cli_main
from framefold.host.executor import Executor
from framefold.host.registry import default_registry
from framefold.host.server import create_app
from framefold.host.workflow import ui_to_api
from framefold.nodes import _folders
from framefold.pipelines.video import read_video

pytestmark = browser_mark()

EXAMPLE = "text_to_video"
SAVE_NODE_ID = 9
RUN_TIMEOUT_S = 300  # ~15-30 s alone; generous for a busy shared 2-core machine


def _wait_for_completed_job(server, deadline):
    """The one finished job of the host, polled through /api/jobs until it is no longer pending or running."""
    while time.monotonic() < deadline:
        done = server.get_json("/api/jobs?status=completed,failed,cancelled&limit=8&offset=0")["jobs"]
        if done:
            return done[0]
        time.sleep(0.5)
    raise AssertionError(f"the canvas run did not finish within {RUN_TIMEOUT_S} s")


def test_canvas_run_of_example_matches_cli_run_of_its_saved_workflow(tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is required for the browser test"
    ARTIFACTS.mkdir(exist_ok=True)
    saved_dirs = dict(_folders._dirs)  # create_app and the CLI both set the global io folders
    registry = default_registry()
    dirs = {name: tmp_path / name for name in ("input", "output", "temp", "user")}
    app = create_app(
        executor=Executor(registry),
        registry=registry,
        input_dir=dirs["input"],
        output_dir=dirs["output"],
        temp_dir=dirs["temp"],
        user_dir=dirs["user"],
    )
    server = ServerThread(app).start()
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
            try:
                page = context.new_page()
                log = PageLog(server.base)
                log.attach(page)
                _boot(page, f"{server.base}/?template={EXAMPLE}&source=framefold")
                page.wait_for_function(
                    f"app.graph.getNodeById({SAVE_NODE_ID})?.type === 'FrameFoldSaveVideo'", timeout=60000
                )
                # Save the graph as the canvas does (workflow browser -> userdata API), then queue it.
                stored = page.evaluate("""async () => {
                    const res = await window.comfyAPI.api.api.storeUserData('workflows/parity.json',
                        JSON.stringify(app.graph.serialize()),
                        {overwrite: true, stringify: false, throwOnError: true, full_info: true});
                    return [res.status, (await res.json()).path];
                }""")
                assert stored == [200, "workflows/parity.json"]
                page.evaluate("app.queuePrompt(0, 1)")
                job = _wait_for_completed_job(server, time.monotonic() + RUN_TIMEOUT_S)
                assert job["status"] == "completed", job
                sent = server.get_json(f"/api/jobs/{job['id']}")["workflow"]["prompt"]
                output = job["preview_output"]
                assert output["format"] == "video/mp4" and output["filename"].endswith(".mp4")
                # The `executed` message reached the Save Video node: it shows the new clip as a playable <video>.
                video_js = f"[...document.querySelectorAll('video')].find(v => v.src.includes('{output['filename']}'))"
                page.wait_for_function(
                    f"(() => {{ const v = {video_js}; return v && v.readyState >= 2; }})()", timeout=60000
                )
                shown = page.evaluate(
                    f"(() => {{ const v = {video_js}; "
                    "return {src: v.src, width: v.videoWidth, duration: v.duration}; })()"
                )
                assert "type=output" in shown["src"] and shown["width"] == 64 and shown["duration"] > 1.0
                page.wait_for_timeout(300)  # let the canvas paint the preview before the screenshot
                page.screenshot(path=str(ARTIFACTS / "canvas_text_to_video_run.png"))
                assert page.evaluate("app.graph.nodes.filter(n => n.has_errors).length") == 0
                assert log.unexplained()["page"] == []
            finally:
                context.close()
    finally:
        server.stop()

    canvas_mp4 = dirs["output"] / output["subfolder"] / output["filename"]
    saved = dirs["user"] / "default" / "workflows" / "parity.json"
    # What the canvas queued is exactly what its saved UI file converts to (the CLI's conversion).
    assert {k: (v["class_type"], v["inputs"]) for k, v in sent.items()} == {
        k: (v["class_type"], v["inputs"]) for k, v in ui_to_api(json.loads(saved.read_text()), registry).items()
    }
    cli_out = tmp_path / "cli_output"
    try:
        assert cli_main(["run", str(saved), "--output-dir", str(cli_out), "--quiet"]) == 0
    finally:
        _folders._dirs.update(saved_dirs)
    cli_mp4s = sorted(cli_out.rglob("*.mp4"))
    assert [p.relative_to(cli_out) for p in cli_mp4s] == [canvas_mp4.relative_to(dirs["output"])]
    canvas_frames, canvas_fps, _ = read_video(canvas_mp4)
    cli_frames, cli_fps, _ = read_video(cli_mp4s[0])
    assert canvas_frames.shape == (16, 64, 64, 3) and canvas_fps == cli_fps == 8.0
    # The generated float frames are bit-identical run to run (checked by capturing write_video's input),
    # but libx264 (auto threads) is not bit-deterministic here: identical input frames gave differing MP4s
    # on this busy machine, decoding up to 0.021 apart (mean 0.0005; the codec's own error vs its input is
    # ~0.11 max). So: exact equality of what was run, and decoded frames equal within that encoder noise.
    # The bound still catches a wrong seed: seed 43 instead of 42 decodes 0.354 max / 0.0091 mean apart.
    diff = (canvas_frames - cli_frames).abs()
    assert diff.max() <= 0.05 and diff.mean() <= 0.002, (diff.max().item(), diff.mean().item())
