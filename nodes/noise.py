"""Noise-prior node: choose how the initial noise of the frames is correlated -> FF_NOISE."""

from typing import Any, Dict, Tuple

from ..pipelines.noise import NoisePrior
from . import _types as T
from ._errors import node_inputs

CATEGORY = "FrameFold/sampling"

# the method widget's choices: NoisePrior methods, with vidrd split into FNR (no alpha) and PNS
METHOD_CHOICES = (
    "iid",
    "videofusion",
    "pyoco_mixed",
    "pyoco_progressive",
    "freenoise",
    "motion",
    "vidrd_fnr",
    "vidrd_pns",
)


class FrameFoldNoisePrior:
    """Pick a noise prior and its parameters; FrameFold Video Sampler draws the initial noise from it."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Method dropdown followed by every method's parameters (unused ones are ignored)."""
        return {
            "required": {
                "method": (
                    list(METHOD_CHOICES),
                    {
                        "default": "iid",
                        "tooltip": "iid: independent noise per frame. videofusion: shared base + per-frame residual. "
                        "pyoco_mixed: shared + independent (PYoCo). pyoco_progressive: autoregressive along "
                        "frames (PYoCo). freenoise: long videos reuse the first window's noise, shuffled. "
                        "motion: frame 0's noise shifted by (delta_x, delta_y) per frame (Text2Video-Zero). "
                        "vidrd_fnr / vidrd_pns: i.i.d. for the first clip; later clips of the VidRD long-"
                        "video loop reverse (FNR) or reverse and renoise (PNS) the previous clip's noise.",
                    },
                ),
                "videofusion_lambda": (
                    T.FLOAT,
                    {
                        "default": 0.5,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "videofusion: share of the base noise l (eps_i = sqrt(l) b + sqrt(1-l) r_i); "
                        "frames correlate by l.",
                    },
                ),
                "base_frame": (
                    T.INT,
                    {
                        "default": -1,
                        "min": -1,
                        "max": 4096,
                        "tooltip": "videofusion: a frame whose noise is the base itself (VideoFusion uses frames//2); "
                        "-1 for none.",
                    },
                ),
                "alpha": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.05,
                        "tooltip": "pyoco_mixed: frames correlate by a^2/(1+a^2). pyoco_progressive: neighbours "
                        "correlate by a/sqrt(1+a^2). vidrd_pns: how much of the previous clip's reversed "
                        "noise is kept (0 = fresh noise).",
                    },
                ),
                "window": (
                    T.INT,
                    {
                        "default": 16,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "freenoise: frames of the first window (the motion module length).",
                    },
                ),
                "stride": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "freenoise: frames per reshuffled chunk after the first window.",
                    },
                ),
                "delta_x": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": -64.0,
                        "max": 64.0,
                        "step": 0.5,
                        "tooltip": "motion: horizontal shift per frame in latent pixels (rounded).",
                    },
                ),
                "delta_y": (
                    T.FLOAT,
                    {
                        "default": 0.0,
                        "min": -64.0,
                        "max": 64.0,
                        "step": 0.5,
                        "tooltip": "motion: vertical shift per frame in latent pixels (rounded).",
                    },
                ),
                "prompt_frames": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 0,
                        "max": 4096,
                        "tooltip": "vidrd_pns: first frames of each new clip that take the previous clip's reversed "
                        "noise unchanged (VidRD's M).",
                    },
                ),
            }
        }

    RETURN_TYPES = (T.FF_NOISE,)
    RETURN_NAMES = ("noise",)
    OUTPUT_TOOLTIPS = ("A noise prior for FrameFold Video Sampler's optional 'noise' input.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Correlated initial noise for more consistent frames (VideoFusion, PYoCo, FreeNoise, Text2Video-Zero, VidRD)."
    )

    def build(
        self,
        method: str,
        videofusion_lambda: float = 0.5,
        base_frame: int = -1,
        alpha: float = 1.0,
        window: int = 16,
        stride: int = 4,
        delta_x: float = 1.0,
        delta_y: float = 0.0,
        prompt_frames: int = 4,
    ) -> Tuple[NoisePrior]:
        """Pack the widgets into a NoisePrior (vidrd_fnr / vidrd_pns are the vidrd prior without / with alpha)."""
        with node_inputs(self, {"lam": "videofusion_lambda"}):
            prior = NoisePrior(
                method="vidrd" if method in ("vidrd_fnr", "vidrd_pns") else method,
                lam=float(videofusion_lambda),
                base_frame=None if base_frame < 0 else base_frame,
                alpha=None if method == "vidrd_fnr" else float(alpha),
                window=window,
                stride=stride,
                delta_x=float(delta_x),
                delta_y=float(delta_y),
                prompt_frames=prompt_frames,
            )
        return (prior,)


NODE_CLASS_MAPPINGS = {"FrameFoldNoisePrior": FrameFoldNoisePrior}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldNoisePrior": "FrameFold Noise Prior"}
