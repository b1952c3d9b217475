"""Load on use, offload after (pipelines/offload.py), with PyTorch's ``meta`` device standing in for a GPU.

What this proves: which device each model's weights are on at every node boundary for each mode, that a
model inside ``use()`` computes on the compute device (a forward on meta inputs gives meta outputs), that
``lowvram`` has at most one streamed block on the compute device at a time, and that weights come back
bit-identical after a round trip. What it does not prove: transfer speed or real VRAM use (no GPU here).
"""

from pathlib import Path

import pytest
import torch

from framefold.pipelines.device import DevicePolicy
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.motion import load_motion_module
from framefold.pipelines.offload import Placement, stream_units, weights_device

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "default_model" / "checkpoints" / "framefold-tiny.safetensors"
DEFAULT_MOTION = REPO / "default_model" / "animatediff_models" / "framefold-tiny-motion.safetensors"
CPU, GPU = torch.device("cpu"), torch.device("meta")


def _models():
    """The embedded default model: (DiffusionModel with motion module, TextEncoder, VAE)."""
    model, text_encoder, vae = load_checkpoint(DEFAULT_CHECKPOINT)
    motion = load_motion_module(DEFAULT_MOTION)
    return model.with_options(unet=model.unet.with_motion(motion)), text_encoder, vae


def _where(**models):
    """{name: device type of its weights}."""
    return {name: weights_device(m).type for name, m in models.items()}


def _unet_forward_on(model, device):
    """One UNet call on ``device`` inputs; returns the output's device type."""
    frames = 4
    x = torch.zeros(frames, 4, 8, 8, device=device)
    context = torch.zeros(1, 77, model.unet.config.context_dim, device=device)
    with torch.no_grad():
        return model(x, torch.full((frames,), 10.0, device=device), context, num_frames=frames).device.type


def test_normal_mode_weights_at_each_node_boundary():
    model, text_encoder, vae = _models()
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    placement = Placement(DevicePolicy(GPU, CPU, "normal", "test"))
    log = [("loaded", _where(unet=model, text=text_encoder, vae=vae))]
    with placement.use(text_encoder):  # FrameFold Text Encode
        log.append(("text encode runs", _where(unet=model, text=text_encoder, vae=vae)))
    log.append(("after text encode", _where(unet=model, text=text_encoder, vae=vae)))
    with placement.use(model):  # FrameFold Video Sampler
        log.append(("sampler runs", _where(unet=model, text=text_encoder, vae=vae)))
        assert _unet_forward_on(model, GPU) == "meta"
    log.append(("after sampler", _where(unet=model, text=text_encoder, vae=vae)))
    with placement.use(vae):  # FrameFold VAE Decode
        log.append(("decode runs", _where(unet=model, text=text_encoder, vae=vae)))
    log.append(("after decode", _where(unet=model, text=text_encoder, vae=vae)))
    expected = [
        ("loaded", dict(unet="cpu", text="cpu", vae="cpu")),
        ("text encode runs", dict(unet="cpu", text="meta", vae="cpu")),
        ("after text encode", dict(unet="cpu", text="cpu", vae="cpu")),
        ("sampler runs", dict(unet="meta", text="cpu", vae="cpu")),  # text encoder and VAE off the GPU
        ("after sampler", dict(unet="meta", text="cpu", vae="cpu")),  # the UNet stays for the next sampler
        ("decode runs", dict(unet="cpu", text="cpu", vae="meta")),  # evicted to make room for the decode
        ("after decode", dict(unet="cpu", text="cpu", vae="cpu")),
    ]
    assert log == expected
    after = model.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights changed by the round trip"


def test_gpu_only_mode_keeps_everything_resident():
    model, text_encoder, vae = _models()
    placement = Placement(DevicePolicy(GPU, GPU, "gpu-only", "test"))
    for m in (text_encoder, model, vae):
        with placement.use(m):
            pass
    assert _where(unet=model, text=text_encoder, vae=vae) == dict(unet="meta", text="meta", vae="meta")


def test_cpu_policy_leaves_models_alone():
    model, text_encoder, vae = _models()
    weight = next(model.unet.parameters())
    placement = Placement(DevicePolicy(CPU, CPU, "gpu-only", "test"))
    with placement.use(model):
        assert next(model.unet.parameters()) is weight and weight.device == CPU


def test_lowvram_streams_one_block_at_a_time():
    model, text_encoder, vae = _models()
    placement = Placement(DevicePolicy(GPU, CPU, "lowvram", "test"))
    units = stream_units(model.unet)
    unit_ids = {id(u) for u in units}
    unit_names = {n for n, m in model.unet.named_modules() if id(m) in unit_ids}
    on_gpu_per_unit = []

    def record(unit, _args):
        on_gpu = [u for u in units if any(p.device == GPU for p in u.parameters())]
        on_gpu_per_unit.append(on_gpu == [unit])

    with placement.use(model):
        handles = [u.register_forward_pre_hook(record) for u in units]  # run after the placement's own hooks
        in_unit = {
            name
            for name, _ in model.unet.named_parameters()
            if any(name.startswith(prefix + ".") for prefix in unit_names)
        }
        shared = [p for name, p in model.unet.named_parameters() if name not in in_unit]
        assert shared and all(p.device == GPU for p in shared)  # time embedding, output head
        assert all(p.device == CPU for u in units for p in u.parameters())
        assert _unet_forward_on(model, GPU) == "meta"
        for h in handles:
            h.remove()
    assert on_gpu_per_unit and all(on_gpu_per_unit), "more than the running block was on the compute device"
    assert len(on_gpu_per_unit) >= len(units) - 1  # every block ran (motion modules included)
    assert weights_device(model) == CPU


def test_unknown_objects_are_refused():
    placement = Placement(DevicePolicy(GPU, CPU, "normal", "test"))
    with pytest.raises(TypeError, match="cannot place str"):
        with placement.use("model"):
            pass
