"""ControlNet nodes: load a ControlNet, apply it (per frame or on keyframes) to the prompts of a video."""

from typing import Optional, Tuple

import torch

from ..pipelines.control.apply import RESIZE_MODES, ControlApplication, with_control
from ..pipelines.loading.controlnet import check_controlnet_file, load_controlnet
from ..pipelines.models.bundle import Conditioning
from ..pipelines.models.controlnet import ControlNet
from . import _types as T
from ._errors import NodeInputError
from ._folders import list_models
from .loaders import DTYPE_TOOLTIP, DTYPES, load_input_file, resolve_input_file, validate_model_file

CATEGORY = "FrameFold/control"


class FrameFoldLoadControlNet:
    """Load an SD1.5 ControlNet: original files (with or without ``control_model.``) or diffusers files."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """ControlNet file and precision."""
        return {
            "required": {
                "controlnet_name": (
                    list_models("controlnet"),
                    {
                        "tooltip": "ControlNet from the 'controlnet' folder (control_v11p_sd15_*.pth/.safetensors, "
                        "diffusers diffusion_pytorch_model.safetensors; the default model's ControlNet is first)."
                    },
                ),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
            }
        }

    RETURN_TYPES = (T.FF_CONTROLNET,)
    RETURN_NAMES = ("controlnet",)
    OUTPUT_TOOLTIPS = ("The ControlNet, for FrameFold Apply ControlNet (video).",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads a ControlNet file; its architecture is read from the file's keys and shapes."

    @classmethod
    def VALIDATE_INPUTS(cls, controlnet_name: str) -> "bool | str":
        """The file must be a ControlNet (checked from its header, before anything runs)."""
        return validate_model_file(
            cls.__name__, "controlnet_name", "controlnet", controlnet_name, check_controlnet_file
        )

    def load(self, controlnet_name: str, dtype: str = "auto") -> Tuple[ControlNet]:
        """Read the file and build the ControlNet."""
        path = resolve_input_file(type(self).__name__, "controlnet_name", "controlnet", controlnet_name)
        return (load_input_file(type(self).__name__, "controlnet_name", load_controlnet, path, dtype=dtype),)


def parse_frame_indices(node: str, text: str, images: int) -> Optional[Tuple[int, ...]]:
    """``"0, 15"`` -> (0, 15); empty -> None (one image per frame). One index per image, distinct, >= 0."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        indices = tuple(int(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError as e:
        raise NodeInputError(
            node, "frame_indices", f"comma-separated frame numbers such as '0, 15', got {text!r}"
        ) from e
    if len(indices) != images or len(set(indices)) != images or min(indices) < 0:
        raise NodeInputError(
            node, "frame_indices", f"{images} distinct frame numbers >= 0, one per control image, got {text!r}"
        )
    return indices


class FrameFoldApplyControlNet:
    """Attach a ControlNet and its control images to the positive and negative prompts of a video."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Prompts, ControlNet, control images and the application options; a mask is optional."""
        return {
            "required": {
                **T.prompt_inputs(),
                "controlnet": (T.FF_CONTROLNET, {"tooltip": "From FrameFold Load ControlNet."}),
                "images": (
                    T.IMAGE,
                    {
                        "tooltip": "Control images (edges, scribbles, ...): one per frame, one for all frames, or one "
                        "per entry of frame_indices."
                    },
                ),
                "strength": (
                    T.FLOAT,
                    {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Residual scale; 0 = off."},
                ),
                "start_percent": (
                    T.FLOAT,
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Where in the denoising schedule control starts (0 = first step).",
                    },
                ),
                "end_percent": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Where control ends (1 = last step).",
                    },
                ),
                "resize": (
                    list(RESIZE_MODES),
                    {
                        "default": "crop",
                        "tooltip": "Fit the control images to the video: crop (cover, centre crop), pad (fit, black "
                        "borders) or stretch.",
                    },
                ),
                "frame_indices": (
                    T.STRING,
                    {
                        "default": "",
                        "tooltip": "Keyframe control: comma-separated frame numbers, one per control image (e.g. "
                        "'0, 15'); other frames get no control. Empty = one image per frame.",
                    },
                ),
            },
            "optional": {
                "mask": (T.MASK, {"tooltip": "Where control acts: one mask for all images, or one per image."}),
            },
        }

    RETURN_TYPES = (T.FF_CONDITIONING, T.FF_CONDITIONING)
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("The positive prompt with the ControlNet attached.", "The negative prompt, the same.")
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = "ControlNet for video: per-frame or keyframe control, strength, schedule range, mask; stackable."

    def apply(
        self,
        positive: Conditioning,
        negative: Conditioning,
        controlnet: ControlNet,
        images: torch.Tensor,
        strength: float,
        start_percent: float,
        end_percent: float,
        resize: str = "crop",
        frame_indices: str = "",
        mask: Optional[torch.Tensor] = None,
    ) -> Tuple[Conditioning, Conditioning]:
        """Validate, build one ControlApplication, stack it on both prompts."""
        node = type(self).__name__
        for name, cond in (("positive", positive), ("negative", negative)):
            if not isinstance(cond, Conditioning):
                raise NodeInputError(node, name, "a FF_CONDITIONING from FrameFold Text Encode")
        if not isinstance(controlnet, ControlNet):
            raise NodeInputError(node, "controlnet", "a FF_CONTROLNET from FrameFold Load ControlNet")
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise NodeInputError(node, "images", "an IMAGE [F, H, W, 3] in 0..1")
        if not 0.0 <= start_percent <= end_percent <= 1.0:
            raise NodeInputError(node, "end_percent", f"a value >= start_percent ({start_percent}) and <= 1")
        if resize not in RESIZE_MODES:
            raise NodeInputError(node, "resize", f"one of {list(RESIZE_MODES)}")
        indices = parse_frame_indices(node, frame_indices, images.shape[0])
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
                raise NodeInputError(node, "mask", "a MASK [F, H, W]")
            mask = mask[None] if mask.ndim == 2 else mask
            if mask.shape[0] not in (1, images.shape[0]):
                raise NodeInputError(node, "mask", f"1 or {images.shape[0]} masks (one per image), got {mask.shape[0]}")
        application = ControlApplication(
            controlnet, images.float(), indices, float(strength), float(start_percent), float(end_percent), mask, resize
        )
        return with_control(positive, application), with_control(negative, application)


NODE_CLASS_MAPPINGS = {
    "FrameFoldLoadControlNet": FrameFoldLoadControlNet,
    "FrameFoldApplyControlNet": FrameFoldApplyControlNet,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLoadControlNet": "FrameFold Load ControlNet",
    "FrameFoldApplyControlNet": "FrameFold Apply ControlNet (video)",
}
