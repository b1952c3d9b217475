"""Our workflow conversion against the real canvas (comfyui-frontend-package in headless Chromium).

The canvas converts each hand-written UI file with its own ``graphToPrompt()``; that must equal our
``ui_to_api``. Graphs made by ``api_to_ui`` must load and queue back to the same API prompt, and nodes the
canvas creates must have exactly the widget slots our ``widget_layout`` predicts.
"""

import asyncio
import copy
import json
import threading
from pathlib import Path

import pytest
from aiohttp import web
from test_host_registry import Layout
from test_host_support import CLASSES, DISPLAY

from framefold.host.registry import NodeRegistry
from framefold.host.server import create_app
from framefold.host.workflow import api_to_ui, ui_to_api

UI_DIR = Path(__file__).parent / "data" / "ui"
CHROMIUM = "/usr/bin/chromium"
# named_values.json is inconsistent on purpose (positional values lack a slot): the 1.58 canvas loads the
# positional array, our converter prefers widgets_values_named (protocol 6.3 step 4), so they differ by design.
CANVAS_FILES = sorted(p.name for p in UI_DIR.glob("*.json") if p.name != "named_values.json")

REGISTRY = NodeRegistry({**CLASSES, "Layout": Layout}, DISPLAY)


def strip(api):
    """Class and inputs only (``_meta`` titles are cosmetic)."""
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("canvas")
    dirs = {name: root / name for name in ("input", "output", "temp", "user")}
    for d in dirs.values():
        d.mkdir()
    (dirs["input"] / "clip.png").write_bytes(b"not really a png")
    app = create_app(
        registry=REGISTRY,
        input_dir=dirs["input"],
        output_dir=dirs["output"],
        temp_dir=dirs["temp"],
        user_dir=dirs["user"],
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)

    async def boot():
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner.addresses[0][1]

    port = asyncio.run_coroutine_threadsafe(boot(), loop).result(30)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            tab = browser.new_page()
            tab.goto(f"http://127.0.0.1:{port}/")
            tab.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=120000)
            yield tab
            browser.close()
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        from framefold.nodes import _folders

        _folders.set_io_dirs(output=None, input=None, temp=None, user=None)


def canvas_prompt(page, graph):
    """Load ``graph`` into the canvas and return what it would queue (``graphToPrompt().output``)."""
    return page.evaluate(
        "async (g) => { await window.app.loadGraphData(g, true, false);"
        " return (await window.app.graphToPrompt()).output; }",
        graph,
    )


def test_canvas_and_ui_to_api_agree_on_every_file(page):
    for name in CANVAS_FILES:
        ui = json.loads((UI_DIR / name).read_text())
        assert strip(canvas_prompt(page, ui)) == strip(ui_to_api(ui, REGISTRY)), name


def test_api_to_ui_graphs_queue_back_to_the_same_prompt(page):
    for name in CANVAS_FILES:
        api = ui_to_api(json.loads((UI_DIR / name).read_text()), REGISTRY)
        if any(":" in node_id for node_id in api):
            continue  # flattened subgraph ids are renumbered by api_to_ui
        assert strip(canvas_prompt(page, api_to_ui(copy.deepcopy(api), REGISTRY))) == strip(api), name


def test_canvas_widget_slots_match_widget_layout(page):
    for class_type in ("Layout", "TControls", "TSource", "TUpload", "TScale"):
        named = page.evaluate(
            "(t) => { const n = window.LiteGraph.createNode(t); window.app.graph.add(n);"
            " return Object.keys(n.serialize().widgets_values_named || {}); }",
            class_type,
        )
        expected, seen = [], {}
        for slot in REGISTRY.widget_layout(class_type):
            key = {
                "input": slot.name,
                "control": "control_after_generate",
                "filter": "control_filter_list",
                "upload": "upload",
            }[slot.kind]
            count = seen.get(key, 0)
            seen[key] = count + 1
            expected.append(key if count == 0 else f"{key}#{count}")
        assert named == expected, class_type
