"""UNet step time on the CPU in fp32 vs bf16 (the precision policy's CPU choice: auto = fp32, bf16 selectable).

Times one CFG model call (cond + uncond batched, as the sampler makes it) of two UNets with motion modules:
the embedded default model (framefold-tiny) at its 64x64x16 size, and a small SD-like UNet (random weights,
model_channels 64, three levels) at 128x128x8. Also prints which bf16 instructions this CPU has (AVX-512 BF16 /
AMX make bf16 matmuls fast; without them PyTorch converts to fp32 and back). Prints figures; never fails.

Run: ``python bench/cpu_bf16.py [--threads 1] [--repeats 3]``
"""

import argparse
import time
from pathlib import Path

import torch

from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.motion import load_motion_module
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
from framefold.pipelines.models.unet import UNetConfig, UNetModel

ROOT = Path(__file__).resolve().parent.parent


def cpu_flags() -> str:
    """The bf16-relevant instruction sets /proc/cpuinfo lists (or 'none')."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")]
    return " ".join(wanted) or "none"


def tiny_unet() -> tuple:
    """The default model's UNet with its motion module; (unet, frames, latent size, context dim)."""
    model, _, _ = load_checkpoint(ROOT / "default_model" / "checkpoints" / "framefold-tiny.safetensors")
    motion = load_motion_module(ROOT / "default_model" / "animatediff_models" / "framefold-tiny-motion.safetensors")
    return model.unet.with_motion(motion), 16, 16, model.unet.config.context_dim


def small_sd_unet() -> tuple:
    """A small SD-layout UNet with a v2-style motion module, random weights."""
    torch.manual_seed(0)
    config = UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1, num_heads=4, context_dim=128)
    unet = UNetModel(config)
    motion = MotionModule(
        MotionModuleConfig.for_version("v2", block_channels=(64, 128, 128), layers_per_block=1, num_heads=4)
    )
    return unet.with_motion(motion), 8, 32, 128


def step_seconds(
    unet: torch.nn.Module, frames: int, size: int, ctx_dim: int, dtype: torch.dtype, repeats: int
) -> float:
    """Best-of-``repeats`` seconds of one CFG call in ``dtype``."""
    unet = unet.to(dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * frames, 4, size, size, generator=g).to(dtype)
    t = torch.full((2 * frames,), 500.0)
    context = torch.randn(2 * frames, 77, ctx_dim, generator=g).to(dtype)
    best = float("inf")
    with torch.no_grad():
        unet(x, t, context, num_frames=frames)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t, context, num_frames=frames)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__} capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"threads {args.threads}; one CFG UNet call (cond + uncond), best of {args.repeats}")
    print(f"{'model':34s} {'fp32 s':>8s} {'bf16 s':>8s} {'bf16/fp32':>10s}")
    for name, build in (
        ("framefold-tiny + motion, 64x64x16", tiny_unet),
        ("SD-like ch64 + v2 motion, 128x128x8", small_sd_unet),
    ):
        unet, frames, size, ctx_dim = build()
        fp32 = step_seconds(unet, frames, size, ctx_dim, torch.float32, args.repeats)
        bf16 = step_seconds(unet, frames, size, ctx_dim, torch.bfloat16, args.repeats)
        print(f"{name:34s} {fp32:8.3f} {bf16:8.3f} {bf16 / fp32:9.2f}x")


if __name__ == "__main__":
    main()
