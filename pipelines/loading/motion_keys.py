"""AnimateDiff motion-module key names (released and diffusers naming) and version detection.

Released files (mm_sd_v15.ckpt = v1, mm_sd_v15_v2.ckpt = v2, v3_sd15_mm.ckpt = v3) use
``{down_blocks.L, up_blocks.L, mid_block}.motion_modules.i.temporal_transformer.{norm, proj_in,
transformer_blocks.0.{attention_blocks.0-1.{to_q,to_k,to_v,to_out.0,pos_encoder.pe}, norms.0-1, ff, ff_norm},
proj_out}``: our parameter names. diffusers ``MotionAdapter`` drops ``temporal_transformer.`` and says
``attn1/attn2``, ``norm1/norm2``, ``norm3`` (for ff_norm) and one ``pos_embed.pe`` per transformer block.

Version (as ComfyUI-AnimateDiff-Evolved and diffusers detect it): a mid block means v2; otherwise a
positional table of 24 frames means v1 and 32 means v3. v1 also switches the UNet's ResBlock GroupNorms
to joint-across-frames statistics (see ``MotionModuleConfig.unet_joint_groupnorm``).
Building a module from a state dict is :mod:`.motion`'s job.
"""

import re
from typing import TYPE_CHECKING, Dict, Mapping, Optional, TypeVar

if TYPE_CHECKING:
    import torch

V = TypeVar("V")

_DIFFUSERS_TO_ORIGINAL = (
    (".attn1.", ".attention_blocks.0."),
    (".attn2.", ".attention_blocks.1."),
    (".norm1.", ".norms.0."),
    (".norm2.", ".norms.1."),
    (".norm3.", ".ff_norm."),
)


def unwrap_motion_state_dict(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """The motion-module keys: unwraps a top-level ``state_dict`` and keeps only ``motion_modules.`` keys.

    AnimateDiff dumped its modules from the full UNet and filtered on ``motion_modules.``; we apply the
    same filter (so a dump that still carries UNet keys loads), and refuse a dict without any.
    """
    inner = state_dict.get("state_dict")
    if isinstance(inner, dict):
        state_dict = inner
    kept = {k: v for k, v in state_dict.items() if "motion_modules." in k}
    if not kept:
        raise ValueError("not an AnimateDiff motion module: no 'motion_modules.' keys")
    return kept


def is_diffusers_motion(state_dict: Mapping[str, object]) -> bool:
    """True for diffusers ``MotionAdapter`` naming (no ``temporal_transformer.`` level)."""
    return not any(".temporal_transformer." in k for k in state_dict)


def diffusers_to_original(state_dict: Mapping[str, V]) -> Dict[str, V]:
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


def original_to_diffusers(state_dict: Mapping[str, V]) -> Dict[str, V]:
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


def normalised_motion_state_dict(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """Released-format keys from either naming."""
    sd = unwrap_motion_state_dict(state_dict)
    return diffusers_to_original(sd) if is_diffusers_motion(sd) else sd


def positional_table_length(state_dict: Mapping[str, "torch.Tensor"]) -> Optional[int]:
    """Length L of the ``pos_encoder.pe`` tables ``[1, L, C]`` (None when the file has none)."""
    for key, value in state_dict.items():
        if key.endswith("pos_encoder.pe") or key.endswith("pos_embed.pe"):
            return value.shape[1]
    return None


def version_of(has_mid: bool, pe_length: Optional[int]) -> Optional[str]:
    """v2 / v1 / v3 by the AnimateDiff rule, or None when the shapes match no release."""
    if has_mid:
        return "v2"
    return {24: "v1", 32: "v3"}.get(pe_length) if pe_length is not None else None


def detect_motion_module_version(state_dict: Mapping[str, "torch.Tensor"]) -> str:
    """``"v1"``, ``"v2"`` or ``"v3"``: mid block => v2; else pe length 24 => v1, 32 => v3."""
    sd = normalised_motion_state_dict(state_dict)
    has_mid = any(k.startswith("mid_block.") for k in sd)
    length = positional_table_length(sd)
    version = version_of(has_mid, length)
    if version is None:
        raise ValueError(
            f"unknown AnimateDiff motion module version: no mid block and positional table length {length} "
            "(v1 has 24, v3 has 32)"
        )
    return version
