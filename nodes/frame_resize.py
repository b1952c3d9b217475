"""Frame resize node: every frame of an IMAGE batch to a new size (crop, pad or stretch)."""

from typing import Any, Dict, Tuple

import torch

from ..pipelines.video import frames as fr
from . import _types as T
from ._errors import node_inputs

CATEGORY = "FrameFold/video/frames"
_IMAGES_TOOLTIP = "Video frames, [frames, height, width, channels] in 0..1."


class FrameFoldResizeFrames:
    """Resize every frame (0 = keep that side / follow the aspect ratio)."""

    DESCRIPTION = "Resizes all frames. With both sizes set: crop fills and centre-crops, pad fits and pads black, stretch ignores aspect."
    CATEGORY = CATEGORY
    FUNCTION = "resize"
    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Frames, target size, fit mode and filter."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": _IMAGES_TOOLTIP}),
                "width": (
                    "INT",
                    {
                        "default": 512,
                        "min": 0,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Target width (0 = keep, or follow the aspect ratio if height is set).",
                    },
                ),
                "height": (
                    "INT",
                    {
                        "default": 512,
                        "min": 0,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Target height (0 = keep, or follow the aspect ratio if width is set).",
                    },
                ),
                "mode": (
                    list(fr.RESIZE_MODES),
                    {
                        "default": "crop",
                        "tooltip": "crop = fill and centre-crop, pad = fit and pad black, stretch = exact size ignoring aspect.",
                    },
                ),
                "interpolation": (
                    list(fr.INTERPOLATIONS),
                    {"default": "auto", "tooltip": "Filter: auto = area when shrinking, bilinear when enlarging."},
                ),
            }
        }

    def resize(
        self, images: torch.Tensor, width: int, height: int, mode: str = "crop", interpolation: str = "auto"
    ) -> Tuple[torch.Tensor]:
        """The resized frames."""
        with node_inputs(self, other_errors="width"):
            return (fr.resize_frames(images, width, height, mode=mode, interpolation=interpolation),)


NODE_CLASS_MAPPINGS = {"FrameFoldResizeFrames": FrameFoldResizeFrames}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldResizeFrames": "FrameFold Resize Frames"}
