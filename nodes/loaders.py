"""Loader nodes: SD / FrameFold checkpoints (model + text encoder + VAE) and standalone VAEs."""

from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

from ..pipelines.device import apply_precision
from ..pipelines.loading import checkpoint, vae
from ..pipelines.loading.files import WeightFileError
from ..pipelines.models.bundle import DiffusionModel
from ..pipelines.models.clip import TextEncoder
from ..pipelines.models.vae import VAE
from . import _types as T
from ._errors import NodeInputError
from ._folders import list_models, resolve_model

CATEGORY = "FrameFold/loaders"
DTYPES = ["auto", "fp32", "fp16", "bf16"]
DTYPE_TOOLTIP = (
    "Weight precision. auto = fp32 on the CPU; on a GPU bf16 where supported, else fp16 (UNet, text encoder) "
    "and bf16 or fp32 (VAE). fp16/bf16 halve memory on a GPU."
)


def resolve_input_file(node_class: str, input_name: str, kind: str, name: str) -> Path:
    """Model file path, or a NodeInputError naming the input and the folders searched."""
    try:
        return resolve_model(kind, name)
    except FileNotFoundError as e:
        raise NodeInputError(node_class, input_name, f"a file in the '{kind}' model folder. {e}") from e


def validate_model_file(
    node_class: str, input_name: str, kind: str, name: str, check: Callable[[Path], object]
) -> Union[bool, str]:
    """A node's ``VALIDATE_INPUTS`` verdict on a model file: True, or a message saying what the file is instead.

    ``check`` is the loading module's header check (no tensor data is read), so a wrong file is refused when
    the graph is validated, before anything runs.
    """
    try:
        check(resolve_input_file(node_class, input_name, kind, name))
    except (NodeInputError, WeightFileError, ValueError, OSError) as e:
        return f"{node_class}: input '{input_name}': {e}" if not isinstance(e, NodeInputError) else str(e)
    return True


def load_input_file(node_class: str, input_name: str, loader: Callable[..., Any], path: Path, **kwargs: Any) -> Any:
    """Run a loader; format and key problems (all ValueErrors) become NodeInputErrors on ``input_name``."""
    try:
        return loader(path, **kwargs)
    except ValueError as e:
        raise NodeInputError(node_class, input_name, str(e)) from e


class FrameFoldCheckpointLoader:
    """Load a Stable Diffusion 1.x single-file checkpoint or a FrameFold checkpoint."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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

    @classmethod
    def VALIDATE_INPUTS(cls, ckpt_name: str) -> Union[bool, str]:
        """The file must be a checkpoint (checked from its header, before anything runs)."""
        return validate_model_file(
            cls.__name__, "ckpt_name", "checkpoints", ckpt_name, checkpoint.check_checkpoint_file
        )

    def load(self, ckpt_name: str, dtype: str = "auto") -> Tuple[DiffusionModel, TextEncoder, VAE]:
        """Read the file and build the three models."""
        path = resolve_input_file(type(self).__name__, "ckpt_name", "checkpoints", ckpt_name)
        model, text_encoder, vae_model = load_input_file(
            type(self).__name__, "ckpt_name", checkpoint.load_checkpoint, path, dtype=dtype
        )
        apply_precision(model, text_encoder, vae_model, dtype)  # auto: the device policy's dtypes (fp32 on a CPU)
        return model, text_encoder, vae_model


class FrameFoldVAELoader:
    """Load a standalone VAE (original or diffusers naming)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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

    @classmethod
    def VALIDATE_INPUTS(cls, vae_name: str) -> Union[bool, str]:
        """The file must be a VAE (checked from its header, before anything runs)."""
        return validate_model_file(cls.__name__, "vae_name", "vae", vae_name, vae.check_vae_file)

    def load(self, vae_name: str, dtype: str = "auto") -> Tuple[VAE]:
        """Read the file and build the VAE."""
        path = resolve_input_file(type(self).__name__, "vae_name", "vae", vae_name)
        return (load_input_file(type(self).__name__, "vae_name", vae.load_vae, path, dtype=dtype),)


NODE_CLASS_MAPPINGS = {
    "FrameFoldCheckpointLoader": FrameFoldCheckpointLoader,
    "FrameFoldVAELoader": FrameFoldVAELoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldCheckpointLoader": "FrameFold Load Checkpoint",
    "FrameFoldVAELoader": "FrameFold Load VAE",
}
