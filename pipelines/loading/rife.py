"""Loader for RIFE 4.x frame-interpolation files (IFNet, arch 4.7: ``rife47.pth``, ``rife49.pth``).

The released files are flat state dicts; Practical-RIFE's ``train_log/flownet.pkl`` holds the same keys behind a
``module.`` prefix (removed by :func:`read_state_dict`). Every key must match the architecture exactly (names
and shapes, ``../shared/fixtures/manifests/rife_v4.json``); other RIFE versions are recognised by their keys and
refused by name, and files of other kinds are sent to their own loader.
"""

from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..interpolation.ifnet import FEATURE_CHANNELS, LASTCONV_CHANNELS, IFNet, ifnet_config_from_state_dict
from .detect import RIFE, FileHeader, check_file, require_format
from .files import WeightFileError, parse_dtype, read_state_dict, unwrap_state_dict

LOADER_NAME = "FrameFold Load Frame Interpolation Model"
SUPPORTED_VERSION = "4.7"
PRACTICAL_RIFE_EXTENSION = ".pkl"  # train_log/flownet.pkl: a torch.save'd state dict


class RifeVersionError(WeightFileError):
    """A RIFE file of an architecture version FrameFold does not implement."""


def rife_version(state_dict: Dict[str, torch.Tensor]) -> str:
    """The RIFE architecture version a state dict belongs to, from its key names and shapes.

    '4.7' (also rife49.pth), or the family of another release: '4.0-4.3', '4.5', '4.6', '4.10-4.18', '4.20+';
    'unknown' otherwise.
    """
    keys = list(state_dict)
    if any(k.startswith(("contextnet.", "unet.")) for k in keys) or "block0.convblock.0.0.weight" in state_dict:
        return "4.0-4.3"
    if "block4.conv0.0.0.weight" in state_dict:
        return "4.20+"
    if "encode.cnn0.weight" in state_dict or "encode.2.weight" in state_dict:
        return "4.10-4.18"
    last = state_dict.get("block0.lastconv.0.weight")
    if last is None or last.ndim != 4:
        return "unknown"
    if last.shape[1] == 20:
        return "4.5"
    if last.shape[1] == LASTCONV_CHANNELS and "encode.0.weight" not in state_dict:
        return "4.6"
    encode_out = state_dict.get("encode.1.weight")
    if last.shape[1] == LASTCONV_CHANNELS and encode_out is not None and encode_out.shape[1] == FEATURE_CHANNELS:
        return SUPPORTED_VERSION
    return "unknown"


def _read(path: Path) -> tuple:
    """(state_dict, metadata) of a weight file; Practical-RIFE's ``.pkl`` goes through the weights-only unpickler."""
    if path.suffix.lower() != PRACTICAL_RIFE_EXTENSION:
        return read_state_dict(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise WeightFileError(f"{path}: file is empty")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightFileError(
            f"{path}: could not read it as a weights-only torch file (truncated, or it holds code): "
            f"{type(e).__name__}: {e}"
        ) from e
    return unwrap_state_dict(obj, path), {}


def check_exact_keys(path: Union[str, Path], state_dict: Dict[str, torch.Tensor], model: IFNet) -> None:
    """Raise :class:`WeightFileError` unless the file has exactly the model's keys with the model's shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in expected if k in state_dict and tuple(state_dict[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(state_dict[k].shape)}, not {expected[k]})")
        raise WeightFileError(
            f"{Path(path).name}: not a complete RIFE {SUPPORTED_VERSION} IFNet: keys {'; '.join(parts)}"
        )


def check_rife_file(path: Union[str, Path]) -> FileHeader:
    """Refuse a file that is not a RIFE model from its header alone (no tensor data read)."""
    return check_file(path, (RIFE,), LOADER_NAME)


def load_rife(path: Union[str, Path], *, dtype: Optional[Union[str, torch.dtype]] = None, device: str = "cpu") -> IFNet:
    """Read a RIFE 4.7 file -> an :class:`IFNet` in eval mode (fp32 unless ``dtype`` says otherwise)."""
    path = Path(path)
    state_dict, metadata = _read(path)
    require_format(path, state_dict, metadata, (RIFE,), LOADER_NAME)
    version = rife_version(state_dict)
    if version != SUPPORTED_VERSION:
        raise RifeVersionError(
            f"{path.name} is a RIFE {version} file; {LOADER_NAME} implements the RIFE {SUPPORTED_VERSION} IFNet "
            f"(rife47.pth, rife49.pth). Use a 4.7 release."
        )
    config = ifnet_config_from_state_dict(state_dict)
    try:
        model = IFNet(config)
    except ValueError as e:
        raise WeightFileError(f"{path.name}: {e}") from e
    check_exact_keys(path, state_dict, model)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    target = parse_dtype(dtype) or torch.float32
    return model.to(device=device, dtype=target).eval()
