"""Where the output frames of an interpolation sit in time, and how many there are.

Positions are in input-frame units: position 2.5 lies halfway between input frames 2 and 3. Every method
(flow, RIFE, repeat, blend) only has to make one frame ``(i, t)`` between input frames ``i`` and ``i + 1``.

Frame-count rule:

* multiplier ``m`` (an integer >= 1): ``N`` frames -> ``(N - 1) * m + 1`` frames at positions ``k / m``; the
  output frame rate is ``fps * m``.
* target frame rate ``fps_out`` from ``fps_in``: ``M = round((N - 1) * fps_out / fps_in) + 1`` frames spread
  evenly over the clip's duration (positions ``k * (N - 1) / (M - 1)``); the output frame rate is
  ``fps_in * (M - 1) / (N - 1)`` -- exactly ``fps_out`` when ``(N - 1) * fps_out / fps_in`` is a whole number,
  otherwise the nearest rate that keeps the duration and both end frames.

In both cases the first and last output frames are the first and last input frames, bit for bit.
"""

from typing import List, Tuple

from ..options import check_whole

# A frame to make: between input frames i and i + 1, at fraction t in [0, 1).
Slot = Tuple[int, float]


def multiplier_frame_count(frames: int, multiplier: int) -> int:
    """``(frames - 1) * multiplier + 1``: the output length of an ``multiplier``-times interpolation."""
    if frames < 1:
        raise ValueError(f"need at least one frame, got {frames}")
    check_whole("multiplier", multiplier, 1)
    return (frames - 1) * int(multiplier) + 1


def fps_frame_count(frames: int, fps_in: float, fps_out: float) -> int:
    """Output length for a target frame rate: ``round((frames - 1) * fps_out / fps_in) + 1``."""
    if frames < 1:
        raise ValueError(f"need at least one frame, got {frames}")
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be > 0, got {fps_in} -> {fps_out}")
    return int(round((frames - 1) * fps_out / fps_in)) + 1


def output_fps(frames: int, out_frames: int, fps_in: float) -> float:
    """The frame rate that keeps the clip's duration: ``fps_in * (out_frames - 1) / (frames - 1)``."""
    if frames < 2 or out_frames < 2:
        return float(fps_in)
    return float(fps_in) * (out_frames - 1) / (frames - 1)


def even_positions(frames: int, out_frames: int) -> List[float]:
    """``out_frames`` positions spread evenly from 0 to ``frames - 1`` (both ends included)."""
    if out_frames < 1:
        raise ValueError(f"need at least one output frame, got {out_frames}")
    if frames == 1 or out_frames == 1:
        return [0.0] * out_frames
    span = frames - 1
    return [k * span / (out_frames - 1) for k in range(out_frames)]


def multiplier_positions(frames: int, multiplier: int) -> List[float]:
    """Positions ``k / multiplier`` for ``k = 0 .. (frames - 1) * multiplier``."""
    count = multiplier_frame_count(frames, multiplier)
    return [k / multiplier for k in range(count)]


def slot_of(position: float, frames: int) -> Slot:
    """``(i, t)`` with ``position = i + t``, ``0 <= t < 1``; the last frame is ``(frames - 1, 0.0)``."""
    if not 0.0 <= position <= frames - 1:
        raise ValueError(f"position {position} lies outside the clip [0, {frames - 1}]")
    i = min(int(position), frames - 1)
    return i, position - i


def slots(positions: List[float], frames: int) -> List[Slot]:
    """:func:`slot_of` for every position."""
    return [slot_of(p, frames) for p in positions]
