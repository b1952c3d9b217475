"""VAE nodes: encode frames to latents and decode them back (adapters of ``pipelines/latents.py``).

If decoding fails (out of memory or anything else), the latents are first written to a ``.latent`` file in
the output folder and the error says where; FrameFold Load Latent (``nodes/latent.py``) resumes from it.
"""

from typing import Any, Dict, Tuple

import torch

from ..pipelines import progress
from ..pipelines.latents import (
    DecodeOptions,
    EncodeOptions,
    decode_video,
    encode_video,
)
from ..pipelines.options import OptionError
from . import _types as T
from ._errors import node_inputs
from ._folders import io_dir
from ._latent_files import save_numbered_latent

CATEGORY = "FrameFold/latent"


class FrameFoldVAEEncode:
    """Encode video frames into latents."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Frames, VAE, posterior mode, seed and chunking."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "Frames [F,H,W,C] in 0..1; other sizes are fitted by size_policy."}),
                "vae": (T.FF_VAE, {"tooltip": "The VAE to encode with."}),
            },
            "optional": {
                "mode": (
                    ["mean", "sample"],
                    {
                        "default": "mean",
                        "tooltip": "mean: the posterior mean (deterministic, what ComfyUI "
                        "does); sample: draw from the posterior with the seed.",
                    },
                ),
                "seed": (T.INT, {"default": 0, "min": 0, "max": T.MAX_SEED, "tooltip": "Seed for mode=sample."}),
                "frame_chunk": (
                    T.INT,
                    {
                        "default": 16,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "Frames encoded at once; lower uses less memory.",
                    },
                ),
                "size_policy": T.size_policy_widget(),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Encodes frames into latents (raw VAE latents, the same values as ComfyUI's VAE Encode)."

    def encode(
        self,
        images: torch.Tensor,
        vae: Any,
        mode: str = "mean",
        seed: int = 0,
        frame_chunk: int = 16,
        size_policy: str = "crop",
    ) -> Tuple[Dict[str, torch.Tensor]]:
        """IMAGE -> LATENT."""
        with node_inputs(self):
            options = EncodeOptions(mode, int(seed), frame_chunk, size_policy)
            return ({"samples": encode_video(vae, images, options)},)


class FrameFoldVAEDecode:
    """Decode latents into frames, in frame chunks and spatial tiles."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Latents, VAE, chunking, tiling and the temporal decoder switch."""
        return {
            "required": {
                "samples": (T.LATENT, {"tooltip": "Latents [F,C,h,w] from a sampler or VAE Encode."}),
                "vae": (T.FF_VAE, {"tooltip": "The VAE to decode with."}),
            },
            "optional": {
                "frame_chunk": (
                    T.INT,
                    {
                        "default": 16,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "Frames decoded at once; lower uses less memory. With a "
                        "temporal decoder each chunk also decodes its temporal context "
                        "frames, so the result does not depend on this value.",
                    },
                ),
                "tile_size": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Spatial tile size in pixels (0 = whole frames). Tiles bound memory "
                        "at high resolution; they are blended linearly over the overlap.",
                    },
                ),
                "tile_overlap": (
                    T.INT,
                    {"default": 64, "min": 0, "max": 4096, "step": 8, "tooltip": "Overlap between tiles in pixels."},
                ),
                "temporal_decoder": (
                    T.BOOLEAN,
                    {
                        "default": True,
                        "tooltip": "Use the VAE's temporal (Temp-Conv) layers when it has "
                        "them; off decodes each frame on its own. A VAE without "
                        "temporal layers decodes frame by frame either way.",
                    },
                ),
            },
        }

    RETURN_TYPES = (T.IMAGE,)
    RETURN_NAMES = ("images",)
    FUNCTION = "decode"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Decodes latents to frames. If decoding fails, the latents are saved to the output folder first "
        "(see the error message) so FrameFold Load Latent can resume."
    )

    def decode(
        self,
        samples: Dict[str, Any],
        vae: Any,
        frame_chunk: int = 16,
        tile_size: int = 0,
        tile_overlap: int = 64,
        temporal_decoder: bool = True,
    ) -> Tuple[torch.Tensor]:
        """LATENT -> IMAGE; on failure the latents are saved and the error names the file."""
        latents = T.latent_samples(self, samples, "samples")
        with node_inputs(self, {"temporal": "temporal_decoder"}):
            options = DecodeOptions(frame_chunk, tile_size, tile_overlap, bool(temporal_decoder))
            try:
                return (decode_video(vae, latents, options),)
            except OptionError:
                raise  # bad input: nothing was decoded, nothing to save
            except (Exception, progress.Interrupted) as e:
                raise self._saved_latents_error(latents, e) from e

    def _saved_latents_error(self, latents: torch.Tensor, error: BaseException) -> BaseException:
        """Write the latents to ``output/latents/``; the error to raise says where they are."""
        saved = save_numbered_latent(type(self).__name__, "latents/FrameFold_decode_failed", latents)
        name = saved.relative_to(io_dir("output")).as_posix()
        if isinstance(error, progress.Interrupted):
            return progress.Interrupted(f"{error}; the latents were saved to {saved}")
        return RuntimeError(
            f"{type(self).__name__}: decoding failed ({type(error).__name__}: {error}). The latents were saved to "
            f"{saved}; load them with FrameFold Load Latent (choose '{name} [output]') and decode again, e.g. "
            f"with a smaller frame_chunk or a tile_size."
        )


NODE_CLASS_MAPPINGS = {"FrameFoldVAEEncode": FrameFoldVAEEncode, "FrameFoldVAEDecode": FrameFoldVAEDecode}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldVAEEncode": "FrameFold VAE Encode",
    "FrameFoldVAEDecode": "FrameFold VAE Decode",
}
