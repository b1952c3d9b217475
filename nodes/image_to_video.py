"""Image-to-video node: animate a still image by holding the first latent frame to it (seed 000 §4.1)."""

from typing import Any, Dict, Optional, Tuple

import torch

from ..pipelines.generate import ImageToVideoOptions, animate_image
from . import _types as T
from ._comfy import with_host_progress
from ._core_types import prompt_pair
from ._errors import node_inputs

CATEGORY = "FrameFold/sampling"
WIDGET_NAMES = {**T.SAMPLER_WIDGET_NAMES, "image_strength": "strength"}


class FrameFoldImageToVideo:
    """Image-to-video: the first latent frame is held to the encoded image at every step (strength-blended), the
    motion module animates it."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Model, prompts, VAE and image, then frames, strength and the sampler widgets."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet with its motion module."}),
                **T.prompt_inputs(),
                "vae": (T.FF_VAE, {"tooltip": "Encodes the image into the first latent frame."}),
                "image": (
                    T.IMAGE,
                    {
                        "tooltip": "The first frame (the batch's first image is used); other sizes than multiples of "
                        "the VAE's downscale are fitted by size_policy."
                    },
                ),
                "strength": T.fraction_widget("1 pins frame 0 to the image; lower lets it drift; 0 ignores the image."),
                "frames": (T.INT, {"default": 16, "min": 1, "max": 4096, "tooltip": "Frames to generate."}),
                "seed": T.seed_widget("Seed of the initial noise and of the sampler's noise."),
                "steps": T.steps_widget(25, "Denoising steps."),
                "cfg": T.cfg_widget(),
            },
            "optional": {
                **T.sampler_widgets(),
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior for the initial noise (default: i.i.d.)."}),
                "context": (
                    T.FF_CONTEXT,
                    {"tooltip": "Context windows for more frames than the motion module's window."},
                ),
                "freeinit": (T.FF_FREEINIT, {"tooltip": "FreeInit re-initialisation passes."}),
                "size_policy": T.size_policy_widget(),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The latent video; at strength 1 its first frame is the image's latent.",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Animate a still image: first-frame latent held at every denoising step."

    @with_host_progress
    def generate(
        self,
        model: Any,
        positive: Any,
        negative: Any,
        vae: Any,
        image: torch.Tensor,
        strength: float,
        frames: int,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str = "ddim",
        scheduler: str = "leading",
        noise: Optional[Any] = None,
        context: Optional[Any] = None,
        freeinit: Optional[Any] = None,
        size_policy: str = "crop",
    ) -> Tuple[Dict[str, Any]]:
        """Widgets -> ImageToVideoOptions -> animate_image -> the LATENT dict."""
        positive, negative = prompt_pair(self, positive, negative)
        with node_inputs(self, WIDGET_NAMES):
            fields = T.sampling_fields(seed, steps, cfg, sampler_name, scheduler)
            options = ImageToVideoOptions(
                **fields, frames=int(frames), image_strength=float(strength), size_policy=size_policy
            )
            out = animate_image(
                model, positive, negative, vae, image, options, noise=noise, context=context, freeinit=freeinit
            )
        return ({"samples": out},)


NODE_CLASS_MAPPINGS = {"FrameFoldImageToVideo": FrameFoldImageToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldImageToVideo": "FrameFold Image to Video"}
