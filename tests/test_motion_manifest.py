"""The released AnimateDiff motion modules' key/shape manifests load 1:1 (meta device), versions detected."""

import json
from pathlib import Path

import pytest
import torch
from fixture_paths import MANIFESTS

from framefold.pipelines.loading.motion import build_motion_module
from framefold.pipelines.loading.motion_keys import detect_motion_module_version, original_to_diffusers
from framefold.pipelines.loading.state_dict import StateDictError
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
from framefold.pipelines.models.unet import UNetConfig, UNetModel

RELEASES = {
    "animatediff_mm_sd_v15.json": ("v1", 24, False, 560),
    "animatediff_mm_sd_v15_v2.json": ("v2", 32, True, 588),
    "animatediff_v3_sd15_mm.json": ("v3", 32, False, 560),
}


def meta_state_dict(name):
    """The manifest's keys as meta tensors of the listed shapes, and the manifest itself."""
    manifest = json.loads((MANIFESTS / name).read_text())
    return {k: torch.empty(s, device="meta") for k, s in manifest["keys"].items()}, manifest


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_manifest_loads_every_key_with_same_shape(name):
    version, pe_length, mid, count = RELEASES[name]
    sd, manifest = meta_state_dict(name)
    assert len(sd) == count
    mm = build_motion_module(sd)
    ours = mm.state_dict()
    assert set(ours) == set(sd)
    for k, v in ours.items():
        assert tuple(v.shape) == tuple(sd[k].shape), k
    assert sum(v.numel() for v in ours.values()) == manifest["param_count"]
    assert mm.config == MotionModuleConfig.for_version(version)
    assert mm.config.pe_length == pe_length and mm.config.mid_block == mid
    assert mm.max_frames == pe_length
    assert mm.config.unet_joint_groupnorm == (version == "v1")


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_version_detection(name):
    sd, _ = meta_state_dict(name)
    assert detect_motion_module_version(sd) == RELEASES[name][0]
    assert detect_motion_module_version({"state_dict": sd}) == RELEASES[name][0]


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_diffusers_motion_adapter_naming_maps_onto_the_same_module(name):
    from diffusers import MotionAdapter

    version, pe_length, mid, _ = RELEASES[name]
    sd, _ = meta_state_dict(name)
    with torch.device("meta"):
        adapter = MotionAdapter(motion_max_seq_length=pe_length, use_motion_mid_block=mid).state_dict()
    renamed = original_to_diffusers(sd)
    assert set(renamed) == set(adapter)
    for k, v in renamed.items():
        assert tuple(v.shape) == tuple(adapter[k].shape), k
    # and the diffusers names load back into the released layout
    adapter_meta = {k: torch.empty(v.shape, device="meta") for k, v in adapter.items()}
    mm = build_motion_module(adapter_meta)
    assert mm.config.version == version
    assert set(mm.state_dict()) == set(sd)


def test_released_modules_attach_to_the_sd15_unet_at_every_level():
    sd, _ = meta_state_dict("animatediff_mm_sd_v15_v2.json")
    mm = build_motion_module(sd)
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.sd15())
    slots = mm.slots(unet.config)
    assert sorted(k for k in slots if k[0] == "input") == [("input", n) for n in (1, 2, 4, 5, 7, 8, 10, 11)]
    assert sorted(k for k in slots if k[0] == "output") == [("output", n) for n in range(12)]
    assert ("middle", 0) in slots
    # the channels of each slot equal the UNet block's output channels
    for (where, n), module in slots.items():
        channels = module.temporal_transformer.norm.num_channels
        if where == "input":
            assert unet.input_blocks[n][0].out_channels == channels
        elif where == "output":
            assert unet.output_blocks[n][0].out_channels == channels
        else:
            assert unet.middle_block[0].out_channels == channels


def test_missing_and_unexpected_motion_keys_are_listed():
    sd, _ = meta_state_dict("animatediff_v3_sd15_mm.json")
    missing = "up_blocks.3.motion_modules.2.temporal_transformer.proj_out.bias"
    del sd[missing]
    extra = "up_blocks.3.motion_modules.2.temporal_transformer.extra.weight"
    sd[extra] = torch.empty(4, device="meta")
    with pytest.raises(StateDictError) as info:
        build_motion_module(sd)
    assert info.value.missing == [missing]
    assert info.value.unexpected == [extra]


def test_module_that_does_not_fit_the_unet_is_refused():
    mm = MotionModule(MotionModuleConfig(block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4))
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.sd15())
    with pytest.raises(ValueError, match="does not fit"):
        unet.with_motion(mm)


def test_non_motion_state_dict_is_refused():
    with pytest.raises(ValueError, match="motion_modules"):
        build_motion_module({"conv_in.weight": torch.zeros(1)})
