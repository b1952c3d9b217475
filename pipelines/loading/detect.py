"""What kind of weight file is this? Used to route files and to tell users which loader a file belongs to.

:func:`detect_format` looks only at key names and shapes (and the ``framefold`` metadata entry), never at
values, so it works on :func:`.files.read_header` output: :func:`check_file` tells what a file is, and refuses it
for the wrong loader, without reading its tensors. A new component loader (ControlNet, upscaler, RIFE, ...) adds
its format constant, detection rule, description and loader name here, calls :func:`check_file` from its node's
``VALIDATE_INPUTS`` and its ``load_*`` function, then reads the tensors with :func:`.files.read_state_dict` and
checks them with :func:`.state_dict.check_state_dict`.
"""

import json
import re
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Optional, Union

import torch

from .files import FileHeader, read_header

SD_CHECKPOINT = "sd_checkpoint"
FRAMEFOLD_CHECKPOINT = "framefold_checkpoint"
DIFFUSERS_UNET = "diffusers_unet"
DIFFUSERS_VAE = "diffusers_vae"
DIFFUSERS_FOLDER = "diffusers"
STANDALONE_VAE = "standalone_vae"
MOTION_MODULE = "motion_module"
CONTROLNET = "controlnet"
CLIP_TEXT = "clip_text"
RIFE = "rife"
UPSCALER = "upscaler"
UNKNOWN = "unknown"

FORMATS = (
    SD_CHECKPOINT,
    FRAMEFOLD_CHECKPOINT,
    DIFFUSERS_UNET,
    DIFFUSERS_VAE,
    DIFFUSERS_FOLDER,
    STANDALONE_VAE,
    MOTION_MODULE,
    CONTROLNET,
    CLIP_TEXT,
    RIFE,
    UPSCALER,
    UNKNOWN,
)

# Which FrameFold node loads each format (for "wrong loader" messages).
LOADER_FOR_FORMAT = {
    SD_CHECKPOINT: "FrameFold Load Checkpoint",
    FRAMEFOLD_CHECKPOINT: "FrameFold Load Checkpoint",
    DIFFUSERS_UNET: "FrameFold Load Checkpoint (diffusers UNet files are not supported as a checkpoint)",
    DIFFUSERS_VAE: "FrameFold Load VAE",
    STANDALONE_VAE: "FrameFold Load VAE",
    MOTION_MODULE: "FrameFold Load Motion Module",
    CONTROLNET: "FrameFold Load ControlNet",
    CLIP_TEXT: "a text-encoder loader (a standalone CLIP file is not a full checkpoint)",
    RIFE: "FrameFold Load Frame Interpolation Model",
    UPSCALER: "FrameFold Load Upscale Model",
}

DESCRIPTION = {
    SD_CHECKPOINT: "a Stable Diffusion single-file checkpoint",
    FRAMEFOLD_CHECKPOINT: "a FrameFold checkpoint",
    DIFFUSERS_UNET: "a diffusers-format UNet",
    DIFFUSERS_VAE: "a diffusers-format VAE",
    DIFFUSERS_FOLDER: "a diffusers model folder",
    STANDALONE_VAE: "a standalone VAE",
    MOTION_MODULE: "an AnimateDiff motion module",
    CONTROLNET: "a ControlNet",
    CLIP_TEXT: "a CLIP text encoder",
    RIFE: "a RIFE frame-interpolation model (IFNet)",
    UPSCALER: "an ESRGAN-family upscale model",
    UNKNOWN: "a file of unknown format",
}


def _has_prefix(keys: Collection[str], *prefixes: str) -> bool:
    """True when some key starts with one of ``prefixes``."""
    return any(k.startswith(prefixes) for k in keys)


def _has_key_part(keys: Collection[str], part: str) -> bool:
    """True when some key contains ``part``."""
    return any(part in k for k in keys)


def motion_module_version(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'v1' / 'v2' / 'v3' (or 'unknown') for an AnimateDiff motion module (``motion_keys`` detector when present).

    The rule (AnimateDiff-Evolved and diffusers agree): a mid-block module means v2; otherwise a positional
    table of length 24 means v1 and 32 means v3.
    """
    from .motion_keys import detect_motion_module_version

    try:
        return detect_motion_module_version(state_dict)
    except ValueError:
        return "unknown"


def detect_format(state_dict: Mapping[str, Any], metadata: Optional[Mapping[str, Any]] = None) -> str:
    """One of :data:`FORMATS` from the key names (and the ``framefold`` metadata entry)."""
    keys = list(state_dict)
    if (metadata or {}).get("framefold") is not None and _has_prefix(keys, "model.diffusion_model."):
        return FRAMEFOLD_CHECKPOINT
    if _has_key_part(keys, "motion_modules.") and not _has_prefix(keys, "model.diffusion_model.input_blocks"):
        return MOTION_MODULE
    if _has_prefix(keys, "control_model.", "input_hint_block.", "controlnet_cond_embedding.", "zero_convs."):
        return CONTROLNET
    if _has_prefix(keys, "model.diffusion_model."):
        return SD_CHECKPOINT
    if "time_embedding.linear_1.weight" in state_dict and _has_prefix(keys, "down_blocks."):
        return DIFFUSERS_UNET
    if _has_prefix(keys, "encoder.down_blocks.", "decoder.up_blocks."):
        return DIFFUSERS_VAE
    if _has_prefix(keys, "encoder.down.", "decoder.up.", "first_stage_model.encoder.", "first_stage_model.decoder."):
        return STANDALONE_VAE
    if _has_key_part(keys, "encoder.layers.0.self_attn.q_proj.weight") and _has_key_part(keys, "token_embedding"):
        return CLIP_TEXT
    if _has_prefix(keys, "block0.conv0.") and _has_prefix(keys, "block1.") and _has_key_part(keys, ".lastconv."):
        return RIFE
    if is_upscaler(keys):
        return UPSCALER
    return UNKNOWN


def is_upscaler(keys: Iterable[str]) -> bool:
    """ESRGAN-family key layouts: RRDBNet new-arch, old-arch ESRGAN, or SRVGGNetCompact's flat ``body.N``."""
    keys = list(keys)
    if "conv_first.weight" in keys and _has_prefix(keys, "body.0.rdb1."):
        return True
    if "model.0.weight" in keys and _has_key_part(keys, ".sub.0.RDB1."):
        return True
    return bool(keys) and "body.0.weight" in keys and all(re.fullmatch(r"body\.\d+\.(weight|bias)", k) for k in keys)


def detect_path_format(path: Union[str, Path]) -> str:
    """Like :func:`detect_format` for a folder: a diffusers pipeline folder has ``model_index.json``."""
    path = Path(path)
    if path.is_dir():
        return DIFFUSERS_FOLDER if (path / "model_index.json").is_file() else UNKNOWN
    raise ValueError(f"{path}: detect_path_format expects a folder; read files with read_state_dict + detect_format")


def describe(state_dict: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> str:
    """Human description, e.g. 'an AnimateDiff motion module (v2)'."""
    fmt = detect_format(state_dict, metadata)
    text = DESCRIPTION[fmt]
    if fmt == MOTION_MODULE:
        text += f" ({motion_module_version(state_dict)})"
    if fmt in (SD_CHECKPOINT, FRAMEFOLD_CHECKPOINT):
        text += _unet_variant_note(state_dict)
    if fmt == FRAMEFOLD_CHECKPOINT:
        try:
            json.loads((metadata or {})["framefold"])
        except (TypeError, ValueError):
            text += " (with unreadable metadata)"
    return text


def _unet_variant_note(state_dict: Mapping[str, torch.Tensor]) -> str:
    """`` (inpainting, ...)`` when the checkpoint's UNet takes more than the latent as input, else ''."""
    from .unet import unet_variant

    conv_in = state_dict.get("model.diffusion_model.input_blocks.0.0.weight")
    conv_out = state_dict.get("model.diffusion_model.out.2.weight")
    if conv_in is None or conv_out is None or conv_in.ndim != 4:
        return ""
    variant = unet_variant(conv_in.shape[1], conv_out.shape[0])
    return f" with {variant}" if variant else ""


class WrongLoaderError(ValueError):
    """A file was given to a loader that does not load its format; says which loader does."""


def require_format(
    path: Union[str, Path],
    state_dict: Mapping[str, torch.Tensor],
    metadata: Optional[Mapping[str, str]],
    accepted: Collection[str],
    loader_name: str,
) -> str:
    """Raise :class:`WrongLoaderError` unless the file's format is in ``accepted``; returns the format."""
    fmt = detect_format(state_dict, metadata)
    if fmt in accepted:
        return fmt
    what = describe(state_dict, metadata)
    if fmt == UNKNOWN:
        sample = ", ".join(list(state_dict)[:5])
        expected = " or ".join(sorted({DESCRIPTION[f] for f in accepted}))
        raise WrongLoaderError(
            f"{Path(path).name}: {loader_name} cannot load this file: its keys match no known format; expected "
            f"{expected} (first keys: {sample})."
        )
    hint = LOADER_FOR_FORMAT.get(fmt, "another loader")
    raise WrongLoaderError(f"{Path(path).name} is {what}, not something {loader_name} loads; load it with {hint}.")


def check_file(path: Union[str, Path], accepted: Collection[str], loader_name: str) -> FileHeader:
    """The header of ``path`` after checking, without reading tensor data, that ``loader_name`` loads its format.

    Raises :class:`WrongLoaderError` saying what the file is and which loader takes it, or
    :class:`.files.WeightFileError` for a file that is not a readable weight file.
    """
    header = read_header(path)
    require_format(path, header.tensors, header.metadata, accepted, loader_name)
    return header
