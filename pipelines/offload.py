"""Load on use, offload after: models rest on the offload device and run on the compute device.

``with placement.use(model): ...`` puts a model's weights on the compute device for the block (a node's run)
and applies the policy's mode (pipelines/device.py) around it:

- ``gpu-only``: models move in on first use and stay resident.
- ``normal``: one model on the compute device at a time; a model moving in evicts the others. The text
  encoder and the VAE go back to the offload device when their node finishes, so they are off the GPU while
  the UNet samples; the UNet stays resident until another model needs the room.
- ``lowvram``: the UNet's blocks are streamed: only the small shared layers move in, and each block (ResBlock,
  transformer, motion module, ...) moves in just before it runs and back right after.

Weights keep their offload-device tensors while they are on the compute device, so moving back costs no copy
and gives back exactly the loaded weights. Noise is drawn on the CPU generator by the samplers' callers, so a
seed gives the same video on every device.
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch import nn

from . import device as device_policy


def model_role(model: Any) -> str:
    """``unet``, ``text_encoder`` or ``vae`` for a FF_MODEL / FF_TEXT_ENCODER / FF_VAE object or a module."""
    from .models.bundle import DiffusionModel
    from .models.clip import TextEncoder
    from .models.vae import VAE

    if isinstance(model, DiffusionModel):
        return "unet"
    if isinstance(model, TextEncoder):
        return "text_encoder"
    if isinstance(model, VAE):
        return "vae"
    if isinstance(model, nn.Module):
        return "unet"
    raise TypeError(f"cannot place {type(model).__name__}: expected a FrameFold model, text encoder, VAE or module")


def model_module(model: Any) -> nn.Module:
    """The ``nn.Module`` holding a FrameFold model object's weights."""
    if isinstance(model, nn.Module):
        return model
    for name in ("unet", "model"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return module
    raise TypeError(f"cannot place {type(model).__name__}: it holds no torch module")


def weights_device(model: Any) -> torch.device:
    """Device of a model's first parameter (where its weights live now)."""
    return next(model_module(model).parameters()).device


def stream_units(module: nn.Module) -> List[nn.Module]:
    """The blocks ``lowvram`` streams one at a time: every layer of a UNet's input / middle / output blocks,
    its motion modules and Temp-Convs (each is called as a module, so its hooks fire)."""
    core: Any = getattr(module, "unet", module)
    units: List[nn.Module] = []
    for blocks in (
        getattr(core, "input_blocks", []),
        [getattr(core, "middle_block", [])],
        getattr(core, "output_blocks", []),
    ):
        for block in blocks:
            units.extend(block)
    if getattr(core, "temporal_convs", None) is not None:
        units.extend(core.temporal_convs.values())
    motion = getattr(module, "motion", None)
    if motion is not None:
        units.extend(m for m in motion.modules() if type(m).__name__ == "VanillaTemporalModule")
    return units


class Placement:
    """Moves models between the offload and the compute device around their use (see the module doc)."""

    def __init__(self, policy: Optional[device_policy.DevicePolicy] = None):
        self._policy = policy
        self._resident: Dict[int, nn.Module] = {}  # modules now on the compute device, by id
        self._masters: Dict[int, Dict[str, torch.Tensor]] = {}  # offload-device tensors of those modules

    @property
    def policy(self) -> device_policy.DevicePolicy:
        """The policy in force (the one given, else the current global policy)."""
        return self._policy if self._policy is not None else device_policy.current_policy()

    @contextlib.contextmanager
    def use(self, model: Any) -> Iterator[Any]:
        """Run a block with ``model`` on the compute device; yields ``model`` itself."""
        policy = self.policy
        role = model_role(model)
        module = model_module(model)
        if policy.compute == policy.offload:
            self._move_in(module, policy.compute)
            yield model
            return
        if policy.mode != "gpu-only":
            for other in [m for key, m in self._resident.items() if key != id(module)]:
                self.offload(other)
        if policy.mode == "lowvram" and role == "unet":
            with self._streamed(module, policy):
                yield model
            return
        device_policy.prepare_for_load(_tensor_bytes(module), policy.compute)
        self._move_in(module, policy.compute)
        try:
            yield model
        finally:
            if policy.mode == "normal" and role != "unet":
                self.offload(module)

    def offload(self, model: Any) -> None:
        """Move a model back to the offload device (its original offload-device tensors, no copy)."""
        module = model_module(model)
        masters = self._masters.pop(id(module), {})
        self._resident.pop(id(module), None)
        target = self.policy.offload
        for slot in _tensor_slots(module):
            tensor = slot.get()
            master = masters.get(slot.name)
            if master is not None and master.shape == tensor.shape and master.dtype == tensor.dtype:
                slot.set(master)
            elif tensor.device != target:
                slot.set(tensor.data.to(target))

    def offload_all(self) -> None:
        """Move every resident model back to the offload device."""
        for module in list(self._resident.values()):
            self.offload(module)

    def _move_in(self, module: nn.Module, target: torch.device, only: Optional[set] = None) -> None:
        """Put ``module``'s weights (or the ones named in ``only``) on ``target``, remembering the originals."""
        masters = self._masters.setdefault(id(module), {})
        for slot in _tensor_slots(module):
            tensor = slot.get()
            if (only is None or slot.name in only) and tensor.device != target:
                masters.setdefault(slot.name, tensor.data)
                slot.set(tensor.data.to(target, non_blocking=True))
        self._resident[id(module)] = module

    @contextlib.contextmanager
    def _streamed(self, module: nn.Module, policy: device_policy.DevicePolicy) -> Iterator[None]:
        """lowvram: shared layers on the compute device, each streamed unit only while it runs."""
        units = stream_units(module)
        unit_names = {id(unit) for unit in units}
        streamed = {
            f"{prefix}.{slot.name}" if prefix else slot.name
            for prefix, sub in module.named_modules(remove_duplicate=False)
            if id(sub) in unit_names
            for slot in _tensor_slots(sub)
        }
        shared = {slot.name for slot in _tensor_slots(module)} - streamed
        self._move_in(module, policy.compute, shared)
        handles = []
        for unit in units:
            handles.append(unit.register_forward_pre_hook(lambda m, _args: self._move_in(m, policy.compute)))
            handles.append(unit.register_forward_hook(lambda m, _args, _out: self.offload(m)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self.offload(module)


@dataclass
class _Slot:
    """One parameter or buffer entry of a module: its owner, local name and qualified name."""

    owner: nn.Module
    local: str
    name: str
    is_parameter: bool

    def get(self) -> torch.Tensor:
        """The tensor in the slot."""
        tensor = (self.owner._parameters if self.is_parameter else self.owner._buffers)[self.local]
        assert tensor is not None  # _tensor_slots lists filled entries only
        return tensor

    def set(self, data: torch.Tensor) -> None:
        """Point the slot at ``data``: in place where the tensor types allow (CPU <-> CUDA keeps the Parameter
        object, as ``nn.Module.to`` does), else with a new Parameter (e.g. to and from ``meta``)."""
        current = self.get()
        if torch._has_compatible_shallow_copy_type(current, data):
            current.data = data
        elif self.is_parameter:
            self.owner._parameters[self.local] = nn.Parameter(data, requires_grad=current.requires_grad)
        else:
            self.owner._buffers[self.local] = data


def _tensor_slots(module: nn.Module) -> List[_Slot]:
    """Every parameter and buffer entry of ``module`` and its submodules (shared ones once per owner)."""
    slots = []
    for prefix, owner in module.named_modules(remove_duplicate=False):
        for table, is_parameter in ((owner._parameters, True), (owner._buffers, False)):
            for local, tensor in table.items():
                if tensor is not None:
                    slots.append(_Slot(owner, local, f"{prefix}.{local}" if prefix else local, is_parameter))
    return slots


def _tensor_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


_default: Dict[str, Placement] = {}


def default_placement() -> Placement:
    """The placement nodes share (follows the current device policy)."""
    if "placement" not in _default:
        _default["placement"] = Placement()
    return _default["placement"]
