"""Adapter nodes between ComfyUI core types and FrameFold's (the design is in README.md, "Inside ComfyUI").

- FrameFold VAE from ComfyUI: a core VAE (Load VAE, Load Checkpoint) as FF_VAE, so one VAE file serves both kinds of
  nodes. Core's SD VAE (``first_stage_model``) has the same original-format keys as FrameFold's AutoencoderKL.
- FrameFold Model from ComfyUI: a core MODEL (after LoRA loaders and the like) as FF_MODEL, weights shared.
- FrameFold Model to ComfyUI: FrameFold's model (with its motion module) as a core MODEL for KSampler.
- FrameFold Conditioning to ComfyUI: FrameFold's text embeddings as core CONDITIONING.
"""

from typing import Any, Dict, List, Tuple

import torch

from ..pipelines.loading.vae import build_vae
from ..pipelines.models.bundle import Conditioning, DiffusionModel
from ..pipelines.models.vae import VAE
from . import _types as T
from ._comfy_model import conditioning_to_core, model_from_core, model_to_core
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


class FrameFoldModelFromComfy:
    """A core MODEL as FrameFold's model (for its motion module, samplers, long video, ...)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The core MODEL."""
        tooltip = (
            "An SD 1.x/2.x MODEL from core nodes (Load Checkpoint, LoRA loaders, ModelSamplingDiscrete). Its weight "
            "patches (LoRAs) are applied and the weights shared, not copied; attention patches and wrappers from "
            "other packs are refused, FrameFold runs its own UNet."
        )
        return {"required": {"model": ("MODEL", {"tooltip": tooltip})}}

    RETURN_TYPES = (T.FF_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "convert"
    CATEGORY = CATEGORY
    DESCRIPTION = "Uses a core MODEL (with its LoRAs) with FrameFold's motion modules and samplers."

    def convert(self, model: Any) -> Tuple[DiffusionModel]:
        """Core MODEL -> FF_MODEL."""
        return (model_from_core(type(self).__name__, model),)


class FrameFoldModelToComfy:
    """FrameFold's model as a core MODEL (for KSampler and other core sampling nodes)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The FrameFold model."""
        tooltip = (
            "A FrameFold model, with a motion module attached for video. Core KSampler then denoises all frames of "
            "its latent batch together (up to the motion module's frame window; FrameFold's sampler has context "
            "windows for longer videos). Its noise schedule and latent format go with it."
        )
        return {"required": {"model": (T.FF_MODEL, {"tooltip": tooltip})}}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "convert"
    CATEGORY = CATEGORY
    DESCRIPTION = "Runs FrameFold's model (and its motion module) in core sampling nodes such as KSampler."

    def convert(self, model: DiffusionModel) -> Tuple[Any]:
        """FF_MODEL -> core MODEL."""
        return (model_to_core(type(self).__name__, model),)


class FrameFoldConditioningToComfy:
    """FrameFold's text conditioning as core CONDITIONING."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The FrameFold conditioning."""
        tooltip = "Conditioning from FrameFold Text Encode (ControlNets attached to it are not carried over)."
        return {"required": {"conditioning": (T.FF_CONDITIONING, {"tooltip": tooltip})}}

    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "convert"
    CATEGORY = CATEGORY
    DESCRIPTION = "Feeds FrameFold's text embeddings to core nodes (KSampler, conditioning nodes)."

    def convert(self, conditioning: Conditioning) -> Tuple[List[List[Any]]]:
        """FF_CONDITIONING -> core CONDITIONING."""
        if not isinstance(conditioning, Conditioning):
            raise NodeInputError(
                type(self).__name__, "conditioning", f"FrameFold conditioning, got {type(conditioning).__name__}"
            )
        if conditioning.control:
            raise NodeInputError(
                type(self).__name__,
                "conditioning",
                "conditioning without FrameFold ControlNets (core samplers cannot apply them)",
            )
        return (conditioning_to_core(conditioning.embeds),)


NODE_CLASS_MAPPINGS = {
    "FrameFoldVAEFromComfy": FrameFoldVAEFromComfy,
    "FrameFoldModelFromComfy": FrameFoldModelFromComfy,
    "FrameFoldModelToComfy": FrameFoldModelToComfy,
    "FrameFoldConditioningToComfy": FrameFoldConditioningToComfy,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldVAEFromComfy": "FrameFold VAE from ComfyUI",
    "FrameFoldModelFromComfy": "FrameFold Model from ComfyUI",
    "FrameFoldModelToComfy": "FrameFold Model to ComfyUI",
    "FrameFoldConditioningToComfy": "FrameFold Conditioning to ComfyUI",
}
