"""Upscale nodes and the shipped tiny upscalers: loading, node errors, and real numbers (they beat Lanczos)."""

import pytest
import torch
import torch.nn.functional as F
from test_sampling_tinymodel import tiny_cond, tiny_model

from framefold.nodes import NODE_CLASS_MAPPINGS
from framefold.nodes._errors import NodeInputError
from framefold.nodes._folders import list_models
from framefold.pipelines import upscale as upscale_pipeline
from framefold.pipelines.loading.files import write_safetensors
from framefold.pipelines.loading.upscale import build_from_state_dict
from framefold.pipelines.metrics.quality import psnr
from framefold.pipelines.models.upscalers import build_upscaler
from framefold.pipelines.synthetic import random_scene, render_scene
from framefold.pipelines.upscale import resize_video_by

SHIPPED = ("framefold-tiny-rrdb-x2.safetensors", "framefold-tiny-compact-x2.safetensors")


def node(name):
    """An instance of a registered node class."""
    return NODE_CLASS_MAPPINGS[name]()


def held_out_clip(seed=9000):
    """(ground truth [8,128,128,3], 64 px input) of a procedural clip the models were not trained on."""
    gt = torch.from_numpy(render_scene(random_scene(seed, size=128, frames=8)))
    return gt, F.avg_pool2d(gt.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1).contiguous()


def test_the_shipped_upscalers_are_listed_and_small():
    """Both tiny models are in the embedded upscale_models folder, under 1 MB each."""
    from framefold.nodes._folders import EMBEDDED_DIR

    names = list_models("upscale_models")
    for name in SHIPPED:
        assert name in names
        assert (EMBEDDED_DIR / "upscale_models" / name).stat().st_size < 1_000_000


def upscaled_psnr(model, lr, gt):
    """PSNR of the Upscale Video (model) node's output against the ground truth."""
    (out,) = node("FrameFoldUpscaleVideoModel").upscale(lr, model, 0.0, 0, 16)
    assert out.shape == gt.shape
    return psnr(out, gt)


def test_shipped_compact_upscaler_beats_nearest_upsampling():
    """Trained in-project on procedural frames, the compact model reconstructs held-out 128 px ground truth
    clearly better than nearest-neighbour upsampling, its own base (Lanczos / bicubic figures: bench/upscale.py)."""
    (model,) = node("FrameFoldLoadUpscaleModel").load(SHIPPED[1])
    assert (model.scale, model.architecture) == (2, "SRVGGNetCompact")
    gt, lr = held_out_clip()
    assert upscaled_psnr(model, lr, gt) > psnr(resize_video_by(lr, 2.0, "nearest"), gt) + 1.0


def test_shipped_rrdb_upscaler_learned_from_its_training():
    """The tiny RRDBNet (1500 steps; undertrained: below nearest upsampling, see the bench) is far better than the
    same net untrained, so the weights, the x2 pixel-unshuffle path and the loader work on real numbers."""
    (model,) = node("FrameFoldLoadUpscaleModel").load(SHIPPED[0])
    assert (model.scale, model.architecture) == (2, "RRDBNet")
    gt, lr = held_out_clip()
    torch.manual_seed(0)
    untrained = build_from_state_dict(build_upscaler(model.net.config).state_dict(), "untrained")
    assert upscaled_psnr(model, lr, gt) > max(27.0, upscaled_psnr(untrained, lr, gt) + 10.0)


def test_load_node_errors_name_the_input(tmp_path, monkeypatch):
    """An unknown name, and a VAE file in the upscale_models folder, are NodeInputErrors on model_name."""
    loader = node("FrameFoldLoadUpscaleModel")
    with pytest.raises(NodeInputError, match="model_name"):
        loader.load("missing.safetensors")
    folder = tmp_path / "upscale_models"
    write_safetensors(folder / "vae.safetensors", {"decoder.up.0.block.0.conv1.weight": torch.zeros(1)})
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path))
    with pytest.raises(NodeInputError, match="model_name.*standalone VAE, not an upscale model"):
        loader.load("vae.safetensors")


def test_model_upscale_node_errors():
    """A scale above the model's (scale mismatch), a non-RGB input, and a tile over the memory pre-flight."""
    (model,) = node("FrameFoldLoadUpscaleModel").load(SHIPPED[1])
    upscaler = node("FrameFoldUpscaleVideoModel")
    frames = torch.rand(2, 16, 16, 3)
    with pytest.raises(NodeInputError, match="scale_by.*scale mismatch.*2x model"):
        upscaler.upscale(frames, model, 4.0, 0, 16)
    with pytest.raises(NodeInputError, match="images.*RGB IMAGE"):
        upscaler.upscale(torch.rand(2, 16, 16, 4), model, 0.0, 0, 16)
    assert upscaler.upscale(frames, model, 1.5, 0, 4)[0].shape == (2, 24, 24, 3)


def test_model_upscale_node_reports_the_memory_preflight(monkeypatch):
    """With almost no free memory an explicit tile is refused by the pre-flight, naming tile_size."""
    (model,) = node("FrameFoldLoadUpscaleModel").load(SHIPPED[1])
    monkeypatch.setattr(upscale_pipeline, "available_bytes", lambda device: 10_000)
    with pytest.raises(NodeInputError, match="tile_size.*MiB of activations"):
        node("FrameFoldUpscaleVideoModel").upscale(torch.rand(1, 64, 64, 3), model, 0.0, 64, 16)


def test_resize_node_sizes():
    """By scale, by width with the aspect kept, and the method check."""
    resize = node("FrameFoldUpscaleVideoResize")
    frames = torch.rand(3, 20, 30, 3)
    assert resize.resize(frames, "lanczos", 2.0, 0, 0)[0].shape == (3, 40, 60, 3)
    assert resize.resize(frames, "area", 1.0, 15, 0)[0].shape == (3, 10, 15, 3)
    with pytest.raises(NodeInputError, match="method"):
        resize.resize(frames, "sinc", 2.0, 0, 0)


def test_latent_redenoise_node():
    """2x latent out; a bad latent socket is a NodeInputError."""
    redenoise = node("FrameFoldLatentUpscaleRedenoise")
    model, pos, neg = tiny_model(), tiny_cond(1), tiny_cond(2)
    latent = {"samples": torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))}
    (out,) = redenoise.redenoise(model, pos, neg, latent, 2.0, "bicubic", 0.5, 1, 3, 3.0, "ddim", "leading", 0, 8)
    assert out["samples"].shape == (4, 4, 16, 16)
    with pytest.raises(NodeInputError, match="latent"):
        redenoise.redenoise(model, pos, neg, {"x": 1}, 2.0)
