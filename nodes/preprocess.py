"""ControlNet preprocessor nodes with no weights (OpenCV): IMAGE -> IMAGE, batch = frames."""

from typing import Any, Callable, Dict, Optional, Tuple

import torch

from ..pipelines.control import preprocess
from . import _types as T
from ._errors import NodeInputError

CATEGORY = "FrameFold/control/preprocessors"


def _int(default: int, low: int, high: int, tooltip: str, step: int = 1) -> tuple:
    return (T.INT, {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


def _float(default: float, low: float, high: float, tooltip: str, step: float = 0.01) -> tuple:
    return (T.FLOAT, {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


class _Preprocessor:
    """Shared shape of the preprocessor nodes: ``images`` plus the widgets in ``WIDGETS`` -> one IMAGE."""

    WIDGETS: Dict[str, tuple] = {}
    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("image",)
    FUNCTION = "run"
    CATEGORY = CATEGORY

    @staticmethod
    def transform(images: torch.Tensor, **widgets: Any) -> torch.Tensor:
        """The preprocessor itself; every node class below defines it (the base has none)."""
        raise NotImplementedError

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """The video frames, then this preprocessor's widgets."""
        frames = (T.IMAGE, {"tooltip": "Video frames (or images) to turn into control images."})
        return {"required": {"images": frames, **cls.WIDGETS}}

    def run(self, images: torch.Tensor, **widgets: Any) -> Tuple[torch.Tensor]:
        """Validate the frames and run the transform; bad values become errors naming the input."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise NodeInputError(type(self).__name__, "images", "an IMAGE [F, H, W, 3] in 0..1")
        try:
            return (type(self).transform(images, **widgets),)
        except ValueError as e:
            name = next(iter(widgets), "images")
            raise NodeInputError(type(self).__name__, name, str(e)) from e


def _node(name: str, doc: str, transform: Callable[..., torch.Tensor], widgets: Dict[str, tuple]) -> type:
    """A preprocessor node class running ``transform(images, **widgets)``."""
    return type(
        name,
        (_Preprocessor,),
        {"__doc__": doc, "DESCRIPTION": doc, "WIDGETS": widgets, "transform": staticmethod(transform)},
    )


FrameFoldCanny = _node(
    "FrameFoldCanny",
    "Canny edges per frame: white edges on black.",
    preprocess.canny,
    {
        "low": _int(100, 0, 255, "Lower hysteresis threshold (0..255 grey levels)."),
        "high": _int(200, 0, 255, "Upper hysteresis threshold; edges start above it."),
    },
)
FrameFoldSoftEdges = _node(
    "FrameFoldSoftEdges",
    "Soft edges: Sobel or Scharr gradient magnitude, normalised over the video.",
    preprocess.soft_edges,
    {
        "method": (list(preprocess.EDGE_METHODS), {"default": "sobel", "tooltip": "Gradient operator."}),
        "blur": _float(0.0, 0.0, 10.0, "Gaussian blur (px sigma) before the gradient; removes fine texture."),
    },
)
FrameFoldScribble = _node(
    "FrameFoldScribble",
    "Scribble lines: thresholded edges thinned to one-pixel skeletons, then drawn line_width wide.",
    preprocess.scribble,
    {
        "threshold": _float(0.25, 0.01, 0.99, "Edge strength (0..1 of the video's strongest) kept as a line."),
        "line_width": _int(2, 1, 16, "Width of the drawn lines in pixels."),
    },
)
FrameFoldLineart = _node(
    "FrameFoldLineart",
    "Line art by adaptive threshold: pixels darker than their neighbourhood become white lines on black.",
    preprocess.lineart,
    {
        "block_size": _int(11, 3, 101, "Neighbourhood size in pixels (odd).", step=2),
        "offset": _float(4.0, -50.0, 50.0, "How much darker than the local mean (0..255) a line pixel is.", 0.5),
    },
)
FrameFoldTile = _node(
    "FrameFoldTile",
    "Tile-ControlNet input: frames downscaled and scaled back up (optionally blurred); colour kept.",
    preprocess.tile,
    {
        "downscale": _float(4.0, 1.0, 64.0, "Downscale factor: larger keeps less detail.", 0.5),
        "blur": _float(0.0, 0.0, 10.0, "Extra Gaussian blur (px sigma) after upscaling."),
    },
)
FrameFoldFlowMagnitude = _node(
    "FrameFoldFlowMagnitude",
    "Optical-flow magnitude (Farneback) from each frame to the next, normalised over the video.",
    preprocess.flow_magnitude,
    {
        "levels": _int(3, 1, 8, "Pyramid levels (more follow larger motion)."),
        "window": _int(9, 3, 63, "Averaging window in pixels (larger: smoother, blurrier flow)."),
    },
)


class FrameFoldInpaintMask(_Preprocessor):
    """Inpaint-ControlNet input: masked pixels set to -1 (what the ControlNet 1.1 inpaint model reads)."""

    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Frames and the mask of the region to repaint."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "Video frames to repaint."}),
                "mask": (T.MASK, {"tooltip": "Region to repaint (> 0.5): one mask, or one per frame."}),
            }
        }

    def run(self, images: torch.Tensor, mask: Optional[torch.Tensor] = None, **widgets: Any) -> Tuple[torch.Tensor]:
        """Validate and mask the frames."""
        node = type(self).__name__
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise NodeInputError(node, "images", "an IMAGE [F, H, W, 3] in 0..1")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            mask = mask[None]
        try:
            return (preprocess.inpaint_mask(images, mask),)  # type: ignore[arg-type]
        except ValueError as e:
            raise NodeInputError(node, "mask", str(e)) from e


_NODES = (
    FrameFoldCanny,
    FrameFoldSoftEdges,
    FrameFoldScribble,
    FrameFoldLineart,
    FrameFoldTile,
    FrameFoldInpaintMask,
    FrameFoldFlowMagnitude,
)
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldCanny": "FrameFold Canny Edges",
    "FrameFoldSoftEdges": "FrameFold Soft Edges",
    "FrameFoldScribble": "FrameFold Scribble",
    "FrameFoldLineart": "FrameFold Lineart",
    "FrameFoldTile": "FrameFold Tile",
    "FrameFoldInpaintMask": "FrameFold Inpaint Mask",
    "FrameFoldFlowMagnitude": "FrameFold Optical-Flow Magnitude",
}
