"""Video decode/encode with PyAV and frame utilities.

``read_video`` / ``write_video`` / ``read_video_metadata`` live in ``io``; frame-batch helpers in
``frames``; the provenance record in ``provenance``. PyAV and OpenCV are imported lazily (inside the
functions that need them), so importing this package stays cheap.
"""

from .frames import concat_videos, pad_to_even, resize_frames, reverse_frames, select_frames, video_info
from .io import (
    FORMATS,
    VIDEO_EXTENSIONS,
    VideoReadError,
    read_video,
    read_video_metadata,
    write_video,
    write_video_numbered,
)
from .provenance import build_provenance

__all__ = [
    "FORMATS",
    "VIDEO_EXTENSIONS",
    "VideoReadError",
    "build_provenance",
    "concat_videos",
    "pad_to_even",
    "read_video",
    "read_video_metadata",
    "resize_frames",
    "reverse_frames",
    "select_frames",
    "video_info",
    "write_video",
    "write_video_numbered",
]
