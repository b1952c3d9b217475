"""Motion module nodes: load an AnimateDiff motion module, attach it to a model."""

import copy

from ..pipelines.loading.motion_keys import load_motion_module
from ..pipelines.models.bundle import DiffusionModel
from ..pipelines.models.motion import MotionModule
from . import _types as T
from ._errors import NodeInputError
from ._folders import list_models, resolve_model

CATEGORY = "FrameFold/motion"


class FrameFoldLoadMotionModule:
    """Load an AnimateDiff motion module (v1 / v2 / v3 detected from the file) from ``animatediff_models``."""

    @classmethod
    def INPUT_TYPES(cls):
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

    def load(self, model_name):
        """Read the file and build the motion module."""
        try:
            path = resolve_model("animatediff_models", model_name)
        except FileNotFoundError as e:
            raise NodeInputError(type(self).__name__, "model_name", str(e)) from e
        try:
            module = load_motion_module(path)
        except ValueError as e:
            raise NodeInputError(type(self).__name__, "model_name", f"an AnimateDiff motion module file: {e}") from e
        return (module,)


class FrameFoldApplyMotionModule:
    """Attach a motion module to a model (replacing any attached one); the UNet weights are shared."""

    @classmethod
    def INPUT_TYPES(cls):
        """Model, motion module and the strength of the motion."""
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
            }
        }

    RETURN_TYPES = (T.FF_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Adds AnimateDiff temporal layers to a model. The frame window is set to the motion module's "
        "positional table length (24 for v1, 32 for v2/v3)."
    )

    def apply(self, model, motion_module, motion_scale):
        """A new FF_MODEL whose UNet runs the motion module at every level."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", f"a FF_MODEL (DiffusionModel), got {type(model).__name__}")
        if not isinstance(motion_module, MotionModule):
            raise NodeInputError(name, "motion_module", f"a FF_MOTION_MODULE, got {type(motion_module).__name__}")
        base = model.unet.without_motion() if hasattr(model.unet, "without_motion") else model.unet
        if not hasattr(base, "with_motion"):
            raise NodeInputError(name, "model", "a FrameFold UNet model that accepts motion modules")
        motion_module = _matching(motion_module, model.device, model.dtype)
        try:
            animated = base.with_motion(motion_module)
        except ValueError as e:
            raise NodeInputError(name, "motion_module", f"a motion module matching the model's UNet: {e}") from e
        return (
            model.with_options(unet=animated, frame_window=motion_module.max_frames, motion_scale=float(motion_scale)),
        )


def _matching(module, device, dtype):
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
