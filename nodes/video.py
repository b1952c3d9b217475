"""Video file nodes: load a video into an IMAGE batch, save an IMAGE batch as a video."""

import hashlib
import os
import re
import time
from pathlib import Path

from ..pipelines.paths import PathRefused, contained_path
from ..pipelines.video import FORMATS, VIDEO_EXTENSIONS, VideoReadError, build_provenance, read_video, write_video
from ..pipelines.video.frames import RESIZE_MODES
from ..pipelines.video.io import MAX_CRF
from . import _types as T
from ._errors import NodeInputError
from ._folders import io_dir

CATEGORY = "FrameFold/video"
MIME_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif", "png": "image/png"}
_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")
_DATE_TOKEN = re.compile(r"%date:([^%]+)%")


# ------------------------------------------------------------------------------------------ helpers


def list_input_videos():
    """Video files under the input folder as 'sub/dir/name.ext' (hidden files and folders skipped)."""
    base = io_dir("input", create=False)
    names = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                names.append((Path(root) / name).relative_to(base).as_posix())
    return sorted(names)


def resolve_input_video(node_class, name):
    """Absolute path of an input-folder video name (an ' [output]'/' [temp]' annotation picks that folder)."""
    folder = "input"
    match = _ANNOTATION.match(name or "")
    if match:
        name, folder = match.group(1), match.group(2)
    base = io_dir(folder)
    try:
        path = contained_path(base, name) if name else None
    except PathRefused:
        path = None
    if path is None:
        raise NodeInputError(node_class, "video", f"a file name inside the {folder} folder, got {name!r}")
    if not path.is_file():
        raise NodeInputError(
            node_class, "video", f"an existing video file in the {folder} folder ({base}), got {name!r}"
        )
    return path


def _expand_date_tokens(prefix, now=None):
    """Replace ComfyUI's %date:yyyy-MM-dd% style and %year%/%month%/%day%/%hour%/%minute%/%second% tokens."""
    now = now or time.localtime()
    parts = {
        "yyyy": "%Y",
        "yy": "%y",
        "MM": "%m",
        "M": "%m",
        "dd": "%d",
        "d": "%d",
        "hh": "%H",
        "h": "%H",
        "mm": "%M",
        "m": "%M",
        "ss": "%S",
        "s": "%S",
    }

    def date(match):
        """strftime of one %date:...% token."""
        fmt = re.sub(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s", lambda m: parts[m.group(0)], match.group(1))
        return time.strftime(fmt, now)

    prefix = _DATE_TOKEN.sub(date, prefix)
    for token, fmt in (
        ("year", "%Y"),
        ("month", "%m"),
        ("day", "%d"),
        ("hour", "%H"),
        ("minute", "%M"),
        ("second", "%S"),
    ):
        prefix = prefix.replace(f"%{token}%", time.strftime(fmt, now))
    return prefix


def next_save_path(node_class, filename_prefix, extension, folder="output"):
    """(full path, subfolder, filename) for ComfyUI-style '<prefix>_<00001>_<ext>' in the output folder.

    The prefix may contain sub-folders and date tokens and must stay inside the folder. The counter
    is one above the highest existing '<prefix>_<n>_' entry (file or folder) of that sub-folder.
    """
    prefix = _expand_date_tokens(filename_prefix.strip()).replace("\\", "/")
    subfolder, _, base_name = prefix.rpartition("/")
    out = io_dir(folder)
    try:
        target_dir = contained_path(out, subfolder) if base_name and not prefix.startswith("/") else None
    except PathRefused:
        target_dir = None
    if target_dir is None:
        raise NodeInputError(
            node_class,
            "filename_prefix",
            f"a relative name inside the {folder} folder (sub-folders allowed), got {filename_prefix!r}",
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(base_name) + r"_(\d+)_")
    counters = [int(m.group(1)) for m in (pattern.match(p.name) for p in target_dir.iterdir()) if m]
    filename = f"{base_name}_{max(counters, default=0) + 1:05d}_{extension}"
    return target_dir / filename, subfolder, filename


def _file_signature(path):
    """A cheap change marker of a file: size and modification time, hashed."""
    stat = path.stat()
    return hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()


# -------------------------------------------------------------------------------------------- nodes


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
    def INPUT_TYPES(cls):
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
    def IS_CHANGED(cls, video, **kwargs):
        """Re-run when the file changes on disk."""
        try:
            return _file_signature(resolve_input_video(cls.__name__, video))
        except NodeInputError:
            return float("nan")

    @classmethod
    def VALIDATE_INPUTS(cls, video, **kwargs):
        """Accept any existing video in the input folder (including one uploaded after the list was sent)."""
        try:
            resolve_input_video(cls.__name__, video)
        except NodeInputError as err:
            return str(err)
        return True

    def load(self, video, start_frame=0, select_every_nth=1, max_frames=0, width=0, height=0, resize_mode="crop"):
        """Decode the selected frames."""
        path = resolve_input_video(type(self).__name__, video)
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


class FrameFoldSaveVideo:
    """Save an IMAGE batch as mp4 (H.264), webm (VP9), gif or a PNG sequence in the output folder."""

    DESCRIPTION = (
        "Writes the frames as <prefix>_<counter>_.<ext> in the output folder and shows a preview. mp4/webm/png embed the "
        "workflow (drag the file back onto the canvas) and a 'framefold' provenance record (versions, device, seeds). "
        "GIF stores no metadata. A PNG sequence is a folder of frame_00000.png... files."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        """Frames, frame rate, naming, format and quality; hidden graph inputs for the embedded metadata."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The frames to save, [frames, height, width, channels] in 0..1."}),
                "fps": (
                    "FLOAT",
                    {
                        "default": 8.0,
                        "min": 0.01,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Frames per second of the saved video.",
                    },
                ),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "FrameFold/video",
                        "tooltip": "Name prefix; may contain sub-folders and %date:yyyy-MM-dd% tokens. Files are named <prefix>_00001_.<ext>.",
                    },
                ),
                "format": (
                    list(FORMATS),
                    {
                        "default": "mp4",
                        "tooltip": "mp4 = H.264 yuv420p, webm = VP9, gif = 256-colour palette, png = folder of lossless PNG frames.",
                    },
                ),
                "crf": (
                    "INT",
                    {
                        "default": 19,
                        "min": 0,
                        "max": 63,
                        "step": 1,
                        "tooltip": "Constant quality for mp4 (0..51) and webm (0..63): lower = better and larger. Ignored for gif and png.",
                    },
                ),
                "lossless": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "mp4/webm only: mathematically lossless encoding in 4:4:4 (large files, limited player support).",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def save(
        self,
        images,
        fps,
        filename_prefix,
        format="mp4",
        crf=19,
        lossless=False,
        prompt=None,
        extra_pnginfo=None,
        unique_id=None,
    ):
        """Encode the frames and return the canvas preview entries."""
        node = type(self).__name__
        if format not in FORMATS:
            raise NodeInputError(node, "format", f"one of {', '.join(FORMATS)}, got {format!r}")
        if format in MAX_CRF and not 0 <= crf <= MAX_CRF[format]:
            raise NodeInputError(node, "crf", f"0..{MAX_CRF[format]} for {format}, got {crf}")
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            raise NodeInputError(
                node, "images", "an IMAGE batch [frames, height, width, channels] with at least one frame"
            )
        extension = "" if format == "png" else f".{format}"
        path, subfolder, filename = next_save_path(node, filename_prefix, extension)
        metadata = self._metadata(images, fps, format, crf, lossless, prompt, extra_pnginfo, unique_id)
        uses_crf = format in ("mp4", "webm")
        write_video(
            images,
            path,
            format=format,
            fps=fps,
            crf=crf if uses_crf else None,
            lossless=lossless and uses_crf,
            metadata=metadata,
            overwrite=False,
        )
        if format == "png":
            folder = f"{subfolder}/{filename}" if subfolder else filename
            items = [
                {"filename": p.name, "subfolder": folder, "type": "output"} for p in sorted(path.glob("frame_*.png"))
            ]
            return {"ui": {"images": items}}
        item = {"filename": filename, "subfolder": subfolder, "type": "output", "format": MIME_TYPES[format]}
        return {"ui": {"images": [item], "animated": [True]}}

    @staticmethod
    def _metadata(images, fps, format, crf, lossless, prompt, extra_pnginfo, unique_id):
        """ComfyUI's 'prompt' + extra_pnginfo keys ('workflow') + the FrameFold provenance record."""
        metadata = {}
        if prompt is not None:
            metadata["prompt"] = prompt
        for key, value in (extra_pnginfo or {}).items():
            metadata[key] = value
        metadata["framefold"] = build_provenance(
            prompt,
            extra={
                "save_node": unique_id,
                "fps": float(fps),
                "frames": int(images.shape[0]),
                "width": int(images.shape[2]),
                "height": int(images.shape[1]),
                "format": format,
                "crf": crf if format in ("mp4", "webm") else None,
                "lossless": bool(lossless) if format in ("mp4", "webm") else None,
                "tensor_dtype": str(images.dtype).replace("torch.", ""),
            },
        )
        return metadata


NODE_CLASS_MAPPINGS = {"FrameFoldLoadVideo": FrameFoldLoadVideo, "FrameFoldSaveVideo": FrameFoldSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLoadVideo": "FrameFold Load Video",
    "FrameFoldSaveVideo": "FrameFold Save Video",
}
