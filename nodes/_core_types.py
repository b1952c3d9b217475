"""ComfyUI core types accepted by FrameFold's nodes.

Core CONDITIONING is plain data: a list of ``[cross_attention [B, L, D], {"pooled_output": ..., ...}]`` entries
(what CLIP Text Encode makes). FrameFold's samplers declare their prompt sockets as ``FF_CONDITIONING,CONDITIONING``
(a union both ComfyUI and FrameFold's host validate) and turn a core value into a
:class:`~..pipelines.models.bundle.Conditioning` here. Entries that ask for something FrameFold's samplers do not
do (several entries combined, areas, masks, timestep ranges, core ControlNet) are refused by name, never dropped.
"""

from typing import Any, Tuple

import torch

from ..pipelines.models.bundle import Conditioning
from ._errors import NodeInputError

# Keys of a core conditioning entry that do not change what an SD 1.5 UNet computes.
IGNORED_CORE_KEYS = ("pooled_output",)


def conditioning_from_core(node_class: str, input_name: str, value: Any) -> Conditioning:
    """``value`` as FrameFold conditioning: a Conditioning as it is, a one-entry core CONDITIONING converted."""
    if isinstance(value, Conditioning):
        return value
    expected = "FrameFold conditioning or a core CONDITIONING of one entry [[cross_attention [B,L,D], {...}]]"
    if not isinstance(value, (list, tuple)) or len(value) != 1:
        count = f"{len(value)} entries" if isinstance(value, (list, tuple)) else type(value).__name__
        raise NodeInputError(node_class, input_name, f"{expected}, got {count}")
    entry = value[0]
    if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], torch.Tensor):
        raise NodeInputError(node_class, input_name, expected)
    embeds, extras = entry
    if embeds.ndim != 3:
        raise NodeInputError(node_class, input_name, f"{expected}; the tensor is {tuple(embeds.shape)}")
    unsupported = sorted(k for k in (extras or {}) if k not in IGNORED_CORE_KEYS)
    if unsupported:
        raise NodeInputError(
            node_class, input_name, f"plain text conditioning; FrameFold's samplers do not apply {unsupported}"
        )
    return Conditioning(embeds.detach().float().cpu())


def prompt_pair(node: object, positive: Any, negative: Any) -> Tuple[Conditioning, Conditioning]:
    """Both prompt inputs of a sampler node through :func:`conditioning_from_core`."""
    node_class = type(node).__name__
    return (
        conditioning_from_core(node_class, "positive", positive),
        conditioning_from_core(node_class, "negative", negative),
    )
