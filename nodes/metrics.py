"""Video metrics node: flicker, warp error, seam ratios at joins, and PSNR/SSIM against a reference."""

import json
from typing import Any, Dict, List, Optional, Union

import torch

from ..pipelines.metrics.report import measure_video
from . import _types as T
from ._errors import NodeInputError, node_inputs

CATEGORY = "FrameFold/metrics"


def parse_join_indices(text: str) -> List[int]:
    """Comma-separated frame indices ('16, 32'; ';' also separates) -> a list of ints (the frame count checks the
    range later, in :func:`~..pipelines.metrics.report.measure_video`)."""
    joins = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            joins.append(int(part))
        except ValueError:
            raise ValueError(f"comma-separated whole numbers, got {part!r}") from None
    return joins


class FrameFoldVideoMetrics:
    """Measure temporal quality of a video (and fidelity to a reference) and show the numbers."""

    DESCRIPTION = (
        "flicker: mean |frame[t+1]-frame[t]| (0..1 units). warp_error: mean error after warping each frame onto the next "
        "with DIS optical flow (occluded pixels excluded). seam_ratio: difference across a join / median in-clip "
        "difference (1.0 = invisible join). With a reference: PSNR (dB) and SSIM on BT.709 luma."
    )
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    OUTPUT_NODE = True
    RETURN_TYPES = (T.STRING,)
    RETURN_NAMES = ("metrics_json",)

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The video, an optional reference and optional join indices."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "The video to measure, [frames, height, width, channels] in 0..1."}),
                "warp_error": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Compute the optical-flow warp error (slower on long or large videos).",
                    },
                ),
            },
            "optional": {
                "reference": (T.IMAGE, {"tooltip": "Ground-truth video of the same shape, for PSNR and SSIM."}),
                "join_indices": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Comma-separated first-frame indices of later clips (e.g. '16, 32') to measure seam ratios.",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, join_indices: str = "") -> Union[bool, str]:
        """Refuse join indices that cannot parse, or that no video allows (below 1), before anything is computed."""
        try:
            joins = parse_join_indices(join_indices)
        except ValueError as e:
            return str(NodeInputError(cls.__name__, "join_indices", str(e)))
        if any(j < 1 for j in joins):
            return str(
                NodeInputError(
                    cls.__name__, "join_indices", f"frame indices >= 1 (first frames of later clips), got {min(joins)}"
                )
            )
        return True

    def measure(
        self,
        images: torch.Tensor,
        warp_error: bool = True,
        reference: Optional[torch.Tensor] = None,
        join_indices: str = "",
    ) -> Dict[str, Any]:
        """The metrics as a JSON string, also shown on the node."""
        with node_inputs(self, other_errors="join_indices"):
            joins = parse_join_indices(join_indices)
        with node_inputs(self):
            text = json.dumps(measure_video(images, reference, joins, warp_error))
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"FrameFoldVideoMetrics": FrameFoldVideoMetrics}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldVideoMetrics": "FrameFold Video Metrics"}
