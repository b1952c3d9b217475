"""Video saving node: an IMAGE batch -> mp4 / webm / gif / PNG sequence in the output folder.

Names are claimed atomically once the file is complete (``pipelines/video/naming.py``), so parallel
runs into one folder never overwrite each other; every setting knowable before compute (format,
crf range of the codec, a prefix inside a writable output folder) is checked at validation.
"""

from __future__ import annotations

from typing import Any

import torch

from ..pipelines.video import FORMATS, build_provenance, write_video_numbered
from ..pipelines.video.io import MAX_CRF
from . import _types as T
from ._errors import NodeInputError
from ._video_files import output_target

CATEGORY = "FrameFold/video"
MIME_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif", "png": "image/png"}


def crf_problem(format: str, crf: int) -> "str | None":
    """Why ``crf`` is out of range for ``format`` (mp4 0..51, webm 0..63), or None."""
    if format in MAX_CRF and isinstance(crf, int) and not 0 <= crf <= MAX_CRF[format]:
        return f"0..{MAX_CRF[format]} for {format}, got {crf}"
    return None


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
    def INPUT_TYPES(cls) -> dict:
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

    @classmethod
    def VALIDATE_INPUTS(cls, **values: object) -> "bool | str":
        """Before compute: crf within the chosen codec's range, a prefix inside a writable output folder."""
        fmt, crf = values.get("format"), values.get("crf")
        if isinstance(fmt, str) and isinstance(crf, int):
            problem = crf_problem(fmt, crf)
            if problem:
                return f"input 'crf': {problem}"
        prefix = values.get("filename_prefix")
        if isinstance(prefix, str):
            try:
                output_target(cls.__name__, prefix)
            except NodeInputError as err:
                return str(err)
        return True

    def save(
        self,
        images: torch.Tensor,
        fps: float,
        filename_prefix: str,
        format: str = "mp4",
        crf: int = 19,
        lossless: bool = False,
        prompt: Any = None,
        extra_pnginfo: dict | None = None,
        unique_id: str | None = None,
    ) -> dict:
        """Encode the frames and return the canvas preview entries."""
        node = type(self).__name__
        if format not in FORMATS:
            raise NodeInputError(node, "format", f"one of {', '.join(FORMATS)}, got {format!r}")
        problem = crf_problem(format, crf)
        if problem:
            raise NodeInputError(node, "crf", problem)
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            raise NodeInputError(
                node, "images", "an IMAGE batch [frames, height, width, channels] with at least one frame"
            )
        target_dir, subfolder, base_name = output_target(node, filename_prefix)
        metadata = self._metadata(images, fps, format, crf, lossless, prompt, extra_pnginfo, unique_id)
        uses_crf = format in ("mp4", "webm")
        path = write_video_numbered(
            images,
            target_dir,
            base_name,
            format=format,
            fps=fps,
            crf=crf if uses_crf else None,
            lossless=lossless and uses_crf,
            metadata=metadata,
        )
        filename = path.name
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


NODE_CLASS_MAPPINGS = {"FrameFoldSaveVideo": FrameFoldSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldSaveVideo": "FrameFold Save Video"}
