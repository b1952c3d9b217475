"""Whole checkpoints: SD single-file checkpoints and FrameFold checkpoints -> (model, text encoder, VAE).

SD single file (SD1.x layout): ``model.diffusion_model.*`` (UNet, :mod:`.unet`), ``first_stage_model.*`` (VAE,
:mod:`.vae`), ``cond_stage_model.transformer[.text_model].*`` / ``cond_stage_model.model.*`` (CLIP, :mod:`.clip`).
Keys of the known-harmless families (EMA, LoRA leftovers, schedule buffers, ``logvar``, position ids) are dropped
with a warning listing them; any other key is an error naming the file and the key (:mod:`.state_dict`).
Inpainting (9-channel) and other extra-input UNets are refused with a message saying what they are.

FrameFold checkpoint: the same key layout plus a safetensors ``__metadata__["framefold"]`` JSON entry
``{"unet": {...UNetConfig}, "vae": {...AutoencoderKLConfig}, "text_encoder": {...CLIPTextConfig},
"tokenizer": {"type": ...}, "schedule": {...ScheduleConfig}}``; those configs are used instead of inferring
them from shapes. :func:`save_framefold_checkpoint` writes such a file.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from ..models.bundle import DiffusionModel, ScheduleConfig
from ..models.clip import CLIPTextConfig, TextEncoder
from ..models.configs import config_from_dict, config_to_dict
from ..models.tokenizers import build_tokenizer
from ..models.unet import UNetConfig, UNetModel
from ..models.vae import VAE, AutoencoderKL, AutoencoderKLConfig
from . import detect
from .clip import build_text_encoder
from .files import FileHeader, parse_dtype, read_framefold_metadata, read_state_dict, write_safetensors
from .state_dict import StateDictError, split_harmless, warn_dropped
from .unet import build_unet, check_unet_variant, infer_unet_config
from .unet_keys import LDM_PREFIX
from .vae import VAE_PREFIX, build_vae

UNET_PREFIX = LDM_PREFIX
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
CLIP_PREFIXES = ("cond_stage_model.transformer.", "cond_stage_model.model.")
LOADER_NAME = "FrameFold Load Checkpoint"
ACCEPTED = (detect.SD_CHECKPOINT, detect.FRAMEFOLD_CHECKPOINT)


@dataclasses.dataclass
class CheckpointParts:
    """A single-file checkpoint split by component (UNet and VAE prefixes removed; CLIP keys as they are)."""

    unet: Dict[str, torch.Tensor]
    vae: Dict[str, torch.Tensor]
    clip: Dict[str, torch.Tensor]
    ignored: Tuple[str, ...] = ()


def split_checkpoint(state_dict: Mapping[str, torch.Tensor], what: str = "checkpoint") -> CheckpointParts:
    """Route every key to the UNet, VAE or CLIP part; harmless extras are dropped with a warning, any other key
    is a :class:`StateDictError` naming ``what`` and the key."""
    unet, vae, clip, rest = {}, {}, {}, []
    for key, value in state_dict.items():
        if key.startswith(UNET_PREFIX):
            unet[key[len(UNET_PREFIX) :]] = value
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX) :]] = value
        elif key.startswith(CLIP_PREFIXES):
            clip[key] = value
        else:
            rest.append(key)
    ignored, unknown = split_harmless(rest)
    if unknown:
        raise StateDictError(what, unexpected=unknown)
    warn_dropped(ignored, what)
    for label, part in (
        ("UNet (model.diffusion_model.*)", unet),
        ("VAE (first_stage_model.*)", vae),
        ("text encoder (cond_stage_model.transformer.*)", clip),
    ):
        if not part:
            raise StateDictError(what, missing=[f"every {label} key"])
    return CheckpointParts(unet, vae, clip, tuple(ignored))


def assemble_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
    metadata: Optional[Mapping[str, str]] = None,
    dtype: Union[None, str, torch.dtype] = None,
    name: str = "checkpoint",
    source: Optional[str] = None,
) -> Tuple[DiffusionModel, TextEncoder, VAE]:
    """(DiffusionModel, TextEncoder, VAE) from an in-memory single-file checkpoint state dict.

    name: the models' name; source: how errors and warnings name the file (default ``name``).
    """
    source = source or name
    dtype = parse_dtype(dtype) or torch.float32
    ff = read_framefold_metadata(metadata or {}) or {}
    parts = split_checkpoint(state_dict, what=source)
    unet_cfg = config_from_dict(UNetConfig, ff["unet"]) if "unet" in ff else infer_unet_config(parts.unet)
    check_unet_variant(unet_cfg, source)
    unet = build_unet(parts.unet, unet_cfg, dtype, source=source, key_prefix=UNET_PREFIX)
    vae_cfg = config_from_dict(AutoencoderKLConfig, ff["vae"]) if "vae" in ff else None
    vae = build_vae(parts.vae, vae_cfg, dtype, what=source, name=name, key_prefix=VAE_PREFIX)
    clip_cfg = config_from_dict(CLIPTextConfig, ff["text_encoder"]) if "text_encoder" in ff else None
    tokenizer = build_tokenizer(ff["tokenizer"]) if "tokenizer" in ff else None
    text_encoder = build_text_encoder(
        parts.clip, clip_cfg, tokenizer, dtype, what=f"{source} text encoder (cond_stage_model.*)", name=name
    )
    model_kwargs: Dict[str, Any] = {"frame_window": int(ff["frame_window"])} if "frame_window" in ff else {}
    model_kwargs.update(latent_scale=vae.config.scaling_factor, latent_shift=vae.config.shift_factor)
    schedule = config_from_dict(ScheduleConfig, ff.get("schedule") or {})
    model = DiffusionModel(unet=unet, schedule=schedule, name=name, **model_kwargs)
    return model, text_encoder, vae


def load_checkpoint(
    path: Union[str, Path], dtype: Union[None, str, torch.dtype] = None
) -> Tuple[DiffusionModel, TextEncoder, VAE]:
    """(DiffusionModel, TextEncoder, VAE) from an SD1.x single-file checkpoint or a FrameFold checkpoint.

    dtype: None/'auto' = float32 (CPU), or 'fp16'/'bf16'/'fp32'. The file kind is checked from its header first:
    files of other kinds (motion modules, ControlNets, VAEs) are refused with an error saying what the file is
    and which loader takes it; an inpainting checkpoint is refused before its tensors are read.
    """
    check_checkpoint_file(path)
    sd, metadata = read_state_dict(path)
    return assemble_checkpoint(sd, metadata, dtype, name=Path(path).stem, source=Path(path).name)


def check_checkpoint_file(path: Union[str, Path]) -> FileHeader:
    """The header of ``path`` after checking, without reading tensor data, that it is a checkpoint FrameFold can
    sample with: other file kinds are refused saying what they are, inpainting-style UNets saying which."""
    header = detect.check_file(path, ACCEPTED, LOADER_NAME)
    conv_in = header.tensors.get(UNET_PREFIX + "input_blocks.0.0.weight")
    conv_out = header.tensors.get(UNET_PREFIX + "out.2.weight")
    if conv_in is not None and conv_out is not None and conv_in.ndim == 4:
        config = UNetConfig(in_channels=conv_in.shape[1], out_channels=conv_out.shape[0])
        check_unet_variant(config, Path(path).name)
    return header


def save_framefold_checkpoint(
    path: Union[str, Path],
    unet: UNetModel,
    vae: Union[VAE, AutoencoderKL],
    text_encoder: TextEncoder,
    schedule: Optional[ScheduleConfig] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write a FrameFold checkpoint: SD key layout + ``framefold`` metadata with every config.

    unet: a UNetModel (with ``.config``); vae: :class:`VAE` or AutoencoderKL; text_encoder: :class:`TextEncoder`
    (its tokenizer must implement ``to_config()``). ``extra`` is merged into the metadata JSON
    (e.g. ``{"frame_window": 16}``).
    """
    vae_model = vae.model if isinstance(vae, VAE) else vae
    tensors = {}
    tensors.update({UNET_PREFIX + k: v for k, v in unet.state_dict().items()})
    tensors.update({VAE_PREFIX + k: v for k, v in vae_model.state_dict().items()})
    tensors.update({CLIP_PREFIX + k: v for k, v in text_encoder.model.state_dict().items()})
    meta = {
        "unet": config_to_dict(unet.config),
        "vae": config_to_dict(vae_model.config),
        "text_encoder": config_to_dict(text_encoder.model.config),
        "tokenizer": text_encoder.tokenizer.to_config(),
        "schedule": config_to_dict(schedule or ScheduleConfig()),
    }
    meta.update(extra or {})
    return write_safetensors(path, tensors, {"framefold": json.dumps(meta)})
