"""GPU end to end: SD1.5 UNet + AnimateDiff v2 in FrameFold vs diffusers' UNetMotionModel on the same weights.

Weights are random with the real shapes: every key of ``../shared/fixtures/manifests/sd15_checkpoint.json``
(``model.diffusion_model.*``) and ``animatediff_mm_sd_v15_v2.json`` gets a tensor of its listed shape
(fan-in scaled normal, norms at 1, biases 0, sinusoidal positional tables). FrameFold builds its UNet and motion
module from them; diffusers gets the same tensors renamed (pipelines/loading/unet_keys.py, motion_keys.py) in a
``UNet2DConditionModel`` + ``MotionAdapter`` -> ``UNetMotionModel``. Both run the same sampler loop (FrameFold's
DDIM with classifier-free guidance: cond + uncond batched) at 512x512x16, 20 steps, fp16, in one process. Printed
per model: seconds per step, peak VRAM (``torch.cuda.max_memory_allocated``, weights included) and, for FrameFold,
the memory pre-flight's estimate; then the largest difference between the two final latents.

``--attention`` first runs bench/attention.py on this GPU (it writes the auto table FrameFold's ``auto``
attention then reads). Targets from the issue: FrameFold step time <= diffusers', peak VRAM <= 5.6 GB.

Without CUDA it prints why and exits with status 1; ``--smoke`` runs the same code paths on the CPU with a tiny
SD-layout config (fp32, 64x64x4, 2 steps) to check the weight mapping and the loop, not speed.

Run: ``python bench/gpu_end_to_end.py [--size 512] [--frames 16] [--steps 20] [--cfg 7.5] [--attention]``
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from einops import rearrange

from framefold.pipelines import memory
from framefold.pipelines.loading.motion import build_motion_module
from framefold.pipelines.loading.motion_keys import original_to_diffusers
from framefold.pipelines.loading.unet_keys import LDM_PREFIX, diffusers_key_map
from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig, sinusoidal_position_table
from framefold.pipelines.models.unet import UNetConfig, UNetModel
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.guidance import GuidedDenoiser

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT.parent / "shared" / "fixtures" / "manifests"
GB = 1e9


def random_tensor(key: str, shape: list, generator: torch.Generator) -> torch.Tensor:
    """A weight of ``shape`` that keeps activations in range: fan-in scaled normal, norms 1, biases 0."""
    if key.endswith("pos_encoder.pe"):
        return sinusoidal_position_table(shape[1], shape[2])
    if key.endswith(".bias") or not shape:
        return torch.zeros(shape)
    if len(shape) == 1:  # GroupNorm / LayerNorm scales
        return torch.ones(shape)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=generator) / math.sqrt(fan_in)


def manifest_weights(seed: int = 0) -> tuple:
    """(UNet state dict in LDM names, motion module state dict in released names) from the manifests."""
    unet_keys = json.loads((MANIFESTS / "sd15_checkpoint.json").read_text())["keys"]
    motion_keys = json.loads((MANIFESTS / "animatediff_mm_sd_v15_v2.json").read_text())["keys"]
    g = torch.Generator().manual_seed(seed)
    unet = {k[len(LDM_PREFIX) :]: random_tensor(k, s, g) for k, s in unet_keys.items() if k.startswith(LDM_PREFIX)}
    motion = {k: random_tensor(k, s, g) for k, s in motion_keys.items()}
    return unet, motion, UNetConfig.sd15(), dict(num_heads=8)


def smoke_weights(seed: int = 0) -> tuple:
    """The same, for a tiny SD-layout config (CPU smoke run)."""
    config = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(0, 1), num_heads=2)
    mm_config = MotionModuleConfig.for_version("v2", block_channels=(32, 64), layers_per_block=1, num_heads=2)
    with torch.device("meta"):
        unet_shapes = {k: list(v.shape) for k, v in UNetModel(config).state_dict().items()}
        motion_shapes = {k: list(v.shape) for k, v in MotionModule(mm_config).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    unet = {k: random_tensor(k, s, g) for k, s in unet_shapes.items()}
    motion = {k: random_tensor(k, s, g) for k, s in motion_shapes.items()}
    return unet, motion, config, dict(num_heads=2)


class DiffusersContract(torch.nn.Module):
    """diffusers' UNetMotionModel behind FrameFold's UNet contract (frames folded into the batch)."""

    def __init__(self, motion_unet: torch.nn.Module):
        super().__init__()
        self.model = motion_unet

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, *, num_frames: int, **_):
        """``x [(b f), C, h, w]`` -> the model output in the same layout."""
        sample = rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)
        if context.shape[0] != x.shape[0]:  # UNetMotionModel takes one text row per frame (as AnimateDiffPipeline)
            context = context.repeat_interleave(x.shape[0] // context.shape[0], dim=0)
        out = self.model(sample, timesteps[::num_frames], encoder_hidden_states=context).sample
        return rearrange(out, "b c f h w -> (b f) c h w")


def build_framefold(unet_sd: dict, motion_sd: dict, config: UNetConfig, motion_kwargs: dict, dtype, device):
    """FrameFold's UNet + motion module (diffusers' joint motion GroupNorm, so outputs are comparable)."""
    from framefold.pipelines.loading.unet import build_unet

    unet = build_unet(unet_sd, config, dtype=dtype)
    motion = build_motion_module(motion_sd, dtype=dtype, norm_across_frames=True, **motion_kwargs)
    return DiffusionModel(unet.with_motion(motion).to(device), ScheduleConfig())


def build_diffusers(unet_sd: dict, motion_sd: dict, config: UNetConfig, motion_kwargs: dict, dtype, device):
    """diffusers' UNetMotionModel with the same tensors, behind the FrameFold contract."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    channels = tuple(config.model_channels * m for m in config.channel_mult)
    levels = len(channels)
    down = tuple("CrossAttnDownBlock2D" if i in config.attention_levels else "DownBlock2D" for i in range(levels))
    up = tuple(("CrossAttnUpBlock2D" if i in config.attention_levels else "UpBlock2D") for i in reversed(range(levels)))
    image = UNet2DConditionModel(
        block_out_channels=channels,
        layers_per_block=config.num_res_blocks,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=config.context_dim,
        attention_head_dim=config.num_heads,
        norm_num_groups=config.norm_groups,
    )
    renamed = {d: unet_sd[ours] for d, ours in diffusers_key_map(config).items()}
    image.load_state_dict(renamed, strict=True)
    adapter = MotionAdapter(
        block_out_channels=channels,
        motion_layers_per_block=config.num_res_blocks,
        motion_num_attention_heads=motion_kwargs["num_heads"],
        motion_norm_num_groups=config.norm_groups,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    missing, unexpected = adapter.load_state_dict(original_to_diffusers(motion_sd), strict=False)
    if [k for k in missing if not k.endswith(".pe")] or unexpected:
        raise RuntimeError(
            f"motion weights do not fit MotionAdapter: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model = UNetMotionModel.from_unet2d(image, adapter).to(device=device, dtype=dtype).eval()
    return DiffusionModel(DiffusersContract(model), ScheduleConfig())


def run_sampler(model: DiffusionModel, shape: tuple, steps: int, cfg: float, context_dim: int, device) -> tuple:
    """(final latent, seconds per step, peak bytes) of one DDIM run with CFG; noise from a CPU generator."""
    g = torch.Generator().manual_seed(0)
    pos = Conditioning(torch.randn(1, 77, context_dim, generator=g))
    neg = Conditioning(torch.zeros(1, 77, context_dim))
    noise = torch.randn(shape, generator=g).to(device)
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), steps, "leading")
    denoiser = GuidedDenoiser(model, pos, neg, cfg)
    samplers.sample("ddim", denoiser, noise[:, :, :8, :8].contiguous(), sigmas[-3:])  # warm-up (kernels, cuDNN)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = samplers.sample("ddim", denoiser, noise, sigmas)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return out.float().cpu(), seconds, peak


def main(argv=None) -> int:
    """Build both models, run both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="video width and height in pixels")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    parser.add_argument("--attention", action="store_true", help="run bench/attention.py first (writes the table)")
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the code paths with a tiny config")
    args = parser.parse_args(argv)
    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32
        unet_sd, motion_sd, config, motion_kwargs = smoke_weights()
        args.size, args.frames, args.steps = 64, 4, 2
    else:
        if not torch.cuda.is_available():
            print(
                "No CUDA device: this benchmark measures GPU step time and VRAM and needs an NVIDIA GPU "
                "(torch.cuda.is_available() is False). Nothing was measured. `--smoke` checks the code on the CPU.",
                file=sys.stderr,
            )
            return 1
        device, dtype = torch.device("cuda"), {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
        print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}  dtype {args.dtype}")
        if args.attention:
            sys.path.insert(0, str(ROOT / "bench"))
            import attention

            attention.main(["--dtype", args.dtype])
        unet_sd, motion_sd, config, motion_kwargs = manifest_weights()
    shape = (args.frames, 4, args.size // 8, args.size // 8)
    print(f"{args.size}x{args.size}x{args.frames}, {args.steps} DDIM steps, cfg {args.cfg} (cond + uncond batched)")
    results = {}
    framefold = build_framefold(unet_sd, motion_sd, config, motion_kwargs, dtype, device)
    estimate = memory.estimate_sampler_bytes(framefold, shape, args.cfg, None, device, weight_bytes=0)
    weights = sum(p.numel() * p.element_size() for p in framefold.unet.parameters())
    results["FrameFold"] = run_sampler(framefold, shape, args.steps, args.cfg, config.context_dim, device)
    print(f"FrameFold pre-flight estimate: {(estimate + weights) / GB:.2f} GB (activations + weights)")
    del framefold
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if not args.skip_diffusers:
        reference = build_diffusers(unet_sd, motion_sd, config, motion_kwargs, dtype, device)
        results["diffusers UNetMotionModel"] = run_sampler(
            reference, shape, args.steps, args.cfg, config.context_dim, device
        )
    print(f"{'model':28s} {'s/step':>8s} {'peak VRAM GB':>13s}")
    for name, (_, seconds, peak) in results.items():
        print(f"{name:28s} {seconds:8.3f} {peak / GB:13.2f}")
    if len(results) == 2:
        a, b = (r[0] for r in results.values())
        print(f"max |FrameFold - diffusers| over the final latents: {(a - b).abs().max().item():.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
