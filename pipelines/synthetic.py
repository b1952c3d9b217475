"""Procedural videos with captions: the training data (and test oracle) of the embedded default model.

A *scene* is one coloured shape moving over a background for 16 frames at 64x64. Every scene has a
caption built from a small grammar, e.g. ``"a red circle moving left on a black background"``, and the
caption can be parsed back into the scene's attributes (``GRAMMAR.parse``), which is what the
no-human evaluator (``pipelines.metrics.evaluator``) checks generated videos against.

The palette is chosen to be easy to tell apart: six fully saturated foreground colours 60 degrees
apart in hue, and achromatic backgrounds (black, white, gray, a dark-to-light vertical gradient), so
the foreground is simply "the saturated pixels" and its colour is a hue.

Rendering is numpy + OpenCV: the shape is drawn as an anti-aliased sub-pixel mask (1/16 px
positions) and alpha-blended over the background. All randomness comes from one seeded
``numpy.random.Generator``; the same seed gives the same bytes.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

SeedOrRng = Union[int, np.random.Generator]

FRAMES = 16
SIZE = 64

# Foreground colours, RGB 0..1. Saturated and 60 degrees apart in hue.
COLOURS: Dict[str, Tuple[float, float, float]] = {
    "red": (0.95, 0.10, 0.10),
    "yellow": (0.95, 0.90, 0.10),
    "green": (0.10, 0.80, 0.15),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.15, 0.25, 1.00),
    "magenta": (0.90, 0.10, 0.90),
}

SHAPES = ("circle", "square", "triangle")

# Motion word(s) as they appear in captions.
MOTIONS: Dict[str, str] = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "growing": "growing",
    "shrinking": "shrinking",
}

# Backgrounds: name -> (top grey level, bottom grey level); plain colours have top == bottom.
BACKGROUNDS: Dict[str, Tuple[float, float]] = {
    "black": (0.0, 0.0),
    "white": (1.0, 1.0),
    "gray": (0.5, 0.5),
    "gradient": (0.08, 0.92),
}

# Growing/shrinking objects sit within this many pixels (at 64x64) of the frame's centre.
GROW_JITTER = 4.0

TEMPLATES = (
    "a {colour} {shape} {motion} on a {background} background",
    "{colour} {shape} {motion} on {background}",
)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one clip: what it shows and where the object is over time.

    ``start``/``end`` are the object's centre in pixels (x, y) at the first and last frame;
    ``start_size``/``end_size`` its radius (half the width) at the first and last frame.
    """

    colour: str
    shape: str
    motion: str
    background: str
    start: Tuple[float, float] = (32.0, 32.0)
    end: Tuple[float, float] = (32.0, 32.0)
    start_size: float = 9.0
    end_size: float = 9.0
    frames: int = FRAMES
    size: int = SIZE
    template: int = 0

    @property
    def caption(self) -> str:
        """The caption of this scene (the grammar's template ``self.template``)."""
        return GRAMMAR.caption(self.colour, self.shape, self.motion, self.background, self.template)


@dataclass(frozen=True)
class Grammar:
    """The caption vocabulary: colours, shapes, motions, backgrounds and the sentence templates."""

    colours: Tuple[str, ...] = tuple(COLOURS)
    shapes: Tuple[str, ...] = SHAPES
    motions: Tuple[str, ...] = tuple(MOTIONS)
    backgrounds: Tuple[str, ...] = tuple(BACKGROUNDS)
    templates: Tuple[str, ...] = TEMPLATES
    extra_words: Tuple[str, ...] = field(default=("a", "on", "background", "moving"))

    def caption(self, colour: str, shape: str, motion: str, background: str, template: int = 0) -> str:
        """Fill template number ``template`` with the given attributes."""
        return self.templates[template].format(
            colour=colour, shape=shape, motion=MOTIONS[motion], background=background
        )

    def vocabulary(self) -> Tuple[str, ...]:
        """Every word a caption can contain, in a fixed order (this order defines the word ids)."""
        words = list(self.extra_words) + list(self.colours) + list(self.shapes)
        for phrase in MOTIONS.values():
            words += phrase.split()
        words += list(self.backgrounds)
        for template in self.templates:
            words += [w for w in template.split() if not w.startswith("{")]
        seen, ordered = set(), []
        for word in words:
            if word not in seen:
                seen.add(word)
                ordered.append(word)
        return tuple(ordered)

    def parse(self, caption: str) -> Dict[str, Optional[str]]:
        """Attributes named in ``caption``: {"colour", "shape", "motion", "background"} (None if absent).

        Matching is by whole words, case-insensitive, punctuation ignored; the first match wins.
        """
        words = "".join(c if c.isalnum() else " " for c in caption.lower()).split()

        def first(names):
            return next((w for w in words if w in names), None)

        return {
            "colour": first(self.colours),
            "shape": first(self.shapes),
            "motion": first(self.motions),
            "background": first(self.backgrounds),
        }

    def combinations(self) -> List[Tuple[str, str, str, str]]:
        """Every (colour, shape, motion, background) tuple the grammar can describe."""
        return [(c, s, m, b) for c in self.colours for s in self.shapes for m in self.motions for b in self.backgrounds]


GRAMMAR = Grammar()


def _as_rng(seed_or_rng: SeedOrRng) -> np.random.Generator:
    """A numpy Generator from an int seed (or the Generator itself)."""
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(int(seed_or_rng))


def layout_scene(
    colour: str,
    shape: str,
    motion: str,
    background: str,
    seed_or_rng: SeedOrRng,
    *,
    frames: int = FRAMES,
    size: int = SIZE,
    template: int = 0,
) -> Scene:
    """Random start/end positions and sizes for the given attributes (seeded).

    Translations travel 26-34 px (of 64) along their axis at a constant speed, with the object kept
    inside the frame; growing/shrinking keeps the centre fixed, within ``GROW_JITTER`` px of the frame's
    centre, and changes the radius between 5 and 15 px.

    Why near the centre: at t = T a zero-terminal-SNR model must predict the mean clip of the caption. With
    centres anywhere, a growing object's mean clip is a faint smear whose contrast changes from frame to
    frame, which per-frame group norms cannot produce; near the centre the mean is a sharp disc that grows,
    like the translations' moving band.
    """
    rng = _as_rng(seed_or_rng)
    scale = size / SIZE
    if motion in ("growing", "shrinking"):
        small, large = rng.uniform(4.5, 6.0) * scale, rng.uniform(13.5, 15.5) * scale
        centre = tuple(size / 2 + rng.uniform(-GROW_JITTER, GROW_JITTER, 2) * scale)
        sizes = (small, large) if motion == "growing" else (large, small)
        return Scene(colour, shape, motion, background, centre, centre, *sizes, frames, size, template)
    radius = rng.uniform(7.5, 10.5) * scale
    travel = rng.uniform(26.0, 34.0) * scale
    margin = radius + 1.5
    along_start = rng.uniform(margin, size - margin - travel)
    across = rng.uniform(margin, size - margin)
    forward = motion in ("right", "down")
    a0, a1 = (along_start, along_start + travel) if forward else (along_start + travel, along_start)
    if motion in ("left", "right"):
        start, end = (a0, across), (a1, across)
    else:
        start, end = (across, a0), (across, a1)
    return Scene(colour, shape, motion, background, start, end, radius, radius, frames, size, template)


def random_scene(
    seed_or_rng: SeedOrRng,
    grammar: Grammar = GRAMMAR,
    *,
    frames: int = FRAMES,
    size: int = SIZE,
    templates: Optional[Sequence[int]] = None,
) -> Scene:
    """A uniformly random scene of the grammar (attributes, layout and template all seeded)."""
    rng = _as_rng(seed_or_rng)
    colour = grammar.colours[rng.integers(len(grammar.colours))]
    shape = grammar.shapes[rng.integers(len(grammar.shapes))]
    motion = grammar.motions[rng.integers(len(grammar.motions))]
    background = grammar.backgrounds[rng.integers(len(grammar.backgrounds))]
    choices = range(len(grammar.templates)) if templates is None else templates
    template = int(rng.choice(list(choices)))
    return layout_scene(colour, shape, motion, background, rng, frames=frames, size=size, template=template)


def scene_from_caption(caption: str, seed_or_rng: SeedOrRng, *, frames: int = FRAMES, size: int = SIZE) -> Scene:
    """A scene showing what ``caption`` says (a random layout); raises ValueError if an attribute is missing."""
    parsed = GRAMMAR.parse(caption)
    missing = [k for k, v in parsed.items() if v is None]
    if missing:
        raise ValueError(
            f"caption {caption!r} names no {', '.join(missing)}; known words: {' '.join(GRAMMAR.vocabulary())}"
        )
    colour, shape, motion, background = (str(parsed[k]) for k in ("colour", "shape", "motion", "background"))
    return layout_scene(colour, shape, motion, background, seed_or_rng, frames=frames, size=size)


def background_image(name: str, size: int = SIZE) -> np.ndarray:
    """The background ``name`` as float32 [H, W, 3] in 0..1 (a vertical grey ramp for the gradient)."""
    top, bottom = BACKGROUNDS[name]
    ramp = np.linspace(top, bottom, size, dtype=np.float32)
    return np.broadcast_to(ramp[:, None, None], (size, size, 3)).copy()


def _shape_points(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Polygon vertices (float pixels) of a square or an upward triangle of half-width ``r``."""
    if shape == "square":
        return np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    if shape == "triangle":
        # Equilateral, centred on its centroid, with the same width as a circle of radius r... scaled up
        # a little so its area is close to the square's and circle's.
        half = r * 1.15
        h = half * np.sqrt(3.0)
        return np.array([[cx, cy - 2 * h / 3], [cx + half, cy + h / 3], [cx - half, cy + h / 3]])
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


_SHIFT = 4  # sub-pixel bits for OpenCV drawing (1/16 px)


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int = SIZE) -> np.ndarray:
    """Anti-aliased coverage mask float32 [H, W] in 0..1 of one shape centred at (cx, cy)."""
    import cv2

    canvas = np.zeros((size, size), np.uint8)
    one = 1 << _SHIFT
    # OpenCV's pixel centres are at integer coordinates; ours at +0.5 (so a 64 px frame spans 0..64).
    fx, fy = cx - 0.5, cy - 0.5
    if shape == "circle":
        cv2.circle(
            canvas,
            (int(round(fx * one)), int(round(fy * one))),
            int(round(r * one)),
            255,
            thickness=-1,
            lineType=cv2.LINE_AA,
            shift=_SHIFT,
        )
    else:
        pts = _shape_points(shape, fx, fy, r)
        cv2.fillPoly(canvas, [np.round(pts * one).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return canvas.astype(np.float32) / 255.0


def render_scene(scene: Scene) -> np.ndarray:
    """The scene's video: float32 [F, H, W, 3] in 0..1 (constant-speed position and size ramps)."""
    bg = background_image(scene.background, scene.size)
    colour = np.asarray(COLOURS[scene.colour], np.float32)
    video = np.empty((scene.frames, scene.size, scene.size, 3), np.float32)
    for i, t in enumerate(np.linspace(0.0, 1.0, scene.frames)):
        cx = scene.start[0] + t * (scene.end[0] - scene.start[0])
        cy = scene.start[1] + t * (scene.end[1] - scene.start[1])
        r = scene.start_size + t * (scene.end_size - scene.start_size)
        alpha = shape_mask(scene.shape, cx, cy, r, scene.size)[..., None]
        video[i] = bg * (1.0 - alpha) + colour * alpha
    return video


def random_clip(seed_or_rng: SeedOrRng, grammar: Grammar = GRAMMAR, **kwargs: Any) -> Tuple[np.ndarray, str]:
    """One random (video [F,H,W,3] float32 0..1, caption) pair from a seed."""
    scene = random_scene(seed_or_rng, grammar, **kwargs)
    return render_scene(scene), scene.caption


def random_batch(
    rng: np.random.Generator, count: int, grammar: Grammar = GRAMMAR, **kwargs: Any
) -> Tuple[np.ndarray, List[str], List[Scene]]:
    """``count`` random clips: (videos [N,F,H,W,3] float32, list of captions, list of scenes)."""
    scenes = [random_scene(rng, grammar, **kwargs) for _ in range(count)]
    videos = np.stack([render_scene(s) for s in scenes])
    return videos, [s.caption for s in scenes], scenes


def with_attributes(scene: Scene, **changes: Any) -> Scene:
    """A copy of ``scene`` with some attributes changed (positions untouched)."""
    return replace(scene, **changes)


def all_captions(grammar: Grammar = GRAMMAR, template: int = 0) -> Sequence[str]:
    """Every caption of the grammar with one template (432 with the default grammar)."""
    return [grammar.caption(*combo, template) for combo in grammar.combinations()]
