"""Build a :class:`UNetModel` from a UNet state dict: original LDM naming or diffusers naming.

* LDM / CompVis naming (``input_blocks.N.M...``; the ``model.diffusion_model.`` part of an SD single-file
  checkpoint, prefix stripped or not) loads 1:1 into our parameter names.
* diffusers ``UNet2DConditionModel`` naming (``conv_in``, ``down_blocks.L.resnets.i``, ...) is renamed
  with :func:`ldm_to_diffusers_key` (the map is generated from the config, so it covers every parameter).

Missing or unexpected keys, and shape mismatches, are errors that list them; nothing is skipped silently.
Weights are assigned, not copied (the model is built on the meta device first).
"""

import re

import torch

from ..models.unet import UNetConfig, UNetModel

LDM_PREFIX = "model.diffusion_model."

_RESBLOCK_TO_DIFFUSERS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


class StateDictMismatch(ValueError):
    """A state dict does not match the model: lists the missing, unexpected and mis-shaped keys."""

    def __init__(self, what, missing=(), unexpected=(), mismatched=()):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = sorted(mismatched)
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys: " + ", ".join(self.missing))
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys: " + ", ".join(self.unexpected))
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} shape mismatches: " + ", ".join(self.mismatched))
        super().__init__(f"{what} does not match the model: " + "; ".join(parts))


def strip_prefix(state_dict, prefix=LDM_PREFIX):
    """Keys without ``prefix`` when every key has it (others are returned unchanged)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def is_diffusers_unet(state_dict):
    """True for diffusers ``UNet2DConditionModel`` naming."""
    return "conv_in.weight" in state_dict


# -- config inference -------------------------------------------------------------------------------


def _max_index(state_dict, pattern):
    """Largest integer captured by regex ``pattern`` over the keys, or -1."""
    found = [int(m.group(1)) for k in state_dict for m in [re.match(pattern, k)] if m]
    return max(found) if found else -1


def _heads_rule(context_dim):
    """SD1 uses 8 heads; SD2 (1024-d OpenCLIP context) uses 64 channels per head (ComfyUI's rule)."""
    if context_dim >= 1024:
        return dict(num_heads=-1, num_head_channels=64)
    return dict(num_heads=8, num_head_channels=-1)


def infer_unet_config(state_dict) -> UNetConfig:
    """UNetConfig of an LDM-named UNet state dict (prefix optional), read from key names and shapes.

    GroupNorm groups (32) and head counts are not stored in files: heads follow ``_heads_rule``.
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
    last_input = _max_index(sd, r"input_blocks\.(\d+)\.")
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
        depth = _max_index(sd, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.") + 1
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
        **_heads_rule(context_dim),
    )


def infer_diffusers_unet_config(sd) -> UNetConfig:
    """UNetConfig of a diffusers-named ``UNet2DConditionModel`` state dict."""
    conv_in = sd["conv_in.weight"]
    mc = conv_in.shape[0]
    levels = _max_index(sd, r"down_blocks\.(\d+)\.") + 1
    num_res_blocks = _max_index(sd, r"down_blocks\.0\.resnets\.(\d+)\.") + 1
    channel_mult = tuple(sd[f"down_blocks.{l}.resnets.0.conv1.weight"].shape[0] // mc for l in range(levels))
    attention_levels = tuple(l for l in range(levels) if f"down_blocks.{l}.attentions.0.norm.weight" in sd)
    attn_k = [v for k, v in sd.items() if k.endswith("attn2.to_k.weight")]
    context_dim = attn_k[0].shape[1] if attn_k else 768
    proj_in = [v for k, v in sd.items() if k.endswith(".proj_in.weight")]
    depth = 1
    if attention_levels:
        depth = _max_index(sd, rf"down_blocks\.{attention_levels[0]}\.attentions\.0\.transformer_blocks\.(\d+)\.") + 1
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
        **_heads_rule(context_dim),
    )


# -- diffusers naming -------------------------------------------------------------------------------


def _resblock_rest(rest):
    """Rename the inside of a ResBlock key (``in_layers.0.weight`` -> ``norm1.weight``)."""
    for ldm, diff in _RESBLOCK_TO_DIFFUSERS.items():
        if rest == ldm or rest.startswith(ldm + "."):
            return diff + rest[len(ldm) :]
    raise KeyError(rest)


def ldm_to_diffusers_key(key, config: UNetConfig):
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


def diffusers_key_map(config: UNetConfig):
    """``{diffusers_name: our_name}`` for every parameter of a UNet with ``config``."""
    if config.temporal_conv:
        raise ValueError("diffusers UNet2DConditionModel has no Temp-Conv layers (config.temporal_conv=True)")
    with torch.device("meta"):
        names = list(UNetModel(config).state_dict())
    return {ldm_to_diffusers_key(k, config): k for k in names}


def diffusers_to_ldm(state_dict, config: UNetConfig):
    """Rename a diffusers UNet state dict to our names; unknown keys are an error listing them."""
    key_map = diffusers_key_map(config)
    unexpected = [k for k in state_dict if k not in key_map]
    if unexpected:
        raise StateDictMismatch("diffusers UNet state dict", unexpected=unexpected)
    return {key_map[k]: v for k, v in state_dict.items()}


# -- loading ------------------------------------------------------------------------------------------


def check_state_dict(model, state_dict, what="state dict", optional=()):
    """Raise :class:`StateDictMismatch` unless ``state_dict`` has exactly the model's keys and shapes.

    ``optional``: key prefixes that may be absent (the model keeps its initial values for them).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.startswith(tuple(optional))]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise StateDictMismatch(what, missing, unexpected, mismatched)


def assign_weights(model, state_dict, dtype=None, strict=True):
    """Load a checked state dict into a meta-built ``model`` by assignment (no second copy)."""
    if dtype is not None:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=strict, assign=True)
    return model


def build_unet(state_dict, config: UNetConfig = None, dtype=None, *, new_temporal_layers_ok=False):
    """A :class:`UNetModel` with the weights of ``state_dict`` (LDM or diffusers naming).

    state_dict: the UNet part of a checkpoint, with or without ``model.diffusion_model.``.
    config: inferred from shapes when None (see :func:`infer_unet_config`).
    dtype: cast floating tensors to it (None = keep the stored dtypes).
    new_temporal_layers_ok: with ``config.temporal_conv`` and a plain SD file, the Temp-Conv layers are
      new: allow their keys to be absent and initialise them as identities. Otherwise absent keys are an error.
    """
    sd = strip_prefix(state_dict)
    if config is None:
        config = infer_unet_config(sd)
    if is_diffusers_unet(sd):
        sd = diffusers_to_ldm(sd, config)
    with torch.device("meta"):
        model = UNetModel(config)
    optional = ("temporal_convs.",) if new_temporal_layers_ok else ()
    check_state_dict(model, sd, "UNet state dict", optional=optional)
    absent = [k for k in model.state_dict() if k not in sd]
    if absent:  # only Temp-Conv keys can be absent here: give them fresh identity layers
        with torch.device("cpu"):
            model.temporal_convs = model.make_temporal_convs()
        if dtype is not None:
            model.temporal_convs.to(dtype)
        sd = {**{k: v for k, v in model.state_dict().items() if k.startswith("temporal_convs.")}, **sd}
    return assign_weights(model, sd, dtype=dtype).eval()
