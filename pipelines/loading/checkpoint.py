"""Assemble models from checkpoint files: SD single-file checkpoints, FrameFold checkpoints, standalone VAEs.

SD single file (SD1.x layout): ``model.diffusion_model.*`` (UNet, built by ``unet_keys.build_unet``),
``first_stage_model.*`` (VAE), ``cond_stage_model.transformer[.text_model].*`` (CLIP). Known non-weight
extras (DDPM schedule buffers, ``logvar``, ``model_ema.*``, CLIP ``position_ids``) are ignored; any other
key, and any missing key, is an error that lists them.

FrameFold checkpoint: the same key layout plus a safetensors ``__metadata__["framefold"]`` JSON entry
``{"unet": {...UNetConfig}, "vae": {...AutoencoderKLConfig}, "text_encoder": {...CLIPTextConfig},
"tokenizer": {"type": ...}, "schedule": {...ScheduleConfig}}``; those configs are used instead of inferring
them from shapes. :func:`save_framefold_checkpoint` writes such a file.
"""

import dataclasses
import json
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..models.bundle import DiffusionModel, ScheduleConfig
from ..models.clip import CLIPTextConfig, CLIPTextModel, TextEncoder
from ..models.tokenizers import CLIPTokenizer, build_tokenizer
from ..models.vae import VAE, AutoencoderKL, AutoencoderKLConfig, TemporalConv
from . import detect
from .clip_keys import infer_clip_config, infer_open_clip_overrides, is_open_clip, normalize_clip_state_dict
from .files import parse_dtype, read_framefold_metadata, read_state_dict, write_safetensors
from .vae_keys import diffusers_vae_to_original, drop_ignored_vae_keys, is_diffusers_vae

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
CLIP_PREFIXES = ("cond_stage_model.transformer.", "cond_stage_model.model.")
SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "logvar",
)
IGNORED_PREFIXES = ("model_ema.",)


class CheckpointKeyError(ValueError):
    """Keys of a file do not match the model: lists missing, unexpected and mis-shaped keys."""

    def __init__(self, what, missing=(), unexpected=(), mismatched=()):
        self.missing, self.unexpected, self.mismatched = sorted(missing), sorted(unexpected), sorted(mismatched)
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if items:
                parts.append(f"{len(items)} {label}: " + ", ".join(items))
        super().__init__(f"{what}: keys do not match the model: " + "; ".join(parts))


@dataclasses.dataclass
class CheckpointParts:
    """A single-file checkpoint split by component (prefixes removed)."""

    unet: Dict[str, torch.Tensor]
    vae: Dict[str, torch.Tensor]
    clip: Dict[str, torch.Tensor]
    ignored: Tuple[str, ...] = ()


def split_checkpoint(state_dict, what="checkpoint") -> CheckpointParts:
    """Route every key to the UNet, VAE or CLIP part; known extras are ignored; anything else is an error."""
    unet, vae, clip, ignored, unknown = {}, {}, {}, [], []
    for key, value in state_dict.items():
        if key.startswith(UNET_PREFIX):
            unet[key[len(UNET_PREFIX) :]] = value
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX) :]] = value
        elif key.startswith(CLIP_PREFIXES):
            clip[key] = value
        elif key in SCHEDULE_BUFFERS or key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointKeyError(what, unexpected=unknown)
    for label, part in (
        ("UNet (model.diffusion_model.*)", unet),
        ("VAE (first_stage_model.*)", vae),
        ("text encoder (cond_stage_model.transformer.*)", clip),
    ):
        if not part:
            raise CheckpointKeyError(what, missing=[f"every {label} key"])
    return CheckpointParts(unet, vae, clip, tuple(ignored))


def check_keys(model_keys: Dict[str, tuple], state_dict, what, optional_prefixes=()):
    """Raise :class:`CheckpointKeyError` unless names and shapes match exactly (optional ones may be absent)."""
    missing = [k for k in model_keys if k not in state_dict and not _is_optional(k, optional_prefixes)]
    unexpected = [k for k in state_dict if k not in model_keys]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(model_keys[k])}"
        for k in model_keys
        if k in state_dict and tuple(state_dict[k].shape) != tuple(model_keys[k])
    ]
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(what, missing, unexpected, mismatched)


def _is_optional(key, prefixes):
    """True when ``key`` contains one of the optional name parts."""
    return any(p in key for p in prefixes)


def model_shapes(module: torch.nn.Module) -> Dict[str, tuple]:
    """name -> shape of every state-dict entry."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _assign(model: torch.nn.Module, state_dict, dtype):
    """Load ``state_dict`` into a meta-built model by assignment, casting floats to ``dtype``."""
    sd = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state_dict.items()}
    model.load_state_dict(sd, strict=False, assign=True)
    return model


# --------------------------------------------------------------------------- VAE
def infer_vae_config(sd, **overrides) -> AutoencoderKLConfig:
    """An :class:`AutoencoderKLConfig` from the shapes of an original-layout VAE state dict."""
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    mults = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels))
    blocks = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    temporal = any(".temp_conv" in k for k in sd)
    cfg = dict(
        in_channels=sd["encoder.conv_in.weight"].shape[1],
        out_channels=sd["decoder.conv_out.weight"].shape[0],
        ch=ch,
        ch_mult=mults,
        num_res_blocks=blocks,
        z_channels=sd["decoder.conv_in.weight"].shape[1],
        embed_dim=sd["post_quant_conv.weight"].shape[1],
        mid_attention="encoder.mid.attn_1.q.weight" in sd,
        temporal_decoder=temporal,
    )
    if temporal:
        convs = {k for k in sd if k.startswith("decoder.mid.temp_conv_1.convs.") and k.endswith(".weight")}
        cfg["temporal_conv_layers"] = len(convs)
        cfg["temporal_kernel"] = sd["decoder.mid.temp_conv_1.convs.0.weight"].shape[2]
    cfg.update(overrides)
    groups = cfg.get("norm_groups", AutoencoderKLConfig.norm_groups)
    widths = [ch * m for m in mults]
    if any(w % groups for w in widths):
        raise ValueError(
            f"VAE with channel widths {widths}: GroupNorm groups cannot be read from the weights and the SD default "
            f"({groups}) does not divide them; save the VAE with its config (save_vae / save_framefold_checkpoint) "
            f"or pass norm_groups"
        )
    return AutoencoderKLConfig(**cfg)


def _init_new_temporal_layers(model: AutoencoderKL):
    """Materialise Temp-Conv layers left on the meta device as identities (zero last conv)."""
    for module in model.modules():
        if isinstance(module, TemporalConv) and any(p.is_meta for p in module.parameters()):
            module.to_empty(device="cpu")
            for norm in module.norms:
                norm.reset_parameters()
            for conv in module.convs:
                conv.reset_parameters()
            torch.nn.init.zeros_(module.convs[-1].weight)
            torch.nn.init.zeros_(module.convs[-1].bias)


def build_vae(
    state_dict,
    config: Optional[AutoencoderKLConfig] = None,
    dtype=torch.float32,
    temporal_decoder: bool = False,
    what="VAE",
    name="",
) -> VAE:
    """A :class:`VAE` from a VAE state dict (original or diffusers naming, no prefix).

    temporal_decoder=True adds Temp-Conv layers even when the file has none (as identities, for training).
    """
    sd = drop_ignored_vae_keys(state_dict)
    if is_diffusers_vae(sd):
        sd = diffusers_vae_to_original(sd)
    if config is None:
        config = infer_vae_config(sd)
    if temporal_decoder and not config.temporal_decoder:
        config = dataclasses.replace(config, temporal_decoder=True)
    with torch.device("meta"):
        model = AutoencoderKL(config)
    has_temporal = any(".temp_conv" in k for k in sd)
    optional = () if has_temporal else (".temp_conv",)
    check_keys(model_shapes(model), sd, what, optional_prefixes=optional)
    _assign(model, sd, dtype)
    _init_new_temporal_layers(model)
    if dtype is not None:
        model.to(dtype)
    return VAE(model.eval(), name=name)


def load_vae(path, dtype=None, temporal_decoder: bool = False) -> VAE:
    """A standalone VAE file (original or diffusers naming; ``first_stage_model.`` prefix accepted)."""
    dtype = parse_dtype(dtype) or torch.float32
    sd, metadata = read_state_dict(path)
    detect.require_format(path, sd, metadata, {detect.STANDALONE_VAE, detect.DIFFUSERS_VAE}, "FrameFold Load VAE")
    if any(k.startswith(VAE_PREFIX) for k in sd):
        sd = {k[len(VAE_PREFIX) :]: v for k, v in sd.items() if k.startswith(VAE_PREFIX)}
    ff = read_framefold_metadata(metadata)
    config = AutoencoderKLConfig.from_dict(ff["vae"]) if ff and "vae" in ff else None
    return build_vae(sd, config, dtype, temporal_decoder, what=f"VAE file {Path(path).name}", name=Path(path).stem)


def save_vae(path, vae) -> Path:
    """Write a standalone VAE (original key layout) with its config in the ``framefold`` metadata entry."""
    model = vae.model if isinstance(vae, VAE) else vae
    return write_safetensors(path, model.state_dict(), {"framefold": json.dumps({"vae": _config_dict(model.config)})})


# --------------------------------------------------------------------------- CLIP
def build_text_encoder(
    state_dict,
    config: Optional[CLIPTextConfig] = None,
    tokenizer=None,
    dtype=torch.float32,
    clip_skip: Optional[int] = None,
    what="text encoder",
    name="",
) -> TextEncoder:
    """A :class:`TextEncoder` from a CLIP state dict (SD1 / NAI / transformers naming, or SD2 OpenCLIP).

    clip_skip None: 1 for CLIP, 2 for SD2's OpenCLIP (SD2 was trained on the penultimate layer, as ComfyUI uses).
    """
    open_clip = is_open_clip(strip_clip_any(state_dict))
    sd = normalize_clip_state_dict(state_dict)
    if config is None:
        config = infer_clip_config(sd, **(infer_open_clip_overrides() if open_clip else {}))
    if clip_skip is None:
        clip_skip = 2 if open_clip else 1
    with torch.device("meta"):
        model = CLIPTextModel(config)
    check_keys(model_shapes(model), sd, what)
    _assign(model, sd, dtype)
    if tokenizer is None:
        tokenizer = CLIPTokenizer(pad_id=config.pad_token_id)
    return TextEncoder(tokenizer, model.eval(), clip_skip=clip_skip, name=name)


def strip_clip_any(state_dict) -> dict:
    """Keys with any known CLIP/OpenCLIP prefix removed (used to look at the layout)."""
    from .clip_keys import HF_PREFIXES, OPEN_CLIP_PREFIX, SD_CLIP_PREFIXES, strip_clip_prefix

    return strip_clip_prefix(state_dict, SD_CLIP_PREFIXES + HF_PREFIXES + (OPEN_CLIP_PREFIX,))


# --------------------------------------------------------------------------- whole checkpoints
def _unet_config_from_dict(d: dict):
    """UNetConfig from JSON (lists become tuples)."""
    from ..models.unet import UNetConfig

    return UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _schedule_from_dict(d: Optional[dict]) -> ScheduleConfig:
    """ScheduleConfig from JSON (None -> SD1.x defaults)."""
    return ScheduleConfig(**(d or {}))


def assemble_checkpoint(state_dict, metadata=None, dtype=None, name="checkpoint"):
    """(DiffusionModel, TextEncoder, VAE) from an in-memory single-file checkpoint state dict."""
    from .unet_keys import build_unet

    dtype = parse_dtype(dtype) or torch.float32
    ff = read_framefold_metadata(metadata or {}) or {}
    parts = split_checkpoint(state_dict, what=name)
    unet_cfg = _unet_config_from_dict(ff["unet"]) if "unet" in ff else None
    unet = build_unet(parts.unet, config=unet_cfg, dtype=dtype)
    vae_cfg = AutoencoderKLConfig.from_dict(ff["vae"]) if "vae" in ff else None
    vae = build_vae(parts.vae, vae_cfg, dtype, what=f"{name} VAE (first_stage_model.*)", name=name)
    clip_cfg = CLIPTextConfig.from_dict(ff["text_encoder"]) if "text_encoder" in ff else None
    tokenizer = build_tokenizer(ff["tokenizer"]) if "tokenizer" in ff else None
    text_encoder = build_text_encoder(
        parts.clip, clip_cfg, tokenizer, dtype, what=f"{name} text encoder (cond_stage_model.*)", name=name
    )
    model_kwargs = {"frame_window": int(ff["frame_window"])} if "frame_window" in ff else {}
    model_kwargs.update(latent_scale=vae.config.scaling_factor, latent_shift=vae.config.shift_factor)
    model = DiffusionModel(unet=unet, schedule=_schedule_from_dict(ff.get("schedule")), name=name, **model_kwargs)
    return model, text_encoder, vae


def load_checkpoint(path, dtype=None) -> Tuple[DiffusionModel, TextEncoder, VAE]:
    """(DiffusionModel, TextEncoder, VAE) from an SD1.x single-file checkpoint or a FrameFold checkpoint.

    dtype: None/'auto' = float32 (CPU), or 'fp16'/'bf16'/'fp32'. Files of other kinds (motion modules,
    ControlNets, VAEs) are refused with an error naming the loader to use.
    """
    sd, metadata = read_state_dict(path)
    detect.require_format(
        path, sd, metadata, {detect.SD_CHECKPOINT, detect.FRAMEFOLD_CHECKPOINT}, "FrameFold Load Checkpoint"
    )
    return assemble_checkpoint(sd, metadata, dtype, name=Path(path).stem)


def _config_dict(config) -> dict:
    """A config dataclass -> JSON-ready dict."""
    d = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def save_framefold_checkpoint(
    path, unet, vae, text_encoder, schedule: Optional[ScheduleConfig] = None, extra: Optional[dict] = None
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
        "unet": _config_dict(unet.config),
        "vae": _config_dict(vae_model.config),
        "text_encoder": _config_dict(text_encoder.model.config),
        "tokenizer": text_encoder.tokenizer.to_config(),
        "schedule": _config_dict(schedule or ScheduleConfig()),
    }
    meta.update(extra or {})
    return write_safetensors(path, tensors, {"framefold": json.dumps(meta)})
