"""Diffusion in-betweening node: the video model makes the frames between key-frame latents."""

from typing import Any, Dict, Optional, Tuple

from ..pipelines.generate import InbetweenOptions, inbetween_video
from . import _types as T
from ._comfy import with_host_progress
from ._errors import node_inputs

CATEGORY = "FrameFold/interpolation"


class FrameFoldDiffusionInbetween:
    """Key frames (a LATENT of K frames) -> (K - 1) x multiplier + 1 frames; the keys stay exactly as given."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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
                "steps": T.steps_widget(20, "Denoising steps run."),
                "cfg": T.cfg_widget(),
                **T.sampler_widgets(spacing="trailing"),
                "denoise": T.fraction_widget(
                    "1 = new content between the keys. Lower keeps more of a linear blend of the keys.", low=0.01
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

    @with_host_progress
    def inbetween(
        self,
        model: Any,
        positive: Any,
        negative: Any,
        keyframes: Dict[str, Any],
        multiplier: int,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        context: Optional[Any] = None,
    ) -> Tuple[Dict[str, Any]]:
        """Widgets -> InbetweenOptions -> inbetween_video -> the LATENT dict."""
        keys = T.latent_samples(self, keyframes, "keyframes")
        with node_inputs(self, {**T.SAMPLER_WIDGET_NAMES, "key_latents": "keyframes"}):
            fields = T.sampling_fields(seed, steps, cfg, sampler_name, scheduler)
            options = InbetweenOptions(**fields, denoise_strength=float(denoise), multiplier=multiplier)
            out = inbetween_video(model, positive, negative, keys, options, context=context)
        return ({**keyframes, "samples": out},)


NODE_CLASS_MAPPINGS = {"FrameFoldDiffusionInbetween": FrameFoldDiffusionInbetween}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldDiffusionInbetween": "FrameFold Diffusion In-between"}
