"""Upscaling nodes: load an ESRGAN-family model, upscale a video with it, or resample without weights.

The temporal stage (latent upscale + re-denoise with the video model) is in ``nodes/upscale_latent.py``.
"""

import torch

from ..pipelines.loading.detect import WrongLoaderError
from ..pipelines.loading.files import WeightFileError
from ..pipelines.loading.upscale import UpscaleKeyError, UpscaleScaleError, load_upscale_model
from ..pipelines.models.upscalers import UpscaleModel, UpscalerConfigError
from ..pipelines.upscale import RESIZE_METHODS, UpscaleMemoryError, resize_video, upscale_video
from ..pipelines.video.frames import target_size
from . import _types as T
from ._comfy import with_host_progress
from ._errors import NodeInputError
from ._folders import list_models, resolve_model

CATEGORY = "FrameFold/upscale"
FF_UPSCALE_MODEL = "FF_UPSCALE_MODEL"  # pipelines.models.upscalers.UpscaleModel


def _check_images(node_class: str, images: object) -> torch.Tensor:
    """The IMAGE video, or a NodeInputError."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise NodeInputError(node_class, "images", f"an RGB IMAGE video [frames, height, width, 3], got {shape}")
    return images


class FrameFoldLoadUpscaleModel:
    """Load an ESRGAN-family upscaler (RealESRGAN x4plus, realesr-general-x4v3, ...; any spandrel model in ComfyUI)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Model file from the 'upscale_models' folder."""
        return {
            "required": {
                "model_name": (
                    list_models("upscale_models"),
                    {"tooltip": "Upscaler from the 'upscale_models' folder; the scale is read from the weights."},
                ),
            }
        }

    RETURN_TYPES = (FF_UPSCALE_MODEL,)
    RETURN_NAMES = ("upscale_model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads an RRDBNet (ESRGAN) or SRVGGNetCompact upscaler; other architectures through spandrel."

    def load(self, model_name: str) -> tuple:
        """Read the file and build the net (CPU, fp32)."""
        name = type(self).__name__
        try:
            path = resolve_model("upscale_models", model_name)
        except FileNotFoundError as e:
            raise NodeInputError(name, "model_name", f"a file in the 'upscale_models' folder. {e}") from e
        try:
            return (load_upscale_model(path),)
        except (WrongLoaderError, WeightFileError, UpscaleKeyError, UpscaleScaleError, UpscalerConfigError) as e:
            raise NodeInputError(name, "model_name", f"an ESRGAN-family upscale model file. {e}") from e


class FrameFoldUpscaleVideoModel:
    """Upscale every frame with an SR model: tiled (tile size chosen to fit memory), fp16 on a GPU."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Frames, model, output scale and tiling."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The video to upscale."}),
                "upscale_model": (FF_UPSCALE_MODEL, {"tooltip": "From FrameFold Load Upscale Model."}),
                "scale_by": (
                    T.FLOAT,
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 16.0,
                        "step": 0.05,
                        "tooltip": "Output scale; 0 = the model's own scale. Smaller than the model's: the model "
                        "output is shrunk with area averaging. Larger is an error.",
                    },
                ),
                "tile_size": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": 4096,
                        "step": 16,
                        "tooltip": "Input pixels per tile; 0 = the largest tile that fits the free memory.",
                    },
                ),
                "tile_overlap": (
                    T.INT,
                    {"default": 16, "min": 0, "max": 256, "step": 2, "tooltip": "Blend and context width (pixels)."},
                ),
            }
        }

    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = "Per-frame model upscaling; progress per frame, memory flat in the frame count."

    @with_host_progress
    def upscale(
        self,
        images: torch.Tensor,
        upscale_model: UpscaleModel,
        scale_by: float = 0.0,
        tile_size: int = 0,
        tile_overlap: int = 16,
    ) -> tuple:
        """Run the model frame by frame on the GPU when there is one."""
        name = type(self).__name__
        images = _check_images(name, images)
        if not isinstance(upscale_model, UpscaleModel):
            raise NodeInputError(name, "upscale_model", "a FF_UPSCALE_MODEL from FrameFold Load Upscale Model")
        if scale_by > upscale_model.scale:
            raise NodeInputError(
                name,
                "scale_by",
                f"at most {upscale_model.scale} (scale mismatch: {upscale_model.name} is a {upscale_model.scale}x "
                f"model; chain a second upscale for more), got {scale_by:g}",
            )
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            out = upscale_video(
                upscale_model,
                images,
                tile=int(tile_size),
                overlap=int(tile_overlap),
                device=device,
                out_scale=float(scale_by) if scale_by > 0 else None,
            )
        except UpscaleMemoryError as e:
            raise NodeInputError(name, "tile_size", f"a tile that fits in memory: {e}") from e
        return (out,)


class FrameFoldUpscaleVideoResize:
    """Weight-free resampling (Lanczos, bicubic, area, ...) with OpenCV: a baseline, or for shrinking."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Frames, method and the target size (by scale, or explicit width/height)."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The video to resize."}),
                "method": (list(RESIZE_METHODS), {"default": "lanczos", "tooltip": "area is best for shrinking."}),
                "scale_by": (
                    T.FLOAT,
                    {
                        "default": 2.0,
                        "min": 0.01,
                        "max": 16.0,
                        "step": 0.05,
                        "tooltip": "Used when width and height are both 0.",
                    },
                ),
                "width": (T.INT, {"default": 0, "min": 0, "max": 16384, "tooltip": "0 = from scale_by / aspect."}),
                "height": (T.INT, {"default": 0, "min": 0, "max": 16384, "tooltip": "0 = from scale_by / aspect."}),
            }
        }

    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)
    FUNCTION = "resize"
    CATEGORY = CATEGORY
    DESCRIPTION = "Resamples every frame without a model (OpenCV)."

    @with_host_progress
    def resize(
        self, images: torch.Tensor, method: str = "lanczos", scale_by: float = 2.0, width: int = 0, height: int = 0
    ) -> tuple:
        """Resize to width x height (0 = keep aspect), or by scale_by when both are 0."""
        name = type(self).__name__
        images = _check_images(name, images)
        if method not in RESIZE_METHODS:
            raise NodeInputError(name, "method", f"one of {list(RESIZE_METHODS)}")
        src_h, src_w = images.shape[1], images.shape[2]
        if width == 0 and height == 0:
            if scale_by <= 0:
                raise NodeInputError(name, "scale_by", f"a value > 0, got {scale_by}")
            w, h = max(1, round(src_w * scale_by)), max(1, round(src_h * scale_by))
        else:
            w, h = target_size(src_w, src_h, int(width), int(height))
        return (resize_video(images, w, h, method),)


NODE_CLASS_MAPPINGS = {
    "FrameFoldLoadUpscaleModel": FrameFoldLoadUpscaleModel,
    "FrameFoldUpscaleVideoModel": FrameFoldUpscaleVideoModel,
    "FrameFoldUpscaleVideoResize": FrameFoldUpscaleVideoResize,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLoadUpscaleModel": "FrameFold Load Upscale Model",
    "FrameFoldUpscaleVideoModel": "FrameFold Upscale Video (model)",
    "FrameFoldUpscaleVideoResize": "FrameFold Upscale Video (resize)",
}
