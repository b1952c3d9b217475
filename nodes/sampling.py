"""Sampling nodes: the video sampler and its context-window options."""

import torch

from ..pipelines.device import Float32Denoiser, compute_device
from ..pipelines.memory import check_sampler_memory
from ..pipelines.models.bundle import Conditioning, DiffusionModel
from ..pipelines.noise import NoisePrior
from ..pipelines.offload import default_placement
from ..pipelines.sampling import samplers, schedules
from ..pipelines.sampling.context import FUSE_METHODS, ContextOptions
from ..pipelines.sampling.guidance import GuidedDenoiser
from . import _types as T
from ._comfy import with_host_progress
from ._errors import NodeInputError

CATEGORY = "FrameFold/sampling"
SAMPLER_NAMES = list(samplers.SAMPLERS)
SCHEDULER_NAMES = list(schedules.SPACINGS)


class FrameFoldContextOptions:
    """Sliding context windows so videos longer than the motion module are denoised window by window."""

    @classmethod
    def INPUT_TYPES(cls):
        """Window length, overlap, dilation levels, looping and fuse weights."""
        return {
            "required": {
                "context_length": (
                    T.INT,
                    {
                        "default": 16,
                        "min": 1,
                        "max": 256,
                        "tooltip": "Frames per window; the motion module's length (16 for AnimateDiff).",
                    },
                ),
                "context_overlap": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 0,
                        "max": 255,
                        "tooltip": "Frames shared by neighbouring windows (less than context_length).",
                    },
                ),
                "context_stride": (
                    T.INT,
                    {
                        "default": 1,
                        "min": 1,
                        "max": 8,
                        "tooltip": "Dilation levels: 1 = contiguous windows only; n also adds windows over every "
                        "2nd, 4th, ... 2^(n-1)-th frame for longer-range coherence.",
                    },
                ),
                "closed_loop": (
                    T.BOOLEAN,
                    {
                        "default": False,
                        "tooltip": "Windows wrap from the last frame to the first, for a looping video.",
                    },
                ),
                "fuse_method": (
                    list(FUSE_METHODS),
                    {
                        "default": "pyramid",
                        "tooltip": "How overlapping windows are blended per frame: flat (equal), pyramid (window "
                        "centre weighs most), overlap-linear (ramps over the overlap only).",
                    },
                ),
            }
        }

    RETURN_TYPES = (T.FF_CONTEXT,)
    RETURN_NAMES = ("context",)
    OUTPUT_TOOLTIPS = ("Context options for FrameFold Video Sampler's optional 'context' input.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = "Context windows: memory stays flat in the number of frames."

    def build(self, context_length, context_overlap, context_stride=1, closed_loop=False, fuse_method="pyramid"):
        """Pack the widgets into ContextOptions."""
        if not 0 <= context_overlap < context_length:
            raise NodeInputError(
                type(self).__name__,
                "context_overlap",
                f"a value in [0, context_length) = [0, {context_length}), got {context_overlap}",
            )
        if fuse_method not in FUSE_METHODS:
            raise NodeInputError(type(self).__name__, "fuse_method", f"one of {list(FUSE_METHODS)}")
        return (ContextOptions(context_length, context_overlap, context_stride, bool(closed_loop), fuse_method),)


class FrameFoldVideoSampler:
    """Denoise a video latent with the temporal UNet: CFG, a choice of samplers and schedules, noise priors,
    context windows and partial denoise (video-to-video)."""

    @classmethod
    def INPUT_TYPES(cls):
        """Model, prompts, latent, then the KSampler-like widgets; noise prior and context are optional."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet (with motion module) and its noise schedule."}),
                **T.prompt_inputs(),
                "latent": (
                    T.LATENT,
                    {
                        "tooltip": "Latent video [F,C,h,w]: empty for text-to-video, an encoded video with "
                        "denoise < 1 for video-to-video."
                    },
                ),
                "seed": T.seed_widget("Seed of the initial noise and of the ancestral samplers' noise."),
                "steps": (T.INT, {"default": 20, "min": 1, "max": 1000, "tooltip": "Denoising steps run."}),
                "cfg": T.cfg_widget(),
                "sampler_name": (
                    SAMPLER_NAMES,
                    {
                        "default": "ddim",
                        "tooltip": "ddim (deterministic), euler, euler_ancestral (adds noise each step), dpmpp_2m "
                        "(good in few steps), lcm (for LCM-distilled models, 4-8 steps, cfg ~1-2).",
                    },
                ),
                "scheduler": (
                    SCHEDULER_NAMES,
                    {
                        "default": "leading",
                        "tooltip": "Timestep spacing: leading (SD/AnimateDiff DDIM), trailing (needed for zero-"
                        "terminal-SNR models), linspace, karras, lcm (use with the lcm sampler).",
                    },
                ),
                "denoise": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "1 starts from pure noise. Lower keeps more of the input latent "
                        "(video-to-video); steps are still the steps run.",
                    },
                ),
            },
            "optional": {
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior from FrameFold Noise Prior (default: i.i.d.)."}),
                "context": (
                    T.FF_CONTEXT,
                    {
                        "tooltip": "Context windows from FrameFold Context Options; without it all frames are "
                        "denoised at once."
                    },
                ),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The denoised latent video.",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Samples a latent video. Reports progress every step; can be stopped between steps."

    def _check(self, model, positive, negative, latent, sampler_name, scheduler, denoise, noise, context):
        """Validate the inputs; returns the latent samples."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", "a FF_MODEL from a FrameFold loader")
        for input_name, cond in (("positive", positive), ("negative", negative)):
            if not isinstance(cond, Conditioning):
                raise NodeInputError(name, input_name, "a FF_CONDITIONING from FrameFold Text Encode")
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
            raise NodeInputError(name, "latent", "a LATENT dict with 'samples' [F,C,h,w]")
        for input_name, cond in (("positive", positive), ("negative", negative)):
            if cond.embeds.shape[0] not in (1, samples.shape[0]):
                raise NodeInputError(
                    name, input_name, f"one prompt or {samples.shape[0]} per-frame prompts, got {cond.embeds.shape[0]}"
                )
        if sampler_name not in samplers.SAMPLERS:
            raise NodeInputError(name, "sampler_name", f"one of {SAMPLER_NAMES}")
        if scheduler not in schedules.SPACINGS:
            raise NodeInputError(name, "scheduler", f"one of {SCHEDULER_NAMES}")
        if not 0.0 < denoise <= 1.0:
            raise NodeInputError(name, "denoise", "a value in (0, 1]")
        if noise is not None and not isinstance(noise, NoisePrior):
            raise NodeInputError(name, "noise", "a FF_NOISE from FrameFold Noise Prior")
        if context is not None and not isinstance(context, ContextOptions):
            raise NodeInputError(name, "context", "a FF_CONTEXT from FrameFold Context Options")
        limit = getattr(model.unet, "frame_window", None)  # set when a motion module is attached
        window = context.length if context is not None else samples.shape[0]
        if limit and window > limit:
            raise NodeInputError(
                name,
                "context",
                f"context windows of at most {limit} frames (the motion module's "
                f"length) for this {samples.shape[0]}-frame latent, got "
                f"{'no context' if context is None else f'length {window}'}",
            )
        return samples

    @with_host_progress
    def sample(
        self,
        model,
        positive,
        negative,
        latent,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        denoise,
        noise=None,
        context=None,
    ):
        """Draw the initial noise from the prior, build the guided denoiser, run the sampler."""
        samples = self._check(model, positive, negative, latent, sampler_name, scheduler, denoise, noise, context)
        check_sampler_memory(model, tuple(samples.shape), cfg, context, compute_device(), node=type(self).__name__)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        prior = noise if noise is not None else NoisePrior("iid")
        try:
            initial = prior.sample(tuple(samples.shape), generator)
        except ValueError as e:
            raise NodeInputError(type(self).__name__, "noise", str(e)) from e
        device = compute_device()
        denoiser = Float32Denoiser(GuidedDenoiser(model, positive, negative, cfg, context=context))
        abar = schedules.alphas_cumprod_from_config(model.schedule)
        try:
            sigmas = schedules.denoise_sigmas(abar, steps, scheduler, denoise)
        except ValueError as e:
            raise NodeInputError(type(self).__name__, "steps", str(e)) from e
        with default_placement().use(model):
            out = samplers.sample(
                sampler_name,
                denoiser,
                initial.to(device),
                sigmas,
                latent=samples.to(device=device, dtype=torch.float32),
                denoise_strength=denoise,
                generator=generator,
            )
        return ({**latent, "samples": out.float().cpu()},)


NODE_CLASS_MAPPINGS = {
    "FrameFoldVideoSampler": FrameFoldVideoSampler,
    "FrameFoldContextOptions": FrameFoldContextOptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldVideoSampler": "FrameFold Video Sampler",
    "FrameFoldContextOptions": "FrameFold Context Options",
}
