"""Diffusion in-betweening node: the video model makes the frames between key-frame latents."""

from typing import Optional, Tuple

import torch

from ..pipelines.interpolation.diffusion import inbetween, key_positions
from ..pipelines.models.bundle import Conditioning, DiffusionModel
from ..pipelines.noise import NoisePrior
from ..pipelines.sampling import samplers, schedules
from ..pipelines.sampling.context import ContextOptions
from ..pipelines.sampling.guidance import GuidedDenoiser
from . import _types as T
from ._comfy import with_host_progress
from ._errors import NodeInputError

CATEGORY = "FrameFold/interpolation"


class FrameFoldDiffusionInbetween:
    """Key frames (a LATENT of K frames) -> (K - 1) x multiplier + 1 frames; the keys stay exactly as given."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Model, prompts, key latents, multiplier and the sampler widgets; context windows optional."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet with its motion module."}),
                **T.prompt_inputs("What the video between the key frames shows."),
                "keyframes": (T.LATENT, {"tooltip": "Encoded key frames [K, C, h, w] (e.g. VAE Encode of images)."}),
                "multiplier": (
                    T.INT,
                    {"default": 2, "min": 1, "max": 16, "tooltip": "Key k lands on frame k x multiplier."},
                ),
                "seed": T.seed_widget("Seed of the initial noise (and of the key frames' hold noise)."),
                "steps": (T.INT, {"default": 20, "min": 1, "max": 1000, "tooltip": "Denoising steps run."}),
                "cfg": T.cfg_widget(),
                "sampler_name": (list(samplers.SAMPLERS), {"default": "ddim", "tooltip": "Sampler."}),
                "scheduler": (list(schedules.SPACINGS), {"default": "trailing", "tooltip": "Timestep spacing."}),
                "denoise": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "1 = new content between the keys. Lower keeps more of a linear blend of the keys.",
                    },
                ),
            },
            "optional": {
                "context": (T.FF_CONTEXT, {"tooltip": "Context windows, needed beyond the motion module's length."}),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The latent video, key frames at 0, m, 2m, ...",)
    FUNCTION = "inbetween"
    CATEGORY = CATEGORY
    DESCRIPTION = "Diffusion in-betweening: key-frame latents held at every step, the frames between denoised."

    def _check(self, model, positive, negative, keyframes, multiplier, context):
        """Validate the inputs; returns the key latents."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", "a FF_MODEL from a FrameFold loader")
        for input_name, cond in (("positive", positive), ("negative", negative)):
            if not isinstance(cond, Conditioning) or cond.embeds.shape[0] != 1:
                raise NodeInputError(name, input_name, "one FF_CONDITIONING prompt from FrameFold Text Encode")
        samples = keyframes.get("samples") if isinstance(keyframes, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or samples.shape[0] < 2:
            raise NodeInputError(name, "keyframes", "a LATENT with at least 2 key frames [K, C, h, w]")
        if int(multiplier) != multiplier or multiplier < 1:
            raise NodeInputError(name, "multiplier", f"a whole number >= 1, got {multiplier}")
        if context is not None and not isinstance(context, ContextOptions):
            raise NodeInputError(name, "context", "a FF_CONTEXT from FrameFold Context Options")
        limit = getattr(model.unet, "frame_window", None)
        frames = (samples.shape[0] - 1) * int(multiplier) + 1
        window = context.length if context is not None else frames
        if limit and window > limit:
            raise NodeInputError(
                name, "context", f"context windows of at most {limit} frames for the {frames}-frame output"
            )
        return samples

    @with_host_progress
    def inbetween(
        self,
        model: DiffusionModel,
        positive: Conditioning,
        negative: Conditioning,
        keyframes: dict,
        multiplier: int,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        context: Optional[ContextOptions] = None,
    ) -> Tuple[dict]:
        """Draw the noise, build the guided denoiser, run the in-betweening sampler."""
        name = type(self).__name__
        keys = self._check(model, positive, negative, keyframes, multiplier, context)
        if sampler_name not in samplers.SAMPLERS:
            raise NodeInputError(name, "sampler_name", f"one of {list(samplers.SAMPLERS)}")
        if scheduler not in schedules.SPACINGS:
            raise NodeInputError(name, "scheduler", f"one of {list(schedules.SPACINGS)}")
        frames = key_positions(keys.shape[0], int(multiplier))[-1] + 1
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        noise = NoisePrior("iid").sample((frames, *keys.shape[1:]), generator)
        denoiser = GuidedDenoiser(model, positive, negative, cfg, context=context)
        abar = schedules.alphas_cumprod_from_config(model.schedule)
        try:
            sigmas = schedules.denoise_sigmas(abar, steps, scheduler, denoise)
        except ValueError as e:
            raise NodeInputError(name, "steps", str(e)) from e
        out = inbetween(
            denoiser,
            keys.to(device=model.device, dtype=torch.float32),
            noise.to(model.device),
            sigmas,
            multiplier=int(multiplier),
            sampler=sampler_name,
            denoise_strength=float(denoise),
            generator=generator,
        )
        return ({**keyframes, "samples": out.float().cpu()},)


NODE_CLASS_MAPPINGS = {"FrameFoldDiffusionInbetween": FrameFoldDiffusionInbetween}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldDiffusionInbetween": "FrameFold Diffusion In-between"}
