"""Load / Apply Motion Module nodes."""

import pytest
import torch

from framefold.nodes._errors import NodeInputError
from framefold.nodes.motion import NODE_CLASS_MAPPINGS, FrameFoldApplyMotionModule, FrameFoldLoadMotionModule
from framefold.pipelines.loading.motion import save_motion_module
from framefold.pipelines.models.bundle import DiffusionModel
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
from framefold.pipelines.models.unet import AnimatedUNet, UNetConfig, UNetModel

CONFIG = UNetConfig(
    model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
)
MM_CONFIG = MotionModuleConfig(block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4)


def test_every_input_has_a_tooltip():
    for cls in NODE_CLASS_MAPPINGS.values():
        for section in cls.INPUT_TYPES().values():
            for name, spec in section.items():
                assert spec[1].get("tooltip"), (cls.__name__, name)


def test_load_lists_and_reads_a_motion_module_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path))
    mm = MotionModule(MM_CONFIG)
    save_motion_module(tmp_path / "animatediff_models" / "tiny.safetensors", mm)
    assert "tiny.safetensors" in FrameFoldLoadMotionModule.INPUT_TYPES()["required"]["model_name"][0]
    (loaded,) = FrameFoldLoadMotionModule().load("tiny.safetensors")
    assert loaded.config == MM_CONFIG
    with pytest.raises(NodeInputError, match="model_name"):
        FrameFoldLoadMotionModule().load("missing.safetensors")


def test_load_refuses_a_file_that_is_not_a_motion_module(tmp_path, monkeypatch):
    from framefold.pipelines.loading.files import write_safetensors

    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path))
    write_safetensors(tmp_path / "animatediff_models" / "bad.safetensors", {"conv.weight": torch.zeros(2)})
    with pytest.raises(NodeInputError, match="expected an AnimateDiff motion module"):
        FrameFoldLoadMotionModule().load("bad.safetensors")


def test_apply_attaches_sets_window_and_scale_and_can_replace():
    unet = UNetModel(CONFIG)
    model = DiffusionModel(unet=unet, frame_window=99)
    (animated,) = FrameFoldApplyMotionModule().apply(model, MotionModule(MM_CONFIG), 0.7)
    assert isinstance(animated.unet, AnimatedUNet) and animated.unet.unet is unet
    assert animated.frame_window == 16 and animated.motion_scale == 0.7
    assert model.unet is unet  # the input bundle is unchanged
    other = MotionModule(MM_CONFIG.with_options(pe_length=8))
    (again,) = FrameFoldApplyMotionModule().apply(animated, other, 1.0)
    assert again.unet.unet is unet and again.unet.motion is other and again.frame_window == 8
    x = torch.randn(4, 4, 8, 8)
    with torch.no_grad():
        out = again(x, torch.full((4,), 10), torch.randn(1, 7, 64), num_frames=4)
    assert out.shape == x.shape


def test_apply_refuses_a_module_that_does_not_fit():
    model = DiffusionModel(unet=UNetModel(CONFIG))
    wrong = MotionModule(MM_CONFIG.with_options(block_channels=(64, 128)))
    with pytest.raises(NodeInputError, match="motion_module"):
        FrameFoldApplyMotionModule().apply(model, wrong, 1.0)
    with pytest.raises(NodeInputError, match="model"):
        FrameFoldApplyMotionModule().apply("not a model", MotionModule(MM_CONFIG), 1.0)
