"""Build, load and save AnimateDiff motion modules (key maps and version detection in :mod:`.motion_keys`).

Released files (mm_sd_v15.ckpt = v1, mm_sd_v15_v2.ckpt = v2, v3_sd15_mm.ckpt = v3) and diffusers
``MotionAdapter`` files load; the config is read from key names and shapes unless the file carries FrameFold's
``framefold`` metadata. The file kind is checked from its header before any tensor is read.
"""

import json
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ..models.configs import config_from_dict, config_to_dict
from ..models.motion import MotionModule, MotionModuleConfig, sinusoidal_position_table
from . import detect
from .files import FileHeader, parse_dtype, read_framefold_metadata, read_state_dict, write_safetensors
from .motion_keys import normalised_motion_state_dict, positional_table_length, version_of
from .state_dict import assign_weights, check_state_dict, model_shapes

LOADER_NAME = "FrameFold Load Motion Module"
ACCEPTED = (detect.MOTION_MODULE,)


def infer_motion_config(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_heads: int = 8,
    norm_groups: int = 32,
    pe_length: Optional[int] = None,
    **overrides: Any,
) -> MotionModuleConfig:
    """MotionModuleConfig from key names and shapes (heads and GroupNorm groups are not stored: 8 / 32).

    Only a set with the SD1.5 release layout (320/640/1280/1280, 2 per level) gets a release version
    (v1 => joint-frame UNet GroupNorm); any other set is ``version="custom"`` (per-frame GroupNorm).
    ``pe_length`` is required only when the file carries no positional tables.
    """
    sd = normalised_motion_state_dict(state_dict)
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
    version = version_of(has_mid, length)
    fields: Dict[str, Any] = dict(
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
    state_dict: Mapping[str, torch.Tensor],
    dtype: Optional[torch.dtype] = None,
    config: Optional[MotionModuleConfig] = None,
    *,
    pe_length: Optional[int] = None,
    source: str = "motion module state dict",
    **config_overrides: Any,
) -> MotionModule:
    """A :class:`MotionModule` with the weights of ``state_dict`` (released or diffusers naming).

    config: inferred from shapes when None. Missing or unexpected keys are an error listing them;
    positional tables may only be absent (recomputed from the sinusoid formula) when the file has none at all.
    dtype: cast floating tensors to it (None = keep the stored dtypes).
    """
    sd = normalised_motion_state_dict(state_dict)
    if config is None:
        config = infer_motion_config(sd, pe_length=pe_length, **config_overrides)
    with torch.device("meta"):
        model = MotionModule(config)
    has_tables = positional_table_length(sd) is not None
    sd = check_state_dict(model_shapes(model), sd, source, optional=() if has_tables else ("pos_encoder.pe",))
    if not has_tables:
        for key, value in model.state_dict().items():
            if key.endswith("pos_encoder.pe"):
                sd[key] = sinusoidal_position_table(value.shape[1], value.shape[2])
    assign_weights(model, sd, dtype=dtype)
    return model.eval()


def load_motion_module(path: Union[str, Path], dtype: Union[None, str, torch.dtype] = None) -> MotionModule:
    """Read a motion module file (safetensors, or a legacy pickle through weights-only loading).

    The file kind is checked from its header first (a checkpoint or VAE is refused, saying what it is).
    A file written by :func:`save_motion_module` carries its config in the ``framefold`` metadata;
    released files are inferred from shapes.
    """
    check_motion_module_file(path)
    state_dict, metadata = read_state_dict(path)
    saved = (read_framefold_metadata(metadata) or {}).get("motion_module")
    config = config_from_dict(MotionModuleConfig, saved) if saved else None
    return build_motion_module(state_dict, dtype=parse_dtype(dtype), config=config, source=Path(path).name)


def check_motion_module_file(path: Union[str, Path]) -> FileHeader:
    """The header of ``path`` after checking, without reading tensor data, that it is a motion module."""
    return detect.check_file(path, ACCEPTED, LOADER_NAME)


def save_motion_module(path: Union[str, Path], motion_module: MotionModule) -> Path:
    """Write a motion module as safetensors in the released key layout, with its config as metadata."""
    tensors = {k: v.contiguous() for k, v in motion_module.state_dict().items()}
    meta = {"framefold": json.dumps({"motion_module": config_to_dict(motion_module.config)})}
    return write_safetensors(path, tensors, meta)
