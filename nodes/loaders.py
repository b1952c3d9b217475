"""Loader nodes: SD / FrameFold checkpoints (model + text encoder + VAE) and standalone VAEs."""

from ..pipelines.device import apply_precision
from ..pipelines.loading.checkpoint import CheckpointKeyError, load_checkpoint, load_vae
from ..pipelines.loading.detect import WrongLoaderError
from ..pipelines.loading.files import WeightFileError
from . import _types as T
from ._errors import NodeInputError
from ._folders import list_models, resolve_model

CATEGORY = "FrameFold/loaders"
DTYPES = ["auto", "fp32", "fp16", "bf16"]
DTYPE_TOOLTIP = (
    "Weight precision. auto = fp32 on the CPU; on a GPU bf16 where supported, else fp16 (UNet, text encoder) "
    "and bf16 or fp32 (VAE). fp16/bf16 halve memory on a GPU."
)


def _resolve(node_class, input_name, kind, name):
    """Model file path, or a NodeInputError naming the input and the folders searched."""
    try:
        return resolve_model(kind, name)
    except FileNotFoundError as e:
        raise NodeInputError(node_class, input_name, f"a file in the '{kind}' model folder. {e}") from e


def _load(node_class, input_name, loader, path, **kwargs):
    """Run a loader; format and key problems become NodeInputErrors on ``input_name``."""
    try:
        return loader(path, **kwargs)
    except (WrongLoaderError, WeightFileError, CheckpointKeyError, ValueError) as e:
        raise NodeInputError(node_class, input_name, str(e)) from e


class FrameFoldCheckpointLoader:
    """Load a Stable Diffusion 1.x single-file checkpoint or a FrameFold checkpoint."""

    @classmethod
    def INPUT_TYPES(cls):
        """Checkpoint file and precision."""
        return {
            "required": {
                "ckpt_name": (
                    list_models("checkpoints"),
                    {
                        "tooltip": "Checkpoint from the 'checkpoints' folder (SD1.x single file or a FrameFold "
                        "checkpoint; the embedded default model is listed first)."
                    },
                ),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
            }
        }

    RETURN_TYPES = (T.FF_MODEL, T.FF_TEXT_ENCODER, T.FF_VAE)
    RETURN_NAMES = ("model", "text_encoder", "vae")
    OUTPUT_TOOLTIPS = (
        "The denoising UNet and its noise schedule.",
        "Tokenizer + CLIP text encoder.",
        "The VAE (latent <-> pixels).",
    )
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the UNet, the CLIP text encoder and the VAE of one checkpoint file."

    def load(self, ckpt_name, dtype="auto"):
        """Read the file and build the three models."""
        path = _resolve(type(self).__name__, "ckpt_name", "checkpoints", ckpt_name)
        models = _load(type(self).__name__, "ckpt_name", load_checkpoint, path, dtype=dtype)
        apply_precision(*models, dtype)  # auto: each model's dtype from the device policy (fp32 on the CPU)
        return models


class FrameFoldVAELoader:
    """Load a standalone VAE (original or diffusers naming)."""

    @classmethod
    def INPUT_TYPES(cls):
        """VAE file and precision."""
        return {
            "required": {
                "vae_name": (
                    list_models("vae"),
                    {
                        "tooltip": "VAE from the 'vae' folder, e.g. vae-ft-mse-840000-ema-pruned.safetensors or a "
                        "diffusers diffusion_pytorch_model.safetensors."
                    },
                ),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
            }
        }

    RETURN_TYPES = (T.FF_VAE,)
    RETURN_NAMES = ("vae",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads a VAE file to replace a checkpoint's VAE."

    def load(self, vae_name, dtype="auto"):
        """Read the file and build the VAE."""
        path = _resolve(type(self).__name__, "vae_name", "vae", vae_name)
        return (_load(type(self).__name__, "vae_name", load_vae, path, dtype=dtype),)


NODE_CLASS_MAPPINGS = {
    "FrameFoldCheckpointLoader": FrameFoldCheckpointLoader,
    "FrameFoldVAELoader": FrameFoldVAELoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldCheckpointLoader": "FrameFold Load Checkpoint",
    "FrameFoldVAELoader": "FrameFold Load VAE",
}
