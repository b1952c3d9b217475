"""Run any pair interpolator over a whole clip, one frame pair at a time.

A *pair interpolator* is a callable ``between(a, b, times) -> frames``: ``a`` and ``b`` are neighbouring frames
``[H, W, C]`` (float32, 0..1) and ``times`` the fractions ``0 < t < 1`` to make between them; it returns
``[len(times), H, W, C]``. The driver handles everything else the same way for every method:

* output positions from :mod:`.timing` (multiplier or target frame rate, arbitrary times);
* frames at whole positions are copied from the input, so the first and last frames are exact;
* scene cuts: a pair whose luma histograms differ by more than ``scene_cut_threshold`` is not blended -- each
  in-between frame duplicates the nearer input frame;
* progress is reported once per frame pair; working memory is one pair's, so it is flat in the frame count
  (:func:`iter_interpolated` streams frames; :func:`interpolate_frames` fills one preallocated output).
"""

from typing import Callable, Iterator, List, Sequence, Tuple

import torch

from .. import progress
from .timing import slots

PairInterpolator = Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]

HISTOGRAM_BINS = 32
DEFAULT_SCENE_CUT_THRESHOLD = 0.6
LUMA_BT709 = (0.2126, 0.7152, 0.0722)


def check_frames(frames: torch.Tensor, what: str = "frames") -> torch.Tensor:
    """``frames`` must be an IMAGE batch ``[F, H, W, C]`` with C in (1, 3, 4); returns it as float32."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[0] < 1:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"{what} must be an IMAGE batch [F, H, W, C], got {shape}")
    if frames.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{what} must have 1, 3 or 4 channels, got {frames.shape[-1]}")
    return frames.float()


def luma_histogram(frame: torch.Tensor, bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """Normalised histogram (sums to 1) of the BT.709 luma of one frame ``[H, W, C]``."""
    rgb = frame[..., :3] if frame.shape[-1] >= 3 else frame[..., :1].expand(*frame.shape[:-1], 3)
    luma = (rgb * torch.tensor(LUMA_BT709, dtype=rgb.dtype)).sum(-1).clamp(0, 1)
    hist = torch.histc(luma.float(), bins=bins, min=0.0, max=1.0)
    return hist / hist.sum()


def scene_cut_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """L1 distance of the two frames' luma histograms: 0 (same tones) .. 2 (no tone in common).

    Motion moves pixels without changing the histogram much; a cut to another shot replaces it.
    """
    return float((luma_histogram(a) - luma_histogram(b)).abs().sum())


def plan_pairs(positions: Sequence[float], frames: int) -> List[Tuple[int, List[int], List[float]]]:
    """Group output indices by input pair: ``[(i, [output indices], [times])]`` for positions with ``t > 0``."""
    groups: dict = {}
    for index, (i, t) in enumerate(slots(list(positions), frames)):
        if t > 0:
            groups.setdefault(i, ([], []))
            groups[i][0].append(index)
            groups[i][1].append(t)
    return [(i, idx, ts) for i, (idx, ts) in sorted(groups.items())]


def duplicate_nearest(a: torch.Tensor, b: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """In-between frames across a scene cut: a copy of ``a`` for ``t < 0.5``, of ``b`` otherwise."""
    return torch.stack([a if t < 0.5 else b for t in times])


def iter_interpolated(
    frames: torch.Tensor,
    positions: Sequence[float],
    between: PairInterpolator,
    *,
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
) -> Iterator[Tuple[int, torch.Tensor]]:
    """Yield ``(output index, frame [H, W, C])`` in output order, making one pair's frames at a time.

    ``positions`` are in input-frame units (see :mod:`.timing`), ascending. Whole positions give the input frame
    itself; progress is reported after each pair (and at the end for clips without in-between frames).
    """
    frames = check_frames(frames)
    n = frames.shape[0]
    if any(b < a for a, b in zip(positions, positions[1:])):
        raise ValueError("output positions must be in ascending order")
    plan = {i: (idx, ts) for i, idx, ts in plan_pairs(positions, n)}
    total = max(len(plan), 1)
    done = 0
    pending: dict = {}
    for index, (i, t) in enumerate(slots(list(positions), n)):
        if t == 0:
            yield index, frames[i]
            continue
        if index not in pending:
            idx, ts = plan[i]
            a, b = frames[i], frames[i + 1]
            if scene_cut_distance(a, b) > scene_cut_threshold:
                made = duplicate_nearest(a, b, ts)
            else:
                made = between(a, b, ts)
            pending = dict(zip(idx, made))
            done += 1
            progress.report(done, total)
        yield index, pending.pop(index)
    if not plan:
        progress.report(1, 1)


def interpolate_frames(
    frames: torch.Tensor,
    positions: Sequence[float],
    between: PairInterpolator,
    *,
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
) -> torch.Tensor:
    """All output frames ``[len(positions), H, W, C]`` (float32) of :func:`iter_interpolated`, in one tensor."""
    frames = check_frames(frames)
    out = torch.empty((len(positions), *frames.shape[1:]), dtype=torch.float32)
    for index, frame in iter_interpolated(frames, positions, between, scene_cut_threshold=scene_cut_threshold):
        out[index] = frame
    return out


def repeat_between(a: torch.Tensor, b: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """Naive baseline: every in-between frame repeats the earlier frame."""
    return a.unsqueeze(0).repeat(len(times), 1, 1, 1)


def blend_between(a: torch.Tensor, b: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """Naive baseline: linear cross-fade ``a + t (b - a)``."""
    t = torch.tensor(list(times), dtype=a.dtype).view(-1, 1, 1, 1)
    return a.unsqueeze(0) + t * (b - a).unsqueeze(0)
