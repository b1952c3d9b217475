"""The evaluator's shape check (pipelines/metrics/evaluator.py) on ground-truth clips from the generator, on seeds
other than the calibration's (123): >= 99% per shape raw; through the default model's VAE >= 95% (39/40 circles
here: the miss is a magenta circle grazing the dark top of a gradient, where the VAE smears the blob)."""

import numpy as np
import pytest
import torch

from framefold.nodes._folders import resolve_model
from framefold.pipelines import synthetic
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.metrics.evaluator import classify_blob, evaluate, foreground_masks, measure_shape

CLIPS_PER_SHAPE = 40


@pytest.fixture(scope="module")
def clips():
    """(shape, raw video, video through the default VAE) for CLIPS_PER_SHAPE random layouts per shape."""
    torch.set_num_threads(1)
    _, _, vae = load_checkpoint(resolve_model("checkpoints", "framefold-tiny.safetensors"))
    rng = np.random.default_rng(2026)
    out = []
    for _ in range(CLIPS_PER_SHAPE):
        base = synthetic.random_scene(rng)
        for shape in synthetic.SHAPES:
            video = synthetic.render_scene(synthetic.with_attributes(base, shape=shape))
            with torch.no_grad():
                through_vae = vae.decode(vae.encode(torch.from_numpy(video))).clamp(0, 1).numpy()
            out.append((shape, video, through_vae))
    return out


@pytest.mark.parametrize("which, floor", [(1, 0.99), (2, 0.95)], ids=["generator", "through_vae"])
def test_shape_is_recognised_on_ground_truth_clips(clips, which, floor):
    for shape in synthetic.SHAPES:
        found = [measure_shape(foreground_masks(c[which]))["shape"] for c in clips if c[0] == shape]
        accuracy = np.mean([f == shape for f in found])
        assert accuracy >= floor, (shape, accuracy, found)


def test_shape_counts_in_all_ok(clips):
    _, video, _ = next(c for c in clips if c[0] == "circle")
    right = evaluate(video, "a circle")
    assert right["shape_ok"] is True and right["want_shape"] == "circle"
    wrong = evaluate(video, "a square")
    assert wrong["shape_ok"] is False and wrong["all_ok"] is False
    assert evaluate(video, "a red thing")["shape_ok"] is None  # not named: not checked


def test_prototypes_classify_themselves():
    assert classify_blob((0.79, 0.975)) == "circle"
    assert classify_blob((1.0, 0.64)) == "square"  # an ideal square: fills its box, 2/pi of its circle
    assert classify_blob((0.5, 0.41)) == "triangle"  # an ideal equilateral triangle


def test_a_concave_star_is_not_a_filled_triangle():
    import cv2

    # a three-pointed star: a triangle with its sides pushed in (what the shipped model drew for "triangle")
    mask = np.zeros((64, 64), np.uint8)
    angles = np.pi / 2 + np.arange(6) * np.pi / 3
    radii = np.where(np.arange(6) % 2 == 0, 16.0, 6.0)
    points = np.stack([32 + radii * np.cos(angles), 32 - radii * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    found = measure_shape(np.stack([mask] * 4))
    assert found["shape"] == "concave" and found["shape_votes"]["concave"] == 4
    filled = np.zeros((64, 64), np.uint8)
    cv2.fillPoly(filled, [np.round(points[::2]).astype(np.int32)], 1)
    assert measure_shape(np.stack([filled] * 4))["shape"] == "triangle"
