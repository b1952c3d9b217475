"""Adapter nodes from ComfyUI core types to FrameFold's (the design is in README.md, "Inside ComfyUI").

FrameFold VAE from ComfyUI: a core VAE (Load VAE, Load Checkpoint) as FF_VAE, so one VAE file serves both kinds of
nodes. Core's SD VAE (``first_stage_model``) has the same original-format keys as FrameFold's AutoencoderKL.
"""

from typing import Any, Dict, Tuple

import torch

from ..pipelines.loading.vae import build_vae
from ..pipelines.models.vae import VAE
from . import _types as T
from ._errors import NodeInputError

CATEGORY = "FrameFold/loaders"


def vae_from_core(node_class: str, vae: Any) -> VAE:
    """FrameFold's VAE with the weights of a core ``comfy.sd.VAE`` (its ``first_stage_model``), as float32."""
    model = getattr(vae, "first_stage_model", None)
    if not isinstance(model, torch.nn.Module):
        raise NodeInputError(node_class, "vae", f"a ComfyUI VAE (Load VAE / Load Checkpoint), got {type(vae).__name__}")
    try:
        return build_vae(model.state_dict(), None, torch.float32, what="ComfyUI VAE", name="comfyui_vae")
    except ValueError as e:
        raise NodeInputError(node_class, "vae", f"an SD-family KL VAE FrameFold can run: {e}") from e


class FrameFoldVAEFromComfy:
    """A core VAE as FrameFold's VAE."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The core VAE."""
        return {"required": {"vae": ("VAE", {"tooltip": "A VAE from a core loader (Load VAE, Load Checkpoint)."})}}

    RETURN_TYPES = (T.FF_VAE,)
    RETURN_NAMES = ("vae",)
    FUNCTION = "convert"
    CATEGORY = CATEGORY
    DESCRIPTION = "Uses a core VAE with FrameFold's VAE nodes (same weights, so latents mean the same)."

    def convert(self, vae: Any) -> Tuple[VAE]:
        """Core VAE -> FF_VAE."""
        return (vae_from_core(type(self).__name__, vae),)


NODE_CLASS_MAPPINGS = {"FrameFoldVAEFromComfy": FrameFoldVAEFromComfy}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldVAEFromComfy": "FrameFold VAE from ComfyUI"}
