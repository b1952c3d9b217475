"""Memory pre-flight: the estimate (pipelines/memory.py) next to the measured peak, for shapes that fit here.

Each case runs in a fresh subprocess with glibc told to serve every allocation over 64 KiB by mmap (so freed
tensors leave the resident set at once and RSS tracks live tensors). The child loads the embedded default model
(UNet + motion module, VAE), runs one small warm-up call, records its resident set, resets the peak
(``/proc/self/clear_refs``), runs the node (FrameFold Video Sampler with 1 step, or FrameFold VAE Decode), and
reports ``VmHWM - VmRSS before``: the peak growth during the node. The estimate excludes the weights (already
in RAM on the CPU). Prints figures; never passes or fails.

Also times the refusal of the acceptance shapes (1024x1024x256 without context, 8192x8192x16) on an SD1.5-size
UNet built on the meta device.

Run: ``python bench/memory_preflight.py [--quick]`` (--quick: only the two smallest cases).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}

CASES = [  # (label, node, width, height, frames, context length or 0, frame_chunk, tile_size px)
    ("sampler 256x256x16, cfg", "sampler", 256, 256, 16, 0, 0, 0),
    ("sampler 384x384x8, cfg", "sampler", 384, 384, 8, 0, 0, 0),
    ("sampler 256x256x48, context 16/4", "sampler", 256, 256, 48, 16, 0, 0),
    ("decode 256x256x16, chunk 8", "decode", 256, 256, 16, 0, 8, 0),
    ("decode 384x384x8, chunk 4", "decode", 384, 384, 8, 0, 4, 0),
    ("decode 512x512x8, chunk 8, tiles 256", "decode", 512, 512, 8, 0, 8, 256),
]


def _status_kib(field: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` figure of this process in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(case: list) -> None:
    """Run one case and print JSON (estimate, measured growth)."""
    import torch

    torch.set_num_threads(1)
    from framefold.nodes.latent import FrameFoldEmptyVideoLatent, FrameFoldVAEDecode
    from framefold.nodes.sampling import FrameFoldVideoSampler
    from framefold.pipelines import memory
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.motion import load_motion_module
    from framefold.pipelines.models.bundle import Conditioning
    from framefold.pipelines.sampling.context import ContextOptions

    _, node, width, height, frames, context_length, chunk, tile = case
    model, _, vae = load_checkpoint(ROOT / "default_model" / "checkpoints" / "framefold-tiny.safetensors")
    motion = load_motion_module(ROOT / "default_model" / "animatediff_models" / "framefold-tiny-motion.safetensors")
    model = model.with_options(unet=model.unet.with_motion(motion))
    cond = Conditioning(torch.randn(1, 77, model.unet.config.context_dim))
    context = ContextOptions(context_length, context_length // 4) if context_length else None
    (latent,) = FrameFoldEmptyVideoLatent().generate(vae, width, height, frames)
    cpu = torch.device("cpu")

    def sample(lat: dict) -> dict:
        ctx = context if lat["samples"].shape[0] > 16 else None
        return FrameFoldVideoSampler().sample(model, cond, cond, lat, 0, 1, 4.5, "ddim", "trailing", 1.0, context=ctx)[
            0
        ]

    if node == "sampler":
        sample({"samples": torch.zeros(2, 4, 8, 8)})  # warm-up: thread pools, kernels
        estimate = memory.estimate_sampler_bytes(model, tuple(latent["samples"].shape), 4.5, context, cpu)
        run = lambda: sample(latent)  # noqa: E731
    else:
        FrameFoldVAEDecode().decode({"samples": torch.zeros(1, 4, 8, 8)}, vae)
        latent = {"samples": torch.randn(latent["samples"].shape)}
        d = vae.downscale
        estimate = memory.estimate_decode_bytes(vae, tuple(latent["samples"].shape), chunk, tile // d, cpu)
        run = lambda: FrameFoldVAEDecode().decode(latent, vae, frame_chunk=chunk, tile_size=tile)  # noqa: E731
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    growth = (_status_kib("VmHWM") - before) * 1024
    print(json.dumps({"estimate": estimate, "measured": growth, "seconds": seconds}))


def measure(case: tuple) -> dict:
    """One case in a fresh process."""
    env = {**os.environ, **CHILD_ENV}
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(list(case))], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"{case[0]} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def refusal_times() -> None:
    """Time the pre-flight refusing the acceptance shapes for an SD1.5-size UNet (meta weights) on 24 GiB."""
    import torch

    from framefold.pipelines import memory
    from framefold.pipelines.models.bundle import DiffusionModel
    from framefold.pipelines.models.unet import UNetConfig, UNetModel

    with torch.device("meta"):
        model = DiffusionModel(UNetModel(UNetConfig.sd15()))
    for label, shape in (("1024x1024x256, no context", (256, 4, 128, 128)), ("8192x8192x16", (16, 4, 1024, 1024))):
        start = time.perf_counter()
        try:
            memory.check_sampler_memory(model, shape, 7.5, None, torch.device("cpu"), available=24 * 2**30)
            message = "accepted"
        except memory.MemoryPreflightError as e:
            message = str(e)
        print(f"SD1.5 {label}: {1000 * (time.perf_counter() - start):.1f} ms -> {message}")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    cases = [CASES[0], CASES[3]] if args.quick else [c for c in CASES if args.only in c[0]]
    print("embedded default model (UNet + motion module, VAE), CPU, 1 thread; peak RSS growth during the node")
    print(f"{'case':42s} {'estimate MiB':>13s} {'measured MiB':>13s} {'est/meas':>9s} {'seconds':>8s}")
    for case in cases:
        r = measure(case)
        ratio = r["estimate"] / r["measured"] if r["measured"] > 0 else float("nan")
        print(
            f"{case[0]:42s} {r['estimate'] / 2**20:13.1f} {r['measured'] / 2**20:13.1f} {ratio:9.2f} "
            f"{r['seconds']:8.1f}",
            flush=True,
        )
    refusal_times()


if __name__ == "__main__":
    main()
