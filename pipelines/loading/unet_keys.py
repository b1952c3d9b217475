"""UNet key names: original LDM naming (what our :class:`UNetModel` uses) and diffusers' naming.

* LDM / CompVis naming (``input_blocks.N.M...``; the ``model.diffusion_model.`` part of an SD single-file
  checkpoint, prefix stripped or not) is our parameter naming 1:1.
* diffusers ``UNet2DConditionModel`` naming (``conv_in``, ``down_blocks.L.resnets.i``, ...) is renamed
  with :func:`ldm_to_diffusers_key` (the map is generated from the config, so it covers every parameter).

Building a UNet from a state dict is :mod:`.unet`'s job.
"""

import re
from typing import Dict, Mapping, TypeVar

import torch

from ..models.unet import UNetConfig, UNetModel
from .state_dict import StateDictError, split_harmless

V = TypeVar("V")

LDM_PREFIX = "model.diffusion_model."

_RESBLOCK_TO_DIFFUSERS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def strip_prefix(state_dict: Mapping[str, V], prefix: str = LDM_PREFIX) -> Dict[str, V]:
    """Keys without ``prefix`` when every key has it (others are returned unchanged)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def is_diffusers_unet(state_dict: Mapping[str, object]) -> bool:
    """True for diffusers ``UNet2DConditionModel`` naming."""
    return "conv_in.weight" in state_dict


# -- diffusers naming -------------------------------------------------------------------------------


def _resblock_rest(rest: str) -> str:
    """Rename the inside of a ResBlock key (``in_layers.0.weight`` -> ``norm1.weight``)."""
    for ldm, diff in _RESBLOCK_TO_DIFFUSERS.items():
        if rest == ldm or rest.startswith(ldm + "."):
            return diff + rest[len(ldm) :]
    raise KeyError(rest)


def ldm_to_diffusers_key(key: str, config: UNetConfig) -> str:
    """The diffusers ``UNet2DConditionModel`` name of our (LDM-named) parameter ``key``."""
    per_level = config.num_res_blocks + 1
    last_level = len(config.channel_mult) - 1
    simple = {
        "time_embed.0.": "time_embedding.linear_1.",
        "time_embed.2.": "time_embedding.linear_2.",
        "input_blocks.0.0.": "conv_in.",
        "out.0.": "conv_norm_out.",
        "out.2.": "conv_out.",
    }
    for ldm, diff in simple.items():
        if key.startswith(ldm):
            return diff + key[len(ldm) :]
    m = re.match(r"input_blocks\.(\d+)\.(\d+)\.(.+)", key)
    if m:
        n, layer, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        level, i = divmod(n - 1, per_level)
        if i == config.num_res_blocks:
            return f"down_blocks.{level}.downsamplers.0.conv." + rest.split(".", 1)[1]
        if layer == 0:
            return f"down_blocks.{level}.resnets.{i}.{_resblock_rest(rest)}"
        return f"down_blocks.{level}.attentions.{i}.{rest}"
    m = re.match(r"middle_block\.(\d+)\.(.+)", key)
    if m:
        layer, rest = int(m.group(1)), m.group(2)
        if layer == 0:
            return f"mid_block.resnets.0.{_resblock_rest(rest)}"
        if layer == 1 and config.mid_attention:
            return f"mid_block.attentions.0.{rest}"
        return f"mid_block.resnets.1.{_resblock_rest(rest)}"
    m = re.match(r"output_blocks\.(\d+)\.(\d+)\.(.+)", key)
    if m:
        n, layer, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        up, i = divmod(n, per_level)
        has_attention = (last_level - up) in config.attention_levels
        if layer == 0:
            return f"up_blocks.{up}.resnets.{i}.{_resblock_rest(rest)}"
        if layer == 1 and has_attention:
            return f"up_blocks.{up}.attentions.{i}.{rest}"
        return f"up_blocks.{up}.upsamplers.0.{rest}"
    raise KeyError(f"no diffusers name for UNet key {key!r}")


def diffusers_key_map(config: UNetConfig) -> Dict[str, str]:
    """``{diffusers_name: our_name}`` for every parameter of a UNet with ``config``."""
    if config.temporal_conv:
        raise ValueError("diffusers UNet2DConditionModel has no Temp-Conv layers (config.temporal_conv=True)")
    with torch.device("meta"):
        names = list(UNetModel(config).state_dict())
    return {ldm_to_diffusers_key(k, config): k for k in names}


def diffusers_to_ldm(
    state_dict: Mapping[str, torch.Tensor], config: UNetConfig, source: str = "diffusers UNet state dict"
) -> Dict[str, torch.Tensor]:
    """Rename a diffusers UNet state dict to our names; harmless extras pass through (the state-dict check
    drops them), other unknown keys are a :class:`StateDictError` listing them."""
    key_map = diffusers_key_map(config)
    harmless, unexpected = split_harmless(k for k in state_dict if k not in key_map)
    if unexpected:
        raise StateDictError(source, unexpected=unexpected)
    return {key_map.get(k, k): v for k, v in state_dict.items()}
