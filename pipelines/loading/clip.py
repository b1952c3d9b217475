"""Build a CLIP text encoder from a state dict (SD1 / NAI / transformers naming, or SD2's OpenCLIP text tower;
key maps in :mod:`.clip_keys`)."""

from typing import Any, Dict, Mapping, Optional, Tuple, TypeVar

import torch

from ..models.clip import CLIPTextConfig, CLIPTextModel, TextEncoder
from ..models.tokenizers import CLIPTokenizer
from .clip_keys import (
    HF_PREFIXES,
    OPEN_CLIP_PREFIX,
    SD_CLIP_PREFIXES,
    infer_clip_config,
    infer_open_clip_overrides,
    is_open_clip,
    normalize_clip_state_dict,
    strip_clip_prefix,
)
from .state_dict import assign_weights, check_state_dict, model_shapes

V = TypeVar("V")


def build_text_encoder(
    state_dict: Mapping[str, torch.Tensor],
    config: Optional[CLIPTextConfig] = None,
    tokenizer: Any = None,
    dtype: Optional[torch.dtype] = torch.float32,
    clip_skip: Optional[int] = None,
    what: str = "text encoder",
    name: str = "",
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
    prefix = "" if open_clip else _common_prefix(state_dict, SD_CLIP_PREFIXES + HF_PREFIXES)
    sd = check_state_dict(model_shapes(model), sd, what, key_prefix=prefix)
    assign_weights(model, sd, dtype)
    if tokenizer is None:
        tokenizer = CLIPTokenizer(pad_id=config.pad_token_id)
    return TextEncoder(tokenizer, model.eval(), clip_skip=clip_skip, name=name)


def strip_clip_any(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """Keys with any known CLIP/OpenCLIP prefix removed (used to look at the layout)."""
    return strip_clip_prefix(state_dict, SD_CLIP_PREFIXES + HF_PREFIXES + (OPEN_CLIP_PREFIX,))


def _common_prefix(state_dict: Mapping[str, Any], prefixes: Tuple[str, ...]) -> str:
    """The longest of ``prefixes`` that every key carries ('' when none), to name keys as the file does."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return prefix
    return ""
