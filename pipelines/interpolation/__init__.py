"""Frame interpolation: the temporal half of cascaded generation (seed 000 §2.1, seed 001 §4.2).

* :mod:`.flow` -- weight-free, OpenCV DIS optical flow both ways, occlusion-aware blend;
* :mod:`.ifnet` / :mod:`.rife` -- RIFE 4.7's IFNet (files via :func:`pipelines.loading.rife.load_rife`);
* :mod:`.diffusion` -- in-betweening with the video model: key-frame latents held at every step;
* :mod:`.driver` / :mod:`.timing` -- the frame-count rule, scene cuts, progress, streaming pair by pair.

:func:`interpolate` is the one call the Interpolate Frames node makes.
"""

from typing import Optional, Tuple

import torch

from .driver import DEFAULT_SCENE_CUT_THRESHOLD, PairInterpolator, check_frames, interpolate_frames
from .timing import even_positions, fps_frame_count, multiplier_frame_count, output_fps


def interpolate(
    frames: torch.Tensor,
    between: PairInterpolator,
    *,
    multiplier: int = 2,
    fps: float = 8.0,
    target_fps: Optional[float] = None,
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
) -> Tuple[torch.Tensor, float]:
    """Interpolate an IMAGE batch ``[N, H, W, C]`` -> (frames, output fps).

    Without ``target_fps``: ``(N - 1) * multiplier + 1`` frames at ``fps * multiplier``. With it: the frame count
    and rate of :mod:`.timing` (duration and both end frames kept). The first and last frames are the input's.
    """
    frames = check_frames(frames)
    n = frames.shape[0]
    if target_fps is None:
        count = multiplier_frame_count(n, multiplier)
    else:
        count = fps_frame_count(n, fps, target_fps)
    positions = even_positions(n, count)
    out = interpolate_frames(frames, positions, between, scene_cut_threshold=scene_cut_threshold)
    return out, output_fps(n, count, fps)
