"""Sampling nodes: the video sampler and its context-window options."""

from typing import Any, Dict, Optional, Tuple

from ..pipelines.generate import SamplingOutOfMemory, VideoOptions, generate_video
from ..pipelines.sampling.context import FUSE_METHODS, ContextOptions
from . import _types as T
from ._comfy import with_host_progress
from ._core_types import prompt_pair
from ._errors import node_inputs
from ._latent_files import save_numbered_latent

CATEGORY = "FrameFold/sampling"
CONTEXT_WIDGETS = {
    "length": "context_length",
    "overlap": "context_overlap",
    "stride": "context_stride",
    "fuse": "fuse_method",
}


class FrameFoldContextOptions:
    """Sliding context windows so videos longer than the motion module are denoised window by window."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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

    def build(
        self,
        context_length: int,
        context_overlap: int,
        context_stride: int = 1,
        closed_loop: bool = False,
        fuse_method: str = "pyramid",
    ) -> Tuple[ContextOptions]:
        """Pack the widgets into ContextOptions."""
        with node_inputs(self, CONTEXT_WIDGETS):
            return (ContextOptions(context_length, context_overlap, context_stride, bool(closed_loop), fuse_method),)


class FrameFoldVideoSampler:
    """Denoise a video latent with the temporal UNet: CFG, a choice of samplers and schedules, noise priors,
    context windows and partial denoise (video-to-video)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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
                "steps": T.steps_widget(20, "Denoising steps run."),
                "cfg": T.cfg_widget(),
                **T.sampler_widgets(),
                "denoise": T.fraction_widget(
                    "1 starts from pure noise. Lower keeps more of the input latent (video-to-video); steps are still "
                    "the steps run.",
                    low=0.01,
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

    @with_host_progress
    def sample(
        self,
        model: Any,
        positive: Any,
        negative: Any,
        latent: Dict[str, Any],
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        noise: Optional[Any] = None,
        context: Optional[Any] = None,
    ) -> Tuple[Dict[str, Any]]:
        """Widgets -> VideoOptions -> generate_video -> the LATENT dict."""
        samples = T.latent_samples(self, latent, "latent")
        positive, negative = prompt_pair(self, positive, negative)
        with node_inputs(self, T.SAMPLER_WIDGET_NAMES):
            fields = T.sampling_fields(seed, steps, cfg, sampler_name, scheduler)
            options = VideoOptions(**fields, denoise_strength=float(denoise))
            try:
                out = generate_video(model, positive, negative, samples, options, noise=noise, context=context)
            except SamplingOutOfMemory as e:
                saved = save_numbered_latent(type(self).__name__, "latents/FrameFold_sampling_oom", e.latents)
                raise RuntimeError(
                    f"{type(self).__name__}: {e}. The latents after step {e.steps_done} were saved to {saved} "
                    "(FrameFold Load Latent reads them); use a shorter context_length or a smaller latent."
                ) from e
        return ({**latent, "samples": out},)


NODE_CLASS_MAPPINGS = {
    "FrameFoldVideoSampler": FrameFoldVideoSampler,
    "FrameFoldContextOptions": FrameFoldContextOptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldVideoSampler": "FrameFold Video Sampler",
    "FrameFoldContextOptions": "FrameFold Context Options",
}
