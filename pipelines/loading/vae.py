"""Build, load and save VAEs (original CompVis or diffusers naming; key maps in :mod:`.vae_keys`).

A standalone VAE file may carry a ``first_stage_model.`` prefix; FrameFold's own files carry their config in
the ``framefold`` metadata entry, other files get theirs from key names and shapes (:func:`infer_vae_config`).
The file kind is checked from its header before any tensor is read.
"""

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ..models.configs import config_from_dict, config_to_dict
from ..models.vae import VAE, AutoencoderKL, AutoencoderKLConfig, DecoderTemporalConv
from . import detect
from .files import FileHeader, parse_dtype, read_framefold_metadata, read_state_dict, write_safetensors
from .state_dict import assign_weights, check_state_dict, model_shapes
from .vae_keys import diffusers_vae_to_original, is_diffusers_vae

VAE_PREFIX = "first_stage_model."
LOADER_NAME = "FrameFold Load VAE"
ACCEPTED = (detect.STANDALONE_VAE, detect.DIFFUSERS_VAE)


def infer_vae_config(sd: Mapping[str, torch.Tensor], **overrides: Any) -> AutoencoderKLConfig:
    """An :class:`AutoencoderKLConfig` from the shapes of an original-layout VAE state dict."""
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    mults = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels))
    blocks = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    temporal = any(".temp_conv" in k for k in sd)
    cfg: Dict[str, Any] = dict(
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


def _init_new_temporal_layers(model: AutoencoderKL) -> None:
    """Materialise decoder Temp-Conv layers left on the meta device as identities (zero last conv)."""
    for module in model.modules():
        if isinstance(module, DecoderTemporalConv) and any(p.is_meta for p in module.parameters()):
            module.to_empty(device="cpu")
            module.reset_parameters()


def build_vae(
    state_dict: Mapping[str, torch.Tensor],
    config: Optional[AutoencoderKLConfig] = None,
    dtype: Optional[torch.dtype] = torch.float32,
    temporal_decoder: bool = False,
    what: str = "VAE",
    name: str = "",
    key_prefix: str = "",
) -> VAE:
    """A :class:`VAE` from a VAE state dict (original or diffusers naming, no prefix).

    temporal_decoder=True adds Temp-Conv layers even when the file has none (as identities, for training).
    what / key_prefix: how errors and warnings name the file and the full keys.
    """
    sd = dict(state_dict)
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
    sd = check_state_dict(model_shapes(model), sd, what, optional=optional, key_prefix=key_prefix)
    assign_weights(model, sd, dtype)
    _init_new_temporal_layers(model)
    if dtype is not None:
        model.to(dtype)
    return VAE(model.eval(), name=name)


def load_vae(
    path: Union[str, Path], dtype: Union[None, str, torch.dtype] = None, temporal_decoder: bool = False
) -> VAE:
    """A standalone VAE file (original or diffusers naming; ``first_stage_model.`` prefix accepted).

    The file kind is checked from its header first (a checkpoint or motion module is refused, saying what it is).
    """
    check_vae_file(path)
    dtype = parse_dtype(dtype) or torch.float32
    sd, metadata = read_state_dict(path)
    prefix = VAE_PREFIX if any(k.startswith(VAE_PREFIX) for k in sd) else ""
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    ff = read_framefold_metadata(metadata)
    config = config_from_dict(AutoencoderKLConfig, ff["vae"]) if ff and "vae" in ff else None
    return build_vae(sd, config, dtype, temporal_decoder, what=Path(path).name, name=Path(path).stem, key_prefix=prefix)


def check_vae_file(path: Union[str, Path]) -> FileHeader:
    """The header of ``path`` after checking, without reading tensor data, that it is a standalone VAE."""
    return detect.check_file(path, ACCEPTED, LOADER_NAME)


def save_vae(path: Union[str, Path], vae: Union[VAE, AutoencoderKL]) -> Path:
    """Write a standalone VAE (original key layout) with its config in the ``framefold`` metadata entry."""
    model = vae.model if isinstance(vae, VAE) else vae
    return write_safetensors(path, model.state_dict(), {"framefold": json.dumps({"vae": config_to_dict(model.config)})})
