"""Build a :class:`UNetModel` from a UNet state dict (LDM or diffusers naming; key maps in :mod:`.unet_keys`).

The config is read from key names and shapes (:func:`infer_unet_config`) unless given. The state dict goes
through the one check of :mod:`.state_dict` (harmless extras dropped with a warning; anything else that does
not fit is an error naming the file and the full key). Weights are assigned, not copied (the model is built on
the meta device first). UNets whose input channels differ from their output channels (inpainting: 9,
instruct-pix2pix: 8) are refused by :func:`check_unet_variant`: FrameFold's samplers feed plain latents.
"""

import re
from typing import Mapping, Optional

import torch

from ..models.unet import UNetConfig, UNetModel
from .state_dict import assign_weights, check_state_dict, model_shapes
from .unet_keys import LDM_PREFIX, diffusers_to_ldm, is_diffusers_unet, strip_prefix

VARIANTS = {
    9: "an inpainting UNet (9 input channels: latent + mask + masked-image latent)",
    8: "an instruct-pix2pix UNet (8 input channels: latent + image latent)",
}


class UnsupportedVariantError(ValueError):
    """A UNet variant FrameFold recognises but cannot sample with (inpainting, instruct-pix2pix)."""


def max_index(state_dict: Mapping[str, object], pattern: str) -> int:
    """Largest integer captured by regex ``pattern`` over the keys, or -1."""
    found = [int(m.group(1)) for k in state_dict for m in [re.match(pattern, k)] if m]
    return max(found) if found else -1


def heads_rule(context_dim: int) -> dict:
    """SD1 uses 8 heads; SD2 (1024-d OpenCLIP context) uses 64 channels per head (ComfyUI's rule)."""
    if context_dim >= 1024:
        return dict(num_heads=-1, num_head_channels=64)
    return dict(num_heads=8, num_head_channels=-1)


def infer_unet_config(state_dict: Mapping[str, torch.Tensor]) -> UNetConfig:
    """UNetConfig of an LDM-named UNet state dict (prefix optional), read from key names and shapes.

    GroupNorm groups (32) and head counts are not stored in files: heads follow ``heads_rule``.
    """
    sd = strip_prefix(state_dict)
    if is_diffusers_unet(sd):
        return infer_diffusers_unet_config(sd)
    if "input_blocks.0.0.weight" not in sd:
        raise ValueError(
            "not a UNet state dict: 'input_blocks.0.0.weight' (LDM) or 'conv_in.weight' (diffusers) missing"
        )
    conv_in = sd["input_blocks.0.0.weight"]
    mc = conv_in.shape[0]
    last_input = max_index(sd, r"input_blocks\.(\d+)\.")
    downsamples = [n for n in range(1, last_input + 1) if f"input_blocks.{n}.0.op.weight" in sd]
    num_res_blocks = downsamples[0] - 1 if downsamples else last_input
    levels = len(downsamples) + 1
    per_level = num_res_blocks + 1
    channel_mult, attention_levels = [], []
    for level in range(levels):
        first = 1 + level * per_level
        channel_mult.append(sd[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0] // mc)
        if f"input_blocks.{first}.1.norm.weight" in sd:
            attention_levels.append(level)
    attn_k = [v for k, v in sd.items() if k.endswith("attn2.to_k.weight")]
    context_dim = attn_k[0].shape[1] if attn_k else 768
    proj_in = [v for k, v in sd.items() if k.endswith(".proj_in.weight") and not k.startswith("temporal")]
    use_linear = bool(proj_in) and proj_in[0].ndim == 2
    depth = 1
    if attention_levels:
        first = 1 + attention_levels[0] * per_level
        depth = max_index(sd, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.") + 1
    return UNetConfig(
        in_channels=conv_in.shape[1],
        out_channels=sd["out.2.weight"].shape[0],
        model_channels=mc,
        channel_mult=tuple(channel_mult),
        num_res_blocks=num_res_blocks,
        attention_levels=tuple(attention_levels),
        context_dim=context_dim,
        transformer_depth=depth,
        use_linear_projection=use_linear,
        mid_attention="middle_block.1.norm.weight" in sd,
        temporal_conv=any(k.startswith("temporal_convs.") for k in sd),
        **heads_rule(context_dim),
    )


def infer_diffusers_unet_config(sd: Mapping[str, torch.Tensor]) -> UNetConfig:
    """UNetConfig of a diffusers-named ``UNet2DConditionModel`` state dict."""
    conv_in = sd["conv_in.weight"]
    mc = conv_in.shape[0]
    levels = max_index(sd, r"down_blocks\.(\d+)\.") + 1
    num_res_blocks = max_index(sd, r"down_blocks\.0\.resnets\.(\d+)\.") + 1
    channel_mult = tuple(sd[f"down_blocks.{l}.resnets.0.conv1.weight"].shape[0] // mc for l in range(levels))
    attention_levels = tuple(l for l in range(levels) if f"down_blocks.{l}.attentions.0.norm.weight" in sd)
    attn_k = [v for k, v in sd.items() if k.endswith("attn2.to_k.weight")]
    context_dim = attn_k[0].shape[1] if attn_k else 768
    proj_in = [v for k, v in sd.items() if k.endswith(".proj_in.weight")]
    depth = 1
    if attention_levels:
        depth = max_index(sd, rf"down_blocks\.{attention_levels[0]}\.attentions\.0\.transformer_blocks\.(\d+)\.") + 1
    return UNetConfig(
        in_channels=conv_in.shape[1],
        out_channels=sd["conv_out.weight"].shape[0],
        model_channels=mc,
        channel_mult=channel_mult,
        num_res_blocks=num_res_blocks,
        attention_levels=attention_levels,
        context_dim=context_dim,
        transformer_depth=depth,
        use_linear_projection=bool(proj_in) and proj_in[0].ndim == 2,
        mid_attention="mid_block.attentions.0.norm.weight" in sd,
        **heads_rule(context_dim),
    )


def unet_variant(in_channels: int, out_channels: int) -> Optional[str]:
    """A description of a UNet variant whose input is more than the latent (None for a plain UNet)."""
    if in_channels == out_channels:
        return None
    return VARIANTS.get(in_channels, f"a UNet with {in_channels} input channels for {out_channels}-channel latents")


def check_unet_variant(config: UNetConfig, source: str) -> None:
    """Raise :class:`UnsupportedVariantError` naming ``source`` for inpainting and other extra-input UNets."""
    variant = unet_variant(config.in_channels, config.out_channels)
    if variant:
        raise UnsupportedVariantError(
            f"{source} is {variant}. FrameFold's samplers give the UNet {config.out_channels}-channel latents only; "
            f"inpainting-style checkpoints are not supported: use the regular (non-inpainting) version of the model"
        )


def build_unet(
    state_dict: Mapping[str, torch.Tensor],
    config: Optional[UNetConfig] = None,
    dtype: Optional[torch.dtype] = None,
    *,
    new_temporal_layers_ok: bool = False,
    source: str = "UNet state dict",
    key_prefix: str = "",
) -> UNetModel:
    """A :class:`UNetModel` with the weights of ``state_dict`` (LDM or diffusers naming).

    state_dict: the UNet part of a checkpoint, with or without ``model.diffusion_model.``.
    config: inferred from shapes when None (see :func:`infer_unet_config`).
    dtype: cast floating tensors to it (None = keep the stored dtypes).
    new_temporal_layers_ok: with ``config.temporal_conv`` and a plain SD file, the Temp-Conv layers are
      new: allow their keys to be absent and initialise them as identities. Otherwise absent keys are an error.
    source / key_prefix: how errors and warnings name the file and the full keys.
    """
    if state_dict and all(k.startswith(LDM_PREFIX) for k in state_dict):
        key_prefix = key_prefix or LDM_PREFIX
    sd = strip_prefix(state_dict)
    if config is None:
        config = infer_unet_config(sd)
    if is_diffusers_unet(sd):
        sd = diffusers_to_ldm(sd, config, source)
    with torch.device("meta"):
        model = UNetModel(config)
    optional = ("temporal_convs.",) if new_temporal_layers_ok else ()
    sd = check_state_dict(model_shapes(model), sd, source, optional=optional, key_prefix=key_prefix)
    if any(k not in sd for k in model.state_dict()):  # only Temp-Conv keys can be absent: fresh identity layers
        with torch.device("cpu"):
            model.temporal_convs = model.make_temporal_convs()
        if dtype is not None:
            model.temporal_convs.to(dtype)
    assign_weights(model, sd, dtype=dtype)
    return model.eval()
