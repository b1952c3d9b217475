"""Benchmark of frame interpolation: quality against ground truth, memory against frame count, speed.

    python bench/interpolation.py [--clips 8] [--threads 1] [--skip-diffusion] [--device cpu|cuda]
                                  [--parts quality,memory,speed]

Quality: procedural clips (``pipelines.synthetic``) rendered with 33 frames at 64x64; every other frame is
dropped, the 17 left are interpolated 2x back to 33, and the 16 dropped frames are compared with what each
method made (PSNR over all of them, mean SSIM on luma). Methods: repeat and linear blend (naive baselines),
DIS flow, the tiny in-project RIFE (plain and ensemble), and diffusion in-betweening with the default model
(keys VAE-encoded, held; the caption as the prompt; 16-frame context windows; denoise 1 = new frames from noise,
0.5 = a refinement of the keys' linear blend). The diffusion row's ceiling is
the VAE round trip of the ground truth (printed beside it). Every method's output is checked for the
frame-count rule and for exact first and last frames.

Memory: working memory -- peak resident memory minus the memory before the input existed minus the input's
bytes -- in a fresh process per run, while 32 and 256 frames (128x128) are interpolated 2x and streamed (frames
consumed as they come); flat in the frame count means the same figure. (``interpolate_frames`` adds only its
one output tensor to this.)

Speed: 2x interpolation of 64 frames at 512x512 with the flow method (and RIFE on ``--device``).
Prints figures; passes or fails nothing.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RIFE_FILE = "framefold-tiny-rife.safetensors"


def parse_args() -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-diffusion", action="store_true")
    p.add_argument("--diffusion-clips", type=int, default=2, help="clips for the (slow) diffusion row")
    p.add_argument("--diffusion-steps", type=int, default=10)
    p.add_argument("--diffusion-denoise", default="1.0,0.5", help="denoise strengths of the diffusion rows")
    p.add_argument("--device", default="cpu", help="device for the RIFE speed run")
    p.add_argument("--parts", default="quality,memory,speed", help="comma-separated subset to run")
    p.add_argument("--memory-child", nargs=3, metavar=("METHOD", "FRAMES", "SIZE"), help=argparse.SUPPRESS)
    return p.parse_args()


def load_tiny_rife(device: str = "cpu"):
    """The in-project tiny RIFE from the frame_interpolation folder."""
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines.loading.rife import load_rife

    return load_rife(resolve_model("frame_interpolation", RIFE_FILE), device=device)


def pair_methods(device: str = "cpu") -> dict:
    """name -> pair interpolator for every weight-free or IFNet method."""
    from framefold.pipelines.interpolation import driver
    from framefold.pipelines.interpolation.flow import FlowInterpolator
    from framefold.pipelines.interpolation.rife import RifeInterpolator

    rife = load_tiny_rife(device)
    return {
        "repeat": driver.repeat_between,
        "linear blend": driver.blend_between,
        "flow (DIS)": FlowInterpolator(),
        "tiny RIFE": RifeInterpolator(rife),
        "tiny RIFE ensemble": RifeInterpolator(rife, ensemble=True),
    }


def test_clips(count: int):
    """``count`` (33-frame clip [33, 64, 64, 3], caption) pairs from a fixed seed."""
    from framefold.pipelines import synthetic

    rng = np.random.default_rng(20261202)
    scenes = [synthetic.random_scene(rng, frames=33) for _ in range(count)]
    return [(torch.from_numpy(synthetic.render_scene(s)), s.caption) for s in scenes]


def check_invariants(name: str, out: torch.Tensor, keys: torch.Tensor, multiplier: int) -> None:
    """Frame count (K - 1) m + 1 and exact first/last frames, or exit with the method's name."""
    expected = (keys.shape[0] - 1) * multiplier + 1
    if out.shape[0] != expected:
        raise SystemExit(f"{name}: {out.shape[0]} frames, expected {expected}")
    if not (torch.equal(out[0], keys[0]) and torch.equal(out[-1], keys[-1])):
        raise SystemExit(f"{name}: first/last frame not kept exactly")


def load_default_model():
    """(model with its motion module, text encoder, vae) of the embedded default model."""
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.motion import load_motion_module

    model, text_encoder, vae = load_checkpoint(resolve_model("checkpoints", "framefold-tiny.safetensors"))
    module = load_motion_module(resolve_model("animatediff_models", "framefold-tiny-motion.safetensors"))
    return model.with_options(unet=model.unet.with_motion(module), frame_window=module.max_frames), text_encoder, vae


def diffusion_inbetween_clip(
    bundle, keys: torch.Tensor, caption: str, steps: int, strength: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """Keys [K, 64, 64, 3] -> 2x frames through VAE encode, diffusion in-betweening, VAE decode."""
    from framefold.pipelines.interpolation.diffusion import inbetween
    from framefold.pipelines.sampling import schedules
    from framefold.pipelines.sampling.context import ContextOptions
    from framefold.pipelines.sampling.guidance import GuidedDenoiser

    model, text_encoder, vae = bundle
    latents = vae.encode(keys)
    frames = (keys.shape[0] - 1) * 2 + 1
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((frames, *latents.shape[1:]), generator=generator)
    context = ContextOptions(16, 4, 1, False, "pyramid")
    denoiser = GuidedDenoiser(model, text_encoder.encode(caption), text_encoder.encode(""), 4.5, context=context)
    sigmas = schedules.denoise_sigmas(schedules.alphas_cumprod_from_config(model.schedule), steps, "trailing", strength)
    with torch.no_grad():
        out = inbetween(denoiser, latents, noise, sigmas, multiplier=2, denoise_strength=strength, generator=generator)
        return vae.decode(out)


def quality(args: argparse.Namespace) -> None:
    """PSNR / SSIM of the dropped frames for every method."""
    from framefold.pipelines.interpolation import interpolate
    from framefold.pipelines.metrics.quality import psnr, ssim

    clips = test_clips(args.clips)
    methods = pair_methods()
    rows = {}
    for name, between in methods.items():
        made, start = [], time.perf_counter()
        for clip, _ in clips:
            keys = clip[::2]
            out, _fps = interpolate(keys, between, multiplier=2)
            check_invariants(name, out, keys, 2)
            made.append(out[1::2])
        rows[name] = (made, time.perf_counter() - start)
    if not args.skip_diffusion:
        bundle = load_default_model()
        subset = clips[: args.diffusion_clips]
        for strength in [float(x) for x in args.diffusion_denoise.split(",")]:
            made, start = [], time.perf_counter()
            for clip, caption in subset:
                out = diffusion_inbetween_clip(bundle, clip[::2], caption, args.diffusion_steps, strength)
                if out.shape[0] != clip.shape[0]:
                    raise SystemExit(f"diffusion in-between: {out.shape[0]} frames, expected {clip.shape[0]}")
                made.append(out[1::2])
            rows[f"diffusion denoise {strength}"] = (made, time.perf_counter() - start)
        with torch.no_grad():
            ceiling = [bundle[2].decode(bundle[2].encode(clip[1::2])) for clip, _ in subset]
        rows["(VAE round trip, ceiling)"] = (ceiling, 0.0)
    print("\nquality: 16 dropped frames per clip (33 rendered at 64x64, every other dropped, 2x back)")
    print(f"{'method':28s} {'clips':>5s} {'PSNR dB':>8s} {'SSIM':>7s} {'s/clip':>7s}")
    for name, (made, seconds) in rows.items():
        truth = torch.cat([clip[1::2] for clip, _ in clips[: len(made)]])
        result = torch.cat(made)
        print(
            f"{name:28s} {len(made):5d} {psnr(result, truth):8.2f} {ssim(result, truth):7.4f} "
            f"{seconds / len(made):7.3f}"
        )


def _current_rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), MiB."""
    import os

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(method: str, frames: int, size: int) -> None:
    """Run in a fresh process: print the working memory (MiB) of a streamed 2x interpolation.

    working = peak RSS - RSS before the input existed - the input's bytes: what the interpolation itself holds.
    """
    from framefold.pipelines import synthetic
    from framefold.pipelines.interpolation.driver import iter_interpolated
    from framefold.pipelines.interpolation.timing import multiplier_positions

    between = pair_methods()[method]
    base = _current_rss_mib()
    scene = synthetic.layout_scene("red", "circle", "right", "gradient", 1, frames=frames, size=size)
    clip = torch.from_numpy(synthetic.render_scene(scene))
    input_mib = clip.numel() * 4 / 2**20
    checksum = 0.0
    for _index, frame in iter_interpolated(clip, multiplier_positions(frames, 2), between):
        checksum += float(frame[0, 0, 0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"working_mib": peak - base - input_mib, "input_mib": input_mib, "checksum": checksum}))


def memory(args: argparse.Namespace) -> None:
    """Working memory for 32 vs 256 frames, each in its own process."""
    print("\nmemory: working memory (peak RSS - RSS before the input - input bytes) of a streamed 2x interpolation,")
    print("128x128 frames, fresh process per run")
    for method in ("flow (DIS)", "tiny RIFE"):
        figures = []
        for frames in (32, 256):
            cmd = [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--memory-child",
                method,
                str(frames),
                "128",
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            figures.append(json.loads(out)["working_mib"])
        ratio = figures[1] / figures[0] if figures[0] > 0 else float("nan")
        print(f"{method:20s} 32 frames: {figures[0]:7.1f} MiB   256 frames: {figures[1]:7.1f} MiB   ratio {ratio:.2f}")


def speed(args: argparse.Namespace) -> None:
    """Seconds for 2x interpolation of 64 frames at 512x512 (flow; RIFE on ``--device``)."""
    from framefold.pipelines import synthetic
    from framefold.pipelines.interpolation import PairInterpolator, interpolate
    from framefold.pipelines.interpolation.flow import FlowInterpolator
    from framefold.pipelines.interpolation.rife import RifeInterpolator

    scene = synthetic.layout_scene("blue", "square", "right", "gradient", 3, frames=64, size=512)
    clip = torch.from_numpy(synthetic.render_scene(scene))
    print(f"\nspeed: 2x interpolation of 64 frames at 512x512 ({torch.get_num_threads()} thread(s))")
    runs: Dict[str, PairInterpolator] = {
        "flow (DIS)": FlowInterpolator(),
        f"tiny RIFE ({args.device})": RifeInterpolator(load_tiny_rife(args.device)),
    }
    for name, between in runs.items():
        start = time.perf_counter()
        out, fps = interpolate(clip, between, multiplier=2, fps=8.0)
        seconds = time.perf_counter() - start
        print(
            f"{name:20s} {seconds:7.2f} s  ({out.shape[0]} frames out, {out.shape[0] / seconds:6.1f} frames/s, {fps} fps)"
        )


def main() -> None:
    """Quality, memory and speed figures."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        method, frames, size = args.memory_child
        memory_child(method, int(frames), int(size))
        return
    parts = set(args.parts.split(","))
    for name, run in (("quality", quality), ("memory", memory), ("speed", speed)):
        if name in parts:
            run(args)


if __name__ == "__main__":
    main()
