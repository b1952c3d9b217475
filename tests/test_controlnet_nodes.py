"""ControlNet nodes and preprocessors: node API shape, loading, applying (keyframes, masks, stacking), errors,
and what each OpenCV preprocessor draws."""

import numpy as np
import pytest
import torch

from framefold.nodes import _folders
from framefold.nodes._errors import NodeInputError
from framefold.nodes.control import NODE_CLASS_MAPPINGS as CONTROL_NODES
from framefold.nodes.control import FrameFoldApplyControlNet, FrameFoldLoadControlNet
from framefold.nodes.preprocess import NODE_CLASS_MAPPINGS as PREPROCESS_NODES
from framefold.pipelines.control import preprocess
from framefold.pipelines.loading.controlnet import save_controlnet
from framefold.pipelines.models.bundle import Conditioning
from framefold.pipelines.models.controlnet import ControlNet, ControlNetConfig, ControlNetModel
from framefold.pipelines.models.unet import UNetConfig

UNET = UNetConfig(
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_levels=(1,),
    num_heads=2,
    context_dim=8,
    norm_groups=8,
)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path / "models"))
    yield tmp_path


def square_video(frames=4, size=32, step=2):
    """A white square moving right on black, IMAGE [F,H,W,3]."""
    video = torch.zeros(frames, size, size, 3)
    for i in range(frames):
        video[i, 10:20, 4 + i * step : 14 + i * step] = 1.0
    return video


def test_every_input_has_a_tooltip_and_names_are_prefixed():
    for name, cls in {**CONTROL_NODES, **PREPROCESS_NODES}.items():
        assert name.startswith("FrameFold") and cls.CATEGORY.startswith("FrameFold/")
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (_kind, *opts) in spec.get(section, {}).items():
                assert opts and opts[0].get("tooltip"), f"{name}.{input_name} has no tooltip"
        assert callable(getattr(cls, cls.FUNCTION))


def test_default_controlnet_is_listed_first_and_loads(folders):
    extra = folders / "models" / "controlnet"
    extra.mkdir(parents=True)
    save_controlnet(extra / "aaa_user.safetensors", ControlNetModel(ControlNetConfig(UNET, 3, (8, 8))))
    names = FrameFoldLoadControlNet.INPUT_TYPES()["required"]["controlnet_name"][0]
    assert names[0] == "framefold-tiny-controlnet.safetensors" and "aaa_user.safetensors" in names
    (net,) = FrameFoldLoadControlNet().load(names[0])
    assert isinstance(net, ControlNet) and net.config.downscale == 4
    (user,) = FrameFoldLoadControlNet().load("aaa_user.safetensors")
    assert user.config.unet == UNET


def test_load_controlnet_refuses_a_checkpoint_and_a_missing_file(folders):
    with pytest.raises(NodeInputError, match="controlnet_name.*not found"):
        FrameFoldLoadControlNet().load("nope.safetensors")
    ckpt_dir = folders / "models" / "controlnet"
    ckpt_dir.mkdir(parents=True)
    import shutil

    shutil.copy(_folders.EMBEDDED_DIR / "checkpoints" / "framefold-tiny.safetensors", ckpt_dir / "ckpt.safetensors")
    with pytest.raises(NodeInputError, match="FrameFold Load Checkpoint"):
        FrameFoldLoadControlNet().load("ckpt.safetensors")


def test_apply_attaches_one_stackable_application_to_both_prompts():
    net = ControlNet(ControlNetModel(ControlNetConfig(UNET, 3, (8, 8))), "n")
    pos, neg = Conditioning(torch.zeros(1, 5, 8)), Conditioning(torch.ones(1, 5, 8))
    node = FrameFoldApplyControlNet()
    p1, n1 = node.apply(pos, neg, net, square_video(2), 0.8, 0.1, 0.9, "pad", "0, 15")
    p2, n2 = node.apply(p1, n1, net, square_video(16), 0.5, 0.0, 1.0, mask=torch.ones(32, 32))
    assert len(p2.control) == 2 and n2.control == p2.control
    first = p2.control[0]
    assert (first.frame_indices, first.strength, first.start_percent, first.end_percent, first.resize) == (
        (0, 15),
        0.8,
        0.1,
        0.9,
        "pad",
    )
    assert p2.control[1].mask.shape == (1, 32, 32) and torch.equal(p2.embeds, pos.embeds)


@pytest.mark.parametrize(
    "kwargs, bad_input",
    [
        (dict(frame_indices="0, x"), "frame_indices"),
        (dict(frame_indices="0"), "frame_indices"),  # 2 images, 1 index
        (dict(start_percent=0.6, end_percent=0.4), "end_percent"),
        (dict(mask=torch.ones(3, 8, 8)), "mask"),
        (dict(images=torch.ones(2, 8, 8)), "images"),
        (dict(controlnet="not a controlnet"), "controlnet"),
    ],
)
def test_apply_errors_name_the_input(kwargs, bad_input):
    net = ControlNet(ControlNetModel(ControlNetConfig(UNET, 3, (8, 8))), "n")
    args = dict(
        positive=Conditioning(torch.zeros(1, 5, 8)),
        negative=Conditioning(torch.zeros(1, 5, 8)),
        controlnet=net,
        images=square_video(2),
        strength=1.0,
        start_percent=0.0,
        end_percent=1.0,
    )
    args.update(kwargs)
    with pytest.raises(NodeInputError, match=f"FrameFoldApplyControlNet: input '{bad_input}'"):
        FrameFoldApplyControlNet().apply(**args)


# --- preprocessors -------------------------------------------------------------------------------------------


def test_canny_marks_the_square_outline_only():
    (edges,) = PREPROCESS_NODES["FrameFoldCanny"]().run(square_video(1), low=50, high=150)
    e = edges[0, ..., 0]
    assert edges.shape == (1, 32, 32, 3) and set(e.unique().tolist()) <= {0.0, 1.0}
    assert e[10:20, 4].max() == 1 or e[10:20, 3].max() == 1  # left side of the square
    assert e[13:17, 7:11].max() == 0 and e[25:, :].max() == 0  # inside and far away: nothing


def test_soft_edges_are_normalised_over_the_video_and_zero_on_flat_regions():
    for method in preprocess.EDGE_METHODS:
        (soft,) = PREPROCESS_NODES["FrameFoldSoftEdges"]().run(square_video(3), method=method, blur=0.0)
        assert soft.max() == 1.0 and soft[:, 25:, :].max() == 0 and soft[0, 10:20, 3:6].max() > 0.5


def test_scribble_draws_thin_lines_on_the_outline():
    (lines,) = PREPROCESS_NODES["FrameFoldScribble"]().run(square_video(1), threshold=0.3, line_width=1)
    on = lines[0, ..., 0] > 0
    assert 0 < on.sum() < 80 and not on[13:17, 7:11].any()


def test_lineart_marks_dark_lines_on_light_paper():
    paper = torch.ones(1, 32, 32, 3)
    paper[0, 16, 4:28] = 0.0  # a dark horizontal line
    (art,) = PREPROCESS_NODES["FrameFoldLineart"]().run(paper, block_size=11, offset=4.0)
    assert art[0, 16, 8:24, 0].min() == 1.0 and art[0, 4, :, 0].max() == 0.0
    with pytest.raises(NodeInputError, match="block_size"):
        PREPROCESS_NODES["FrameFoldLineart"]().run(paper, block_size=10, offset=4.0)


def test_tile_keeps_colour_and_removes_detail():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(2, 32, 32, 3, generator=g)
    (tiled,) = PREPROCESS_NODES["FrameFoldTile"]().run(noise, downscale=8.0, blur=0.0)
    assert tiled.shape == noise.shape
    assert abs(tiled.mean() - noise.mean()) < 0.02 and tiled.std() < noise.std() / 2


def test_inpaint_mask_sets_masked_pixels_to_minus_one():
    mask = torch.zeros(1, 32, 32)
    mask[:, :16] = 1
    (out,) = PREPROCESS_NODES["FrameFoldInpaintMask"]().run(square_video(2), mask)
    assert (out[:, :16] == -1).all() and torch.equal(out[:, 16:], square_video(2)[:, 16:])
    with pytest.raises(NodeInputError, match="'mask'"):
        PREPROCESS_NODES["FrameFoldInpaintMask"]().run(square_video(2), torch.zeros(3, 32, 32))


def test_flow_magnitude_sees_motion_and_not_stillness():
    (moving,) = PREPROCESS_NODES["FrameFoldFlowMagnitude"]().run(square_video(4, step=2), levels=2, window=9)
    still = square_video(4, step=0)
    (none,) = PREPROCESS_NODES["FrameFoldFlowMagnitude"]().run(still, levels=2, window=9)
    assert moving.max() == 1.0 and moving[0, 10:20, 4:16, 0].mean() > 0.2 and none.abs().max() == 0


def test_preprocessors_refuse_non_images():
    for cls in PREPROCESS_NODES.values():
        with pytest.raises(NodeInputError, match="input 'images'"):
            if cls.__name__ == "FrameFoldInpaintMask":
                cls().run(torch.zeros(4, 4), torch.zeros(1, 4, 4))
            else:
                cls().run(torch.zeros(4, 4))


def test_thin_reduces_a_thick_bar_to_a_line():
    bar = np.zeros((20, 40), np.uint8)
    bar[8:13, 5:35] = 255
    skeleton = preprocess.thin(bar)
    assert 0 < (skeleton > 0).sum() <= 40 and (skeleton[:, 10:30] > 0).sum(axis=0).max() == 1
