"""VAE key maps: diffusers ``AutoencoderKL`` names -> the original (CompVis) names our AutoencoderKL uses.

Facts used (from the public key layouts): diffusers ``up_blocks.k`` is original ``up.(L-1-k)``;
``resnets`` <-> ``block``; ``conv_shortcut`` <-> ``nin_shortcut``; ``conv_norm_out`` <-> ``norm_out``;
``mid_block.resnets.0/1`` <-> ``mid.block_1/2``; mid attention ``group_norm, to_q, to_k, to_v, to_out.0``
(older files: ``query, key, value, proj_attn``) <-> ``norm, q, k, v, proj_out``. Diffusers stores those
attention projections as Linear ``[C, C]``; the original uses 1x1 convs ``[C, C, 1, 1]``.
"""

import re
from typing import Dict, Iterable, Mapping

import torch

ORIGINAL_MARKERS = ("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight")
DIFFUSERS_MARKERS = ("encoder.down_blocks.0.resnets.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight")

_ATTN_NAMES = {
    "group_norm": "norm",
    "to_q": "q",
    "query": "q",
    "to_k": "k",
    "key": "k",
    "to_v": "v",
    "value": "v",
    "to_out.0": "proj_out",
    "proj_attn": "proj_out",
}
_LEAF_NAMES = {"conv_shortcut": "nin_shortcut"}


def is_diffusers_vae(state_dict: Mapping[str, object]) -> bool:
    """True when the keys use diffusers' AutoencoderKL naming."""
    return any(k in state_dict for k in DIFFUSERS_MARKERS)


def _num_up_levels(keys: Iterable[str]) -> int:
    """How many decoder up blocks a diffusers state dict has."""
    levels = [int(m.group(1)) for k in keys if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k))]
    return max(levels) + 1 if levels else 0


def diffusers_vae_key_to_original(key: str, num_up_levels: int) -> str:
    """One diffusers VAE key -> its original name (keys it does not know are returned unchanged)."""
    m = re.match(r"(encoder|decoder)\.(.*)$", key)
    if not m:
        return key  # quant_conv.*, post_quant_conv.* are the same in both layouts
    part, rest = m.groups()
    rules = [
        (r"conv_norm_out\.(.*)", lambda g: f"norm_out.{g[0]}"),
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", lambda g: f"down.{g[0]}.block.{g[1]}.{_leaf(g[2])}"),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.(.*)", lambda g: f"down.{g[0]}.downsample.{g[1]}"),
        (
            r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)",
            lambda g: f"up.{num_up_levels - 1 - int(g[0])}.block.{g[1]}.{_leaf(g[2])}",
        ),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", lambda g: f"up.{num_up_levels - 1 - int(g[0])}.upsample.{g[1]}"),
        (r"mid_block\.resnets\.(\d+)\.(.*)", lambda g: f"mid.block_{int(g[0]) + 1}.{_leaf(g[1])}"),
        (
            r"mid_block\.attentions\.0\.(.*)\.(weight|bias)",
            lambda g: f"mid.attn_1.{_ATTN_NAMES.get(g[0], g[0])}.{g[1]}",
        ),
    ]
    for pattern, build in rules:
        r = re.fullmatch(pattern, rest)
        if r:
            return f"{part}.{build(r.groups())}"
    return key


def _leaf(name: str) -> str:
    """Rename a ResNet sub-module (``conv_shortcut.weight`` -> ``nin_shortcut.weight``)."""
    head, _, tail = name.partition(".")
    return f"{_LEAF_NAMES.get(head, head)}.{tail}" if tail else name


def diffusers_vae_to_original(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a diffusers-format VAE state dict to original names; Linear attention weights become 1x1 convs."""
    levels = _num_up_levels(state_dict)
    out = {}
    for key, value in state_dict.items():
        new = diffusers_vae_key_to_original(key, levels)
        if re.search(r"\.mid\.attn_1\.(q|k|v|proj_out)\.weight$", new) and value.ndim == 2:
            value = value.reshape(*value.shape, 1, 1)
        out[new] = value
    return out


def original_vae_to_diffusers_names(keys: Iterable[str], num_up_levels: int) -> Dict[str, str]:
    """Map of original key -> diffusers key for the keys given (used to check coverage and in tests)."""
    forward = {}
    for key in keys:
        k = key
        k = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out.", k)
        k = re.sub(r"\.nin_shortcut\.", ".conv_shortcut.", k)
        k = re.sub(r"^encoder\.down\.(\d+)\.block\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2.", k)
        k = re.sub(r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.", k)
        m = re.match(r"^decoder\.up\.(\d+)\.(block|upsample)\.(.*)$", k)
        if m:
            level = num_up_levels - 1 - int(m.group(1))
            sub = f"resnets.{m.group(3)}" if m.group(2) == "block" else f"upsamplers.0.{m.group(3)}"
            k = f"decoder.up_blocks.{level}.{sub}"
        k = re.sub(r"\.mid\.block_(\d+)\.", lambda r: f".mid_block.resnets.{int(r.group(1)) - 1}.", k)
        for new, old in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
            k = re.sub(rf"\.mid\.attn_1\.{old}\.", f".mid_block.attentions.0.{new}.", k)
        forward[key] = k
    return forward
