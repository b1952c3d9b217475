"""Device and precision policy (pipelines/device.py) with device availability faked.

CUDA / MPS presence is monkeypatched on ``torch.cuda`` / ``torch.backends.mps``; ComfyUI is a fake
``comfy.model_management`` module put in ``sys.modules``, written after ComfyUI's real API (``VRAMState``,
``vram_state``, ``get_torch_device``, ``unet_offload_device``, ``unet_dtype``, ``text_encoder_dtype``,
``vae_dtype``, ``get_free_memory``, ``free_memory``, ``soft_empty_cache``). These tests prove the policy's
decisions and that it defers to ComfyUI; they do not run anything on a GPU.
"""

import enum
import json
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch

from framefold.pipelines import device as dp
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig


@pytest.fixture(autouse=True)
def _fresh_policy(monkeypatch):
    """Each test starts without overrides, env variables or ComfyUI."""
    monkeypatch.delenv(dp.ENV_DEVICE, raising=False)
    monkeypatch.delenv(dp.ENV_OFFLOAD, raising=False)
    monkeypatch.delitem(sys.modules, "comfy.model_management", raising=False)
    dp.set_device_override(None)
    dp.set_offload_mode(None)
    yield
    dp.set_device_override(None)
    dp.set_offload_mode(None)


def fake_cuda(monkeypatch, count=2, bf16=True):
    """Pretend ``count`` CUDA devices exist (current device 0)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


def no_cuda(monkeypatch):
    """Pretend there is no CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def fake_mps(monkeypatch, available):
    """Pretend Apple's MPS backend is (not) there."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)


class VRAMState(enum.Enum):
    """ComfyUI's comfy.model_management.VRAMState."""

    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


def fake_comfy(monkeypatch, device="cuda:0", vram_state=VRAMState.NORMAL_VRAM, free=8 * 2**30):
    """A comfy.model_management stand-in that records the calls FrameFold makes."""
    mm = types.ModuleType("comfy.model_management")
    mm.VRAMState = VRAMState
    mm.vram_state = vram_state
    mm.calls = []
    mm.get_torch_device = lambda: torch.device(device)
    mm.unet_offload_device = lambda: torch.device(device) if vram_state == VRAMState.HIGH_VRAM else torch.device("cpu")
    mm.unet_dtype = lambda device=None, model_params=0, supported_dtypes=(), weight_dtype=None: torch.float16
    mm.text_encoder_dtype = lambda device=None: torch.float16
    mm.vae_dtype = lambda device=None, allowed_dtypes=(): torch.bfloat16
    mm.get_free_memory = lambda dev=None, torch_free_too=False: free
    mm.free_memory = lambda memory_required, device, keep_loaded=(): mm.calls.append(("free_memory", memory_required))
    mm.soft_empty_cache = lambda force=False: mm.calls.append(("soft_empty_cache",))
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    return mm


def test_cpu_only_machine_computes_on_cpu_in_fp32(monkeypatch):
    no_cuda(monkeypatch)
    fake_mps(monkeypatch, False)
    policy = dp.current_policy()
    assert policy.compute == torch.device("cpu") and policy.source == "auto"
    assert policy.offload == torch.device("cpu") and policy.mode == "gpu-only"
    for role in dp.ROLES:
        assert dp.resolve_dtype(role) == torch.float32
    assert dp.resolve_dtype("unet", "bf16") == torch.bfloat16  # selectable on the CPU


def test_cuda_is_preferred_and_auto_is_reduced_precision(monkeypatch):
    fake_cuda(monkeypatch, bf16=True)
    fake_mps(monkeypatch, True)
    policy = dp.current_policy()
    assert policy.compute == torch.device("cuda", 0)
    assert policy.offload == torch.device("cpu") and policy.mode == "normal"
    assert dp.resolve_dtype("unet") == torch.bfloat16
    assert dp.resolve_dtype("text_encoder") == torch.bfloat16
    assert dp.resolve_dtype("vae") == torch.bfloat16


def test_cuda_without_bf16_uses_fp16_and_an_fp32_vae(monkeypatch):
    fake_cuda(monkeypatch, bf16=False)
    dp.set_device_override(None)
    assert dp.resolve_dtype("unet") == torch.float16
    assert dp.resolve_dtype("text_encoder") == torch.float16
    assert dp.resolve_dtype("vae") == torch.float32
    assert dp.resolve_dtype("vae", "fp16") == torch.float16  # an explicit widget choice wins


def test_mps_when_there_is_no_cuda(monkeypatch):
    no_cuda(monkeypatch)
    fake_mps(monkeypatch, True)
    assert dp.compute_device() == torch.device("mps")
    assert dp.resolve_dtype("unet") == torch.float16
    assert dp.resolve_dtype("vae") == torch.float32


def test_the_device_is_chosen_once(monkeypatch):
    no_cuda(monkeypatch)
    fake_mps(monkeypatch, False)
    assert dp.compute_device() == torch.device("cpu")
    fake_cuda(monkeypatch)  # appears later: the choice stands until an override resets it
    assert dp.compute_device() == torch.device("cpu")
    dp.set_device_override("cuda:1")
    assert dp.compute_device() == torch.device("cuda", 1)


def test_env_variable_and_override(monkeypatch):
    fake_cuda(monkeypatch, count=2)
    monkeypatch.setenv(dp.ENV_DEVICE, "cpu")
    dp.set_device_override(None)
    policy = dp.current_policy()
    assert policy.compute == torch.device("cpu") and policy.source == "env"
    dp.set_device_override("cuda:1")  # --device beats the environment
    policy = dp.current_policy()
    assert policy.compute == torch.device("cuda", 1) and policy.source == "override"


def test_offload_mode_from_env_and_setter(monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setenv(dp.ENV_OFFLOAD, "lowvram")
    dp.set_offload_mode(None)
    assert dp.current_policy().mode == "lowvram"
    dp.set_offload_mode("gpu-only")
    policy = dp.current_policy()
    assert policy.mode == "gpu-only" and policy.offload == policy.compute
    with pytest.raises(dp.DeviceError, match="offload mode 'fast'"):
        dp.set_offload_mode("fast")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cuda", "CUDA is not available"),
        ("cuda:3", "CUDA is not available"),
        ("tpu", "expected cpu, cuda"),
        ("gpu!", "expected cpu, cuda"),
    ],
)
def test_bad_device_requests_are_clear_errors(monkeypatch, spec, message):
    no_cuda(monkeypatch)
    with pytest.raises(dp.DeviceError, match=message):
        dp.set_device_override(spec)


def test_cuda_index_out_of_range(monkeypatch):
    fake_cuda(monkeypatch, count=2)
    with pytest.raises(dp.DeviceError, match=r"2 CUDA device\(s\)"):
        dp.parse_device("cuda:2")
    monkeypatch.setenv(dp.ENV_DEVICE, "cuda:5")
    with pytest.raises(dp.DeviceError, match="cuda:5"):
        dp.current_policy()


def test_bad_dtype_and_role():
    with pytest.raises(dp.DeviceError, match="dtype 'fp8'"):
        dp.resolve_dtype("unet", "fp8")
    with pytest.raises(dp.DeviceError, match="model role 'clip'"):
        dp.resolve_dtype("clip")


@pytest.mark.parametrize(
    "state, mode",
    [
        (VRAMState.NORMAL_VRAM, "normal"),
        (VRAMState.SHARED, "normal"),
        (VRAMState.HIGH_VRAM, "gpu-only"),  # --gpu-only / --highvram
        (VRAMState.LOW_VRAM, "lowvram"),  # --lowvram
        (VRAMState.NO_VRAM, "lowvram"),  # --novram
    ],
)
def test_inside_comfyui_the_vram_flags_decide_the_mode(monkeypatch, state, mode):
    no_cuda(monkeypatch)  # ComfyUI's answer counts, not FrameFold's own detection
    fake_comfy(monkeypatch, vram_state=state)
    policy = dp.current_policy()
    assert policy.source == "comfyui" and policy.mode == mode
    assert policy.compute == torch.device("cuda", 0)
    assert policy.offload == (policy.compute if mode == "gpu-only" else torch.device("cpu"))


def test_inside_comfyui_cpu_flag_and_dtypes(monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setenv(dp.ENV_DEVICE, "cuda:1")  # ignored inside ComfyUI: its --cpu / device flags rule
    mm = fake_comfy(monkeypatch, device="cpu", vram_state=VRAMState.DISABLED)
    policy = dp.current_policy()
    assert policy.compute == torch.device("cpu") and policy.mode == "gpu-only"
    # auto defers to ComfyUI's own dtype choices; explicit widgets still win
    assert dp.resolve_dtype("unet") == mm.unet_dtype()
    assert dp.resolve_dtype("text_encoder") == torch.float16
    assert dp.resolve_dtype("vae") == torch.bfloat16
    assert dp.resolve_dtype("unet", "fp32") == torch.float32


def test_inside_comfyui_large_loads_ask_comfyui_for_room(monkeypatch):
    mm = fake_comfy(monkeypatch)
    dp.prepare_for_load(3 * 2**30)
    assert mm.calls == [("free_memory", 3 * 2**30), ("soft_empty_cache",)]
    from framefold.pipelines import memory

    assert memory.available_bytes(torch.device("cuda", 0)) == 8 * 2**30


def test_apply_precision_casts_each_role(monkeypatch):
    fake_cuda(monkeypatch, bf16=False)

    class Holder:
        def __init__(self, module):
            self.unet = self.model = module

    unet, text, vae_module = (torch.nn.Linear(2, 2) for _ in range(3))
    dp.apply_precision(Holder(unet), Holder(text), Holder(vae_module))
    assert (unet.weight.dtype, text.weight.dtype, vae_module.weight.dtype) == (
        torch.float16,
        torch.float16,
        torch.float32,
    )


def test_float32_denoiser_keeps_the_sampler_in_fp32():
    seen = {}

    def bf16_denoiser(x, sigma):
        seen["x"], seen["sigma"] = x.dtype, sigma
        return x.to(torch.bfloat16) * 0.5

    wrapped = dp.Float32Denoiser(bf16_denoiser)
    out = wrapped(torch.ones(2, 4, 3, 3, dtype=torch.float32), torch.tensor(2.0))
    assert seen["x"] == torch.float32 and seen["sigma"].dtype == torch.float32
    assert out.dtype == torch.float32


def _tiny_vae(dtype):
    """A tiny VAE whose decoder overflows fp16 (a huge conv_in) but not fp32."""
    torch.manual_seed(0)
    model = AutoencoderKL(AutoencoderKLConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4)).eval()
    with torch.no_grad():
        model.decoder.conv_in.weight.mul_(3e4)  # injected overflow: activations ~1e5 > fp16's 65504
    return VAE(model.to(dtype))


def test_vae_decode_retries_in_fp32_after_an_overflow():
    latents = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    reduced = _tiny_vae(torch.float16)
    had_nonfinite, handle = dp._nonfinite_watch(reduced.model.decoder)
    reduced.decode(latents)
    handle.remove()
    assert had_nonfinite(), "the injected overflow should make the fp16 decoder produce inf/NaN"
    with pytest.warns(RuntimeWarning, match="decoding again in fp32"):
        images = dp.decode_with_fp32_retry(reduced, latents)
    assert reduced.dtype == torch.float16  # the VAE is back in its own precision
    reference = _tiny_vae(torch.float32).decode(latents)
    assert torch.isfinite(images).all()
    torch.testing.assert_close(images, reference, atol=2e-3, rtol=0)


def test_vae_decode_without_overflow_does_not_retry():
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    vae = VAE(AutoencoderKL(AutoencoderKLConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4)).eval())
    vae.model.to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = dp.decode_with_fp32_retry(vae, latents)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()


def test_text_to_video_runs_in_bf16_on_the_cpu_and_the_evaluator_reads_the_caption(tmp_path, monkeypatch):
    """The example with the loader's dtype set to bf16 (8 of its 20 steps: bf16 is slow on CPUs without
    AVX-512 BF16, see bench/cpu_bf16.py); the frames still show the caption."""
    from framefold.host.cli import main as framefold_main
    from framefold.pipelines.metrics.evaluator import evaluate
    from framefold.pipelines.video import io as video_io

    example = Path(__file__).resolve().parent.parent / "example_workflows" / "text_to_video.json"
    caption = next(n["widgets_values"][0] for n in json.loads(example.read_text())["nodes"] if n["id"] == 4)
    frames, seen_dtypes = [], set()
    originals = {name: getattr(video_io, name) for name in ("write_video", "write_video_numbered")}

    def recorder(name):
        def record(images, *args, **kwargs):
            frames.append(images.clone())
            return originals[name](images, *args, **kwargs)

        return record

    for module in [m for m in list(sys.modules.values()) if (getattr(m, "__name__", "") or "").startswith("framefold")]:
        for name, original in originals.items():
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, recorder(name))
    from framefold.pipelines.models import bundle

    call = bundle.DiffusionModel.__call__

    def recording_call(self, x, *args, **kwargs):
        seen_dtypes.add((x.dtype, self.dtype))
        return call(self, x, *args, **kwargs)

    monkeypatch.setattr(bundle.DiffusionModel, "__call__", recording_call)
    argv = ["run", str(example), "--output-dir", str(tmp_path), "--quiet", "--set", "1.dtype=bf16"]
    assert framefold_main(argv + ["--set", "7.steps=8"]) == 0
    assert seen_dtypes == {(torch.bfloat16, torch.bfloat16)}  # the UNet really ran in bf16
    assert len(frames) == 1 and frames[0].dtype == torch.float32 and torch.isfinite(frames[0]).all()
    result = evaluate(frames[0], caption)
    checks = {k: v for k, v in result.items() if k.endswith("_ok")}  # colour, shape, motion, background, stability
    assert all(checks.values()), checks


def test_cli_device_flag(monkeypatch, capsys, tmp_path):
    from framefold.host.cli import main as framefold_main

    no_cuda(monkeypatch)
    missing = str(tmp_path / "none.json")
    assert framefold_main(["run", missing, "--device", "cuda:0"]) == 2
    assert "--device: device 'cuda:0': CUDA is not available" in capsys.readouterr().err
    framefold_main(["run", missing, "--device", "cpu"])
    assert dp.current_policy().source == "override" and dp.compute_device() == torch.device("cpu")
