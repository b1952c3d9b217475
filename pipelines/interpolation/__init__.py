"""Frame interpolation: the temporal half of cascaded generation (seed 000 §2.1, seed 001 §4.2).

* :mod:`.flow` -- weight-free, OpenCV DIS optical flow both ways, occlusion-aware blend;
* :mod:`.ifnet` / :mod:`.rife` -- RIFE 4.7's IFNet (files via :func:`pipelines.loading.rife.load_rife`);
* :mod:`.diffusion` -- in-betweening with the video model: key-frame latents held at every step;
* :mod:`.driver` / :mod:`.timing` -- the frame-count rule, scene cuts, progress, streaming pair by pair.

:func:`interpolate_video` is the entry point (what the Interpolate Frames node calls): a self-validating
:class:`InterpolationOptions` picks the method and the frame count; :func:`interpolate` runs any pair interpolator.
Bad values raise :class:`~..options.OptionError` naming the field or input (``images``, ``model``).
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..options import OptionError, check_choice, check_range, check_whole
from .driver import DEFAULT_SCENE_CUT_THRESHOLD, PairInterpolator, check_frames, interpolate_frames
from .flow import FlowInterpolator
from .ifnet import IFNet
from .rife import RifeInterpolator
from .timing import even_positions, fps_frame_count, multiplier_frame_count, output_fps

METHODS = ("flow", "rife")
RIFE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class InterpolationOptions:
    """:func:`interpolate_video`. method: "flow" (DIS optical flow, no weights) or "rife" (a RIFE IFNet);
    ``target_fps`` 0 = ``multiplier`` sets the frame count; pairs whose luma histograms differ by more than
    ``scene_cut_threshold`` (0..2) duplicate the nearer frame; ``rife_scale`` / ``rife_ensemble`` as in the RIFE
    releases (:class:`~.rife.RifeInterpolator`)."""

    method: str = "flow"
    multiplier: int = 2
    fps: float = 8.0
    target_fps: float = 0.0
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
    rife_scale: float = 1.0
    rife_ensemble: bool = False

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_whole("multiplier", self.multiplier, 1)
        check_range("fps", self.fps, 0.0, low_open=True)
        check_range("target_fps", self.target_fps, 0.0)
        check_range("scene_cut_threshold", self.scene_cut_threshold, 0.0)
        check_choice("rife_scale", self.rife_scale, RIFE_SCALES)


def pair_interpolator(options: InterpolationOptions, model: Optional[IFNet] = None) -> PairInterpolator:
    """The pair interpolator of ``options.method``; "rife" needs ``model``."""
    if options.method == "flow":
        return FlowInterpolator()
    if not isinstance(model, IFNet):
        raise OptionError("model", "a RIFE IFNet (pipelines.loading.rife.load_rife) for method 'rife'")
    return RifeInterpolator(model, scale=float(options.rife_scale), ensemble=bool(options.rife_ensemble))


def interpolate_video(
    images: torch.Tensor, options: InterpolationOptions, *, model: Optional[IFNet] = None
) -> Tuple[torch.Tensor, float]:
    """Interpolate an IMAGE batch ``[N, H, W, C]`` (C in 1, 3, 4) -> (frames, output fps) by ``options``;
    ``model``: the IFNet of method "rife"."""
    try:
        images = check_frames(images, "images")
    except ValueError as e:
        raise OptionError("images", f"an IMAGE batch [frames, height, width, 1|3|4 channels] ({e})") from e
    between = pair_interpolator(options, model)
    return interpolate(
        images,
        between,
        multiplier=int(options.multiplier),
        fps=float(options.fps),
        target_fps=float(options.target_fps) if options.target_fps > 0 else None,
        scene_cut_threshold=float(options.scene_cut_threshold),
    )


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
