"""Frame-batch nodes: select, concatenate, reverse and inspect IMAGE batches (videos) along time.

Resizing frames is in ``nodes/frame_resize.py``.
"""

import json
from typing import Any, Dict, Tuple

import torch

from ..pipelines.video import frames as fr
from . import _types as T
from ._errors import node_inputs

CATEGORY = "FrameFold/video/frames"
_IMAGES_TOOLTIP = "Video frames, [frames, height, width, channels] in 0..1."


class FrameFoldSelectFrames:
    """Keep a range of frames: from ``start``, every ``stride``-th, at most ``count``."""

    DESCRIPTION = (
        "Selects frames start, start+stride, ... (at most count; 0 = all). A negative start counts from the end."
    )
    CATEGORY = CATEGORY
    FUNCTION = "select"
    RETURN_TYPES = (T.IMAGE, T.INT)
    RETURN_NAMES = ("images", "frame_count")

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Frames and the selection."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": _IMAGES_TOOLTIP}),
                "start": (
                    "INT",
                    {
                        "default": 0,
                        "min": -100_000,
                        "max": 100_000,
                        "tooltip": "First frame index (negative = from the end, -1 = last frame).",
                    },
                ),
                "count": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 100_000,
                        "tooltip": "How many frames to keep at most (0 = all until the end).",
                    },
                ),
                "stride": (
                    "INT",
                    {"default": 1, "min": 1, "max": 1000, "tooltip": "Keep every n-th frame (1 = consecutive frames)."},
                ),
            }
        }

    def select(self, images: torch.Tensor, start: int = 0, count: int = 0, stride: int = 1) -> Tuple[torch.Tensor, int]:
        """The selected frames and their count."""
        with node_inputs(self, other_errors="start"):
            out = fr.select_frames(images, start, count, stride)
        return (out, out.shape[0])


class FrameFoldConcatVideos:
    """Play one video after another; the second is resized to the first one's size."""

    DESCRIPTION = "Concatenates two frame batches in time. Also outputs join_index, the first frame of the second clip (for seam metrics)."
    CATEGORY = CATEGORY
    FUNCTION = "concat"
    RETURN_TYPES = (T.IMAGE, T.INT)
    RETURN_NAMES = ("images", "join_index")

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Two clips and how to fit the second to the first."""
        return {
            "required": {
                "images_a": (T.IMAGE, {"tooltip": "First clip."}),
                "images_b": (T.IMAGE, {"tooltip": "Second clip, appended after the first."}),
                "resize_mode": (
                    list(fr.RESIZE_MODES),
                    {
                        "default": "crop",
                        "tooltip": "How a second clip of another size is fitted: crop, pad or stretch.",
                    },
                ),
            }
        }

    def concat(
        self, images_a: torch.Tensor, images_b: torch.Tensor, resize_mode: str = "crop"
    ) -> Tuple[torch.Tensor, int]:
        """Frames of a then b, and the index where b starts."""
        with node_inputs(self, other_errors="images_b"):
            out = fr.concat_videos([images_a, images_b], mode=resize_mode)
        return (out, images_a.shape[0])


class FrameFoldReverseFrames:
    """Reverse the frame order (play backwards)."""

    DESCRIPTION = "Returns the frames in reverse order."
    CATEGORY = CATEGORY
    FUNCTION = "reverse"
    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Just the frames."""
        return {"required": {"images": (T.IMAGE, {"tooltip": _IMAGES_TOOLTIP})}}

    def reverse(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        """The reversed frames."""
        with node_inputs(self, other_errors="images"):
            return (fr.reverse_frames(images),)


class FrameFoldVideoInfo:
    """Frame count, size and duration of a frame batch, shown on the node."""

    DESCRIPTION = "Reports frame count, width, height and (with fps) the duration; also shows them on the node."
    CATEGORY = CATEGORY
    FUNCTION = "info"
    RETURN_TYPES = (T.INT, T.INT, T.INT, T.STRING)
    RETURN_NAMES = ("frame_count", "width", "height", "info_json")

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Frames and an optional frame rate for the duration."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": _IMAGES_TOOLTIP}),
                "fps": (
                    "FLOAT",
                    {
                        "default": 8.0,
                        "min": 0.0,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Frame rate used to compute the duration (0 = no duration).",
                    },
                ),
            }
        }

    def info(self, images: torch.Tensor, fps: float = 8.0) -> Dict[str, Any]:
        """The numbers, a JSON string, and the text preview."""
        with node_inputs(self, other_errors="images"):
            data = fr.video_info(images, fps or None)
        text = json.dumps(data)
        return {"ui": {"text": [text]}, "result": (data["frames"], data["width"], data["height"], text)}


_NODES = (
    FrameFoldSelectFrames,
    FrameFoldConcatVideos,
    FrameFoldReverseFrames,
    FrameFoldVideoInfo,
)
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldSelectFrames": "FrameFold Select Frames",
    "FrameFoldConcatVideos": "FrameFold Concatenate Videos",
    "FrameFoldReverseFrames": "FrameFold Reverse Frames",
    "FrameFoldVideoInfo": "FrameFold Video Info",
}
