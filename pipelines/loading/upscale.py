"""Load ESRGAN-family upscaler files (RealESRGAN_x4plus, realesr-general-x4v3, and their smaller relatives).

The file is read with :func:`read_state_dict` (safetensors first, pickles only weights-only; the ``params_ema`` /
``params`` wrappers of the Real-ESRGAN releases are peeled there). The architecture and the scale come from the
key names and shapes; the keys must match the architecture exactly (nothing missing, nothing extra, every shape
right). When the ``spandrel`` package is importable (it is inside ComfyUI), any architecture it knows is accepted
too; FrameFold's own nets are still used for the two architectures above so results do not depend on spandrel.
"""

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ..models.upscalers import (
    RRDBNetConfig,
    UpscaleModel,
    UpscalerConfig,
    build_upscaler,
    module_shapes,
    rrdbnet_config_from_state_dict,
    srvgg_config_from_state_dict,
)
from .detect import SD_CHECKPOINT, UNKNOWN, UPSCALER, WrongLoaderError, describe, detect_format
from .files import read_state_dict

LOADER_NAME = "FrameFold Load Upscale Model"


class UpscaleKeyError(ValueError):
    """The file's keys or shapes do not match the architecture they look like."""


class UpscaleScaleError(ValueError):
    """The model's scale (read from its weights) is not the scale that was asked for."""


def own_architecture(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """'RRDBNet' or 'SRVGGNetCompact' when the keys are one of FrameFold's own layouts, else None."""
    if "conv_first.weight" in state_dict and "body.0.rdb1.conv1.weight" in state_dict:
        return "RRDBNet"
    first = state_dict.get("body.0.weight")
    if first is not None and first.ndim == 4 and "body.0.bias" in state_dict:
        if detect_format(state_dict) in (UPSCALER, UNKNOWN):  # extra keys are reported by the exact key check
            return "SRVGGNetCompact"
    return None


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> UpscalerConfig:
    """The architecture config (with its scale) of one of FrameFold's own layouts."""
    arch = own_architecture(state_dict)
    if arch == "RRDBNet":
        return rrdbnet_config_from_state_dict(state_dict)
    if arch == "SRVGGNetCompact":
        return srvgg_config_from_state_dict(state_dict)
    raise UpscaleKeyError("the keys are neither RRDBNet (ESRGAN new-arch) nor SRVGGNetCompact")


def check_upscaler_keys(expected: Mapping[str, tuple], state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Exact key coverage: raise :class:`UpscaleKeyError` listing missing, unexpected and mis-shaped keys."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(expected[k])})"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if items
        ]
        raise UpscaleKeyError(f"{what}: keys do not match the architecture; " + "; ".join(parts))


def build_from_state_dict(state_dict: Mapping[str, torch.Tensor], name: str = "") -> UpscaleModel:
    """An :class:`UpscaleModel` of FrameFold's own nets with these weights (exact keys; fp32 unless cast)."""
    config = config_from_state_dict(state_dict)
    with torch.device("meta"):
        net = build_upscaler(config)
    check_upscaler_keys(module_shapes(net), state_dict, name or "upscaler")
    net.load_state_dict(dict(state_dict), assign=True)
    net.eval().requires_grad_(False)
    if isinstance(config, RRDBNetConfig):
        return UpscaleModel(net, config.scale, "RRDBNet", name, 4 // config.scale, config.num_feat)
    return UpscaleModel(net, config.scale, "SRVGGNetCompact", name, 1, config.num_feat)


def _spandrel():
    """The spandrel module when it is importable (inside ComfyUI), else None."""
    try:
        import spandrel  # type: ignore
    except ImportError:
        return None
    return spandrel


def build_with_spandrel(spandrel: Any, state_dict: Dict[str, torch.Tensor], name: str) -> UpscaleModel:
    """An :class:`UpscaleModel` around a spandrel image-model descriptor; clear errors for what it cannot load."""
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except Exception as e:  # spandrel raises UnsupportedModelError and plain KeyErrors for unknown layouts
        raise WrongLoaderError(
            f"{name}: {LOADER_NAME} cannot load this file: spandrel does not recognise it ({type(e).__name__}: {e})"
        ) from e
    scale = getattr(descriptor, "scale", None)
    if not hasattr(descriptor, "model") or not isinstance(scale, int) or scale < 1:
        raise WrongLoaderError(f"{name}: spandrel loaded this file, but it is not an image upscaler")
    if getattr(descriptor, "input_channels", 3) != 3 or getattr(descriptor, "output_channels", 3) != 3:
        raise WrongLoaderError(f"{name}: spandrel loaded a model that does not map RGB to RGB")
    net = descriptor.model
    net.eval().requires_grad_(False)
    arch = getattr(descriptor, "architecture", "spandrel")
    arch_name = str(getattr(arch, "name", arch))
    requirements = getattr(descriptor, "size_requirements", None)
    multiple = int(getattr(requirements, "multiple_of", 1) or 1)
    return UpscaleModel(net, scale, arch_name, name, multiple, 64)


def upscale_model_from_state_dict(
    state_dict: Dict[str, torch.Tensor], metadata: Optional[dict] = None, name: str = "upscaler"
) -> UpscaleModel:
    """Route a read state dict: FrameFold's nets for RRDBNet / SRVGGNetCompact, spandrel for anything else."""
    if own_architecture(state_dict) is not None:
        return build_from_state_dict(state_dict, name)
    fmt = detect_format(state_dict, metadata)
    if fmt not in (UNKNOWN, UPSCALER):
        hint = "FrameFold Load Checkpoint" if fmt == SD_CHECKPOINT else "its own FrameFold loader"
        raise WrongLoaderError(
            f"{name} is {describe(state_dict, metadata)}, not an upscale model; {LOADER_NAME} loads ESRGAN-family "
            f"files (RealESRGAN x4plus, realesr-general-x4v3, ...). Load this file with {hint}."
        )
    spandrel = _spandrel()
    if spandrel is None:
        sample = ", ".join(list(state_dict)[:5])
        raise WrongLoaderError(
            f"{name}: {LOADER_NAME} cannot load this file: its keys are neither RRDBNet (ESRGAN / RealESRGAN "
            f"new-arch) nor SRVGGNetCompact (realesr-general), and the spandrel package, which knows more "
            f"architectures, is not installed (first keys: {sample})."
        )
    return build_with_spandrel(spandrel, state_dict, name)


def load_upscale_model(
    path: Union[str, Path],
    *,
    expected_scale: Optional[int] = None,
    dtype: Optional[Union[str, torch.dtype]] = None,
) -> UpscaleModel:
    """Read an upscaler file -> :class:`UpscaleModel` on the CPU.

    ``expected_scale`` (e.g. from a node widget): raise :class:`UpscaleScaleError` when the weights say otherwise.
    ``dtype`` casts the weights ('fp16', 'bf16', 'fp32' or a torch dtype); inference casts as it needs anyway.
    """
    path = Path(path)
    state_dict, metadata = read_state_dict(path, dtype=dtype)
    model = upscale_model_from_state_dict(state_dict, metadata, path.name)
    if expected_scale is not None and int(expected_scale) != model.scale:
        raise UpscaleScaleError(
            f"{path.name} is a {model.scale}x {model.architecture} model (read from its weights), not {expected_scale}x"
        )
    return model
