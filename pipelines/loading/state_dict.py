"""The one state-dict check every component loader uses, with one error type and one loading policy.

Policy (lenient but loud):

* a key of a **known-harmless family** (EMA copies, LoRA leftovers, DDPM schedule buffers, ``logvar``,
  CLIP ``position_ids``, VAE training-loss tensors) is dropped, and one :class:`DroppedKeysWarning` lists them;
* any other key the model does not have, any missing key and any shape mismatch is a :class:`StateDictError`
  that names the file and every full key (as written in the file, prefix included).

Optional keys follow one rule: a model key is optional when one of the ``optional`` name fragments occurs in it
(e.g. ``"temporal_convs."`` for Temp-Conv layers an SD file cannot have); the model keeps its initial values.
"""

import warnings
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

# DDPM buffers that SD training code saves next to the weights; the schedule is data on the model instead.
SCHEDULE_BUFFERS = frozenset(
    (
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
    )
)


def _is_lora(key: str) -> bool:
    """kohya / diffusers LoRA tensors merged into a checkpoint by mistake."""
    return key.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) or any(
        part in key for part in (".lora_up.", ".lora_down.", ".lora_A.", ".lora_B.", ".lora.")
    )


def _is_ema(key: str) -> bool:
    """The EMA copy of the weights (``model_ema.*``) and its counters."""
    return key.startswith("model_ema.")


HARMLESS_FAMILIES: Tuple[Tuple[str, Callable[[str], bool]], ...] = (
    ("EMA weights", _is_ema),
    ("LoRA leftovers", _is_lora),
    ("DDPM schedule buffers", lambda k: k in SCHEDULE_BUFFERS),
    ("logvar", lambda k: k == "logvar" or k.endswith(".logvar")),
    ("CLIP position ids", lambda k: k.endswith("embeddings.position_ids")),
    ("VAE training loss", lambda k: k.startswith(("loss.", "loss_", "first_stage_model.loss."))),
)


class StateDictError(ValueError):
    """A state dict does not fit the model: names the file and lists missing, unexpected and mis-shaped keys."""

    def __init__(
        self, source: str, missing: Iterable[str] = (), unexpected: Iterable[str] = (), mismatched: Iterable[str] = ()
    ) -> None:
        self.source = source
        self.missing, self.unexpected, self.mismatched = sorted(missing), sorted(unexpected), sorted(mismatched)
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if items:
                parts.append(f"{len(items)} {label}: " + ", ".join(items))
        note = " (unexpected keys are not a known-harmless extra: they would change the architecture)"
        super().__init__(
            f"{source}: keys do not match the model: " + "; ".join(parts) + (note if self.unexpected else "")
        )


class DroppedKeysWarning(UserWarning):
    """Keys of known-harmless families were dropped while loading; the message lists them."""


def harmless_family(key: str) -> Optional[str]:
    """The name of the harmless family ``key`` belongs to, or None."""
    for label, belongs in HARMLESS_FAMILIES:
        if belongs(key):
            return label
    return None


def warn_dropped(keys: Sequence[str], source: str) -> None:
    """One :class:`DroppedKeysWarning` listing ``keys`` by family (nothing when there are none)."""
    if not keys:
        return
    by_family: Dict[str, List[str]] = {}
    for key in sorted(keys):
        by_family.setdefault(harmless_family(key) or "other", []).append(key)
    listing = "; ".join(f"{family} ({len(ks)}): {_shortened(ks)}" for family, ks in by_family.items())
    warnings.warn(f"{source}: dropped {len(keys)} keys the model does not use: {listing}", DroppedKeysWarning, 2)


def _shortened(keys: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` keys, and how many more."""
    more = f", ... and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def split_harmless(keys: Iterable[str]) -> Tuple[List[str], List[str]]:
    """``(harmless, other)`` partition of ``keys``."""
    harmless: List[str] = []
    other: List[str] = []
    for key in keys:
        (harmless if harmless_family(key) else other).append(key)
    return harmless, other


def model_shapes(module: torch.nn.Module) -> Dict[str, Tuple[int, ...]]:
    """name -> shape of every state-dict entry of ``module``."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def is_optional(key: str, optional: Sequence[str]) -> bool:
    """The one optional-key rule: ``key`` contains one of the ``optional`` name fragments."""
    return any(part in key for part in optional)


def check_state_dict(
    expected: Mapping[str, Sequence[int]],
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    *,
    optional: Sequence[str] = (),
    key_prefix: str = "",
) -> Dict[str, torch.Tensor]:
    """``state_dict`` without its harmless extras (warned), after checking it against the model's ``expected``
    name -> shape table.

    Raises :class:`StateDictError` naming ``source`` and the full keys (``key_prefix`` + name) for missing keys
    (unless optional), unexpected keys outside the harmless families and shape mismatches.
    """
    harmless, unexpected = split_harmless(k for k in state_dict if k not in expected)
    missing = [k for k in expected if k not in state_dict and not is_optional(k, optional)]
    mismatched = [
        f"{key_prefix}{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k])}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        raise StateDictError(
            source, [key_prefix + k for k in missing], [key_prefix + k for k in unexpected], mismatched
        )
    warn_dropped([key_prefix + k for k in harmless], source)
    return {k: v for k, v in state_dict.items() if k in expected}


def assign_weights(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], dtype: Optional[torch.dtype] = None
) -> torch.nn.Module:
    """Load a checked state dict into a meta-built ``model`` by assignment (no second copy), casting floats to
    ``dtype`` (None keeps the stored dtypes); keys the state dict lacks keep the model's values."""
    if dtype is not None:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(dict(state_dict), strict=False, assign=True)
    return model
