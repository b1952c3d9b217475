"""Upscaler nets and their loader: exact key coverage of the released formats, scale from the weights, wrappers,
clear errors for wrong files and scale mismatches, and the optional spandrel branch (with a fake module)."""

import json
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fixture_paths import MANIFESTS

from framefold.pipelines.loading import detect
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.files import write_safetensors
from framefold.pipelines.loading.upscale import (
    UpscaleKeyError,
    UpscaleScaleError,
    build_from_state_dict,
    config_from_state_dict,
    load_upscale_model,
    upscale_model_from_state_dict,
)
from framefold.pipelines.models.upscalers import (
    RRDBNet,
    RRDBNetConfig,
    SRVGGNetCompact,
    SRVGGNetCompactConfig,
    UpscalerConfigError,
    module_shapes,
)


def manifest(name):
    """A manifest JSON from the shared fixtures (a missing file is an error, never a skip)."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def meta_state_dict(keys):
    """Meta-device tensors of the manifest's shapes (no memory)."""
    return {k: torch.empty(shape, device="meta") for k, shape in keys.items()}


def random_net(config, seed=0):
    """A net of ``config`` with seeded random weights (small, so outputs stay in range)."""
    torch.manual_seed(seed)
    net = RRDBNet(config) if isinstance(config, RRDBNetConfig) else SRVGGNetCompact(config)
    return net.eval()


@pytest.mark.parametrize(
    "name, cls, config_cls",
    [("realesrgan_x4plus", RRDBNet, RRDBNetConfig), ("realesr_general_x4v3", SRVGGNetCompact, SRVGGNetCompactConfig)],
)
def test_nets_cover_the_released_keys_exactly(name, cls, config_cls):
    """The net at the released config has exactly the manifest's keys and shapes; the config and scale are read
    back from the keys alone, and the loader accepts them."""
    m = manifest(name)
    with torch.device("meta"):
        net = cls(config_cls(**m["config"]))
    shapes = module_shapes(net)
    assert shapes == {k: tuple(v) for k, v in m["keys"].items()}
    assert sum(p.numel() for p in net.parameters()) == m["param_count"]
    sd = meta_state_dict(m["keys"])
    assert detect.detect_format(sd) == detect.UPSCALER
    assert config_from_state_dict(sd) == config_cls(**m["config"])
    model = build_from_state_dict(sd, name)
    assert model.scale == 4 and model.architecture == cls.__name__


@pytest.mark.parametrize("name", ["realesrgan_x4plus", "realesr_general_x4v3"])
def test_missing_extra_and_misshaped_keys_are_named(name):
    """Exact coverage: a missing key, an extra key and a wrong shape each appear in the error."""
    keys = dict(manifest(name)["keys"])
    dropped = sorted(keys)[3]
    del keys[dropped]
    bad = next(k for k in sorted(keys) if k.endswith(".bias") and k != dropped)
    keys[bad] = [keys[bad][0] + 1]
    sd = meta_state_dict(keys)
    sd["extra.weight"] = torch.empty(1, device="meta")
    with pytest.raises(UpscaleKeyError) as info:
        build_from_state_dict(sd, name)
    text = str(info.value)
    assert dropped in text and "extra.weight" in text and bad in text


@pytest.mark.parametrize(
    "config",
    [
        RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=4),
        RRDBNetConfig(num_feat=8, num_block=2, num_grow_ch=4, scale=2),
        RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=1),
        SRVGGNetCompactConfig(num_feat=8, num_conv=2, upscale=2),
        SRVGGNetCompactConfig(num_feat=8, num_conv=3, upscale=3),
        SRVGGNetCompactConfig(num_feat=8, num_conv=1, upscale=4),
    ],
    ids=lambda c: f"{type(c).__name__}-x{c.scale}",
)
def test_scale_and_config_are_read_from_the_weights(config):
    """Every scale variant round-trips: config from the state dict, output size H*scale."""
    net = random_net(config)
    assert config_from_state_dict(net.state_dict()) == config
    model = build_from_state_dict(net.state_dict(), "x")
    x = torch.rand(1, 3, 12, 16)
    assert model(x).shape == (1, 3, 12 * config.scale, 16 * config.scale)


def test_compact_net_is_nearest_upsampling_plus_a_learned_residual():
    """With its last conv zeroed, SRVGGNetCompact is exactly nearest-neighbour upsampling (the added base)."""
    net = random_net(SRVGGNetCompactConfig(num_feat=8, num_conv=2, upscale=3))
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    x = torch.rand(2, 3, 5, 7)
    assert torch.equal(net(x), F.interpolate(x, scale_factor=3.0, mode="nearest"))


def test_rrdb_x2_pixel_unshuffles_its_input():
    """An x2 RRDBNet's first conv sees the 2x2 pixel-unshuffled input (12 channels), as basicsr's x2 files do."""
    net = random_net(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=2))
    assert net.conv_first.weight.shape[1] == 12
    seen = {}
    net.conv_first.register_forward_hook(lambda mod, inp, out: seen.update(shape=tuple(inp[0].shape)))
    net(torch.rand(1, 3, 8, 10))
    assert seen["shape"] == (1, 12, 4, 5)


@pytest.mark.parametrize("wrapper, config", [("params_ema", RRDBNetConfig(8, 8, 8, 1, 4, 4)), ("params", None)])
def test_released_pickle_wrappers_load_and_give_the_same_output(tmp_path, wrapper, config):
    """A .pth with the release's top-level wrapper (params_ema for x4plus, params for general-x4v3) loads
    weights-only and reproduces the original net's output."""
    config = config or SRVGGNetCompactConfig(num_feat=8, num_conv=2, upscale=4)
    config = RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=4) if wrapper == "params_ema" else config
    net = random_net(config, seed=3)
    path = tmp_path / "model.pth"
    torch.save({wrapper: net.state_dict()}, path)
    model = load_upscale_model(path)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(model(x), net(x))
    assert model.name == "model.pth" and model.scale == 4


def test_scale_mismatch_is_a_clear_error(tmp_path):
    """Asking for 4x from a 2x file names both scales."""
    path = tmp_path / "tiny-x2.safetensors"
    write_safetensors(path, random_net(SRVGGNetCompactConfig(num_feat=8, num_conv=1, upscale=2)).state_dict())
    assert load_upscale_model(path, expected_scale=2).scale == 2
    with pytest.raises(UpscaleScaleError, match=r"2x SRVGGNetCompact model .* not 4x"):
        load_upscale_model(path, expected_scale=4)


def test_inconsistent_compact_output_width_is_refused():
    """A last conv whose width is not 3 * scale^2 is not a compact upscaler."""
    sd = random_net(SRVGGNetCompactConfig(num_feat=8, num_conv=1, upscale=2)).state_dict()
    sd["body.4.weight"] = torch.zeros(10, 8, 3, 3)
    sd["body.4.bias"] = torch.zeros(10)
    with pytest.raises(UpscalerConfigError, match="3 \\* scale\\^2"):
        config_from_state_dict(sd)


def test_wrong_file_for_the_upscale_loader(tmp_path):
    """A VAE given to the upscale loader: the error says what the file is; an unknown file mentions spandrel."""
    vae_like = {
        "encoder.down.0.block.0.conv1.weight": torch.zeros(1),
        "decoder.up.0.block.0.conv1.weight": torch.zeros(1),
    }
    path = tmp_path / "vae.safetensors"
    write_safetensors(path, vae_like)
    with pytest.raises(detect.WrongLoaderError, match="standalone VAE, not an upscale model"):
        load_upscale_model(path)
    unknown = tmp_path / "other.safetensors"
    write_safetensors(unknown, {"foo.weight": torch.zeros(2)})
    with pytest.raises(detect.WrongLoaderError, match="spandrel package.*is not installed"):
        load_upscale_model(unknown)


def test_upscaler_file_in_the_checkpoint_loader_names_the_upscale_loader(tmp_path):
    """The reverse: an ESRGAN file given to Load Checkpoint says to use FrameFold Load Upscale Model."""
    path = tmp_path / "RealESRGAN_x2.safetensors"
    write_safetensors(path, random_net(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=2)).state_dict())
    with pytest.raises(detect.WrongLoaderError, match="ESRGAN-family upscale model.*FrameFold Load Upscale Model"):
        load_checkpoint(path)


class FakeDescriptor:
    """What spandrel's ModelLoader returns for an image model (the attributes FrameFold reads)."""

    def __init__(self, model, scale):
        self.model = model
        self.scale = scale
        self.architecture = types.SimpleNamespace(name="FakeSwin")
        self.size_requirements = types.SimpleNamespace(multiple_of=4)
        self.input_channels = self.output_channels = 3


@pytest.fixture
def fake_spandrel(monkeypatch):
    """A stand-in ``spandrel`` module: loads {'swin.scale': [s]} files as a bicubic s-x upscaler."""

    class Bicubic(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return F.interpolate(x, scale_factor=float(self.scale), mode="bicubic")

    class ModelLoader:
        def load_from_state_dict(self, state_dict):
            if "swin.scale" not in state_dict:
                raise KeyError("unsupported model")
            return FakeDescriptor(Bicubic(int(state_dict["swin.scale"][0])), int(state_dict["swin.scale"][0]))

    module = types.ModuleType("spandrel")
    module.ModelLoader = ModelLoader
    monkeypatch.setitem(sys.modules, "spandrel", module)
    return module


def test_spandrel_branch_accepts_architectures_it_knows(tmp_path, fake_spandrel):
    """With spandrel importable, an architecture FrameFold does not know loads through it (scale, name, size
    multiple taken from the descriptor); one spandrel does not know either is a clear error."""
    path = tmp_path / "swin.safetensors"
    write_safetensors(path, {"swin.scale": torch.tensor([3])})
    model = load_upscale_model(path)
    assert (model.scale, model.architecture, model.size_multiple) == (3, "FakeSwin", 4)
    assert model(torch.rand(1, 3, 4, 4)).shape == (1, 3, 12, 12)
    with pytest.raises(detect.WrongLoaderError, match="spandrel does not recognise it"):
        upscale_model_from_state_dict({"foo.weight": torch.zeros(1)}, name="foo.pth")


def test_own_architectures_do_not_go_through_spandrel(fake_spandrel):
    """RRDBNet / SRVGGNetCompact files use FrameFold's nets even when spandrel is there."""
    sd = random_net(SRVGGNetCompactConfig(num_feat=8, num_conv=1, upscale=2)).state_dict()
    assert upscale_model_from_state_dict(sd).architecture == "SRVGGNetCompact"
