"""ControlNet model and loader: real SD1.5 key coverage (manifest), diffusers equivalence, file formats, errors.

diffusers' ControlNetModel and UNet2DConditionModel are test-only oracles (fp32, random weights, <= 1e-4).
"""

import dataclasses
import json

import pytest
import torch
from fixture_paths import MANIFESTS

from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.controlnet import (
    PREFIX,
    build_controlnet,
    infer_controlnet_config,
    ldm_controlnet_to_diffusers_key,
    load_controlnet,
    save_controlnet,
)
from framefold.pipelines.loading.detect import WrongLoaderError
from framefold.pipelines.loading.files import write_safetensors
from framefold.pipelines.loading.state_dict import StateDictError
from framefold.pipelines.loading.unet import build_unet
from framefold.pipelines.models.controlnet import ControlNetConfig, ControlNetModel
from framefold.pipelines.models.unet import UNetConfig

TOL = 1e-4


def manifest():
    return json.loads((MANIFESTS / "controlnet_sd15.json").read_text())


def meta_state_dict(keys):
    return {k: torch.empty(shape, device="meta") for k, shape in keys.items()}


# --- real file layout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["control_model.", ""])
def test_sd15_manifest_loads_every_key_with_and_without_prefix(prefix):
    keys = {prefix + k[len(PREFIX) :]: v for k, v in manifest()["keys"].items()}
    assert len(keys) == 340
    net = build_controlnet(meta_state_dict(keys), dtype=None)
    ours = net.model.state_dict()
    assert {prefix + k for k in ours} == set(keys)
    for k, v in ours.items():
        assert list(v.shape) == list(keys[prefix + k]), k
    assert sum(v.numel() for v in ours.values()) == manifest()["param_count"]
    assert net.config == ControlNetConfig.sd15()


def test_sd15_diffusers_format_keys_load_and_map_one_to_one():
    m = manifest()
    diffusers_keys = m["diffusers_format_keys"]
    net = build_controlnet(meta_state_dict(diffusers_keys))
    assert net.config == ControlNetConfig.sd15()
    key_map = {ldm_controlnet_to_diffusers_key(k, net.config): k for k in net.model.state_dict()}
    assert set(key_map) == set(diffusers_keys)
    for diffusers_name, ours in key_map.items():
        assert list(diffusers_keys[diffusers_name]) == m["keys"][PREFIX + ours], diffusers_name


def test_diffusers_controlnet_model_names_match_our_map_at_sd15_config():
    from diffusers import ControlNetModel as Reference

    with torch.device("meta"):
        reference = Reference(cross_attention_dim=768, attention_head_dim=8).state_dict()
    assert set(reference) == set(manifest()["diffusers_format_keys"])


def test_missing_unexpected_and_misshaped_keys_are_listed():
    keys = dict(manifest()["keys"])
    keys.pop("control_model.zero_convs.3.0.weight")
    keys["control_model.extra.weight"] = [1]
    keys["control_model.middle_block_out.0.bias"] = [7]
    with pytest.raises(StateDictError) as info:
        build_controlnet(meta_state_dict(keys))
    text = str(info.value)
    assert "zero_convs.3.0.weight" in text and "extra.weight" in text and "middle_block_out.0.bias (7,)" in text


def test_difference_files_are_refused_clearly():
    keys = dict(manifest()["keys"], difference=[1])
    with pytest.raises(ValueError, match="difference"):
        build_controlnet(meta_state_dict(keys))


# --- numerical equivalence with diffusers ---------------------------------------------------------------------


def tiny_unet_config(**overrides):
    base = dict(
        model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
    )
    return UNetConfig(**{**base, "norm_groups": 16, **overrides})


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)


def diffusers_pair(config: UNetConfig, embedding=(16, 32, 48), seed=0):
    """(diffusers ControlNetModel, diffusers UNet2DConditionModel) with random weights for ``config``."""
    from diffusers import ControlNetModel as Reference
    from diffusers import UNet2DConditionModel

    levels = range(len(config.channel_mult))
    down = tuple("CrossAttnDownBlock2D" if lv in config.attention_levels else "DownBlock2D" for lv in levels)
    up = tuple("CrossAttnUpBlock2D" if lv in config.attention_levels else "UpBlock2D" for lv in reversed(levels))
    common = dict(
        in_channels=4,
        block_out_channels=tuple(config.model_channels * m for m in config.channel_mult),
        down_block_types=down,
        layers_per_block=config.num_res_blocks,
        cross_attention_dim=config.context_dim,
        attention_head_dim=config.num_heads,
        norm_num_groups=config.norm_groups,
    )
    controlnet = Reference(conditioning_embedding_out_channels=embedding, **common).eval()
    unet = UNet2DConditionModel(out_channels=4, up_block_types=up, sample_size=16, **common).eval()
    randomise(controlnet, seed)
    randomise(unet, seed + 1)
    return controlnet, unet


def inputs(n=3, size=16, downscale=8, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, size, size, generator=g)
    t = torch.tensor([10.0, 500.0, 980.0][:n])
    context = torch.randn(n, 7, 64, generator=g)
    hint = torch.rand(n, 3, size * downscale, size * downscale, generator=g)
    return x, t, context, hint


@pytest.mark.parametrize("embedding", [(16, 32, 96, 256), (16, 32, 48)])
def test_residuals_and_controlled_unet_match_diffusers(embedding):
    config = tiny_unet_config()
    ref_cn, ref_unet = diffusers_pair(config, embedding)
    cn_config = ControlNetConfig(config, 3, embedding)
    ours = build_controlnet(ref_cn.state_dict(), cn_config)
    unet = build_unet(ref_unet.state_dict(), config)
    x, t, c, hint = inputs(size=8, downscale=cn_config.downscale)
    with torch.no_grad():
        down, mid = ref_cn(
            x, t, encoder_hidden_states=c, controlnet_cond=hint, conditioning_scale=0.7, return_dict=False
        )
        got = ours.model(x, t, c, hint)
        got_down = [r * 0.7 for r in got["down"]]
        got_mid = got["mid"] * 0.7
        assert len(got_down) == len(down)
        for a, b in zip(down, got_down):
            assert (a - b).abs().max().item() <= TOL
        assert (mid - got_mid).abs().max().item() <= TOL
        expected = ref_unet(x, t, c, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        controlled = unet(x, t, c, control={"down": got_down, "mid": got_mid})
        plain = unet(x, t, c)
    assert (expected - controlled).abs().max().item() <= TOL
    assert (plain - controlled).abs().max().item() > 1e-3  # the residuals do act


def test_residuals_of_a_frame_depend_only_on_its_own_control_image():
    config = ControlNetConfig(tiny_unet_config(), 3, (16, 32, 48))
    torch.manual_seed(0)
    model = ControlNetModel(config).eval()
    randomise(model, 4)
    x, t, c, hint = inputs(n=3, size=8, downscale=4)
    changed = hint.clone()
    changed[1] = torch.rand(changed[1].shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a, b = model(x, t, c, hint), model(x, t, c, changed)
    for ra, rb in zip(a["down"] + [a["mid"]], b["down"] + [b["mid"]]):
        torch.testing.assert_close(ra[[0, 2]], rb[[0, 2]], rtol=0, atol=1e-6)
        assert (ra[1] - rb[1]).abs().max() > 1e-3


def test_fresh_controlnet_is_a_no_op_and_hint_size_is_checked():
    config = ControlNetConfig(tiny_unet_config(), 3, (16, 32, 48))
    model = ControlNetModel(config)
    x, t, c, hint = inputs(n=2, size=8, downscale=4)
    with torch.no_grad():
        out = model(x, t, c, hint)
    assert all(torch.count_nonzero(r) == 0 for r in out["down"] + [out["mid"]])
    with pytest.raises(ValueError, match="hint must be"):
        model(x, t, c, hint[:, :, :16, :16])


# --- files -----------------------------------------------------------------------------------------------------


def test_framefold_file_round_trips_and_diffusers_file_loads(tmp_path):
    config = ControlNetConfig(tiny_unet_config(), 3, (16, 32, 48))
    model = ControlNetModel(config)
    randomise(model, 5)
    path = save_controlnet(tmp_path / "cn.safetensors", model)
    loaded = load_controlnet(path)
    assert loaded.config == config and loaded.name == "cn"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    ref_cn, _ = diffusers_pair(tiny_unet_config())
    write_safetensors(tmp_path / "diffusers_cn.safetensors", ref_cn.state_dict())
    from_diffusers = load_controlnet(tmp_path / "diffusers_cn.safetensors")
    assert from_diffusers.config.embedding_channels == (16, 32, 48)
    assert from_diffusers.config.unet.channel_mult == (1, 2)


def test_config_inferred_from_prefixless_ldm_names():
    config = ControlNetConfig(tiny_unet_config(num_heads=8, norm_groups=32), 3, (16, 32, 48))
    with torch.device("meta"):
        sd = ControlNetModel(config).state_dict()
    assert infer_controlnet_config(sd) == dataclasses.replace(config)


def test_wrong_loader_errors_both_ways(tmp_path):
    from framefold.pipelines.loading.checkpoint import save_framefold_checkpoint  # noqa: F401

    config = ControlNetConfig(tiny_unet_config(), 3, (16, 32, 48))
    cn_path = save_controlnet(tmp_path / "cn.safetensors", ControlNetModel(config))
    with pytest.raises(WrongLoaderError, match="FrameFold Load ControlNet"):
        load_checkpoint(cn_path)
    from framefold.pipelines.models.unet import UNetModel

    unet_sd = {"model.diffusion_model." + k: v for k, v in UNetModel(tiny_unet_config()).state_dict().items()}
    ckpt = write_safetensors(tmp_path / "sd.safetensors", unet_sd)
    with pytest.raises(WrongLoaderError, match="FrameFold Load Checkpoint"):
        load_controlnet(ckpt)
