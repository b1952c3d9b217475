"""Memory pre-flight (pipelines/memory.py): estimates checked against a meta-device trace, refusals with settings.

The oracle: the model's real forward run on PyTorch's ``meta`` device (shapes only, nothing allocated) under a
dispatch mode that adds each new tensor's bytes when an op creates it and subtracts them when the tensor is
freed; its maximum is the peak of live activations. SDPA is replaced by its output only, as the fused CPU / CUDA
kernels never build the score matrix. ``bench/memory_preflight.py`` compares the estimate with measured RSS.
"""

import json
import re
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from framefold.host.cli import main as framefold_main
from framefold.nodes.latent import FrameFoldEmptyVideoLatent
from framefold.nodes.sampling import FrameFoldContextOptions, FrameFoldVideoSampler
from framefold.nodes.vae_codec import FrameFoldVAEDecode
from framefold.pipelines import memory
from framefold.pipelines.models.bundle import Conditioning, DiffusionModel
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
from framefold.pipelines.models.unet import UNetConfig, UNetModel
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig

GIB = 2**30
META = torch.device("meta")
CPU = torch.device("cpu")
EXAMPLE = Path(__file__).resolve().parent.parent / "example_workflows" / "text_to_video.json"


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensors alive at once (views and in-place results share their input's storage)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, nbytes):
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        results = out if isinstance(out, tuple) else (out,)
        for schema, result in zip(func._schema.returns, results):
            if schema.alias_info is not None:
                continue
            for tensor in result if isinstance(result, (list, tuple)) else [result]:
                if isinstance(tensor, torch.Tensor):
                    nbytes = tensor.untyped_storage().nbytes()
                    self.live += nbytes
                    weakref.finalize(tensor, self._free, nbytes)
        self.peak = max(self.peak, self.live)
        return out


class _FusedSDPA(TorchFunctionMode):
    """SDPA as the fused kernels do it: only the output is allocated."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            q, _, v = args[:3]
            return q.new_empty(q.shape[:-1] + (v.shape[-1],))
        return func(*args, **(kwargs or {}))


def traced_peak(run, *inputs):
    """Peak activation bytes of ``run(*inputs)`` on meta tensors (inputs not counted)."""
    live = _LiveBytes()
    with torch.no_grad(), live, _FusedSDPA():
        run(*inputs)
    return live.peak


UNET_CASES = {
    "two levels, mid attention": (UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                             attention_levels=(1,), num_heads=2, context_dim=64, norm_groups=16), None),
    "three levels, linear proj, head channels": (
        UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_levels=(0, 1),
                   num_heads=-1, num_head_channels=16, context_dim=32, use_linear_projection=True, norm_groups=8),
        None,
    ),
    "with a v2 motion module": (
        UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(0, 1), num_heads=2,
                   context_dim=64, norm_groups=16),
        MotionModuleConfig.for_version("v2", block_channels=(32, 64), layers_per_block=1, num_heads=2,
                                       norm_groups=16),
    ),
    "temporal convs": (
        UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2,
                   context_dim=64, norm_groups=16, temporal_conv=True),
        None,
    ),
}  # fmt: skip


def _meta_unet(config, motion_config):
    """A UNet (with motion module) built on the meta device: no weights allocated."""
    with torch.device("meta"):
        unet = UNetModel(config)
        return unet.with_motion(MotionModule(motion_config)) if motion_config else unet


@pytest.mark.parametrize("name", list(UNET_CASES))
@pytest.mark.parametrize("frames, height, width", [(4, 16, 16), (8, 12, 20)])
def test_unet_estimate_matches_the_traced_forward(name, frames, height, width):
    config, motion_config = UNET_CASES[name]
    unet = _meta_unet(config, motion_config)
    batch = 2 * frames  # CFG
    x = torch.empty(batch, 4, height, width, device=META)
    context = torch.empty(1, 77, config.context_dim, device=META)
    t = torch.empty(batch, device=META)
    traced = traced_peak(lambda: unet(x, t, context, num_frames=frames))
    estimate = memory.unet_activation_bytes(unet, batch, height, width, torch.float32, CPU)
    assert estimate == pytest.approx(traced, rel=0.05)


@pytest.mark.parametrize(
    "config, temporal",
    [
        (AutoencoderKLConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8), False),
        (AutoencoderKLConfig(ch=16, ch_mult=(1, 2, 4, 4), num_res_blocks=2, norm_groups=8), False),
        (AutoencoderKLConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8, temporal_decoder=True), True),
    ],
)
def test_decoder_estimate_matches_the_traced_decode(config, temporal):
    with torch.device("meta"):
        model = AutoencoderKL(config)
    z = torch.empty(6, 4, 12, 16, device=META)
    traced = traced_peak(lambda: model.decode(z, num_frames=6 if temporal else None))
    estimate = memory.decoder_activation_bytes(model, 6, 12, 16, torch.float32, CPU, temporal)
    assert estimate == pytest.approx(traced, rel=0.05)


def test_bf16_halves_the_activations():
    unet = _meta_unet(*UNET_CASES["two levels, mid attention"])
    full = memory.unet_activation_bytes(unet, 8, 16, 16, torch.float32, CPU)
    assert memory.unet_activation_bytes(unet, 8, 16, 16, torch.bfloat16, CPU) * 2 == full


def test_available_ram_comes_from_meminfo():
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert 0 < memory.available_cpu_bytes() <= total


# --- refusals at the nodes: an SD1.5-size UNet and VAE built on meta (no weights exist) ---------------------------


@pytest.fixture
def sd15():
    """SD1.5 UNet + AnimateDiff v2 motion module and the SD VAE, on meta; RAM pinned to a 24 GiB machine."""
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.sd15())
        motion = MotionModule(MotionModuleConfig.for_version("v2"))
        vae = VAE(AutoencoderKL(AutoencoderKLConfig()))
    return DiffusionModel(unet.with_motion(motion)), DiffusionModel(unet), vae


@pytest.fixture
def no_compute(monkeypatch):
    """Fail loudly if anything past the pre-flight runs: no noise drawn, no sampler, no decode."""

    def refuse(*args, **kwargs):
        raise AssertionError("the run went past the pre-flight")

    from framefold.pipelines.noise import NoisePrior
    from framefold.pipelines.sampling import samplers

    monkeypatch.setattr(NoisePrior, "sample", refuse)
    monkeypatch.setattr(samplers, "sample", refuse)
    monkeypatch.setattr(VAE, "decode", refuse)
    monkeypatch.setattr(memory, "available_cpu_bytes", lambda: 24 * GIB)


def _conditioning():
    return Conditioning(torch.zeros(1, 77, 768))


def _sample(model, latent, context=None):
    cond = _conditioning()
    return FrameFoldVideoSampler().sample(
        model, cond, cond, latent, 0, 20, 7.5, "ddim", "leading", 1.0, noise=None, context=context
    )


def test_1024x1024x256_without_context_is_refused_with_a_context_length(sd15, no_compute):
    _, plain, vae = sd15
    (latent,) = FrameFoldEmptyVideoLatent().generate(vae, 1024, 1024, 256)
    with pytest.raises(memory.MemoryPreflightError) as info:
        _sample(plain, latent)
    message = str(info.value)
    assert message.startswith("FrameFoldVideoSampler: not enough memory for a 256x128x128 latent")
    assert "context_length=" in message and "available RAM" in message


def test_8192x8192x16_is_refused_with_a_size_that_fits(sd15, no_compute):
    animated, _, vae = sd15
    (latent,) = FrameFoldEmptyVideoLatent().generate(vae, 8192, 8192, 16)
    with pytest.raises(memory.MemoryPreflightError) as info:
        _sample(animated, latent)
    message = str(info.value)
    assert "FrameFoldVideoSampler" in message and "reduce the latent to at most" in message


def test_the_suggested_context_length_fits(sd15, no_compute):
    _, plain, vae = sd15
    (latent,) = FrameFoldEmptyVideoLatent().generate(vae, 512, 512, 128)
    with pytest.raises(memory.MemoryPreflightError, match=r"context_length=(\d+)") as info:
        _sample(plain, latent)
    length = int(re.search(r"context_length=(\d+)", str(info.value)).group(1))
    (context,) = FrameFoldContextOptions().build(length, length // 4)
    with pytest.raises(AssertionError, match="went past the pre-flight"):  # accepted: the sampler would start
        _sample(plain, latent, context)


def test_decode_refusal_suggests_a_chunk_or_tile_and_saves_the_latents(sd15, no_compute, tmp_path, monkeypatch):
    from framefold.nodes import _folders

    monkeypatch.setattr(_folders, "io_dir", lambda kind: tmp_path)
    monkeypatch.setattr("framefold.nodes.vae_codec.io_dir", lambda kind: tmp_path)
    monkeypatch.setattr("framefold.nodes._latent_files.io_dir", lambda kind: tmp_path)
    _, _, vae = sd15
    latent = {"samples": torch.zeros(16, 4, 1024, 1024, device=META)}
    with pytest.raises(memory.MemoryPreflightError) as info:
        memory.check_decode_memory(vae, (16, 4, 1024, 1024), 16, 0, CPU, available=24 * GIB)
    assert str(info.value).startswith("FrameFoldVAEDecode: not enough memory to decode 16 frames of 8192x8192")
    assert "tile_size=" in str(info.value) or "frame_chunk=" in str(info.value)
    assert latent["samples"].shape[0] == 16


def test_decode_of_a_normal_video_passes(sd15, no_compute):
    _, _, vae = sd15
    need = memory.check_decode_memory(vae, (16, 4, 64, 64), 16, 0, CPU, available=24 * GIB)
    assert 0 < need < 24 * GIB


def test_gpu_budget_is_free_vram_and_weights_count_when_offloaded(sd15, monkeypatch):
    animated, _, _ = sd15
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * GIB, 24 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    assert memory.available_bytes(cuda) == 6 * GIB
    with_weights = memory.estimate_sampler_bytes(animated.with_options(), (16, 4, 64, 64), 7.5, None, cuda)
    resident = memory.estimate_sampler_bytes(animated, (16, 4, 64, 64), 7.5, None, cuda, weight_bytes=0)
    tensors = list(animated.unet.parameters()) + list(animated.unet.buffers())  # buffers: positional tables
    assert with_weights - resident == sum(t.numel() * 4 for t in tensors)
    with pytest.raises(memory.MemoryPreflightError, match="free memory on cuda:0"):
        memory.check_sampler_memory(animated, (16, 4, 128, 128), 7.5, None, cuda)


def test_framefold_run_refuses_8192x8192x16_before_sampling(tmp_path, capsys, monkeypatch):
    """End to end: the text_to_video example with the Empty Video Latent set to 8192x8192x16."""
    from framefold.pipelines.sampling import samplers

    def refuse(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(samplers, "sample", refuse)
    argv = ["run", str(EXAMPLE), "--output-dir", str(tmp_path), "--quiet", "--set", "6.width=8192"]
    code = framefold_main(argv + ["--set", "6.height=8192"])
    err = capsys.readouterr().err
    assert code == 1
    assert "node 7 (FrameFoldVideoSampler) failed: FrameFoldVideoSampler: not enough memory" in err
    assert "reduce the latent to at most" in err and "sampling started" not in err
    assert not list(tmp_path.glob("**/*.mp4"))


def test_framefold_run_refuses_1024x1024x256_without_context(tmp_path, capsys):
    """The example's motion module handles 16 frames: 256 frames without context windows are refused with the
    window length to use (before the memory pre-flight, which refuses it for SD1.5-size models above)."""
    sets = ["6.width=1024", "6.height=1024", "6.frames=256"]
    argv = ["run", str(EXAMPLE), "--output-dir", str(tmp_path), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    code = framefold_main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert "FrameFoldVideoSampler" in err and "context windows of at most 16 frames" in err
    assert json.loads(EXAMPLE.read_text())["nodes"]  # the example itself is untouched
