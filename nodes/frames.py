"""Frame-batch nodes: select, concatenate, resize, reverse, and inspect IMAGE batches (videos)."""

import json

from ..pipelines.video import frames as fr
from . import _types as T
from ._errors import NodeInputError

CATEGORY = "FrameFold/video/frames"
_IMAGES_TOOLTIP = "Video frames, [frames, height, width, channels] in 0..1."


def _call(node_class, input_name, fn, *args, **kwargs):
    """Run a frame utility, turning its ValueError into a NodeInputError naming ``input_name``."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        raise NodeInputError(node_class, input_name, str(err)) from err


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
    def INPUT_TYPES(cls):
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

    def select(self, images, start=0, count=0, stride=1):
        """The selected frames and their count."""
        out = _call(type(self).__name__, "start", fr.select_frames, images, start, count, stride)
        return (out, out.shape[0])


class FrameFoldConcatVideos:
    """Play one video after another; the second is resized to the first one's size."""

    DESCRIPTION = "Concatenates two frame batches in time. Also outputs join_index, the first frame of the second clip (for seam metrics)."
    CATEGORY = CATEGORY
    FUNCTION = "concat"
    RETURN_TYPES = (T.IMAGE, T.INT)
    RETURN_NAMES = ("images", "join_index")

    @classmethod
    def INPUT_TYPES(cls):
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

    def concat(self, images_a, images_b, resize_mode="crop"):
        """Frames of a then b, and the index where b starts."""
        out = _call(type(self).__name__, "images_b", fr.concat_videos, [images_a, images_b], mode=resize_mode)
        return (out, images_a.shape[0])


class FrameFoldResizeFrames:
    """Resize every frame (0 = keep that side / follow the aspect ratio)."""

    DESCRIPTION = "Resizes all frames. With both sizes set: crop fills and centre-crops, pad fits and pads black, stretch ignores aspect."
    CATEGORY = CATEGORY
    FUNCTION = "resize"
    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
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

    def resize(self, images, width, height, mode="crop", interpolation="auto"):
        """The resized frames."""
        return (
            _call(
                type(self).__name__,
                "width",
                fr.resize_frames,
                images,
                width,
                height,
                mode=mode,
                interpolation=interpolation,
            ),
        )


class FrameFoldReverseFrames:
    """Reverse the frame order (play backwards)."""

    DESCRIPTION = "Returns the frames in reverse order."
    CATEGORY = CATEGORY
    FUNCTION = "reverse"
    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        """Just the frames."""
        return {"required": {"images": (T.IMAGE, {"tooltip": _IMAGES_TOOLTIP})}}

    def reverse(self, images):
        """The reversed frames."""
        return (_call(type(self).__name__, "images", fr.reverse_frames, images),)


class FrameFoldVideoInfo:
    """Frame count, size and duration of a frame batch, shown on the node."""

    DESCRIPTION = "Reports frame count, width, height and (with fps) the duration; also shows them on the node."
    CATEGORY = CATEGORY
    FUNCTION = "info"
    RETURN_TYPES = (T.INT, T.INT, T.INT, T.STRING)
    RETURN_NAMES = ("frame_count", "width", "height", "info_json")

    @classmethod
    def INPUT_TYPES(cls):
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

    def info(self, images, fps=8.0):
        """The numbers, a JSON string, and the text preview."""
        data = _call(type(self).__name__, "images", fr.video_info, images, fps or None)
        text = json.dumps(data)
        return {"ui": {"text": [text]}, "result": (data["frames"], data["width"], data["height"], text)}


_NODES = (
    FrameFoldSelectFrames,
    FrameFoldConcatVideos,
    FrameFoldResizeFrames,
    FrameFoldReverseFrames,
    FrameFoldVideoInfo,
)
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldSelectFrames": "FrameFold Select Frames",
    "FrameFoldConcatVideos": "FrameFold Concatenate Videos",
    "FrameFoldResizeFrames": "FrameFold Resize Frames",
    "FrameFoldReverseFrames": "FrameFold Reverse Frames",
    "FrameFoldVideoInfo": "FrameFold Video Info",
}
