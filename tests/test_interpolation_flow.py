"""The weight-free DIS-flow interpolator: identity, motion, occlusion handling, arbitrary times."""

import numpy as np
import pytest
import torch

from framefold.pipelines import synthetic
from framefold.pipelines.interpolation import driver, flow, interpolate, timing
from framefold.pipelines.metrics.quality import psnr


def _moving_clip(frames=9, motion="right", seed=3):
    scene = synthetic.layout_scene("red", "square", motion, "gradient", seed, frames=frames)
    return torch.from_numpy(synthetic.render_scene(scene))


def test_identical_frames_give_the_same_frame_exactly():
    frame = torch.rand(48, 40, 3, generator=torch.Generator().manual_seed(0))
    out = flow.FlowInterpolator()(frame, frame.clone(), [0.25, 0.5, 0.9])
    assert out.shape == (3, 48, 40, 3)
    for made in out:
        assert torch.equal(made, frame)


@pytest.mark.parametrize("m", [2, 3])
def test_frame_count_and_exact_ends(m):
    keys = _moving_clip(7)
    out, fps = interpolate(keys, flow.FlowInterpolator(), multiplier=m, fps=8.0)
    assert out.shape[0] == (keys.shape[0] - 1) * m + 1 and fps == 8.0 * m
    assert torch.equal(out[0], keys[0]) and torch.equal(out[-1], keys[-1]) and torch.equal(out[::m], keys)


@pytest.mark.parametrize("motion, margin_db", [("right", 3.0), ("up", 3.0), ("growing", 0.5)])
def test_flow_beats_linear_blend_on_dropped_frames(motion, margin_db):
    clip = _moving_clip(17, motion)
    keys = clip[::2]
    positions = timing.multiplier_positions(keys.shape[0], 2)
    by_flow = driver.interpolate_frames(keys, positions, flow.FlowInterpolator())
    by_blend = driver.interpolate_frames(keys, positions, driver.blend_between)
    assert psnr(by_flow[1::2], clip[1::2]) > psnr(by_blend[1::2], clip[1::2]) + margin_db


def test_arbitrary_time_lands_between_the_positions():
    # a square moving right at constant speed (~2 px per frame): at t = 0.25 it is a quarter of the way
    clip = _moving_clip(17)
    a, b = clip[0], clip[4]
    made = flow.FlowInterpolator()(a, b, [0.25])
    truth = clip[1:2]
    assert psnr(made, truth) > psnr((a + 0.25 * (b - a))[None], truth)


def test_consistency_mask_marks_occlusions():
    # flow that moves a block right by 4 px: where frame A's pixels get covered, the backward flow disagrees
    forward = np.zeros((16, 16, 2), np.float32)
    forward[4:12, 4:8, 0] = 4.0
    backward = np.zeros((16, 16, 2), np.float32)
    backward[4:12, 8:12, 0] = -4.0
    valid = flow.consistency_mask(forward, backward)
    assert valid[0, 0] == 1.0 and valid[6, 5] == 1.0  # static background, and the moving block
    assert valid[6, 9] == 0.0  # background at A that the block covers at B


def test_grey_and_alpha_frames_keep_their_channels():
    grey = torch.rand(2, 32, 32, 1, generator=torch.Generator().manual_seed(1))
    out, _ = interpolate(grey, flow.FlowInterpolator(), multiplier=2)
    assert out.shape == (3, 32, 32, 1)
    rgba = torch.rand(2, 32, 32, 4, generator=torch.Generator().manual_seed(2))
    out, _ = interpolate(rgba, flow.FlowInterpolator(), multiplier=2)
    assert out.shape == (3, 32, 32, 4)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="preset"):
        flow.FlowInterpolator(preset="slow")
