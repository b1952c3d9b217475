"""FreeInit options node: the settings of FreeInit's noise re-initialisation passes -> FF_FREEINIT."""

from typing import Any, Dict, Tuple

from ..pipelines.sampling.freeinit import FILTERS, FreeInitOptions
from . import _types as T
from ._errors import node_inputs

CATEGORY = "FrameFold/sampling"


class FrameFoldFreeInitOptions:
    """FreeInit: re-run sampling from noise whose low frequencies come from the previous result (fewer flickers,
    more coherent layout); costs one full sampling pass per iteration."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Passes, filter type and its cut-offs."""
        return {
            "required": {
                "iterations": (
                    T.INT,
                    {"default": 3, "min": 1, "max": 10, "tooltip": "Sampling passes in total (1 = FreeInit off)."},
                ),
                "filter_type": (
                    list(FILTERS),
                    {
                        "default": "butterworth",
                        "tooltip": "Low-pass filter on the 3-D (time, height, width) spectrum: butterworth (smooth, "
                        "paper default), gaussian (softest), ideal (hard cut).",
                    },
                ),
                "order": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 1,
                        "max": 16,
                        "tooltip": "Butterworth order: higher is closer to the ideal filter.",
                    },
                ),
                "spatial_cutoff": (
                    T.FLOAT,
                    {
                        "default": 0.25,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Normalised spatial stop frequency d_s (0..1).",
                    },
                ),
                "temporal_cutoff": (
                    T.FLOAT,
                    {
                        "default": 0.25,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Normalised temporal stop frequency d_t (0..1).",
                    },
                ),
            }
        }

    RETURN_TYPES = (T.FF_FREEINIT,)
    RETURN_NAMES = ("freeinit",)
    OUTPUT_TOOLTIPS = ("FreeInit options for the Long Video Sampler and Image to Video nodes.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = "FreeInit (Wu et al. 2023) noise re-initialisation settings."

    def build(
        self, iterations: int, filter_type: str, order: int, spatial_cutoff: float, temporal_cutoff: float
    ) -> Tuple[FreeInitOptions]:
        """Pack the widgets into FreeInitOptions."""
        with node_inputs(self, {"method": "filter_type"}):
            options = FreeInitOptions(
                iterations=int(iterations),
                method=filter_type,
                order=int(order),
                spatial_cutoff=float(spatial_cutoff),
                temporal_cutoff=float(temporal_cutoff),
            )
        return (options,)


NODE_CLASS_MAPPINGS = {"FrameFoldFreeInitOptions": FrameFoldFreeInitOptions}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldFreeInitOptions": "FrameFold FreeInit Options"}
