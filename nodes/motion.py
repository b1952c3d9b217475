"""Motion module nodes: load an AnimateDiff motion module, attach it to a model."""

import copy
from typing import Any, Dict, Tuple, Union

import torch

from ..pipelines.loading import motion
from ..pipelines.models.bundle import DiffusionModel, attach_motion_module
from ..pipelines.models.motion import MotionModule
from . import _types as T
from ._errors import NodeInputError
from ._folders import list_models
from .loaders import load_input_file, resolve_input_file, validate_model_file

CATEGORY = "FrameFold/motion"
NORM_MODES = ["per_frame", "across_frames"]
NORM_TOOLTIP = (
    "GroupNorm inside the motion modules. per_frame = the AnimateDiff reference code (how the released modules "
    "were trained). across_frames = diffusers' AnimateDiffPipeline, which normalises the whole [b, c, f, h, w] "
    "video jointly (4-23% different per call); pick it to reproduce diffusers' outputs."
)


class FrameFoldLoadMotionModule:
    """Load an AnimateDiff motion module (v1 / v2 / v3 detected from the file) from ``animatediff_models``."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """A combo over the motion module files."""
        return {
            "required": {
                "model_name": (
                    list_models("animatediff_models"),
                    {
                        "tooltip": "Motion module file in the animatediff_models folder (mm_sd_v15.ckpt, "
                        "mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt, diffusers MotionAdapter or FrameFold files)."
                    },
                ),
            }
        }

    RETURN_TYPES = (T.FF_MOTION_MODULE,)
    RETURN_NAMES = ("motion_module",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads an AnimateDiff motion module; the version (v1/v2/v3) is read from the file's keys and shapes."

    @classmethod
    def VALIDATE_INPUTS(cls, model_name: str) -> Union[bool, str]:
        """The file must be a motion module (checked from its header, before anything runs)."""
        return validate_model_file(
            cls.__name__, "model_name", "animatediff_models", model_name, motion.check_motion_module_file
        )

    def load(self, model_name: str) -> Tuple[MotionModule]:
        """Read the file and build the motion module."""
        path = resolve_input_file(type(self).__name__, "model_name", "animatediff_models", model_name)
        return (load_input_file(type(self).__name__, "model_name", motion.load_motion_module, path),)


class FrameFoldApplyMotionModule:
    """Attach a motion module to a model (replacing any attached one); the UNet weights are shared."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Model, motion module, the strength of the motion and the modules' GroupNorm mode."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The image model (SD1.5-style UNet) to animate."}),
                "motion_module": (
                    T.FF_MOTION_MODULE,
                    {"tooltip": "A motion module from FrameFold Load Motion Module."},
                ),
                "motion_scale": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 2.0,
                        "step": 0.01,
                        "tooltip": "Multiplies every motion-module residual: 0 = per-frame image model, 1 = as trained.",
                    },
                ),
            },
            "optional": {
                "norm_across_frames": (NORM_MODES, {"default": "per_frame", "tooltip": NORM_TOOLTIP}),
            },
        }

    RETURN_TYPES = (T.FF_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Adds AnimateDiff temporal layers to a model. The frame window is set to the motion module's "
        "positional table length (24 for v1, 32 for v2/v3). With an AnimateDiff v1/v2/v3 module the model samples "
        "on AnimateDiff's linear beta schedule unless FrameFold Model Sampling chose another."
    )

    def apply(
        self,
        model: DiffusionModel,
        motion_module: MotionModule,
        motion_scale: float,
        norm_across_frames: str = "per_frame",
    ) -> Tuple[DiffusionModel]:
        """A new FF_MODEL whose UNet runs the motion module at every level."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", f"a FF_MODEL (DiffusionModel), got {type(model).__name__}")
        if not isinstance(motion_module, MotionModule):
            raise NodeInputError(name, "motion_module", f"a FF_MOTION_MODULE, got {type(motion_module).__name__}")
        if norm_across_frames not in NORM_MODES:
            raise NodeInputError(name, "norm_across_frames", f"one of {NORM_MODES}, got {norm_across_frames!r}")
        module = _matching(motion_module, model.device, model.dtype)
        try:
            animated = attach_motion_module(
                model,
                module,
                motion_scale=float(motion_scale),
                norm_across_frames=norm_across_frames == "across_frames",
            )
        except ValueError as e:
            raise NodeInputError(name, "motion_module", f"a motion module matching the model's UNet: {e}") from e
        return (animated,)


def _matching(module: MotionModule, device: torch.device, dtype: torch.dtype) -> MotionModule:
    """The module on ``device`` in ``dtype``: a converted copy when needed (the cached input stays as it is)."""
    first = next(module.parameters())
    if first.device == device and first.dtype == dtype:
        return module
    return copy.deepcopy(module).to(device=device, dtype=dtype)


NODE_CLASS_MAPPINGS = {
    "FrameFoldLoadMotionModule": FrameFoldLoadMotionModule,
    "FrameFoldApplyMotionModule": FrameFoldApplyMotionModule,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLoadMotionModule": "FrameFold Load Motion Module",
    "FrameFoldApplyMotionModule": "FrameFold Apply Motion Module",
}
