"""Device and precision policy: where FrameFold computes and in which dtype, chosen in one place.

Standalone, the compute device is chosen once: ``set_device_override`` (the CLI's ``--device``), else the
``FRAMEFOLD_DEVICE`` environment variable, else CUDA if available, else MPS, else the CPU. The offload mode
(``gpu-only``, ``normal``, ``lowvram``; see pipelines/offload.py) comes from ``FRAMEFOLD_OFFLOAD`` or
``set_offload_mode`` (default ``normal``).

Inside ComfyUI the policy asks ``comfy.model_management`` instead: its ``get_torch_device()`` (which already
honours ``--cpu``), its ``vram_state`` (``--gpu-only`` / ``--highvram`` -> gpu-only, ``--lowvram`` /
``--novram`` -> lowvram), its unet / text-encoder / VAE dtype choices, and ``free_memory()`` /
``soft_empty_cache()`` before large loads, so FrameFold and ComfyUI's own nodes share one GPU.

Precision: ``auto`` is fp32 on the CPU; on CUDA the UNet and text encoder run in bf16 where the GPU supports
it, else fp16, and the VAE in bf16 where supported, else fp32. :func:`decode_with_fp32_retry` repeats a
reduced-precision decode in fp32 when it produced NaN/inf; :class:`Float32Denoiser` keeps a sampler's
latents and sigmas in fp32 whatever the model's dtype.
"""

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

OFFLOAD_MODES = ("gpu-only", "normal", "lowvram")
ROLES = ("unet", "text_encoder", "vae")
DTYPE_NAMES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ENV_DEVICE = "FRAMEFOLD_DEVICE"
ENV_OFFLOAD = "FRAMEFOLD_OFFLOAD"

_override: dict = {"device": None, "offload": None}
_chosen: dict = {}  # the standalone policy, computed once


class DeviceError(ValueError):
    """A device or precision request that cannot be honoured (unknown name, CUDA absent, ...)."""


@dataclass(frozen=True)
class DevicePolicy:
    """Where models compute and rest, and how they are moved (see pipelines/offload.py).

    compute: the device nodes run models on; offload: where weights rest between uses (the CPU, or the
    compute device in ``gpu-only`` mode); mode: one of OFFLOAD_MODES; source: ``comfyui``, ``override``
    (``--device``), ``env`` (FRAMEFOLD_DEVICE) or ``auto``.
    """

    compute: torch.device
    offload: torch.device
    mode: str
    source: str


def comfy_model_management() -> Optional[Any]:
    """ComfyUI's ``comfy.model_management`` when FrameFold runs inside ComfyUI, else None.

    Only a module ComfyUI has already imported counts, so importing this never starts ComfyUI's
    device setup in a standalone process.
    """
    return sys.modules.get("comfy.model_management")


def parse_device(spec: str) -> torch.device:
    """``cpu`` / ``cuda`` / ``cuda:1`` / ``mps`` -> a torch.device that exists here, or a DeviceError."""
    text = str(spec).strip().lower()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as e:
        raise DeviceError(f"device {spec!r}: expected cpu, cuda, cuda:<index> or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r}: CUDA is not available on this machine (use cpu)")
        index = 0 if device.index is None else device.index
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {spec!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(f"device {spec!r}: MPS is not available on this machine (use cpu)")
        return device
    if device.type == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"device {spec!r}: expected cpu, cuda, cuda:<index> or mps")


def _mps_available() -> bool:
    """True when PyTorch can use Apple's MPS backend."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def detect_device() -> torch.device:
    """CUDA (the current device) if available, else MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_device_override(spec: Optional[str]) -> None:
    """Force the compute device (the CLI's ``--device``); None returns to FRAMEFOLD_DEVICE / detection."""
    _override["device"] = None if spec is None else parse_device(spec)
    _chosen.clear()


def set_offload_mode(mode: Optional[str]) -> None:
    """Force the offload mode (one of OFFLOAD_MODES); None returns to FRAMEFOLD_OFFLOAD / ``normal``."""
    if mode is not None and mode not in OFFLOAD_MODES:
        raise DeviceError(f"offload mode {mode!r}: expected one of {OFFLOAD_MODES}")
    _override["offload"] = mode
    _chosen.clear()


def _comfy_policy(mm: Any) -> DevicePolicy:
    """The policy ComfyUI's model management implies (its flags are already applied to its state)."""
    compute = torch.device(mm.get_torch_device())
    state = getattr(getattr(mm, "vram_state", None), "name", "NORMAL_VRAM")
    if compute.type == "cpu" or state in ("HIGH_VRAM", "DISABLED"):
        mode = "gpu-only"
    elif state in ("LOW_VRAM", "NO_VRAM"):
        mode = "lowvram"
    else:
        mode = "normal"
    offload = compute if mode == "gpu-only" else torch.device(mm.unet_offload_device())
    return DevicePolicy(compute, offload, mode, "comfyui")


def _standalone_policy() -> DevicePolicy:
    """The policy from --device, FRAMEFOLD_DEVICE / FRAMEFOLD_OFFLOAD, or detection."""
    if _override["device"] is not None:
        compute, source = _override["device"], "override"
    elif os.environ.get(ENV_DEVICE, "").strip():
        compute, source = parse_device(os.environ[ENV_DEVICE]), "env"
    else:
        compute, source = detect_device(), "auto"
    mode = _override["offload"] or os.environ.get(ENV_OFFLOAD, "").strip() or "normal"
    if mode not in OFFLOAD_MODES:
        raise DeviceError(f"{ENV_OFFLOAD}={mode!r}: expected one of {OFFLOAD_MODES}")
    if compute.type == "cpu":
        mode = "gpu-only"  # nothing to move: weights rest where they compute
    offload = compute if mode == "gpu-only" else torch.device("cpu")
    return DevicePolicy(compute, offload, mode, source)


def current_policy() -> DevicePolicy:
    """The device policy in force (asks ComfyUI each time inside ComfyUI; chosen once standalone)."""
    mm = comfy_model_management()
    if mm is not None:
        return _comfy_policy(mm)
    if "policy" not in _chosen:
        _chosen["policy"] = _standalone_policy()
    return _chosen["policy"]


def compute_device() -> torch.device:
    """The device nodes run models on."""
    return current_policy().compute


# --- precision ------------------------------------------------------------------------------------------


def supports_bf16(device: torch.device) -> bool:
    """True when ``device`` runs bf16 natively (CUDA compute capability >= 8.0; the CPU always can)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu"


def resolve_dtype(role: str, requested: str = "auto", device: Optional[torch.device] = None) -> torch.dtype:
    """The weight dtype of a model ``role`` (unet, text_encoder, vae) for a loader's ``dtype`` widget.

    fp32 / fp16 / bf16 are taken as given; ``auto`` is fp32 on the CPU, and on CUDA bf16 where supported
    else fp16 (UNet, text encoder) or fp32 (VAE); inside ComfyUI ``auto`` is ComfyUI's own choice.
    """
    if role not in ROLES:
        raise DeviceError(f"model role {role!r}: expected one of {ROLES}")
    if requested in DTYPE_NAMES:
        return DTYPE_NAMES[requested]
    if requested not in (None, "auto"):
        raise DeviceError(f"dtype {requested!r}: expected auto, fp32, fp16 or bf16")
    device = compute_device() if device is None else torch.device(device)
    mm = comfy_model_management()
    if mm is not None:
        if role == "unet":
            return mm.unet_dtype(device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
        if role == "text_encoder":
            return mm.text_encoder_dtype(device)
        return mm.vae_dtype(device, allowed_dtypes=[torch.bfloat16, torch.float32])
    if device.type == "cpu":
        return torch.float32
    reduced = torch.bfloat16 if supports_bf16(device) else torch.float16
    if role == "vae":
        return torch.bfloat16 if supports_bf16(device) else torch.float32
    return reduced


def apply_precision(model: Any, text_encoder: Any, vae: Any, requested: str = "auto") -> None:
    """Cast a loaded checkpoint's three models to their role's dtype (in place; a no-op for fp32 on the CPU)."""
    for role, module in (("unet", model.unet), ("text_encoder", text_encoder.model), ("vae", vae.model)):
        dtype = resolve_dtype(role, requested)
        if next(module.parameters()).dtype != dtype:
            module.to(dtype)


def prepare_for_load(nbytes: int, device: Optional[torch.device] = None) -> None:
    """Make room for ``nbytes`` on the compute device before a large load or run.

    Inside ComfyUI: ``free_memory`` (unloads ComfyUI's own idle models as needed) and ``soft_empty_cache``.
    Standalone on CUDA: release PyTorch's cached blocks when free memory is short. Elsewhere nothing.
    """
    device = compute_device() if device is None else torch.device(device)
    mm = comfy_model_management()
    if mm is not None:
        mm.free_memory(int(nbytes), device)
        mm.soft_empty_cache()
        return
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if free < nbytes:
            torch.cuda.empty_cache()


class Float32Denoiser:
    """Wraps a ``denoise(x, sigma) -> x0`` callable so the sampler side stays fp32.

    Latents and sigmas go in as fp32 (the wrapped denoiser casts to the model's dtype at the model call)
    and the x0 prediction comes back as fp32, so reduced-precision weights never round a sampler's state.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor]):
        self.denoiser = denoiser

    def __getattr__(self, name: str) -> Any:
        """Attributes of the wrapped denoiser (e.g. ``calls``)."""
        if name == "denoiser":  # not set yet (copy / unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.denoiser, name)

    def __call__(self, x: torch.Tensor, sigma: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """fp32 in, fp32 out."""
        sigma = sigma.float() if isinstance(sigma, torch.Tensor) else float(sigma)
        return self.denoiser(x.float(), sigma, *args, **kwargs).float()


def _nonfinite_watch(module: torch.nn.Module) -> tuple[Callable[[], bool], Any]:
    """A forward hook on ``module`` noting whether any output had NaN/inf: (check, handle)."""
    seen = {"bad": False}

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and not bool(torch.isfinite(output).all()):
            seen["bad"] = True

    return (lambda: seen["bad"]), module.register_forward_hook(hook)


def decode_with_fp32_retry(vae: Any, latents: torch.Tensor, **options: Any) -> torch.Tensor:
    """``vae.decode(latents, **options)``; when a reduced-precision decoder produced NaN/inf, decode again in fp32.

    The check is on the decoder's raw output (before the 0..1 clamp hides an overflow). The retry casts the
    VAE to fp32 for the one decode and back afterwards (the cast is exact both ways) and warns.
    """
    decoder = vae.model.decoder
    original = vae.dtype
    had_nonfinite, handle = _nonfinite_watch(decoder)
    try:
        images = vae.decode(latents, **options)
    finally:
        handle.remove()
    if not had_nonfinite() or original == torch.float32:
        return images
    warnings.warn(f"VAE decode in {original} produced NaN/inf; decoding again in fp32", RuntimeWarning, stacklevel=2)
    vae.model.to(torch.float32)
    try:
        return vae.decode(latents, **options)
    finally:
        vae.model.to(original)
