"""The procedural video generator and the no-human evaluator (pipelines.synthetic, pipelines.metrics.evaluator)."""

import numpy as np
import pytest

from framefold.pipelines import synthetic
from framefold.pipelines.metrics.evaluator import evaluate, foreground_masks


def test_same_seed_same_bytes_other_seed_other_video():
    a, cap_a = synthetic.random_clip(123)
    b, cap_b = synthetic.random_clip(123)
    c, _ = synthetic.random_clip(124)
    assert cap_a == cap_b
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_video_layout_and_range():
    video, caption = synthetic.random_clip(7)
    assert video.shape == (16, 64, 64, 3) and video.dtype == np.float32
    assert video.min() >= 0.0 and video.max() <= 1.0
    assert caption == synthetic.random_scene(7).caption


def test_grammar_parse_round_trip_and_vocabulary_covers_every_caption():
    vocab = set(synthetic.GRAMMAR.vocabulary())
    combos = synthetic.GRAMMAR.combinations()
    assert len(combos) == 6 * 3 * 6 * 4
    for combo in combos:
        for template in range(len(synthetic.GRAMMAR.templates)):
            caption = synthetic.GRAMMAR.caption(*combo, template)
            assert set(caption.split()) <= vocab
            parsed = synthetic.GRAMMAR.parse(caption)
            assert (parsed["colour"], parsed["shape"], parsed["motion"], parsed["background"]) == combo


def test_scene_from_caption_renders_what_it_says():
    scene = synthetic.scene_from_caption("A Blue triangle moving up, on a gradient background.", 3)
    assert (scene.colour, scene.shape, scene.motion, scene.background) == ("blue", "triangle", "up", "gradient")
    assert scene.end[1] < scene.start[1]  # up = smaller y
    with pytest.raises(ValueError, match="names no colour"):
        synthetic.scene_from_caption("a circle moving left on a black background", 0)


def test_translations_keep_the_object_inside_and_growth_changes_size():
    for seed in range(20):
        for motion in ("left", "right", "up", "down"):
            s = synthetic.layout_scene("red", "square", motion, "black", seed)
            for x, y in (s.start, s.end):
                assert s.start_size < x < 64 - s.start_size and s.start_size < y < 64 - s.start_size
        grow = synthetic.layout_scene("red", "circle", "growing", "gray", seed)
        assert grow.end_size > 2 * grow.start_size and grow.start == grow.end


@pytest.mark.parametrize("background", list(synthetic.BACKGROUNDS))
def test_evaluator_passes_every_colour_and_motion_on_ground_truth(background):
    failures = []
    for i, (colour, motion) in enumerate([(c, m) for c in synthetic.COLOURS for m in synthetic.MOTIONS]):
        shape = synthetic.SHAPES[i % 3]
        scene = synthetic.layout_scene(colour, shape, motion, background, i)
        result = evaluate(synthetic.render_scene(scene), scene.caption)
        if not result["all_ok"]:
            failures.append(scene.caption)
    assert failures == []


def test_evaluator_fails_mismatched_captions():
    rng = np.random.default_rng(5)
    for _ in range(12):
        scene = synthetic.random_scene(rng)
        video = synthetic.render_scene(scene)
        for attr, pool in (
            ("colour", synthetic.GRAMMAR.colours),
            ("motion", synthetic.GRAMMAR.motions),
            ("background", synthetic.GRAMMAR.backgrounds),
        ):
            for other in pool:
                if other == getattr(scene, attr):
                    continue
                wrong = synthetic.with_attributes(scene, **{attr: other}).caption
                result = evaluate(video, wrong)
                assert result[f"{attr}_ok"] is False, (scene.caption, wrong)
                assert result["all_ok"] is False


def test_evaluator_rejects_empty_and_flickering_videos():
    scene = synthetic.layout_scene("green", "circle", "right", "black", 1)
    video = synthetic.render_scene(scene)
    blank = np.zeros_like(video)
    result = evaluate(blank, scene.caption)
    assert result["colour"] is None and not result["motion_ok"] and not result["stability_ok"]
    flicker = video.copy()
    flicker[1::2] = synthetic.background_image("black")  # object gone every other frame
    assert evaluate(flicker, scene.caption)["stability_ok"] is False


def test_evaluator_tolerates_blur_and_noise():
    import cv2

    rng = np.random.default_rng(0)
    for seed in range(6):
        scene = synthetic.random_scene(seed)
        video = synthetic.render_scene(scene)
        blurred = np.stack([cv2.GaussianBlur(f, (5, 5), 1.2) for f in video])
        noisy = np.clip(blurred + rng.normal(0, 0.04, video.shape).astype(np.float32), 0, 1)
        assert evaluate(noisy, scene.caption)["all_ok"], scene.caption


def test_foreground_mask_finds_the_object_area():
    scene = synthetic.layout_scene("magenta", "square", "left", "white", 2)
    masks = foreground_masks(synthetic.render_scene(scene))
    side = 2 * scene.start_size
    assert masks.shape == (16, 64, 64)
    areas = masks.reshape(16, -1).sum(1)
    # anti-aliased edge pixels count when they are saturated enough: at most one extra pixel per side
    assert np.all(areas >= (side - 1) ** 2) and np.all(areas <= (side + 2) ** 2)


def test_evaluator_accepts_torch_and_rejects_bad_shapes():
    import torch

    scene = synthetic.layout_scene("yellow", "triangle", "down", "gradient", 4)
    video = synthetic.render_scene(scene)
    assert evaluate(torch.from_numpy(video), scene.caption)["all_ok"]
    with pytest.raises(ValueError, match=r"\[F,H,W,3\]"):
        evaluate(video[0], scene.caption)
