"""Latent previews: inside ComfyUI through core's latent_preview previewer (doubles in tests/comfy_double.py),
honouring --preview-method; on FrameFold's host one preview per sampler step reaches the websocket."""

import asyncio
import json
import struct

from comfy_double import install_comfy_progress
from test_sampling_nodes import _run
from test_server_support import loop_prompt, server, ws_collect  # noqa: F401  (server is a fixture)

from framefold.pipelines import progress


def test_sampler_sends_one_core_preview_per_step_inside_comfyui(monkeypatch):
    record = install_comfy_progress(monkeypatch)
    out = _run(frames=3)  # FrameFold Video Sampler, 4 steps, tiny model
    updates = record["updates"]
    assert [(value, total) for value, total, _ in updates] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for _, _, preview in updates:
        kind, image, size = preview
        assert kind == "JPEG" and image.size == (out.shape[3], out.shape[2]) and size == 512
    assert len(record["previewer_devices"]) == 1  # one previewer per node run


def test_preview_method_none_sends_progress_without_previews(monkeypatch):
    record = install_comfy_progress(monkeypatch, preview_method="none")
    _run(frames=2)
    assert [u[:2] for u in record["updates"]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(preview is None for _, _, preview in record["updates"])


def test_latents_without_four_channels_get_no_core_preview(monkeypatch):
    record = install_comfy_progress(monkeypatch)
    import torch

    from framefold.nodes import _comfy

    with _comfy.host_progress():
        progress.report(1, 2, preview=torch.zeros(2, 16, 4, 4))
    assert record["updates"] == [(1, 2, None)] and record["previewer_devices"] == []


def test_host_websocket_gets_a_preview_per_step(server):  # noqa: F811
    """FrameFold's host: every step's latent preview arrives as a binary preview frame (ComfyUI's type 4)."""
    steps = 5

    def queue():
        server.queue_prompt(loop_prompt(steps=steps, value=7), client_id="c-prev")

    messages = asyncio.run(
        ws_collect(server, "c-prev", lambda m: any(x["type"] == "execution_success" for x in m), on_open=queue)
    )
    binaries = [m["binary"] for m in messages if m["type"] == "<binary>"]
    assert [m["data"]["value"] for m in messages if m["type"] == "progress"] == list(range(1, steps + 1))
    assert len(binaries) == steps
    for frame in binaries:
        kind, length = struct.unpack(">II", frame[:8])
        assert kind == 4 and json.loads(frame[8 : 8 + length])["image_type"] == "image/jpeg"
