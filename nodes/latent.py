"""Latent nodes: empty video latent, VAE encode/decode, save/load latent files.

If decoding fails (out of memory or anything else), the latents are first written to a ``.latent`` file in
the output folder and the error says where; FrameFold Load Latent resumes from it.
"""

import hashlib
import os
from pathlib import Path

import torch

from ..pipelines import progress
from ..pipelines.loading.files import LATENT_EXTENSION, WeightFileError, load_latent_file, save_latent_file
from ..pipelines.paths import PathRefused, contained_path
from . import _types as T
from ._errors import NodeInputError
from ._folders import io_dir

CATEGORY = "FrameFold/latent"
LATENT_SUBFOLDER = "latents"
_FOLDER_TAGS = {"input": "", "output": " [output]"}


def _samples(node_class, latent):
    """The ``[F,C,h,w]`` samples of a LATENT, or a NodeInputError."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise NodeInputError(node_class, "samples", "a LATENT dict with 'samples' [F,C,h,w]")
    return samples


def _unique_latent_path(prefix):
    """A new ``output/latents/<prefix>_<n>.latent`` path (counter above existing files)."""
    folder = io_dir("output") / LATENT_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{prefix}_{n:05d}{LATENT_EXTENSION}").exists():
        n += 1
    return folder / f"{prefix}_{n:05d}{LATENT_EXTENSION}"


def list_latent_files():
    """'.latent' files of the input folder (plain names) and the output folder (' [output]' suffix)."""
    names = []
    for folder, tag in _FOLDER_TAGS.items():
        base = io_dir(folder, create=False)
        found = []
        for root, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.endswith(LATENT_EXTENSION) and not name.startswith("."):
                    found.append((Path(root) / name).relative_to(base).as_posix() + tag)
        names += sorted(found)
    return names


def resolve_latent_file(node_class, name):
    """Full path of a name from :func:`list_latent_files`, refusing paths outside the folder."""
    folder = "input"
    if name.endswith(" [output]"):
        name, folder = name[: -len(" [output]")], "output"
    base = io_dir(folder)
    try:
        path = contained_path(base, name) if name else None
    except PathRefused:
        path = None
    if path is None:
        raise NodeInputError(node_class, "latent", f"a .latent file inside the {folder} folder, got {name!r}")
    if not path.is_file():
        raise NodeInputError(node_class, "latent", f"an existing .latent file in {base}, got {name!r}")
    return path


class FrameFoldEmptyVideoLatent:
    """All-zero latents for a video of the given size, shaped for the VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        """Size, frame count and the VAE that sets channels and downscale."""
        return {
            "required": {
                "vae": (T.FF_VAE, {"tooltip": "The VAE: sets the latent channels and the pixels per latent pixel."}),
                "width": (
                    T.INT,
                    {
                        "default": 512,
                        "min": 8,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Video width in pixels (a multiple of the VAE downscale, 8 for SD).",
                    },
                ),
                "height": (
                    T.INT,
                    {
                        "default": 512,
                        "min": 8,
                        "max": 8192,
                        "step": 8,
                        "tooltip": "Video height in pixels (a multiple of the VAE downscale).",
                    },
                ),
                "frames": (T.INT, {"default": 16, "min": 1, "max": 4096, "tooltip": "Number of frames."}),
            }
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Makes an empty latent video [frames, channels, height/d, width/d]."

    def generate(self, vae, width, height, frames):
        """Zeros ``[frames, C, height/d, width/d]``."""
        d = vae.downscale
        for name, value in (("width", width), ("height", height)):
            if value % d:
                raise NodeInputError(type(self).__name__, name, f"a multiple of {d} for this VAE, got {value}")
        samples = torch.zeros(frames, vae.latent_channels, height // d, width // d)
        return ({"samples": samples},)


class FrameFoldVAEEncode:
    """Encode video frames into latents."""

    @classmethod
    def INPUT_TYPES(cls):
        """Frames, VAE, posterior mode, seed and chunking."""
        return {
            "required": {
                "images": (T.IMAGE, {"tooltip": "Frames [F,H,W,C] in 0..1; H and W multiples of the VAE downscale."}),
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
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Encodes frames into scaled latents for the sampler."

    def encode(self, images, vae, mode="mean", seed=0, frame_chunk=16):
        """IMAGE -> LATENT."""
        d = vae.downscale
        if images.ndim != 4 or images.shape[1] % d or images.shape[2] % d:
            raise NodeInputError(
                type(self).__name__,
                "images",
                f"frames [F,H,W,C] with H and W multiples of {d}, got {tuple(images.shape)}",
            )
        generator = torch.Generator().manual_seed(int(seed)) if mode == "sample" else None
        samples = vae.encode(images, sample=(mode == "sample"), generator=generator, frame_chunk=frame_chunk)
        return ({"samples": samples},)


class FrameFoldVAEDecode:
    """Decode latents into frames, in frame chunks and spatial tiles."""

    @classmethod
    def INPUT_TYPES(cls):
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

    def decode(self, samples, vae, frame_chunk=16, tile_size=0, tile_overlap=64, temporal_decoder=True):
        """LATENT -> IMAGE; on failure the latents are saved and the error names the file."""
        latents = _samples(type(self).__name__, samples)
        if latents.shape[1] != vae.latent_channels:
            raise NodeInputError(
                type(self).__name__,
                "samples",
                f"latents with {vae.latent_channels} channels for this VAE, got {latents.shape[1]}",
            )
        d = vae.downscale
        if tile_size and tile_size < 8 * d:
            raise NodeInputError(
                type(self).__name__,
                "tile_size",
                f"0 (no tiling) or at least {8 * d} pixels for this VAE, got {tile_size}",
            )
        try:
            images = vae.decode(
                latents,
                frame_chunk=frame_chunk,
                tile=tile_size,
                tile_overlap=tile_overlap,
                temporal=temporal_decoder,
            )
        except (Exception, progress.Interrupted) as e:
            saved = save_latent_file(_unique_latent_path("FrameFold_decode_failed"), latents)
            name = saved.relative_to(io_dir("output")).as_posix()
            if isinstance(e, progress.Interrupted):
                raise progress.Interrupted(f"{e}; the latents were saved to {saved}") from e
            raise RuntimeError(
                f"{type(self).__name__}: decoding failed ({type(e).__name__}: {e}). The latents were saved to "
                f"{saved}; load them with FrameFold Load Latent (choose '{name} [output]') and decode again, e.g. "
                f"with a smaller frame_chunk or a tile_size."
            ) from e
        return (images,)


class FrameFoldSaveLatent:
    """Save latents to a ComfyUI-compatible .latent file in the output folder."""

    @classmethod
    def INPUT_TYPES(cls):
        """Latents and file name prefix."""
        return {
            "required": {
                "samples": (T.LATENT, {"tooltip": "Latents to save."}),
                "filename_prefix": (
                    T.STRING,
                    {"default": "FrameFold", "tooltip": "File name prefix; files go to output/latents/."},
                ),
            }
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    DESCRIPTION = "Saves latents (safetensors .latent, readable by ComfyUI's Load Latent too)."

    def save(self, samples, filename_prefix="FrameFold"):
        """Write the file; the UI gets its name."""
        prefix = filename_prefix.strip().replace("\\", "/")
        if not prefix or "/" in prefix or prefix.startswith("."):
            raise NodeInputError(
                type(self).__name__, "filename_prefix", f"a plain file name prefix, got {filename_prefix!r}"
            )
        path = save_latent_file(_unique_latent_path(prefix), _samples(type(self).__name__, samples))
        return {"ui": {"latents": [{"filename": path.name, "subfolder": LATENT_SUBFOLDER, "type": "output"}]}}


class FrameFoldLoadLatent:
    """Load a .latent file (e.g. one saved after a failed decode)."""

    @classmethod
    def INPUT_TYPES(cls):
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
    def IS_CHANGED(cls, latent):
        """Re-run when the file's bytes change."""
        try:
            path = resolve_latent_file(cls.__name__, latent)
        except NodeInputError:
            return float("nan")
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, latent):
        """The file must exist inside the input/output folder."""
        try:
            resolve_latent_file(cls.__name__, latent)
        except NodeInputError as e:
            return str(e)
        return True

    def load(self, latent):
        """Read the file."""
        path = resolve_latent_file(type(self).__name__, latent)
        try:
            return ({"samples": load_latent_file(path)},)
        except WeightFileError as e:
            raise NodeInputError(type(self).__name__, "latent", str(e)) from e


NODE_CLASS_MAPPINGS = {
    "FrameFoldEmptyVideoLatent": FrameFoldEmptyVideoLatent,
    "FrameFoldVAEEncode": FrameFoldVAEEncode,
    "FrameFoldVAEDecode": FrameFoldVAEDecode,
    "FrameFoldSaveLatent": FrameFoldSaveLatent,
    "FrameFoldLoadLatent": FrameFoldLoadLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldEmptyVideoLatent": "FrameFold Empty Video Latent",
    "FrameFoldVAEEncode": "FrameFold VAE Encode",
    "FrameFoldVAEDecode": "FrameFold VAE Decode",
    "FrameFoldSaveLatent": "FrameFold Save Latent",
    "FrameFoldLoadLatent": "FrameFold Load Latent",
}
