"""A no-human evaluator: does a video show what its caption (from the synthetic grammar) says?

It measures, with OpenCV, four things the caption states:

- **colour**: the foreground (the saturated pixels; every background of the grammar is grey) has the
  named hue. The colour is the named palette colour nearest to the foreground's saturation-weighted
  circular mean hue.
- **motion**: for left/right/up/down, the foreground centroid moves that way (a least-squares line
  through the per-frame centroids; the travel along the stated axis must be at least ``min_travel``
  pixels and clearly larger than the travel across it). For growing/shrinking, the foreground area
  grows/shrinks by at least ``min_area_ratio`` while the centroid stays roughly put.
- **shape**: circle / square / triangle, by a vote over the frames: each frame's foreground blob is classified by
  its fill of its bounding box and of its minimum enclosing circle (nearest of three prototypes calibrated on
  generator clips, raw and through the default model's VAE; frames whose blob touches the border are used only
  when no other frame has the object).
- **background**: the non-foreground pixels are, by grey level, black / gray / white, or a top-to-bottom
  gradient (bottom much lighter than the top).
- **area stability**: the object is present in nearly every frame, and for translations its area
  varies little frame to frame (no flicker, no melting); for growing/shrinking the area changes
  monotonically (few reversals).

``evaluate(video, caption)`` returns a dict of booleans (``colour_ok``, ``shape_ok``, ``motion_ok``,
``background_ok``, ``stability_ok``, ``all_ok``) and the measured figures behind them.
"""

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from ..options import OptionError
from ..synthetic import BACKGROUNDS, COLOURS, GRAMMAR, SHAPES

Video = Union[np.ndarray, torch.Tensor]  # [F, H, W, 3] in 0..1

# Foreground = pixels with HSV saturation above this and value above MIN_VALUE (0..1 scale).
MIN_SATURATION = 0.45
MIN_VALUE = 0.25


def _to_uint8(video: Video) -> np.ndarray:
    """A video [F,H,W,3] (float 0..1 numpy/torch, or uint8) as uint8 numpy."""
    if hasattr(video, "detach"):
        video = video.detach().cpu().float().numpy()
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected a video [F,H,W,3], got shape {tuple(video.shape)}")
    if video.dtype != np.uint8:
        video = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return video


def _hsv(video_u8: np.ndarray) -> np.ndarray:
    """HSV of every frame as float32 [F,H,W,3]: hue in degrees 0..360, saturation and value 0..1."""
    import cv2

    frames = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2HSV_FULL) for f in video_u8]
    hsv = np.stack(frames).astype(np.float32)
    hsv[..., 0] *= 360.0 / 256.0
    hsv[..., 1:] /= 255.0
    return hsv


def foreground_masks(video: Video) -> np.ndarray:
    """Per-frame foreground masks bool [F,H,W]: the saturated pixels, opened, largest blob kept."""
    import cv2

    hsv = _hsv(_to_uint8(video))
    raw = (hsv[..., 1] > MIN_SATURATION) & (hsv[..., 2] > MIN_VALUE)
    kernel = np.ones((2, 2), np.uint8)
    masks = np.zeros_like(raw)
    for i, m in enumerate(raw.astype(np.uint8)):
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        if count > 1:
            biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            masks[i] = labels == biggest
    return masks


def _palette_hues() -> Dict[str, float]:
    """Hue in degrees of each named foreground colour."""
    import cv2

    hues = {}
    for name, rgb in COLOURS.items():
        px = (np.asarray(rgb, np.float32)[None, None] * 255 + 0.5).astype(np.uint8)
        hues[name] = float(cv2.cvtColor(px, cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]) * 360.0 / 256.0
    return hues


def _hue_distance(a: float, b: float) -> float:
    """Distance between two hues in degrees on the circle (0..180)."""
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def measure_colour(video: Video, masks: np.ndarray) -> Dict:
    """The foreground's mean hue and the nearest named colour (None when there is no foreground)."""
    hsv = _hsv(_to_uint8(video))
    sel = hsv[masks]
    if len(sel) == 0:
        return {"colour": None, "hue": None, "hue_error": None}
    angle = np.deg2rad(sel[:, 0])
    weight = sel[:, 1]
    mean = float(np.rad2deg(np.arctan2((np.sin(angle) * weight).sum(), (np.cos(angle) * weight).sum())) % 360.0)
    hues = _palette_hues()
    name = min(hues, key=lambda n: _hue_distance(mean, hues[n]))
    return {"colour": name, "hue": mean, "hue_error": _hue_distance(mean, hues[name])}


def measure_background(video: Video, masks: np.ndarray) -> Dict:
    """The background's name from the grey levels of the non-foreground pixels (top vs bottom rows)."""
    frames = _to_uint8(video).astype(np.float32) / 255.0
    grey = frames.mean(axis=-1)
    keep = ~masks
    # Also ignore a 2 px ring around the foreground (anti-aliased edges, blur).
    import cv2

    ring = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for m in masks])
    keep &= ~ring
    h = grey.shape[1]
    band = max(1, h // 4)
    top = grey[:, :band][keep[:, :band]]
    bottom = grey[:, -band:][keep[:, -band:]]
    everything = grey[keep]
    if len(everything) == 0 or len(top) == 0 or len(bottom) == 0:
        return {"background": None, "bg_top": None, "bg_bottom": None, "bg_level": None}
    top_level, bottom_level = float(np.median(top)), float(np.median(bottom))
    level = float(np.median(everything))
    if bottom_level - top_level > 0.35:
        name = "gradient"
    else:
        plain = {k: v[0] for k, v in BACKGROUNDS.items() if v[0] == v[1]}
        name = min(plain, key=lambda k: abs(plain[k] - level))
    return {"background": name, "bg_top": top_level, "bg_bottom": bottom_level, "bg_level": level}


def _fit_slope(t: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of values over t."""
    t = t - t.mean()
    return float((t * (values - values.mean())).sum() / max((t * t).sum(), 1e-9))


# (fill of the bounding box, fill of the minimum enclosing circle) of each shape's blob: the medians over 300
# generator clips, raw and through the default model's VAE (which rounds corners and fills in triangles a little)
SHAPE_PROTOTYPES: Dict[str, Tuple[float, float]] = {
    "circle": (0.79, 0.975),
    "square": (0.93, 0.78),
    "triangle": (0.62, 0.59),
}
MIN_SHAPE_AREA = 25  # pixels: smaller blobs say little about their outline
# Area of a blob's outline over the area of its convex hull below which it is not a filled shape (a concave
# three-pointed star is no triangle: about 0.75). Lowest over the frames of 90 generator clips (seed 123): raw 0.91,
# through the default model's VAE 0.83 (triangles; circles and squares >= 0.91).
MIN_SOLIDITY = 0.8
NOT_FILLED = "concave"


def blob_fills(mask: np.ndarray, allow_border: bool = False) -> Optional[Tuple[float, float]]:
    """(area / bounding-box area, area / minimum-enclosing-circle area) of a blob, or None when it is too small
    or (unless ``allow_border``) touches the frame's border, where it may be cut off."""
    outline = blob_outline(mask, allow_border)
    return None if outline is None else outline[:2]


def blob_outline(mask: np.ndarray, allow_border: bool = False) -> Optional[Tuple[float, float, float]]:
    """:func:`blob_fills` plus the solidity of the largest blob (its outline's area / its convex hull's area)."""
    import cv2

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    area = float(m.sum())
    touches = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    if area < MIN_SHAPE_AREA or (touches and not allow_border):
        return None
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    _x, _y, w, h = cv2.boundingRect(contour)
    _centre, radius = cv2.minEnclosingCircle(contour)
    hull_area = cv2.contourArea(cv2.convexHull(contour))
    solidity = cv2.contourArea(contour) / hull_area if hull_area > 0 else 0.0
    return area / float(w * h), area / float(np.pi * max(radius, 0.5) ** 2), float(solidity)


def classify_blob(fills: Tuple[float, ...]) -> str:
    """The shape whose prototype is nearest to a blob's two fills; ``NOT_FILLED`` when a third value (the
    solidity, see :func:`blob_outline`) is below ``MIN_SOLIDITY``."""
    if len(fills) > 2 and fills[2] < MIN_SOLIDITY:
        return NOT_FILLED
    return min(SHAPES, key=lambda s: sum((a - b) ** 2 for a, b in zip(fills[:2], SHAPE_PROTOTYPES[s])))


def measure_shape(masks: np.ndarray) -> Dict:
    """The shape most frames show (``shape`` None when no frame has a usable blob; ``NOT_FILLED`` when most
    blobs are concave) and the per-frame votes."""
    outlines = [f for f in (blob_outline(m) for m in masks) if f is not None]
    if not outlines:
        outlines = [f for f in (blob_outline(m, allow_border=True) for m in masks) if f is not None]
    votes = {s: 0 for s in SHAPES + (NOT_FILLED,)}
    for f in outlines:
        votes[classify_blob(f)] += 1
    shape = max(votes, key=lambda s: votes[s]) if outlines else None
    return {"shape": shape, "shape_votes": votes}


def measure_motion(masks: np.ndarray) -> Dict:
    """Centroid travel (x, y over the whole clip, pixels) and area trend from the foreground masks."""
    frames = masks.shape[0]
    areas = masks.reshape(frames, -1).sum(axis=1).astype(np.float64)
    present = areas >= 4
    out = {
        "present_fraction": float(present.mean()),
        "areas": areas.tolist(),
        "travel_x": 0.0,
        "travel_y": 0.0,
        "area_ratio": None,
        "area_cv": None,
        "area_reversals": None,
    }
    if present.sum() < max(3, frames // 2):
        return out
    ys, xs = np.mgrid[0 : masks.shape[1], 0 : masks.shape[2]]
    t = np.nonzero(present)[0].astype(np.float64)
    cx = np.array([xs[masks[i]].mean() for i in t.astype(int)]) + 0.5
    cy = np.array([ys[masks[i]].mean() for i in t.astype(int)]) + 0.5
    span = frames - 1
    out["travel_x"] = _fit_slope(t, cx) * span
    out["travel_y"] = _fit_slope(t, cy) * span
    a = areas[present]
    fit_area = np.polyval(np.polyfit(t, a, 1), [0, span])
    out["area_ratio"] = float(max(fit_area[1], 1.0) / max(fit_area[0], 1.0))
    out["area_cv"] = float(a.std() / max(a.mean(), 1e-9))
    steps = np.diff(a)
    trend = np.sign(a[-1] - a[0])
    out["area_reversals"] = float(((np.sign(steps) == -trend) & (np.abs(steps) > 0.05 * a.mean())).mean())
    return out


def evaluate(
    video: Video,
    caption: str,
    *,
    min_travel: float = 8.0,
    min_area_ratio: float = 1.6,
    max_area_cv: float = 0.25,
    min_present: float = 0.875,
) -> Dict:
    """Check ``video`` [F,H,W,3] against ``caption``; a dict of ``*_ok`` booleans and the figures.

    A check whose attribute the caption does not name is None (and does not count against ``all_ok``).
    """
    wanted = GRAMMAR.parse(caption)
    masks = foreground_masks(video)
    colour = measure_colour(video, masks)
    shape = measure_shape(masks)
    background = measure_background(video, masks)
    motion = measure_motion(masks)
    result = {
        "caption": caption,
        **{f"want_{k}": v for k, v in wanted.items()},
        **colour,
        **shape,
        **background,
        **motion,
    }

    result["colour_ok"] = None if wanted["colour"] is None else colour["colour"] == wanted["colour"]
    result["shape_ok"] = None if wanted["shape"] is None else shape["shape"] == wanted["shape"]
    result["background_ok"] = None if wanted["background"] is None else background["background"] == wanted["background"]

    present = motion["present_fraction"] >= min_present
    ratio = motion["area_ratio"]
    tx, ty = motion["travel_x"], motion["travel_y"]
    direction = {"left": (-tx, ty), "right": (tx, ty), "up": (-ty, tx), "down": (ty, tx)}
    want_motion = wanted["motion"]
    if want_motion is None:
        result["motion_ok"] = None
    elif not present or ratio is None:
        result["motion_ok"] = False
    elif want_motion in direction:
        along, across = direction[want_motion]
        result["motion_ok"] = bool(along >= min_travel and along > 2.0 * abs(across))
    else:
        still = max(abs(tx), abs(ty)) < min_travel
        grew = ratio >= min_area_ratio if want_motion == "growing" else ratio <= 1.0 / min_area_ratio
        result["motion_ok"] = bool(still and grew)

    if not present or ratio is None:
        result["stability_ok"] = False
    elif want_motion in ("growing", "shrinking"):
        result["stability_ok"] = bool(motion["area_reversals"] <= 0.2)
    else:
        result["stability_ok"] = bool(motion["area_cv"] <= max_area_cv)

    checks = [result[k] for k in ("colour_ok", "shape_ok", "motion_ok", "background_ok", "stability_ok")]
    result["all_ok"] = all(c for c in checks if c is not None)
    return result


def caption_report(video: torch.Tensor, caption: str) -> Tuple[Dict[str, Any], bool]:
    """The caption-check feature: ``(report, passed)`` for an IMAGE ``video [F >= 2, H, W, 3]`` — the
    :func:`evaluate` figures rounded to 3 digits (without the per-frame areas) and ``all_ok``."""
    if video is None or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 2:
        raise OptionError("images", "an IMAGE batch [frames >= 2, height, width, 3]")
    if all(v is None for v in GRAMMAR.parse(caption).values()):
        raise OptionError("caption", "a caption naming a colour, shape, motion or background of the grammar")
    result = evaluate(video, caption)
    report = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "areas"}
    return report, bool(result["all_ok"])
