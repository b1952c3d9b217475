"""Latent Upscale + Re-denoise: the temporal stage of cascaded super-resolution (seed 000 §2.1).

Two ways to feed it: a latent from the Video Sampler with ``scale`` 2 (the latent is enlarged here), or frames
upscaled by FrameFold Upscale Video (model/resize) -> FrameFold VAE Encode -> this node with ``scale`` 1 (the
"encode the upscaled frames" pattern). Either way the video model re-denoises at strength ``denoise`` with its
motion module active, in context windows and spatial tiles.
"""

from typing import Optional

import torch

from ..pipelines.cascade import LATENT_UPSCALE_METHODS, RedenoiseOptions, latent_redenoise
from ..pipelines.models.bundle import Conditioning, DiffusionModel
from ..pipelines.noise import NoisePrior
from ..pipelines.sampling import samplers, schedules
from ..pipelines.sampling.context import ContextOptions
from . import _types as T
from ._comfy import with_host_progress
from ._errors import NodeInputError

CATEGORY = "FrameFold/upscale"


class FrameFoldLatentUpscaleRedenoise:
    """Enlarge a latent video and re-denoise it with the video model so the new detail is temporally stable."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Model, prompts, latent, the enlargement, then sampler widgets and tiling; noise/context optional."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet with its motion module (keeps the detail stable)."}),
                **T.prompt_inputs(),
                "latent": (T.LATENT, {"tooltip": "Latent video [F,C,h,w] (sampled, or encoded upscaled frames)."}),
                "scale": (
                    T.FLOAT,
                    {
                        "default": 2.0,
                        "min": 1.0,
                        "max": 8.0,
                        "step": 0.25,
                        "tooltip": "Latent enlargement; 1 for a latent already at the target size.",
                    },
                ),
                "upscale_method": (list(LATENT_UPSCALE_METHODS), {"default": "bicubic"}),
                "denoise": (
                    T.FLOAT,
                    {
                        "default": 0.5,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Re-denoise strength s: "
                        "lower keeps more of the input; 0.3-0.6 adds detail without changing the layout.",
                    },
                ),
                "seed": T.seed_widget("Seed of the re-noising noise."),
                "steps": (T.INT, {"default": 10, "min": 1, "max": 1000, "tooltip": "Denoising steps run."}),
                "cfg": T.cfg_widget(),
                "sampler_name": (list(samplers.SAMPLERS), {"default": "ddim"}),
                "scheduler": (list(schedules.SPACINGS), {"default": "trailing"}),
                "tile_size": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": 1024,
                        "step": 2,
                        "tooltip": "Spatial tile in latent pixels "
                        "(0 = whole frame). Tiles near the model's training size keep it in its element.",
                    },
                ),
                "tile_overlap": (T.INT, {"default": 8, "min": 0, "max": 256, "step": 2}),
            },
            "optional": {
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior (default i.i.d.)."}),
                "context": (T.FF_CONTEXT, {"tooltip": "Context windows (default: the motion module's length)."}),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "redenoise"
    CATEGORY = CATEGORY
    DESCRIPTION = "Cascaded SR, temporal stage: latent upscale + partial re-denoise with the video model."

    def _check(self, model, positive, negative, latent, noise, context) -> torch.Tensor:
        """Validate the sockets; returns the latent samples."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", "a FF_MODEL from a FrameFold loader")
        for input_name, cond in (("positive", positive), ("negative", negative)):
            if not isinstance(cond, Conditioning):
                raise NodeInputError(name, input_name, "a FF_CONDITIONING from FrameFold Text Encode")
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
            raise NodeInputError(name, "latent", "a LATENT dict with 'samples' [F,C,h,w]")
        if noise is not None and not isinstance(noise, NoisePrior):
            raise NodeInputError(name, "noise", "a FF_NOISE from FrameFold Noise Prior")
        if context is not None and not isinstance(context, ContextOptions):
            raise NodeInputError(name, "context", "a FF_CONTEXT from FrameFold Context Options")
        return samples

    @with_host_progress
    def redenoise(
        self,
        model: DiffusionModel,
        positive: Conditioning,
        negative: Conditioning,
        latent: dict,
        scale: float = 2.0,
        upscale_method: str = "bicubic",
        denoise: float = 0.5,
        seed: int = 0,
        steps: int = 10,
        cfg: float = 4.5,
        sampler_name: str = "ddim",
        scheduler: str = "trailing",
        tile_size: int = 0,
        tile_overlap: int = 8,
        noise: Optional[NoisePrior] = None,
        context: Optional[ContextOptions] = None,
    ) -> tuple:
        """Pack the widgets into RedenoiseOptions and run the pipeline."""
        samples = self._check(model, positive, negative, latent, noise, context)
        name = type(self).__name__
        try:
            options = RedenoiseOptions(
                float(scale),
                upscale_method,
                float(denoise),
                int(steps),
                float(cfg),
                sampler_name,
                scheduler,
                int(seed),
                int(tile_size),
                int(tile_overlap),
                context,
            )
        except ValueError as e:
            raise NodeInputError(name, "denoise/scale/tile_size", str(e)) from e
        try:
            out = latent_redenoise(model, positive, negative, samples, options, noise)
        except ValueError as e:
            raise NodeInputError(name, "latent", str(e)) from e
        return ({**latent, "samples": out},)


NODE_CLASS_MAPPINGS = {"FrameFoldLatentUpscaleRedenoise": FrameFoldLatentUpscaleRedenoise}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldLatentUpscaleRedenoise": "FrameFold Latent Upscale + Re-denoise"}
