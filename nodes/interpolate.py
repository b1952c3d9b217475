"""Frame interpolation nodes: load a RIFE model, interpolate an IMAGE batch (optical flow or RIFE)."""

from typing import Any, Dict, Optional, Tuple

import torch

from ..pipelines.interpolation import (
    DEFAULT_SCENE_CUT_THRESHOLD,
    METHODS,
    RIFE_SCALES,
    InterpolationOptions,
    interpolate_video,
)
from ..pipelines.interpolation.ifnet import IFNet
from ..pipelines.loading.rife import check_rife_file, load_rife
from . import _types as T
from ._comfy import with_host_progress
from ._errors import node_inputs
from ._folders import list_models
from .loaders import load_input_file, resolve_input_file, validate_model_file

CATEGORY = "FrameFold/interpolation"
FF_INTERPOLATION_MODEL = "FF_INTERPOLATION_MODEL"  # pipelines.interpolation.ifnet.IFNet
RIFE_SCALE_CHOICES = [str(scale) for scale in RIFE_SCALES]  # combo strings: "0.25" .. "4.0"


class FrameFoldLoadFrameInterpolationModel:
    """Load a RIFE 4.7 IFNet (rife47.pth, rife49.pth, Practical-RIFE flownet) from ``frame_interpolation``."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """A combo over the frame_interpolation files."""
        return {
            "required": {
                "model_name": (
                    list_models("frame_interpolation"),
                    {"tooltip": "RIFE 4.7 file in the frame_interpolation folder (rife47.pth, rife49.pth)."},
                ),
            }
        }

    RETURN_TYPES = (FF_INTERPOLATION_MODEL,)
    RETURN_NAMES = ("interpolation_model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads a RIFE 4.7 frame-interpolation model (fp32); other RIFE versions are refused by name."

    @classmethod
    def VALIDATE_INPUTS(cls, model_name: str) -> "bool | str":
        """The file must be a RIFE model (checked from its header, before anything runs)."""
        return validate_model_file(cls.__name__, "model_name", "frame_interpolation", model_name, check_rife_file)

    def load(self, model_name: str) -> Tuple[IFNet]:
        """Read the file and build the IFNet."""
        path = resolve_input_file(type(self).__name__, "model_name", "frame_interpolation", model_name)
        return (load_input_file(type(self).__name__, "model_name", load_rife, path),)


class FrameFoldInterpolateFrames:
    """Make in-between frames: (N - 1) x multiplier + 1 frames, first and last kept exactly."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Frames, method, multiplier or target fps, scene-cut threshold, RIFE options."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The frames to interpolate, [frames, height, width, channels]."}),
                "method": (
                    list(METHODS),
                    {"default": "flow", "tooltip": "flow: OpenCV DIS optical flow, no weights. rife: a RIFE model."},
                ),
                "multiplier": (
                    T.INT,
                    {
                        "default": 2,
                        "min": 1,
                        "max": 16,
                        "tooltip": "N frames -> (N - 1) x multiplier + 1 frames (ignored when target_fps > 0).",
                    },
                ),
                "fps": (T.FLOAT, {"default": 8.0, "min": 0.01, "max": 240.0, "step": 0.01, "tooltip": "Input fps."}),
                "target_fps": (
                    T.FLOAT,
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "0 = use multiplier. Else round((N - 1) x target / fps) + 1 frames over the same "
                        "duration; the fps output is the exact rate that keeps the duration.",
                    },
                ),
                "scene_cut_threshold": (
                    T.FLOAT,
                    {
                        "default": DEFAULT_SCENE_CUT_THRESHOLD,
                        "min": 0.0,
                        "max": 2.0,
                        "step": 0.01,
                        "tooltip": "Luma-histogram distance (0..2) above which a pair is a cut: its in-between "
                        "frames duplicate the nearer frame instead of blending. 2 = never.",
                    },
                ),
            },
            "optional": {
                "interpolation_model": (
                    FF_INTERPOLATION_MODEL,
                    {"tooltip": "For method rife: a model from FrameFold Load Frame Interpolation Model."},
                ),
                "rife_scale": (
                    RIFE_SCALE_CHOICES,
                    {"default": "1.0", "tooltip": "RIFE flow resolution: 1.0 up to ~1080p, 0.5 for 4K."},
                ),
                "rife_ensemble": (
                    T.BOOLEAN,
                    {"default": False, "tooltip": "RIFE: also run the reversed pair and average (2x time)."},
                ),
            },
        }

    RETURN_TYPES = (T.IMAGE, T.INT, T.FLOAT)
    RETURN_NAMES = ("images", "frame_count", "fps")
    OUTPUT_TOOLTIPS = ("The interpolated frames.", "Their number.", "Their frame rate (wire it into Save Video).")
    FUNCTION = "interpolate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Frame interpolation pair by pair (memory flat in frame count); progress per frame pair."

    @with_host_progress
    def interpolate(
        self,
        images: torch.Tensor,
        method: str,
        multiplier: int,
        fps: float,
        target_fps: float = 0.0,
        scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
        interpolation_model: Optional[IFNet] = None,
        rife_scale: str = "1.0",
        rife_ensemble: bool = False,
    ) -> Tuple[torch.Tensor, int, float]:
        """Widgets -> InterpolationOptions -> interpolate_video -> (frames, their count, their fps)."""
        with node_inputs(self, other_errors="rife_scale"):
            scale = float(rife_scale)
        with node_inputs(self, {"model": "interpolation_model"}):
            options = InterpolationOptions(
                method=method,
                multiplier=multiplier,
                fps=float(fps),
                target_fps=float(target_fps),
                scene_cut_threshold=float(scene_cut_threshold),
                rife_scale=scale,
                rife_ensemble=bool(rife_ensemble),
            )
            frames, out_fps = interpolate_video(images, options, model=interpolation_model)
        return (frames, frames.shape[0], out_fps)


NODE_CLASS_MAPPINGS = {
    "FrameFoldLoadFrameInterpolationModel": FrameFoldLoadFrameInterpolationModel,
    "FrameFoldInterpolateFrames": FrameFoldInterpolateFrames,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLoadFrameInterpolationModel": "FrameFold Load Frame Interpolation Model",
    "FrameFoldInterpolateFrames": "FrameFold Interpolate Frames",
}
