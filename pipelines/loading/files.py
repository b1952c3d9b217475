"""Safe reading of weight files: safetensors first, legacy pickles only through ``torch.load(weights_only=True)``.

Nothing is ever unpickled freely: a ``.ckpt`` whose pickle asks to run code is refused by PyTorch's
weights-only unpickler, and the error names the file.
"""

import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")
WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "module")

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


class WeightFileError(ValueError):
    """A weight file could not be read; the message names the file and the reason."""


def parse_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """None, a torch dtype, or one of 'fp32'/'fp16'/'bf16' (and long names) -> torch dtype or None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower()
    if key in ("default", "auto", "none", ""):
        return None
    if key not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[key]


def _read_safetensors(path: Path, device: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """All tensors and the ``__metadata__`` of a safetensors file."""
    from safetensors import safe_open

    size = path.stat().st_size
    if size < 8:
        raise WeightFileError(f"{path}: file is empty or truncated ({size} bytes); expected a safetensors file")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError types
        raise WeightFileError(f"{path}: not a valid safetensors file (truncated or corrupt download?): {e}") from e
    return tensors, metadata


def unpickler_refusal(text: str) -> str:
    """What PyTorch's weights-only unpickler refused, naming the global (e.g. ``global 'posix.system'``)."""
    match = re.search(r"GLOBAL\s+([\w.]+)", text)
    if match:
        return f"it asks for the global '{match.group(1)}', which is not a tensor type"
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith(("unsupported", "weightsunpickler error")):
            return line.split(". Please")[0]
    return "it holds objects other than tensors"


def _read_pickle(path: Path, device: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """A legacy checkpoint through PyTorch's weights-only unpickler."""
    if path.stat().st_size == 0:
        raise WeightFileError(f"{path}: file is empty")
    try:
        obj = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as e:
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(e).__name__:
            raise WeightFileError(
                f"{path}: refused to load: {unpickler_refusal(text)} (a pickle can run code). FrameFold only "
                f"loads weights (torch.load(weights_only=True)); convert the file to safetensors with a tool you trust"
            ) from e
        raise WeightFileError(
            f"{path}: could not read the checkpoint (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from e
    return obj, {}


def unwrap_state_dict(obj: Any, path: Union[str, Path] = "<memory>") -> Dict[str, torch.Tensor]:
    """Peel ``state_dict`` / ``params_ema`` / ``params`` wrappers and a ``module.`` key prefix off a loaded object."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in WRAPPER_KEYS:
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, dict):
        raise WeightFileError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightFileError(f"{path}: contains no tensors (top-level keys: {sorted(map(str, obj))[:10]})")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def cast_state_dict(
    state_dict: Dict[str, torch.Tensor], dtype: Union[None, str, torch.dtype]
) -> Dict[str, torch.Tensor]:
    """Cast floating-point tensors to ``dtype``; integer/bool tensors are kept as they are."""
    dtype = parse_dtype(dtype)
    if dtype is None:
        return state_dict
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state_dict.items()}


def read_state_dict(
    path: Union[str, Path], *, dtype: Union[None, str, torch.dtype] = None, device: str = "cpu"
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a weight file -> (state_dict, metadata).

    ``.safetensors``/``.sft`` via safetensors; ``.ckpt``/``.pt``/``.pth``/``.bin`` only via
    ``torch.load(weights_only=True)``. Wrappers (``state_dict``, ``params_ema``, ``params``) and a
    ``module.`` prefix are removed. ``dtype`` ('fp16'/'bf16'/'fp32' or a torch dtype) casts float tensors.
    metadata is the safetensors ``__metadata__`` dict ({} for pickles).
    """
    path = _weight_path(path)
    if path.suffix.lower() in SAFETENSORS_EXTENSIONS:
        tensors, metadata = _read_safetensors(path, device)
    else:
        tensors, metadata = _read_pickle(path, device)
    return cast_state_dict(unwrap_state_dict(tensors, path), dtype), metadata


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class FileHeader:
    """What a weight file holds, read without its tensor data: names -> meta tensors (shape and dtype only)."""

    path: Path
    tensors: Dict[str, torch.Tensor]
    metadata: Dict[str, str]


def _safetensors_header(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Names, shapes, dtypes and ``__metadata__`` from the JSON header of a safetensors file (no tensor data)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightFileError(
                f"{path}: file is empty or truncated ({len(head)} bytes); expected a safetensors file"
            )
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER_BYTES, path.stat().st_size - 8):
            raise WeightFileError(f"{path}: not a valid safetensors file (header length {length} is impossible)")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WeightFileError(f"{path}: not a valid safetensors file (header is not JSON: {e})") from e
    metadata = dict(header.pop("__metadata__", None) or {})
    tensors = {}
    for name, entry in header.items():
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype"), torch.float32)
        tensors[name] = torch.empty(entry["shape"], dtype=dtype, device="meta")
    return tensors, metadata


def _pickle_header(path: Path) -> Dict[str, torch.Tensor]:
    """Meta tensors of a legacy checkpoint: memory-mapped (zip format) so tensor data is not read."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped: read them
        obj, _ = _read_pickle(path, "cpu")
    except Exception:
        obj, _ = _read_pickle(path, "cpu")  # raises the one refusal / corruption message
    tensors = unwrap_state_dict(obj, path)
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in tensors.items()}


def read_header(path: Union[str, Path]) -> FileHeader:
    """Names, shapes and dtypes of the tensors of a weight file, and its metadata, without reading tensor data.

    safetensors: the JSON header only. ``.ckpt``/``.pt``/``.pth``/``.bin``: weights-only unpickling with the
    storages memory-mapped (older non-zip pickles are read whole). Wrappers and a ``module.`` prefix are removed
    as :func:`read_state_dict` does.
    """
    path = _weight_path(path)
    if path.suffix.lower() in SAFETENSORS_EXTENSIONS:
        tensors, metadata = _safetensors_header(path)
        return FileHeader(path, unwrap_state_dict(tensors, path) if tensors else {}, metadata)
    return FileHeader(path, _pickle_header(path), {})


def _weight_path(path: Union[str, Path]) -> Path:
    """``path`` as a Path after checking that it is a file of a known weight-file type."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS:
        raise WeightFileError(
            f"{path}: unknown weight file type {suffix!r}; expected one of "
            f"{', '.join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS)}"
        )
    return path


def read_framefold_metadata(metadata: Optional[Mapping[str, str]]) -> Optional[dict]:
    """The parsed ``framefold`` JSON entry of safetensors metadata, or None."""
    raw = (metadata or {}).get("framefold")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise WeightFileError(f"the 'framefold' metadata entry is not valid JSON: {e}") from e


def write_safetensors(
    path: Union[str, Path], state_dict: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, Any]] = None
) -> Path:
    """Write tensors to ``path`` atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# --------------------------------------------------------------------------- latent files
LATENT_EXTENSION = ".latent"


# The metadata key FrameFold adds to its .latent files; files without ``latent_format_version_0`` (very old ComfyUI)
# and old FrameFold files (the marker but an empty metadata table) hold latents scaled by the SD VAE's factor.
FRAMEFOLD_LATENT_KEY = "framefold_latents"
SD_LATENT_SCALE = 0.18215


def save_latent_file(
    path: Union[str, "os.PathLike[str]"], samples: torch.Tensor, metadata: Optional[dict] = None
) -> Path:
    """Write raw VAE latents ``samples`` ``[F,C,h,w]`` as ComfyUI's Save Latent does (safetensors: ``latent_tensor``
    and the ``latent_format_version_0`` marker); ``metadata`` (e.g. ComfyUI's ``prompt``/``workflow``) is kept."""
    tensors = {
        "latent_tensor": samples.detach().float().contiguous().cpu(),
        "latent_format_version_0": torch.tensor([]),
    }
    return write_safetensors(Path(path), tensors, {**(metadata or {}), FRAMEFOLD_LATENT_KEY: "raw_vae"})


def _raw_metadata(path: Path) -> Optional[dict]:
    """The ``__metadata__`` table of a safetensors file as stored: None when absent, ``{}`` when empty."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return f.metadata()


def load_latent_file(path: Union[str, "os.PathLike[str]"]) -> torch.Tensor:
    """Read a ``.latent`` file of ComfyUI's Save Latent or FrameFold -> raw VAE latents ``[F,C,h,w]``.

    Like ComfyUI's Load Latent, files without the version marker are multiplied by 1/0.18215. FrameFold files written
    before LATENT meant raw VAE latents (the marker and an empty metadata table) are converted the same way.
    """
    path = Path(path)
    tensors, _ = _read_safetensors(path, "cpu")
    if "latent_tensor" not in tensors:
        raise WeightFileError(f"{path}: not a latent file (no 'latent_tensor'; keys: {sorted(tensors)[:5]})")
    samples = tensors["latent_tensor"].float()
    if "latent_format_version_0" not in tensors or _raw_metadata(path) == {}:
        samples = samples * (1.0 / SD_LATENT_SCALE)
    return samples
