"""CLIP text-encoder key maps -> the names of ``pipelines.models.clip.CLIPTextModel``.

Accepted layouts (facts from the public formats):

* SD1.x checkpoints: ``cond_stage_model.transformer.text_model.<name>``.
* NAI-derived merges: ``cond_stage_model.transformer.<name>`` (no ``text_model.``).
* transformers ``CLIPTextModel``: ``text_model.<name>``; bare ``<name>`` also accepted.
* ``embeddings.position_ids`` (int64 or float32, [1, 77]) is a buffer, not a weight: the state-dict check drops
  it with the other harmless extras (:mod:`.state_dict`).
* SD2.x OpenCLIP ViT-H text tower: ``cond_stage_model.model.*`` (``transformer.resblocks.N.attn.in_proj_weight``
  holding q, k, v stacked, ``ln_1/ln_2``, ``mlp.c_fc/c_proj``, ``positional_embedding``, ``ln_final``); converted
  to the CLIP names (``text_projection`` and ``logit_scale`` are not needed for per-token embeddings).
"""

import re
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, TypeVar

import torch

if TYPE_CHECKING:
    from ..models.clip import CLIPTextConfig

V = TypeVar("V")

SD_CLIP_PREFIXES = (
    "cond_stage_model.transformer.text_model.",
    "cond_stage_model.transformer.",
)
OPEN_CLIP_PREFIX = "cond_stage_model.model."
OPEN_CLIP_UNUSED = ("text_projection", "logit_scale")
HF_PREFIXES = ("text_model.",)
# transformers' CLIPTextModelWithProjection adds this; it is not used for per-token embeddings.
OPTIONAL = ("text_projection.weight",)


def strip_clip_prefix(
    state_dict: Mapping[str, V], prefixes: Tuple[str, ...] = SD_CLIP_PREFIXES + HF_PREFIXES
) -> Dict[str, V]:
    """Remove the first prefix (longest first) that every key carries; otherwise keep keys as they are."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def is_open_clip(state_dict: Mapping[str, object]) -> bool:
    """True for the OpenCLIP text-tower layout (SD2.x)."""
    return any(".resblocks." in k or k.startswith("resblocks.") for k in state_dict)


def _open_clip_to_clip(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """OpenCLIP text tower names -> CLIP names; the stacked in_proj is split into q, k, v."""
    out = {}
    simple = {
        "token_embedding.weight": "embeddings.token_embedding.weight",
        "positional_embedding": "embeddings.position_embedding.weight",
        "ln_final.weight": "final_layer_norm.weight",
        "ln_final.bias": "final_layer_norm.bias",
    }
    parts = {
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
        "attn.out_proj": "self_attn.out_proj",
    }
    for key, value in sd.items():
        if key in simple:
            out[simple[key]] = value
            continue
        if key in OPEN_CLIP_UNUSED:
            continue
        m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.*)\.(weight|bias)", key) or re.fullmatch(
            r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)()", key
        )
        if not m:
            out[key] = value  # unknown: reported by the key check
            continue
        layer, name, kind = m.groups()
        base = f"encoder.layers.{layer}."
        if key.endswith(("in_proj_weight", "in_proj_bias")):
            kind = "weight" if key.endswith("weight") else "bias"
            for proj, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}self_attn.{proj}.{kind}"] = chunk
        elif name in parts:
            out[f"{base}{parts[name]}.{kind}"] = value
        else:
            out[key] = value
    return out


def normalize_clip_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Any accepted CLIP layout -> our names; ``text_projection`` (unused for per-token embeddings) dropped."""
    sd = strip_clip_prefix(state_dict, SD_CLIP_PREFIXES + HF_PREFIXES + (OPEN_CLIP_PREFIX,))
    if is_open_clip(sd):
        return _open_clip_to_clip(sd)
    return {k: v for k, v in sd.items() if k not in OPTIONAL}


def infer_clip_config(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> "CLIPTextConfig":
    """A :class:`CLIPTextConfig` from the shapes of a normalized CLIP state dict.

    Heads cannot be read from shapes: 64-wide heads are assumed (true for CLIP ViT-L/14 and OpenCLIP).
    """
    from ..models.clip import CLIPTextConfig

    vocab, hidden = state_dict["embeddings.token_embedding.weight"].shape
    positions = state_dict["embeddings.position_embedding.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.layers."))
    intermediate = state_dict["encoder.layers.0.mlp.fc1.weight"].shape[0]
    cfg: Dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=max(1, hidden // 64),
        intermediate_size=intermediate,
        max_positions=positions,
    )
    cfg.update(overrides)
    return CLIPTextConfig(**cfg)


def infer_open_clip_overrides() -> dict:
    """Config differences of the SD2.x OpenCLIP text tower from CLIP-L: exact GELU, pad id 0."""
    return {"hidden_act": "gelu", "pad_token_id": 0}
