"""Read ControlNet files: original LDM single files and diffusers ``ControlNetModel`` files.

* LDM naming (lllyasviel's ``cldm.ControlNet``): ``time_embed``, ``input_blocks``, ``middle_block``,
  ``input_hint_block``, ``zero_convs``, ``middle_block_out`` — with the ``control_model.`` prefix (official
  ControlNet 1.0/1.1 files) or without it (extracted copies); see
  ``shared/fixtures/manifests/controlnet_sd15.json``. 1.0 files that bundle a whole SD model next to
  ``control_model.*`` load their ControlNet part.
* diffusers naming: ``conv_in``, ``time_embedding``, ``down_blocks``, ``mid_block``,
  ``controlnet_cond_embedding``, ``controlnet_down_blocks``, ``controlnet_mid_block`` (renamed with the
  UNet's map plus the ControlNet parts).

The architecture is read from key names and shapes (heads follow the UNet loader's rule), or from the
``framefold`` metadata entry of a FrameFold ControlNet file. Every key must be used and every parameter
present; anything else is an error listing the keys.
"""

import json
import re
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..models.controlnet import ControlNet, ControlNetConfig, ControlNetModel
from . import detect
from .files import parse_dtype, read_framefold_metadata, read_state_dict, write_safetensors
from .state_dict import StateDictError, assign_weights, check_state_dict, model_shapes
from .unet import infer_diffusers_unet_config, infer_unet_config, max_index
from .unet_keys import ldm_to_diffusers_key

PREFIX = "control_model."
LOADER_NAME = "FrameFold Load ControlNet"


def strip_control_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The ControlNet keys without ``control_model.`` (keys outside it, e.g. a bundled SD model, are dropped
    when the prefix is present)."""
    if any(k.startswith(PREFIX) for k in state_dict):
        return {k[len(PREFIX) :]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
    return dict(state_dict)


def is_diffusers_controlnet(state_dict: Dict[str, torch.Tensor]) -> bool:
    """True for diffusers ``ControlNetModel`` naming."""
    return any(k.startswith("controlnet_cond_embedding.") for k in state_dict)


def _hint_channels_list(sd: Dict[str, torch.Tensor]) -> tuple:
    """``embedding_channels`` from the stride-1 hint convolutions (LDM naming)."""
    last = max_index(sd, r"input_hint_block\.(\d+)\.weight")
    convs = [sd[f"input_hint_block.{i}.weight"] for i in range(0, last + 1, 2)]
    if len(convs) < 2 or len(convs) % 2:
        raise ValueError(f"ControlNet: input_hint_block has {len(convs)} convolutions; expected an even number >= 2")
    channels = [convs[0].shape[0]] + [convs[i].shape[0] for i in range(2, len(convs) - 1, 2)]
    return tuple(int(c) for c in channels)


def infer_controlnet_config(sd: Dict[str, torch.Tensor]) -> ControlNetConfig:
    """ControlNetConfig of an LDM-named, prefix-less ControlNet state dict (from key names and shapes)."""
    if "input_blocks.0.0.weight" not in sd or "input_hint_block.0.weight" not in sd:
        raise ValueError(
            "not a ControlNet state dict: 'input_blocks.0.0.weight' or 'input_hint_block.0.weight' missing"
        )
    # the encoder is a UNet's: read it as one (a ControlNet has no output conv; a 4-channel stand-in is added)
    probe = dict(sd, **{"out.2.weight": torch.empty(4, 1, 1, 1, device="meta")})
    unet = infer_unet_config(probe)
    hint_in = int(sd["input_hint_block.0.weight"].shape[1])
    return ControlNetConfig(unet, hint_in, _hint_channels_list(sd))


def ldm_controlnet_to_diffusers_key(key: str, config: ControlNetConfig) -> str:
    """The diffusers ``ControlNetModel`` name of our (LDM-named) ControlNet parameter ``key``."""
    m = re.match(r"input_hint_block\.(\d+)\.(.+)", key)
    if m:
        index, rest = int(m.group(1)) // 2, m.group(2)
        last = 2 * len(config.embedding_channels) - 1
        if index == 0:
            return f"controlnet_cond_embedding.conv_in.{rest}"
        if index == last:
            return f"controlnet_cond_embedding.conv_out.{rest}"
        return f"controlnet_cond_embedding.blocks.{index - 1}.{rest}"
    m = re.match(r"zero_convs\.(\d+)\.0\.(.+)", key)
    if m:
        return f"controlnet_down_blocks.{m.group(1)}.{m.group(2)}"
    if key.startswith("middle_block_out.0."):
        return "controlnet_mid_block." + key[len("middle_block_out.0.") :]
    return ldm_to_diffusers_key(key, config.unet)


def infer_diffusers_controlnet_config(sd: Dict[str, torch.Tensor]) -> ControlNetConfig:
    """ControlNetConfig of a diffusers-named ControlNet state dict."""
    if "conv_in.weight" not in sd:
        raise ValueError("diffusers ControlNet state dict without 'conv_in.weight'")
    probe = dict(sd, **{"conv_out.weight": torch.empty(0, 0, 0, 0, device="meta")})  # the encoder has no conv_out
    unet = infer_diffusers_unet_config(probe)
    blocks = max_index(sd, r"controlnet_cond_embedding\.blocks\.(\d+)\.") + 1
    first = int(sd["controlnet_cond_embedding.conv_in.weight"].shape[0])
    channels = [first] + [int(sd[f"controlnet_cond_embedding.blocks.{j}.weight"].shape[0]) for j in range(1, blocks, 2)]
    hint_in = int(sd["controlnet_cond_embedding.conv_in.weight"].shape[1])
    return ControlNetConfig(unet.with_options(out_channels=4), hint_in, tuple(channels))


def diffusers_controlnet_to_ldm(sd: Dict[str, torch.Tensor], config: ControlNetConfig) -> Dict[str, torch.Tensor]:
    """Rename a diffusers ControlNet state dict to our names; unknown keys are an error listing them."""
    with torch.device("meta"):
        names = list(ControlNetModel(config).state_dict())
    key_map = {ldm_controlnet_to_diffusers_key(k, config): k for k in names}
    unexpected = [k for k in sd if k not in key_map]
    if unexpected:
        raise StateDictError("diffusers ControlNet state dict", unexpected=unexpected)
    return {key_map[k]: v for k, v in sd.items()}


def build_controlnet(
    state_dict: Dict[str, torch.Tensor],
    config: Optional[ControlNetConfig] = None,
    dtype: Union[str, torch.dtype, None] = None,
    name: str = "",
) -> ControlNet:
    """A :class:`ControlNet` from a state dict in any supported naming (exact key coverage)."""
    if "difference" in state_dict:
        raise ValueError(
            f"{name or 'ControlNet'}: a ControlNet 1.0 'difference' file holds weights relative to a base SD model; "
            "only full ControlNet files are supported"
        )
    sd = strip_control_prefix(state_dict)
    if is_diffusers_controlnet(sd):
        config = config or infer_diffusers_controlnet_config(sd)
        sd = diffusers_controlnet_to_ldm(sd, config)
    else:
        config = config or infer_controlnet_config(sd)
    with torch.device("meta"):
        model = ControlNetModel(config)
    sd = check_state_dict(model_shapes(model), sd, f"ControlNet {name}".strip())
    assign_weights(model, sd, dtype=parse_dtype(dtype) or torch.float32)
    return ControlNet(model.eval(), name)


def check_controlnet_file(path: Union[str, Path]) -> detect.FileHeader:
    """Refuse a file that is not a ControlNet from its header alone (no tensor data read)."""
    return detect.check_file(path, {detect.CONTROLNET}, LOADER_NAME)


def load_controlnet(path: Union[str, Path], dtype: Union[str, torch.dtype, None] = None) -> ControlNet:
    """A :class:`ControlNet` from a file (LDM with or without ``control_model.``, or diffusers naming).

    Other kinds of files (checkpoints, motion modules, VAEs) are refused with an error naming their loader.
    """
    sd, metadata = read_state_dict(path)
    detect.require_format(path, sd, metadata, {detect.CONTROLNET}, LOADER_NAME)
    ff = read_framefold_metadata(metadata or {}) or {}
    config = ControlNetConfig.from_dict(ff["controlnet"]) if "controlnet" in ff else None
    return build_controlnet(sd, config, dtype, name=Path(path).stem)


def save_controlnet(path: Union[str, Path], model: ControlNetModel, extra: Optional[dict] = None) -> Path:
    """Write a FrameFold ControlNet file: ``control_model.*`` keys + its config in the ``framefold`` metadata."""
    tensors = {PREFIX + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"controlnet": model.config.to_dict(), **(extra or {})}
    return write_safetensors(path, tensors, {"framefold": json.dumps(meta)})
