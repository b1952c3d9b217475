"""Video metrics node: flicker, warp error, seam ratios at joins, and PSNR/SSIM against a reference."""

import json
import math

from ..pipelines import metrics as m
from . import _types as T
from ._errors import NodeInputError

CATEGORY = "FrameFold/metrics"


def parse_join_indices(node_class, text, frame_count):
    """Comma-separated frame indices ('16, 32') -> sorted list of ints in 1..frame_count-1."""
    joins = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            index = int(part)
        except ValueError:
            raise NodeInputError(node_class, "join_indices", f"comma-separated whole numbers, got {part!r}") from None
        if not 1 <= index <= frame_count - 1:
            raise NodeInputError(
                node_class,
                "join_indices",
                f"frame indices in 1..{frame_count - 1} (first frame of a later clip), got {index}",
            )
        joins.append(index)
    return sorted(set(joins))


def _json_number(value):
    """A float rounded for display; inf/nan as strings so the JSON stays standard."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return round(value, 6)


def compute_metrics(node_class, images, reference=None, joins=(), warp=True):
    """The metrics dict the node reports (see FrameFoldVideoMetrics.DESCRIPTION)."""
    result = {"frames": int(images.shape[0])}
    if images.shape[0] >= 2:
        result["flicker"] = _json_number(m.flicker(images))
        if warp:
            result["warp_error"] = _json_number(m.warp_error(images))
    if joins:
        result["seam_ratio"] = {str(j): _json_number(r) for j, r in zip(joins, m.seam_ratios(images, joins))}
    if reference is not None:
        if tuple(reference.shape) != tuple(images.shape):
            raise NodeInputError(
                node_class,
                "reference",
                f"a video of the same shape as images {tuple(images.shape)}, got {tuple(reference.shape)}",
            )
        result["psnr_db"] = _json_number(m.psnr(images, reference))
        if min(images.shape[1], images.shape[2]) >= 11:
            result["ssim_luma"] = _json_number(m.ssim(images, reference))
    return result


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
    def INPUT_TYPES(cls):
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

    def measure(self, images, warp_error=True, reference=None, join_indices=""):
        """The metrics as a JSON string, also shown on the node."""
        node = type(self).__name__
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            raise NodeInputError(
                node, "images", "an IMAGE batch [frames, height, width, channels] with at least one frame"
            )
        joins = parse_join_indices(node, join_indices, images.shape[0])
        if joins and images.shape[0] - len(joins) < 2:
            raise NodeInputError(node, "join_indices", "at least one frame step that is not a join (for the baseline)")
        text = json.dumps(compute_metrics(node, images, reference, joins, warp_error))
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"FrameFoldVideoMetrics": FrameFoldVideoMetrics}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldVideoMetrics": "FrameFold Video Metrics"}
