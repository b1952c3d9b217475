"""ControlNet on the embedded default model: does the video follow the control? Plus memory and preprocessor speed.

    python bench/controlnet.py [--count 24] [--steps 20] [--threads 2] [--skip-memory] [--skip-preprocessors]

1. Structure: ``--count`` prompt x seed x control videos. Each prompt is a random caption of the procedural
   grammar; its control is the Canny edge map of ANOTHER procedural clip whose motion differs from the
   prompt's (its colour and background are random; its shape too, or the prompt's with ``--control-shape
   prompt``). For every video: mean IoU over frames between the generated object's mask (the evaluator's
   foreground mask) and the control clip's silhouette, with control, without control (same prompt and seed),
   and with keyframe control on frames 0 and 15 only (IoU at those two frames). Prints medians and counts,
   and the ceiling: the same IoU for the control clip itself encoded and decoded by the VAE (a 64 px video
   whose objects are 8-24 px wide loses a pixel of outline to the VAE: the ceiling is about 0.79, not 1).
2. Memory: peak RSS (fresh subprocess each) of one sampling step with the ControlNet and context windows
   (16-frame windows, overlap 4) for 16 and 64 frames, at a 192 px video (48x48 latents) so activations dominate.
3. Preprocessors: ms per 512x512 frame of each OpenCV preprocessor over a 16-frame clip.

Sampler settings are the text-to-video example's (20 DDIM steps, trailing, cfg 2). Prints figures; it
passes or fails nothing.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

CONTROLNET = "framefold-tiny-controlnet.safetensors"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=24)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=2.0)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--controlnet", default=CONTROLNET)
    p.add_argument(
        "--control-shape",
        choices=("random", "prompt"),
        default="random",
        help="shape of the control clip: random (may contradict the prompt) or the prompt's",
    )
    p.add_argument("--skip-structure", action="store_true")
    p.add_argument(
        "--skip-uncontrolled", action="store_true", help="skip the runs without control (e.g. a 2nd strength)"
    )
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-preprocessors", action="store_true")
    p.add_argument("--json", help="write per-video results here")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="run only cases I, I+N, ... (parallel runs)")
    p.add_argument("--summarize", nargs="+", metavar="JSON", help="print the summary of earlier --json files")
    return p.parse_args()


def load_models(controlnet_name: str):
    """(model with motion module, text encoder, vae, controlnet) of the embedded default model."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from default_model import load_default_model
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines.loading.controlnet import load_controlnet

    model, text_encoder, vae = load_default_model("framefold-tiny.safetensors", "framefold-tiny-motion.safetensors")
    return model, text_encoder, vae, load_controlnet(resolve_model("controlnet", controlnet_name))


def bench_cases(count: int, control_shape: str = "random"):
    """(prompt scene, control scene, seed) triples: the control clip's motion differs from the prompt's; its
    colour and background are random, its shape random or (``control_shape="prompt"``) the prompt's."""
    from framefold.pipelines import synthetic

    rng = np.random.default_rng(2026)
    cases = []
    for i in range(count):
        prompt = synthetic.random_scene(rng, templates=[0])
        motions = [m for m in synthetic.MOTIONS if m != prompt.motion]
        other = motions[int(rng.integers(len(motions)))]
        colour = synthetic.GRAMMAR.colours[int(rng.integers(len(synthetic.GRAMMAR.colours)))]
        shape = synthetic.GRAMMAR.shapes[int(rng.integers(len(synthetic.GRAMMAR.shapes)))]
        if control_shape == "prompt":
            shape = prompt.shape
        background = synthetic.GRAMMAR.backgrounds[int(rng.integers(len(synthetic.GRAMMAR.backgrounds)))]
        control = synthetic.layout_scene(colour, shape, other, background, rng)
        cases.append((prompt, control, 1000 + i))
    return cases


def generate(model, text_encoder, vae, caption: str, seed: int, steps: int, cfg: float, control=None):
    """One 16-frame video (IMAGE [F,H,W,3]) through the same calls the nodes make."""
    from framefold.pipelines.control.apply import with_control
    from framefold.pipelines.noise import NoisePrior
    from framefold.pipelines.sampling import samplers, schedules
    from framefold.pipelines.sampling.guidance import GuidedDenoiser

    pos, neg = text_encoder.encode(caption), text_encoder.encode("")
    if control is not None:
        pos, neg = with_control(pos, control), with_control(neg, control)
    g = torch.Generator().manual_seed(seed)
    noise = NoisePrior("iid").sample((16, vae.latent_channels, 16, 16), g)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    sigmas = schedules.denoise_sigmas(abar, steps, "trailing", 1.0)
    latent = samplers.sample("ddim", GuidedDenoiser(model, pos, neg, cfg), noise, sigmas, generator=g)
    return vae.decode(latent)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two boolean mask stacks [F,H,W] (1 when both are empty)."""
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def structure(args: argparse.Namespace) -> None:
    """Section 1: IoU with / without / keyframe control."""
    from framefold.pipelines import synthetic
    from framefold.pipelines.control import preprocess
    from framefold.pipelines.control.apply import ControlApplication
    from framefold.pipelines.metrics.evaluator import foreground_masks

    model, text_encoder, vae, controlnet = load_models(args.controlnet)
    rows = []
    t0 = time.perf_counter()
    index, shards = (int(v) for v in args.shard.split("/"))
    for prompt, control_scene, seed in bench_cases(args.count, args.control_shape)[index::shards]:
        clip = torch.from_numpy(synthetic.render_scene(control_scene))
        silhouette = preprocess.silhouette(clip)[..., 0].numpy() > 0.5
        edges = preprocess.canny(clip)
        full = ControlApplication(controlnet, edges, strength=args.strength)
        keys = ControlApplication(controlnet, edges[[0, 15]], (0, 15), strength=args.strength)
        result = {"prompt": prompt.caption, "control": control_scene.caption, "seed": seed}
        with torch.no_grad():  # the best a video can score: the control clip itself through the VAE
            result["ceiling"] = float(iou(foreground_masks(vae.decode(vae.encode(clip))), silhouette).mean())
        for name, control in (("with", full), ("without", None), ("keyframes", keys)):
            if name == "without" and args.skip_uncontrolled:
                result.update(without=float("nan"), without_0_15=[float("nan")] * 2)
                continue
            video = generate(model, text_encoder, vae, prompt.caption, seed, args.steps, args.cfg, control)
            scores = iou(foreground_masks(video), silhouette)
            result[name] = float(scores.mean())
            result[name + "_0_15"] = [float(scores[0]), float(scores[15])]
        rows.append(result)
        print(
            f"{prompt.caption:55s} | control {control_scene.motion:9s}: IoU with {result['with']:.2f}  "
            f"without {result['without']:.2f}  keyframes@0,15 {result['keyframes_0_15'][0]:.2f},"
            f"{result['keyframes_0_15'][1]:.2f}",
            flush=True,
        )
    print(f"\n{len(rows)} cases, {(time.perf_counter() - t0) / len(rows) / 3:.2f} s per video")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    summarize(rows)


def summarize(rows: list) -> None:
    """Medians over the cases (IoU with / without control, keyframe IoU at frames 0 and 15)."""
    med = {k: statistics.median(r[k] for r in rows) for k in ("with", "without")}
    key_frames = [v for r in rows for v in r["keyframes_0_15"]]
    print(f"{len(rows)} prompt x seed x control videos")
    if all("ceiling" in r for r in rows):
        ceiling = statistics.median(r["ceiling"] for r in rows)
        print(f"median IoU of the control clip itself through the VAE (ceiling): {ceiling:.3f}")
    print(f"median IoU with control (all frames):      {med['with']:.3f}   (target >= 0.7)")
    print(f"median IoU without control (all frames):   {med['without']:.3f}")
    print(f"median IoU keyframe control at frames 0,15: {statistics.median(key_frames):.3f}   (target >= 0.6)")
    print(f"videos with IoU >= 0.7 with control: {sum(r['with'] >= 0.7 for r in rows)}/{len(rows)}")
    better = sum(r["with"] > r["without"] for r in rows)
    print(f"videos where control raised the IoU: {better}/{len(rows)}")


MEMORY_SIZE = 192  # pixels: 48x48 latents, so activations dominate the tiny model's memory
MEMORY_CHILD = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[3])
from default_model import load_default_model
from framefold.nodes._folders import resolve_model
from framefold.pipelines.control.apply import ControlApplication, with_control
from framefold.pipelines.loading.controlnet import load_controlnet
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.context import ContextOptions
from framefold.pipelines.sampling.guidance import GuidedDenoiser

frames, size = int(sys.argv[1]), int(sys.argv[2])
model, text_encoder, vae = load_default_model("framefold-tiny.safetensors", "framefold-tiny-motion.safetensors")
controlnet = load_controlnet(resolve_model("controlnet", "framefold-tiny-controlnet.safetensors"))
with torch.no_grad():
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(frames, size, size, 3, generator=g) > 0.9).float()
    app = ControlApplication(controlnet, images)
    pos = with_control(text_encoder.encode("a red circle moving left on a black background"), app)
    neg = with_control(text_encoder.encode(""), app)
    denoise = GuidedDenoiser(model, pos, neg, 2.0, context=ContextOptions(16, 4))
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), 1, "trailing")
    noise = torch.randn(frames, 4, size // 4, size // 4, generator=g)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    samplers.sample("ddim", denoise, noise, sigmas)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": frames, "base_kib": base, "peak_kib": peak, "calls": denoise.calls,
                  "controlnet_runs": len(denoise.control.applied)}))
"""


def memory() -> None:
    """Section 2: peak RSS with a ControlNet and context windows, 16 vs 64 frames."""
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    runs = []
    for frames in (16, 64):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(frames), str(MEMORY_SIZE), here], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"memory run failed ({frames} frames):\n{out.stderr}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in runs:
        growth = (r["peak_kib"] - r["base_kib"]) / 1024
        print(
            f"frames={r['frames']:3d} ({MEMORY_SIZE} px, windows 16/4, ControlNet, 1 step): peak RSS {r['peak_kib'] / 1024:7.1f} MiB, "
            f"growth while sampling {growth:6.1f} MiB, model calls {r['calls']}, ControlNet runs {r['controlnet_runs']}"
        )
    print(f"peak RSS 64 frames / 16 frames: {runs[1]['peak_kib'] / runs[0]['peak_kib']:.2f}x")


def preprocessors() -> None:
    """Section 3: ms per 512x512 frame of every preprocessor."""
    from framefold.pipelines import synthetic
    from framefold.pipelines.control import preprocess

    scene = synthetic.random_scene(3, size=512)
    clip = torch.from_numpy(synthetic.render_scene(scene))
    mask = torch.zeros(1, 512, 512)
    mask[:, 128:384, 128:384] = 1
    runs = {
        "canny": lambda: preprocess.canny(clip),
        "soft_edges (sobel)": lambda: preprocess.soft_edges(clip, "sobel"),
        "soft_edges (scharr)": lambda: preprocess.soft_edges(clip, "scharr"),
        "scribble": lambda: preprocess.scribble(clip),
        "lineart": lambda: preprocess.lineart(clip),
        "tile": lambda: preprocess.tile(clip),
        "inpaint_mask": lambda: preprocess.inpaint_mask(clip, mask),
        "flow_magnitude": lambda: preprocess.flow_magnitude(clip),
    }
    for name, run in runs.items():
        run()
        t0 = time.perf_counter()
        run()
        print(f"{name:20s} {(time.perf_counter() - t0) * 1000 / clip.shape[0]:7.2f} ms/frame (512x512)")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.summarize:
        rows = []
        for path in args.summarize:
            with open(path) as f:
                rows += json.load(f)
        summarize(rows)
        return
    if not args.skip_preprocessors:
        preprocessors()
    if not args.skip_memory:
        memory()
    if not args.skip_structure:
        structure(args)


if __name__ == "__main__":
    main()
