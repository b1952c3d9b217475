"""Video loading node: a video file (or PNG-frame folder) in the input folder -> an IMAGE batch."""

from __future__ import annotations

from typing import Any

import torch

from ..pipelines.video import VideoReadError, read_video
from ..pipelines.video.frames import RESIZE_MODES
from . import _types as T
from ._errors import NodeInputError
from ._io_files import io_file_changed, io_file_verdict, resolve_io_file
from ._video_files import VIDEO_KIND, list_input_videos

CATEGORY = "FrameFold/video"


class FrameFoldLoadVideo:
    """Load a video file from the input folder as an IMAGE batch (one image per frame)."""

    DESCRIPTION = (
        "Decodes a video (mp4, webm, mkv, mov, avi, gif) from the input folder into frames. "
        "Colour is converted with the file's tagged matrix and range (untagged: BT.709 for HD, BT.601 below)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (T.IMAGE, T.INT, T.FLOAT)
    RETURN_NAMES = ("images", "frame_count", "fps")
    OUTPUT_TOOLTIPS = (
        "The selected frames, [frames, height, width, 3] in 0..1.",
        "How many frames were loaded.",
        "Frame rate of the loaded frames: the file's fps divided by select_every_nth (the clip keeps its duration).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Re-lists the input folder on every call so uploaded files validate at once."""
        return {
            "required": {
                "video": (
                    list_input_videos(),
                    {"video_upload": True, "tooltip": "Video file in the input folder (upload with the button)."},
                ),
                "start_frame": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 1_000_000,
                        "step": 1,
                        "tooltip": "First frame to load (0 = the first frame of the file).",
                    },
                ),
                "select_every_nth": (
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": 1000,
                        "step": 1,
                        "tooltip": "Keep every n-th frame from start_frame (1 = every frame).",
                    },
                ),
                "max_frames": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 100_000,
                        "step": 1,
                        "tooltip": "Load at most this many frames (0 = all).",
                    },
                ),
                "width": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Resize to this width (0 = keep; follows the aspect ratio if only height is set).",
                    },
                ),
                "height": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Resize to this height (0 = keep; follows the aspect ratio if only width is set).",
                    },
                ),
                "resize_mode": (
                    list(RESIZE_MODES),
                    {
                        "default": "crop",
                        "tooltip": "When both width and height are set: crop = fill and centre-crop, pad = fit and pad black, stretch = ignore aspect.",
                    },
                ),
            }
        }

    @classmethod
    def IS_CHANGED(cls, video: str, **kwargs: Any) -> str | float:
        """Re-run when the file changes on disk."""
        return io_file_changed(cls.__name__, "video", video, VIDEO_KIND)

    @classmethod
    def VALIDATE_INPUTS(cls, video: str, **kwargs: Any) -> bool | str:
        """Accept any existing video in the input folder (including one uploaded after the list was sent)."""
        return io_file_verdict(cls.__name__, "video", video, VIDEO_KIND)

    def load(
        self,
        video: str,
        start_frame: int = 0,
        select_every_nth: int = 1,
        max_frames: int | None = 0,
        width: int = 0,
        height: int = 0,
        resize_mode: str = "crop",
    ) -> tuple[torch.Tensor, int, float]:
        """Decode the selected frames."""
        path = resolve_io_file(type(self).__name__, "video", video, VIDEO_KIND)
        size = (width, height) if (width or height) else None
        try:
            frames, fps, _info = read_video(
                path,
                start=start_frame,
                stride=select_every_nth,
                max_frames=max_frames or None,
                size=size,
                resize_mode=resize_mode,
            )
        except VideoReadError as err:
            raise NodeInputError(type(self).__name__, "video", f"a readable video: {err}") from err
        return (frames, frames.shape[0], fps / select_every_nth)


NODE_CLASS_MAPPINGS = {"FrameFoldLoadVideo": FrameFoldLoadVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldLoadVideo": "FrameFold Load Video"}
