"""Procedural caption videos (the default model's training data) and the caption checker, as nodes."""

import json
from typing import Any, Dict, Tuple

import torch

from ..pipelines import synthetic
from ..pipelines.metrics import evaluator
from . import _types as T
from ._errors import node_inputs

CATEGORY = "FrameFold/synthetic"


class FrameFoldSyntheticVideo:
    """Render the procedural video a caption describes (what the embedded default model was trained on)."""

    DESCRIPTION = (
        "Draws a coloured shape moving over a background, from a caption such as 'a red circle moving left on a "
        "black background'. Colours: "
        + ", ".join(synthetic.GRAMMAR.colours)
        + "; shapes: "
        + ", ".join(synthetic.GRAMMAR.shapes)
        + "; motions: "
        + ", ".join(synthetic.GRAMMAR.motions)
        + "; backgrounds: "
        + ", ".join(synthetic.GRAMMAR.backgrounds)
        + ". The seed picks the positions and sizes."
    )
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = (T.IMAGE, T.STRING)
    RETURN_NAMES = ("images", "caption")

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Caption, seed, frame count and size."""
        return {
            "required": {
                "caption": (
                    T.STRING,
                    {
                        "default": "a red circle moving left on a black background",
                        "multiline": False,
                        "tooltip": "What to draw: a colour, a shape, a motion and a background from the grammar.",
                    },
                ),
                "seed": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": T.MAX_SEED,
                        "tooltip": "Seed of the random start position, travel and size.",
                    },
                ),
                "frames": (
                    T.INT,
                    {
                        "default": 16,
                        "min": 2,
                        "max": 256,
                        "tooltip": "Number of frames (the motion spans the whole clip).",
                    },
                ),
                "size": (
                    T.INT,
                    {
                        "default": 64,
                        "min": 32,
                        "max": 1024,
                        "step": 8,
                        "tooltip": "Width and height in pixels (positions and sizes scale with it).",
                    },
                ),
            }
        }

    def render(self, caption: str, seed: int, frames: int = 16, size: int = 64) -> Tuple[torch.Tensor, str]:
        """IMAGE [frames, size, size, 3] and the caption it was rendered from."""
        with node_inputs(self, other_errors="caption"):
            scene = synthetic.scene_from_caption(caption, int(seed), frames=int(frames), size=int(size))
        return (torch.from_numpy(synthetic.render_scene(scene)), caption)


class FrameFoldCaptionCheck:
    """Check a video against a grammar caption with the no-human evaluator (colour, motion, background, stability)."""

    DESCRIPTION = (
        "Segments the saturated foreground and checks that its colour, its motion (centroid travel or area trend) "
        "and the background match the caption, and that its area is stable. Shows a JSON report."
    )
    CATEGORY = CATEGORY
    FUNCTION = "check"
    OUTPUT_NODE = True
    RETURN_TYPES = (T.STRING, T.BOOLEAN)
    RETURN_NAMES = ("report_json", "passed")

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The video and its caption."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The video to check, [frames, height, width, 3] in 0..1."}),
                "caption": (
                    T.STRING,
                    {
                        "default": "a red circle moving left on a black background",
                        "tooltip": "The caption (from the default model's grammar) the video should show.",
                    },
                ),
            }
        }

    def check(self, images: torch.Tensor, caption: str) -> Dict[str, Any]:
        """The report as JSON (also shown on the node) and whether every check passed."""
        with node_inputs(self):
            report, passed = evaluator.caption_report(images, caption)
        text = json.dumps(report)
        return {"ui": {"text": [text]}, "result": (text, passed)}


NODE_CLASS_MAPPINGS = {
    "FrameFoldSyntheticVideo": FrameFoldSyntheticVideo,
    "FrameFoldCaptionCheck": FrameFoldCaptionCheck,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldSyntheticVideo": "FrameFold Synthetic Video",
    "FrameFoldCaptionCheck": "FrameFold Caption Check",
}
