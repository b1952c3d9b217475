"""The SD1.5 UNet part of a real checkpoint's key/shape manifest loads 1:1 into our UNet (meta device)."""

import json
from pathlib import Path

import pytest
import torch
from fixture_paths import MANIFESTS

from framefold.pipelines.loading.state_dict import StateDictError
from framefold.pipelines.loading.unet import build_unet, infer_unet_config
from framefold.pipelines.loading.unet_keys import LDM_PREFIX, diffusers_key_map
from framefold.pipelines.models.unet import UNetConfig, UNetModel


def manifest_unet_meta_state_dict():
    """The manifest's ``model.diffusion_model.`` keys as meta tensors of the listed shapes."""
    manifest = json.loads((MANIFESTS / "sd15_checkpoint.json").read_text())
    return {k: torch.empty(shape, device="meta") for k, shape in manifest["keys"].items() if k.startswith(LDM_PREFIX)}


def test_sd15_manifest_loads_every_key_with_same_shape_and_nothing_left_over():
    sd = manifest_unet_meta_state_dict()
    assert len(sd) == 686
    unet = build_unet(sd)  # prefix stripped, config inferred, weights assigned (meta: no memory)
    ours = unet.state_dict()
    stripped = {k[len(LDM_PREFIX) :]: v for k, v in sd.items()}
    assert set(ours) == set(stripped)
    for k, v in ours.items():
        assert tuple(v.shape) == tuple(stripped[k].shape), k
    assert sum(v.numel() for v in ours.values()) == 859_520_964


def test_sd15_config_is_inferred_from_shapes():
    config = infer_unet_config(manifest_unet_meta_state_dict())
    assert config == UNetConfig.sd15()


def test_sd2_style_config_round_trips_through_inference():
    config = UNetConfig.sd2()
    with torch.device("meta"):
        sd = UNetModel(config).state_dict()
    assert infer_unet_config(sd) == config


def test_diffusers_map_matches_diffusers_unet_names_and_shapes_at_sd15_config():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        reference = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8, sample_size=64).state_dict()
    key_map = diffusers_key_map(UNetConfig.sd15())
    assert set(key_map) == set(reference)
    stripped = {k[len(LDM_PREFIX) :]: v for k, v in manifest_unet_meta_state_dict().items()}
    for diffusers_name, ours in key_map.items():
        assert tuple(reference[diffusers_name].shape) == tuple(stripped[ours].shape), diffusers_name


def test_missing_and_unexpected_keys_are_listed_in_the_error():
    sd = manifest_unet_meta_state_dict()
    del sd[LDM_PREFIX + "middle_block.1.proj_in.bias"]
    sd[LDM_PREFIX + "middle_block.1.bogus.weight"] = torch.empty(3, device="meta")
    with pytest.raises(StateDictError) as info:
        build_unet(sd, UNetConfig.sd15())
    message = str(info.value)
    assert "middle_block.1.proj_in.bias" in message
    assert "middle_block.1.bogus.weight" in message
    assert info.value.missing == [LDM_PREFIX + "middle_block.1.proj_in.bias"]  # full keys, as in the file
    assert info.value.unexpected == [LDM_PREFIX + "middle_block.1.bogus.weight"]


def test_shape_mismatch_is_an_error():
    sd = manifest_unet_meta_state_dict()
    sd[LDM_PREFIX + "out.2.weight"] = torch.empty(8, 320, 3, 3, device="meta")
    with pytest.raises(StateDictError, match=r"model\.diffusion_model\.out\.2\.weight \(8, 320, 3, 3\) vs"):
        build_unet(sd, UNetConfig.sd15())


def test_attention_resolutions_form_gives_the_same_config():
    assert UNetConfig.from_attention_resolutions((4, 2, 1)) == UNetConfig.sd15()
    assert UNetConfig.from_attention_resolutions((4, 2), channel_mult=(1, 2, 4)).attention_levels == (1, 2)


def test_config_needs_exactly_one_head_setting():
    with pytest.raises(ValueError, match="exactly one"):
        UNetConfig(num_heads=8, num_head_channels=64)
