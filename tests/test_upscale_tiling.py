"""Tiled per-frame upscaling: agreement with untiled inference, no seam on a flat colour, the memory pre-flight,
per-frame progress and the weight-free OpenCV resizers."""

import numpy as np
import pytest
import torch

from framefold.pipelines import progress
from framefold.pipelines.loading.upscale import build_from_state_dict
from framefold.pipelines.models.upscalers import RRDBNetConfig, SRVGGNetCompactConfig, build_upscaler
from framefold.pipelines.synthetic import random_scene, render_scene
from framefold.pipelines.upscale import (
    UpscaleMemoryError,
    choose_tile,
    estimate_tile_bytes,
    feather,
    resize_video,
    resize_video_by,
    tile_starts,
    tiled_map,
    upscale_tensor,
    upscale_video,
)

# Bound for tiled vs untiled output (0..1 units) when the overlap (= context margin) is >= 8 input pixels:
# measured 3e-6 (RRDBNet x2, 2 blocks) and 2.4e-7 (compact, radius 6); 1e-4 is 40x below one 8-bit level.
TILED_BOUND = 1e-4

CONFIGS = [
    SRVGGNetCompactConfig(num_feat=8, num_conv=4, upscale=2),
    RRDBNetConfig(num_feat=16, num_block=2, num_grow_ch=8, scale=2),
]
IDS = ["compact-x2", "rrdb-x2"]


def random_model(config, seed=0):
    """An UpscaleModel with seeded random weights."""
    torch.manual_seed(seed)
    return build_from_state_dict(build_upscaler(config).state_dict(), "random")


def scene_frames(seed, size=96, frames=2):
    """IMAGE [F, size, size, 3] of a procedural clip."""
    video = render_scene(random_scene(seed, size=size))
    return torch.from_numpy(video[:frames])


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_tiled_and_untiled_inference_agree(config):
    """With overlap 8 (context margins of 8 real pixels) tiles of 32 px agree with one whole-frame call within
    TILED_BOUND everywhere, seams included; without enough margin (overlap 2) the difference is visible."""
    model = random_model(config)
    x = scene_frames(1)[:1].permute(0, 3, 1, 2)
    full = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=32, overlap=8)
    assert tiled.shape == full.shape == (1, 3, 192, 192)
    assert float((tiled - full).abs().max()) < TILED_BOUND
    thin = upscale_tensor(model, x, tile=32, overlap=2)
    assert float((thin - full).abs().max()) > TILED_BOUND  # the margin is what makes the tiles agree


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_flat_colour_shows_no_seam(config):
    """A flat-colour frame upscaled in 24 px tiles: every output pixel within TILED_BOUND of the untiled output,
    and the largest step between neighbouring output pixels along a tile boundary is no larger than elsewhere."""
    model = random_model(config, seed=4)
    flat = torch.full((1, 3, 80, 80), 0.35)
    full = upscale_tensor(model, flat)
    tiled = upscale_tensor(model, flat, tile=24, overlap=8)
    assert float((tiled - full).abs().max()) < TILED_BOUND
    steps = (tiled[..., 1:] - tiled[..., :-1]).abs()[..., 40:-40, 40:-40]  # away from the frame border
    assert float(steps.max()) <= float((full[..., 1:] - full[..., :-1]).abs()[..., 40:-40, 40:-40].max()) + 1e-5


def test_tiles_cover_and_feathered_weights_reproduce_a_pointwise_map():
    """For a per-pixel map the blend of tiles is exact (weights normalise), for any tile and overlap."""
    x = torch.rand(2, 3, 37, 53)
    for tile, overlap in [(8, 2), (16, 6), (10, 0), (64, 8)]:
        out = tiled_map(lambda t: t * 2.0 + 1.0, x, 1, tile, overlap)
        assert torch.allclose(out, x * 2.0 + 1.0, atol=1e-6)
    starts = tile_starts(100, 32, 8, multiple=2)
    assert starts[0] == 0 and starts[-1] == 68 and all(s % 2 == 0 for s in starts)
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))
    w = feather(10, 3, True, True)
    assert torch.all(w > 0) and float(w[5]) == 1.0 and float(w[0]) == 0.25


def test_odd_sizes_are_padded_for_pixel_unshuffle():
    """An x2 RRDBNet (input multiple of 2) upscales a 33x47 frame to exactly 66x94."""
    model = random_model(CONFIGS[1])
    frames = torch.rand(1, 33, 47, 3)
    assert upscale_video(model, frames, tile=16, overlap=4).shape == (1, 66, 94, 3)


def test_memory_preflight_refuses_a_tile_that_does_not_fit_and_auto_tiling_fits():
    """A budget below one tile's estimate raises before any frame is written; tile 0 picks a fitting tile."""
    model = random_model(CONFIGS[0])
    frames = scene_frames(2, size=64, frames=1)
    budget = estimate_tile_bytes(model, 48, 48, torch.float32)  # a 32 px tile with its 8 px margins, not 64 px
    with pytest.raises(UpscaleMemoryError, match="MiB of activations"):
        upscale_video(model, frames, tile=64, overlap=8, budget=budget)
    tile = choose_tile(model, 64, 64, "cpu", torch.float32, 8, budget=budget)
    assert tile == 32
    assert choose_tile(model, 64, 64, "cpu", torch.float32, 8, budget=budget * 2) == 0  # whole frame fits
    auto = upscale_video(model, frames, tile=0, overlap=8, budget=budget)
    assert float((auto - upscale_video(model, frames)).abs().max()) < TILED_BOUND
    with pytest.raises(UpscaleMemoryError):
        choose_tile(model, 64, 64, "cpu", torch.float32, 8, budget=1000)


def test_video_upscale_reports_per_frame_and_runs_one_frame_at_a_time():
    """Progress once per frame; the net never sees more than one frame (memory flat in frame count)."""
    model = random_model(CONFIGS[0])
    batches = []
    model.net.register_forward_pre_hook(lambda mod, inp: batches.append(inp[0].shape[0]))
    reports = []
    with progress.use_sink(progress.ProgressSink(lambda s, t, p: reports.append((s, t)))):
        out = upscale_video(model, scene_frames(3, size=32, frames=5))
    assert out.shape == (5, 64, 64, 3) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert reports == [(i, 5) for i in range(1, 6)] and set(batches) == {1}


def test_output_scale_below_the_models_is_area_resampled_and_above_is_refused():
    """out_scale 1.5 of a 2x model gives 1.5x frames; 3 is refused."""
    model = random_model(CONFIGS[0])
    frames = scene_frames(4, size=32, frames=1)
    assert upscale_video(model, frames, out_scale=1.5).shape == (1, 48, 48, 3)
    with pytest.raises(ValueError, match="must be in \\(0, 2\\]"):
        upscale_video(model, frames, out_scale=3.0)


def test_resize_matches_opencv_and_area_shrinks_by_block_means():
    """Lanczos is OpenCV's INTER_LANCZOS4 (clamped); area 2x down is the mean of each 2x2 block."""
    import cv2

    frames = scene_frames(5, size=32, frames=2)
    out = resize_video(frames, 64, 48, "lanczos")
    ref = cv2.resize(frames[1].numpy(), (64, 48), interpolation=cv2.INTER_LANCZOS4)
    assert np.allclose(out[1].numpy(), np.clip(ref, 0, 1), atol=1e-6)
    down = resize_video_by(frames, 0.5, "area")
    blocks = frames.reshape(2, 16, 2, 16, 2, 3).mean(dim=(2, 4))
    assert torch.allclose(down, blocks, atol=1e-5)
    with pytest.raises(ValueError, match="resize method must be one of"):
        resize_video(frames, 64, 64, "sinc")


def test_half_precision_path_matches_fp32_and_restores_the_model(monkeypatch):
    """The fp16 path (what CUDA uses) run on the CPU: close to fp32 (within 1/255), and the model's own device
    and dtype are restored afterwards (the cached loader output is not left in fp16)."""
    from framefold.pipelines import upscale as upscale_module

    model = random_model(CONFIGS[0])
    frames = scene_frames(6, size=32, frames=2)
    reference = upscale_video(model, frames, tile=16, overlap=8)
    monkeypatch.setattr(upscale_module, "inference_dtype", lambda device: torch.float16)
    half = upscale_video(model, frames, tile=16, overlap=8)
    assert float((half - reference).abs().max()) < 1 / 255
    assert model.dtype == torch.float32 and half.dtype == torch.float32
