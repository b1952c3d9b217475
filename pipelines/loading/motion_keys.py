"""Build an AnimateDiff :class:`MotionModule` from a state dict (released or diffusers naming).

Released files (mm_sd_v15.ckpt = v1, mm_sd_v15_v2.ckpt = v2, v3_sd15_mm.ckpt = v3) use
``{down_blocks.L, up_blocks.L, mid_block}.motion_modules.i.temporal_transformer.{norm, proj_in,
transformer_blocks.0.{attention_blocks.0-1.{to_q,to_k,to_v,to_out.0,pos_encoder.pe}, norms.0-1, ff, ff_norm},
proj_out}``: our parameter names. diffusers ``MotionAdapter`` drops ``temporal_transformer.`` and says
``attn1/attn2``, ``norm1/norm2``, ``norm3`` (for ff_norm) and one ``pos_embed.pe`` per transformer block.

Version (as ComfyUI-AnimateDiff-Evolved and diffusers detect it): a mid block means v2; otherwise a
positional table of 24 frames means v1 and 32 means v3. v1 also switches the UNet's ResBlock GroupNorms
to joint-across-frames statistics (see ``MotionModuleConfig.unet_joint_groupnorm``).
"""

import re

import torch

from ..models.motion import MotionModule, MotionModuleConfig, sinusoidal_position_table
from .unet_keys import StateDictMismatch, assign_weights, check_state_dict

_DIFFUSERS_TO_ORIGINAL = (
    (".attn1.", ".attention_blocks.0."),
    (".attn2.", ".attention_blocks.1."),
    (".norm1.", ".norms.0."),
    (".norm2.", ".norms.1."),
    (".norm3.", ".ff_norm."),
)


def unwrap_motion_state_dict(state_dict):
    """The motion-module keys: unwraps a top-level ``state_dict`` and keeps only ``motion_modules.`` keys.

    AnimateDiff dumped its modules from the full UNet and filtered on ``motion_modules.``; we apply the
    same filter (so a dump that still carries UNet keys loads), and refuse a dict without any.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    kept = {k: v for k, v in state_dict.items() if "motion_modules." in k}
    if not kept:
        raise ValueError("not an AnimateDiff motion module: no 'motion_modules.' keys")
    return kept


def is_diffusers_motion(state_dict):
    """True for diffusers ``MotionAdapter`` naming (no ``temporal_transformer.`` level)."""
    return not any(".temporal_transformer." in k for k in state_dict)


def diffusers_to_original(state_dict):
    """Rename a diffusers MotionAdapter state dict to the released naming (pos_embed -> both tables)."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"(.*\.motion_modules\.\d+\.)(.*)", key)
        if not m:
            out[key] = value
            continue
        head, rest = m.groups()
        rest = "." + rest
        if rest.endswith(".pos_embed.pe"):
            block = rest[: -len(".pos_embed.pe")]
            for i in range(2):
                out[f"{head}temporal_transformer{block}.attention_blocks.{i}.pos_encoder.pe"] = value
            continue
        for diff, orig in _DIFFUSERS_TO_ORIGINAL:
            rest = rest.replace(diff, orig)
        out[f"{head}temporal_transformer{rest}"] = value
    return out


def original_to_diffusers(state_dict):
    """Rename released-format keys to diffusers MotionAdapter names (one ``pos_embed.pe`` per block)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".pos_encoder.pe"):
            key = re.sub(r"\.attention_blocks\.\d+\.pos_encoder\.pe$", ".pos_embed.pe", key)
        else:
            for diff, orig in _DIFFUSERS_TO_ORIGINAL:
                key = key.replace(orig, diff)
        out[key.replace(".temporal_transformer.", ".")] = value
    return out


def _normalised(state_dict):
    """Released-format keys from either naming."""
    sd = unwrap_motion_state_dict(state_dict)
    return diffusers_to_original(sd) if is_diffusers_motion(sd) else sd


def positional_table_length(state_dict):
    """Length L of the ``pos_encoder.pe`` tables ``[1, L, C]`` (None when the file has none)."""
    for key, value in state_dict.items():
        if key.endswith("pos_encoder.pe") or key.endswith("pos_embed.pe"):
            return value.shape[1]
    return None


def _version_of(has_mid, pe_length):
    """v2 / v1 / v3 by the AnimateDiff rule, or None when the shapes match no release."""
    if has_mid:
        return "v2"
    return {24: "v1", 32: "v3"}.get(pe_length)


def detect_motion_module_version(state_dict):
    """``"v1"``, ``"v2"`` or ``"v3"``: mid block => v2; else pe length 24 => v1, 32 => v3."""
    sd = _normalised(state_dict)
    has_mid = any(k.startswith("mid_block.") for k in sd)
    length = positional_table_length(sd)
    version = _version_of(has_mid, length)
    if version is None:
        raise ValueError(
            f"unknown AnimateDiff motion module version: no mid block and positional table length {length} "
            "(v1 has 24, v3 has 32)"
        )
    return version


def infer_motion_config(state_dict, *, num_heads=8, norm_groups=32, pe_length=None, **overrides):
    """MotionModuleConfig from key names and shapes (heads and GroupNorm groups are not stored: 8 / 32).

    Only a set with the SD1.5 release layout (320/640/1280/1280, 2 per level) gets a release version
    (v1 => joint-frame UNet GroupNorm); any other set is ``version="custom"`` (per-frame GroupNorm).
    ``pe_length`` is required only when the file carries no positional tables.
    """
    sd = _normalised(state_dict)
    levels = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"down_blocks\.(\d+)\.", k)] if m)
    prefix = "down_blocks.{}.motion_modules.0.temporal_transformer."
    channels = tuple(sd[prefix.format(l) + "norm.weight"].shape[0] for l in range(levels))
    per_level = 1 + max(
        int(m.group(1)) for k in sd for m in [re.match(r"down_blocks\.0\.motion_modules\.(\d+)\.", k)] if m
    )
    first = prefix.format(0)
    depth = 1 + max(
        int(m.group(1)) for k in sd for m in [re.match(re.escape(first) + r"transformer_blocks\.(\d+)\.", k)] if m
    )
    attention_blocks = 1 + max(
        int(m.group(1))
        for k in sd
        for m in [re.match(re.escape(first) + r"transformer_blocks\.0\.attention_blocks\.(\d+)\.", k)]
        if m
    )
    ff_mult = sd[first + "transformer_blocks.0.ff.net.2.weight"].shape[1] // channels[0]
    has_mid = any(k.startswith("mid_block.") for k in sd)
    length = positional_table_length(sd) or pe_length
    if length is None:
        raise ValueError("motion module has no pos_encoder.pe tables: pass pe_length")
    version = _version_of(has_mid, length)
    fields = dict(
        block_channels=channels,
        layers_per_block=per_level,
        mid_block=has_mid,
        num_heads=num_heads,
        pe_length=length,
        transformer_layers=depth,
        attention_blocks=attention_blocks,
        norm_groups=norm_groups,
        ff_mult=ff_mult,
    )
    released = MotionModuleConfig()
    if version is not None and channels == released.block_channels and per_level == released.layers_per_block:
        fields.update(version=version, unet_joint_groupnorm=(version == "v1"))
    fields.update(overrides)
    return MotionModuleConfig(**fields)


def build_motion_module(
    state_dict, dtype=None, config: MotionModuleConfig = None, *, pe_length=None, **config_overrides
):
    """A :class:`MotionModule` with the weights of ``state_dict`` (released or diffusers naming).

    config: inferred from shapes when None. Missing or unexpected keys are an error listing them;
    positional tables may only be absent (recomputed from the sinusoid formula) when the file has none at all.
    dtype: cast floating tensors to it (None = keep the stored dtypes).
    """
    sd = _normalised(state_dict)
    if config is None:
        config = infer_motion_config(sd, pe_length=pe_length, **config_overrides)
    with torch.device("meta"):
        model = MotionModule(config)
    has_tables = positional_table_length(sd) is not None
    check_state_dict(model, sd, "motion module state dict", optional=() if has_tables else ("",))
    if not has_tables:
        _check_only_tables_absent(model, sd)
        for key, value in model.state_dict().items():
            if key.endswith("pos_encoder.pe"):
                sd[key] = sinusoidal_position_table(value.shape[1], value.shape[2])
    return assign_weights(model, sd, dtype=dtype).eval()


def _check_only_tables_absent(model, sd):
    """Without tables in the file, every other key must still be present."""
    missing = [k for k in model.state_dict() if k not in sd and not k.endswith("pos_encoder.pe")]
    if missing:
        raise StateDictMismatch("motion module state dict", missing=missing)


# -- files --------------------------------------------------------------------------------------------


def motion_config_to_dict(config: MotionModuleConfig) -> dict:
    """JSON-ready dict of a MotionModuleConfig."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()}


def motion_config_from_dict(data: dict) -> MotionModuleConfig:
    """MotionModuleConfig from :func:`motion_config_to_dict` output (unknown fields are an error)."""
    known = set(MotionModuleConfig.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"motion module config: unknown fields {sorted(unknown)}")
    return MotionModuleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def load_motion_module(path, dtype=None) -> MotionModule:
    """Read a motion module file (safetensors, or a legacy pickle through weights-only loading).

    A file written by :func:`save_motion_module` carries its config in the ``framefold`` metadata;
    released files are inferred from shapes.
    """
    from .files import read_framefold_metadata, read_state_dict

    state_dict, metadata = read_state_dict(path)
    saved = (read_framefold_metadata(metadata) or {}).get("motion_module")
    config = motion_config_from_dict(saved) if saved else None
    try:
        return build_motion_module(state_dict, dtype=dtype, config=config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def save_motion_module(path, motion_module: MotionModule):
    """Write a motion module as safetensors in the released key layout, with its config as metadata."""
    import json

    from .files import write_safetensors

    tensors = {k: v.contiguous() for k, v in motion_module.state_dict().items()}
    meta = {"framefold": json.dumps({"motion_module": motion_config_to_dict(motion_module.config)})}
    return write_safetensors(path, tensors, meta)
