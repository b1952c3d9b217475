"""Latent nodes: an empty video latent, and latents saved to / loaded from ComfyUI-compatible ``.latent`` files.

LATENT samples are raw VAE latents, as in ComfyUI (the sampler applies the model's scale). Files are named and written
exactly as ComfyUI's Save Latent does (``output/latents/FrameFold_00001_.latent`` by default); FrameFold VAE Decode (``nodes/vae_codec.py``) saves its input there
when decoding fails, and FrameFold Load Latent lists both the input and the output folder.
"""

import json
from typing import Any, Dict, Optional, Tuple

import torch

from ..pipelines.latents import EmptyLatentOptions, empty_video_latent
from ..pipelines.loading.files import WeightFileError, load_latent_file
from . import _types as T
from ._errors import NodeInputError, node_inputs
from ._folders import io_dir
from ._io_files import io_file_changed, io_file_verdict, resolve_io_file
from ._latent_files import LATENT_KIND, list_latent_files, save_numbered_latent

CATEGORY = "FrameFold/latent"


class FrameFoldEmptyVideoLatent:
    """All-zero latents for a video of the given size, shaped for the VAE."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Size, frame count and the VAE that sets channels and downscale."""
        return {
            "required": {
                "vae": (
                    T.FF_VAE,
                    {
                        "tooltip": "The VAE: sets the latent channels and its downscale factor d, the pixels per "
                        "latent pixel (8 for SD 1.5 VAEs, 4 for FrameFold's tiny default model). ComfyUI's Empty "
                        "Latent Image always assumes 8, which gives the tiny model a half-size video."
                    },
                ),
                "width": (
                    T.INT,
                    {
                        "default": 512,
                        "min": 8,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Video width in pixels: a multiple of the VAE's downscale d (8 for SD, 4 for the "
                        "tiny default model).",
                    },
                ),
                "height": (
                    T.INT,
                    {
                        "default": 512,
                        "min": 8,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Video height in pixels: a multiple of the VAE's downscale d.",
                    },
                ),
                "frames": (T.INT, {"default": 16, "min": 1, "max": 4096, "tooltip": "Number of frames."}),
            }
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Makes an empty latent video [frames, channels, height/d, width/d], d = the VAE's downscale factor "
        "(8 for SD 1.5, 4 for FrameFold's tiny default model)."
    )

    def generate(self, vae: Any, width: int, height: int, frames: int) -> Tuple[Dict[str, torch.Tensor]]:
        """Zeros ``[frames, C, height/d, width/d]``."""
        with node_inputs(self):
            return ({"samples": empty_video_latent(vae, EmptyLatentOptions(width, height, frames))},)


class FrameFoldSaveLatent:
    """Save latents to a ComfyUI-compatible .latent file in the output folder."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Latents and file name prefix."""
        return {
            "required": {
                "samples": (T.LATENT, {"tooltip": "Latents to save."}),
                "filename_prefix": (
                    T.STRING,
                    {
                        "default": "latents/FrameFold",
                        "tooltip": "File name prefix inside the output folder; subfolders allowed "
                        "(files are named <prefix>_00001_.latent, as ComfyUI's Save Latent names them).",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    DESCRIPTION = "Saves latents (safetensors .latent, readable by ComfyUI's Load Latent too)."

    def save(
        self,
        samples: Dict[str, Any],
        filename_prefix: str = "latents/FrameFold",
        prompt: Optional[Dict[str, Any]] = None,
        extra_pnginfo: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Write the file (with the prompt and workflow as metadata, like ComfyUI); the UI gets its name."""
        latents = T.latent_samples(self, samples, "samples")
        metadata = {"prompt": json.dumps(prompt)} if prompt is not None else {}
        metadata.update({k: json.dumps(v) for k, v in (extra_pnginfo or {}).items()})
        path = save_numbered_latent(type(self).__name__, filename_prefix, latents, metadata)
        subfolder = path.parent.relative_to(io_dir("output")).as_posix()
        entry = {"filename": path.name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}
        return {"ui": {"latents": [entry]}}


class FrameFoldLoadLatent:
    """Load a .latent file (e.g. one saved after a failed decode)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """The file to load."""
        return {
            "required": {
                "latent": (
                    list_latent_files(),
                    {
                        "tooltip": ".latent files of the input folder, and of the output folder (marked [output]); "
                        "failed decodes are saved in output/latents/."
                    },
                ),
            }
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads latents saved by FrameFold Save Latent, a failed VAE decode, or ComfyUI's Save Latent."

    @classmethod
    def IS_CHANGED(cls, latent: str) -> Any:
        """Re-run when the file changes on disk."""
        return io_file_changed(cls.__name__, "latent", latent, LATENT_KIND)

    @classmethod
    def VALIDATE_INPUTS(cls, latent: str) -> Any:
        """The file must exist inside the input/output folder."""
        return io_file_verdict(cls.__name__, "latent", latent, LATENT_KIND)

    def load(self, latent: str) -> Tuple[Dict[str, Any]]:
        """Read the file."""
        path = resolve_io_file(type(self).__name__, "latent", latent, LATENT_KIND)
        try:
            return ({"samples": load_latent_file(path)},)
        except WeightFileError as e:
            raise NodeInputError(type(self).__name__, "latent", str(e)) from e


NODE_CLASS_MAPPINGS = {
    "FrameFoldEmptyVideoLatent": FrameFoldEmptyVideoLatent,
    "FrameFoldSaveLatent": FrameFoldSaveLatent,
    "FrameFoldLoadLatent": FrameFoldLoadLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldEmptyVideoLatent": "FrameFold Empty Video Latent",
    "FrameFoldSaveLatent": "FrameFold Save Latent",
    "FrameFoldLoadLatent": "FrameFold Load Latent",
}
