"""Frame-count rule, positions, scene cuts and the pair-by-pair driver of pipelines.interpolation."""

import pytest
import torch

from framefold.pipelines import progress
from framefold.pipelines.interpolation import driver, interpolate, timing


def _clip(frames=5, size=16, seed=0):
    return torch.rand((frames, size, size, 3), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n, m", [(1, 4), (2, 2), (9, 2), (16, 4), (33, 3)])
def test_multiplier_frame_count_rule(n, m):
    assert timing.multiplier_frame_count(n, m) == (n - 1) * m + 1
    positions = timing.multiplier_positions(n, m)
    assert len(positions) == (n - 1) * m + 1 and positions[0] == 0 and positions[-1] == n - 1


def test_fps_target_rule_keeps_duration_and_ends():
    # 16 frames at 8 fps -> 30 fps: round(15 * 30 / 8) + 1 = 57 frames (56.25 rounded), duration 15/8 s kept.
    count = timing.fps_frame_count(16, 8.0, 30.0)
    assert count == 57
    fps = timing.output_fps(16, count, 8.0)
    assert (count - 1) / fps == pytest.approx(15 / 8)
    positions = timing.even_positions(16, count)
    assert positions[0] == 0.0 and positions[-1] == 15.0
    # a whole-number ratio gives exactly the target and the multiplier's frames
    assert timing.fps_frame_count(16, 8.0, 32.0) == timing.multiplier_frame_count(16, 4)
    assert timing.output_fps(16, 61, 8.0) == 32.0


def test_bad_multiplier_and_rates_are_refused():
    with pytest.raises(ValueError, match="whole number"):
        timing.multiplier_frame_count(4, 1.5)
    with pytest.raises(ValueError, match="> 0"):
        timing.fps_frame_count(4, 0.0, 24.0)
    with pytest.raises(ValueError, match="outside the clip"):
        timing.slot_of(4.5, 4)


@pytest.mark.parametrize("between", [driver.repeat_between, driver.blend_between])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_baselines_keep_count_and_input_frames_exactly(between, m):
    clip = _clip()
    out, fps = interpolate(clip, between, multiplier=m, fps=8.0)
    assert out.shape == ((clip.shape[0] - 1) * m + 1, *clip.shape[1:])
    assert torch.equal(out[::m], clip) and fps == 8.0 * m


def test_arbitrary_times_reach_the_pair_interpolator():
    seen = []

    def record(a, b, times):
        seen.append(list(times))
        return driver.blend_between(a, b, times)

    clip = _clip(3)
    out = driver.interpolate_frames(clip, [0.0, 0.25, 0.5, 1.0, 1.75, 2.0], record)
    assert seen == [[0.25, 0.5], [0.75]]
    assert torch.allclose(out[1], clip[0] + 0.25 * (clip[1] - clip[0]))
    assert torch.equal(out[3], clip[1]) and torch.equal(out[5], clip[2])


def test_scene_cut_duplicates_instead_of_blending():
    black, white = torch.zeros(1, 16, 16, 3), torch.ones(1, 16, 16, 3)
    clip = torch.cat([black, black * 0 + 0.02, white])  # a small change, then a cut
    assert driver.scene_cut_distance(clip[1], clip[2]) > driver.DEFAULT_SCENE_CUT_THRESHOLD
    out, _ = interpolate(clip, driver.blend_between, multiplier=4)
    assert torch.equal(out[5], clip[1]) and torch.equal(out[7], clip[2])  # t = 0.25 and 0.75 duplicate
    assert not torch.equal(out[1], clip[0]) and not torch.equal(out[1], clip[1])  # no cut: blended
    never, _ = interpolate(clip, driver.blend_between, multiplier=4, scene_cut_threshold=2.0)
    assert torch.allclose(never[6], (clip[1] + clip[2]) / 2)


def test_progress_is_reported_once_per_pair():
    calls = []
    with progress.use_sink(progress.ProgressSink(on_progress=lambda s, t, p: calls.append((s, t)))):
        interpolate(_clip(4), driver.blend_between, multiplier=3)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_streaming_yields_frames_in_order_without_holding_the_clip():
    clip = _clip(6)
    indices = [i for i, _ in driver.iter_interpolated(clip, timing.multiplier_positions(6, 2), driver.blend_between)]
    assert indices == list(range(11))


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match=r"IMAGE batch \[F, H, W, C\]"):
        interpolate(torch.zeros(4, 4, 3), driver.blend_between)
    with pytest.raises(ValueError, match="ascending"):
        driver.interpolate_frames(_clip(3), [1.0, 0.5], driver.blend_between)
