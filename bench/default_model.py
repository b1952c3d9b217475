"""Benchmark of the embedded default model (framefold-tiny): quality by the no-human evaluator, and speed.

    python bench/default_model.py [--count 72] [--steps N] [--cfg X] [--threads 2] [--long] [--noise-priors 12]

Steps, cfg, sampler and scheduler default to those of the Video Sampler in
``example_workflows/text_to_video.json``: the default settings a newcomer runs.

Generates ``--count`` prompt x seed combinations through the normal pipeline (checkpoint loader ->
motion module -> text encode -> guided sampler -> VAE decode, the same calls the nodes make), checks
every video with ``pipelines.metrics.evaluator`` against its prompt, and prints the success rates
(colour, shape, motion, background, area stability, all five), seconds per video, per-attribute breakdowns
(and all-correct per shape and per motion) and a confusion matrix per attribute. The prompts are balanced
over shape x motion; their seeds (5000 + i) were never used to select weights. With ``--long`` it also generates a 64-frame video with the VidRD long-video sampler and
prints the mean seam ratio at the clip joins; with ``--noise-priors N`` it samples N of the pairs from the
i.i.d., VideoFusion and PYoCo priors and prints flicker and area stability. Prints figures; passes or fails
nothing.
"""

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "example_workflows" / "text_to_video.json"


def example_sampler_settings(path=EXAMPLE):
    """steps, cfg, sampler_name and scheduler of the (single) Video Sampler in an example workflow."""
    from framefold.host.registry import default_registry
    from framefold.host.workflow import load_workflow

    api, _ = load_workflow(path, default_registry())
    samplers = [n["inputs"] for n in api.values() if n["class_type"] == "FrameFoldVideoSampler"]
    if len(samplers) != 1:
        raise SystemExit(f"{path}: expected one FrameFoldVideoSampler, found {len(samplers)}")
    return {k: samplers[0][k] for k in ("steps", "cfg", "sampler_name", "scheduler")}


def parse_args():
    """Command line (sampler settings default to the text-to-video example's)."""
    defaults = example_sampler_settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=72, help="prompt x seed pairs (balanced over shape x motion)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per prompt")
    p.add_argument("--prompt-seed", type=int, default=2024, help="seed of the colour/background draws")
    p.add_argument("--first-seed", type=int, default=5000, help="sampling seed of the first pair")
    p.add_argument("--steps", type=int, default=defaults["steps"])
    p.add_argument("--cfg", type=float, default=defaults["cfg"])
    p.add_argument("--sampler", default=defaults["sampler_name"])
    p.add_argument(
        "--scheduler",
        default=defaults["scheduler"],
        help="timestep spacing; auto = trailing for a zero-terminal-SNR model, else leading",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", default="framefold-tiny.safetensors")
    p.add_argument("--motion", default="framefold-tiny-motion.safetensors")
    p.add_argument("--long", action="store_true", help="also run a 64-frame VidRD video and print seam ratios")
    p.add_argument("--json", help="write every per-video result to this file")
    p.add_argument(
        "--noise-priors",
        type=int,
        default=0,
        metavar="N",
        help="also sample the first N prompt x seed pairs from each noise prior and compare",
    )
    return p.parse_args()


def load_default_model(checkpoint, motion):
    """(model with motion module, text encoder, vae) from the model folders (embedded files listed first)."""
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.motion import load_motion_module

    model, text_encoder, vae = load_checkpoint(resolve_model("checkpoints", checkpoint))
    module = load_motion_module(resolve_model("animatediff_models", motion))
    model = model.with_options(unet=model.unet.with_motion(module), frame_window=module.max_frames)
    return model, text_encoder, vae


def generate(model, text_encoder, vae, prompt, seed, *, steps, cfg, sampler, scheduler, frames=16, prior=None):
    """One video [F,H,W,3] float32 0..1 the way FrameFold Video Sampler + VAE Decode make it.

    ``prior``: optional ``prior(shape, generator) -> noise`` (a noise prior); default i.i.d. ``torch.randn``.
    """
    from framefold.pipelines.sampling import samplers, schedules
    from framefold.pipelines.sampling.guidance import GuidedDenoiser

    generator = torch.Generator().manual_seed(int(seed))
    h = w = 64 // vae.downscale
    shape = (frames, vae.latent_channels, h, w)
    noise = prior(shape, generator) if prior else torch.randn(shape, generator=generator)
    denoiser = GuidedDenoiser(model, text_encoder.encode(prompt), text_encoder.encode(""), cfg)
    sigmas = schedules.denoise_sigmas(schedules.alphas_cumprod_from_config(model.schedule), steps, scheduler, 1.0)
    latent = samplers.sample(sampler, denoiser, noise, sigmas, generator=generator)
    return vae.decode(latent)


def prompt_set(count, seeds, prompt_seed=2024, first_seed=5000):
    """``count`` (prompt, seed) pairs balanced over shape x motion (count // 18 per cell, the rest spread), colour
    and background drawn at random (seeded by ``prompt_seed``); seed i is ``first_seed`` + i (5000 + i by
    default, a range no training run selected weights on). ``seeds`` > 1 repeats each prompt with that many
    consecutive seeds (count stays the total)."""
    from framefold.pipelines import synthetic

    rng = np.random.default_rng(prompt_seed)
    grammar = synthetic.GRAMMAR
    cells = [(shape, motion) for shape in grammar.shapes for motion in grammar.motions]
    pairs = []
    while len(pairs) < count:
        for shape, motion in cells:
            colour = grammar.colours[rng.integers(len(grammar.colours))]
            background = grammar.backgrounds[rng.integers(len(grammar.backgrounds))]
            for _ in range(seeds):
                pairs.append((grammar.caption(colour, shape, motion, background), first_seed + len(pairs)))
    return pairs[:count]


def observed_motion(result, min_travel=8.0, min_area_ratio=1.6):
    """The motion the evaluator's figures show (for the confusion matrix): growing / shrinking when the area
    changes by ``min_area_ratio`` while the centre stays, else the main direction of travel, else ``none``."""
    tx, ty, ratio = result["travel_x"], result["travel_y"], result["area_ratio"]
    if ratio is None:
        return "none"
    if max(abs(tx), abs(ty)) < min_travel:
        return "growing" if ratio >= min_area_ratio else "shrinking" if ratio <= 1 / min_area_ratio else "none"
    if abs(tx) >= abs(ty):
        return "right" if tx > 0 else "left"
    return "down" if ty > 0 else "up"


def print_confusion(name, rows):
    """A confusion matrix of (wanted, seen) pairs: one line per wanted value, counts per seen value."""
    seen_values = sorted({seen for _, seen in rows}, key=str)
    wanted_values = sorted({wanted for wanted, _ in rows}, key=str)
    counts = collections.Counter(rows)
    width = max(len(str(v)) for v in seen_values + wanted_values) + 1
    print(f"  {name} confusion (rows: asked, columns: seen)")
    print("    " + " " * width + "".join(f"{str(v):>{width}}" for v in seen_values))
    for wanted in wanted_values:
        cells = "".join(f"{counts[(wanted, seen)]:>{width}}" for seen in seen_values)
        print(f"    {str(wanted):<{width}}{cells}")


def compare_noise_priors(model, text_encoder, vae, pairs, *, steps, cfg, sampler, scheduler):
    """Same prompts and seeds from each noise prior: median flicker and area CV, success rates."""
    from functools import partial

    from framefold.pipelines.metrics import flicker
    from framefold.pipelines.metrics.evaluator import evaluate
    from framefold.pipelines.noise import priors

    noise_priors = {
        "iid": priors.iid_noise,
        "videofusion 0.5": partial(priors.videofusion_noise, lam=0.5),
        "pyoco mixed 2": partial(priors.pyoco_mixed_noise, alpha=2.0),  # alpha 1 gives VideoFusion 0.5's noise
        "pyoco progressive 2": partial(priors.pyoco_progressive_noise, alpha=2.0),
    }
    print(f"\nnoise priors over {len(pairs)} prompt x seed pairs (flicker = mean |frame step|, 0..1):")
    for name, prior in noise_priors.items():
        flick, cv, stable, motion, every = [], [], 0, 0, 0
        for prompt, seed in pairs:
            with torch.no_grad():
                video = generate(
                    model,
                    text_encoder,
                    vae,
                    prompt,
                    seed,
                    steps=steps,
                    cfg=cfg,
                    sampler=sampler,
                    scheduler=scheduler,
                    prior=prior,
                )
            result = evaluate(video, prompt)
            flick.append(flicker(video))
            cv.append(result["area_cv"] if result["area_cv"] is not None else float("nan"))
            stable += bool(result["stability_ok"])
            motion += bool(result["motion_ok"])
            every += bool(result["all_ok"])
        n = len(pairs)
        print(
            f"  {name:<20} flicker median {np.median(flick):.4f}  area CV median {np.nanmedian(cv):.3f}  "
            f"stable {stable}/{n}  motion {motion}/{n}  all {every}/{n}",
            flush=True,
        )


def long_video_seams(model, text_encoder, vae, prompt, *, steps, cfg, scheduler="trailing", total_frames=64):
    """Mean seam ratio at the clip joins of a VidRD long video (None when the VidRD code is absent)."""
    try:
        from framefold.pipelines.metrics import seam_ratios
        from framefold.pipelines.sampling import schedules
        from framefold.pipelines.sampling.guidance import GuidedDenoiser
        from framefold.pipelines.sampling.vidrd import VidRDOptions, sample_long_video
    except ImportError as e:
        print(f"long video: skipped ({e})")
        return None
    generator = torch.Generator().manual_seed(7)
    denoiser = GuidedDenoiser(model, text_encoder.encode(prompt), text_encoder.encode(""), cfg)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    sigmas = schedules.sampling_sigmas(abar, steps, scheduler)
    h = 64 // vae.downscale
    start = time.perf_counter()
    result = sample_long_video(
        denoiser,
        (vae.latent_channels, h, h),
        total_frames,
        sigmas,
        generator=generator,
        options=VidRDOptions(clip_frames=16),
        alphas_cumprod=abar,
    )
    video = vae.decode(result.latent)
    ratios = seam_ratios(video, result.joins)
    print(
        f"long video ({total_frames} frames, {result.clips} clips, {time.perf_counter() - start:.1f} s): "
        f"seam ratios {[round(r, 2) for r in ratios]}, mean {np.mean(ratios):.2f}"
    )
    return float(np.mean(ratios))


def main():
    """Run the benchmark and print the figures."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    from framefold.pipelines.metrics.evaluator import evaluate

    t0 = time.perf_counter()
    model, text_encoder, vae = load_default_model(args.checkpoint, args.motion)
    if args.scheduler == "auto":
        from framefold.pipelines.sampling.schedules import default_spacing

        args.scheduler = default_spacing(model.schedule)
    print(f"load: {time.perf_counter() - t0:.2f} s")
    pairs = prompt_set(args.count, args.seeds, args.prompt_seed, args.first_seed)
    keys = ("colour_ok", "shape_ok", "motion_ok", "background_ok", "stability_ok", "all_ok")
    confusion = collections.defaultdict(list)
    totals = collections.Counter()
    by_attr = collections.defaultdict(collections.Counter)
    records, seconds = [], []
    for prompt, seed in pairs:
        start = time.perf_counter()
        with torch.no_grad():
            video = generate(
                model,
                text_encoder,
                vae,
                prompt,
                seed,
                steps=args.steps,
                cfg=args.cfg,
                sampler=args.sampler,
                scheduler=args.scheduler,
            )
        seconds.append(time.perf_counter() - start)
        result = evaluate(video, prompt)
        for k in keys:
            totals[k] += bool(result[k])
        for attr in ("colour", "shape", "motion", "background"):
            by_attr[attr][(result[f"want_{attr}"], bool(result[f"{attr}_ok"]))] += 1
        seen = {"colour": result["colour"], "shape": result["shape"], "background": result["background"]}
        seen["motion"] = observed_motion(result)
        for attr, value in seen.items():
            confusion[attr].append((result[f"want_{attr}"], value))
        for shape_or_motion in ("shape", "motion"):
            by_attr[f"all-correct by {shape_or_motion}"][
                (result[f"want_{shape_or_motion}"], bool(result["all_ok"]))
            ] += 1
        records.append({k: v for k, v in result.items() if k != "areas"} | {"seed": seed, "seconds": seconds[-1]})
        print(
            f"{'ok ' if result['all_ok'] else 'BAD'} {prompt!r} seed {seed}: "
            + " ".join(f"{k[:-3]}={int(bool(result[k]))}" for k in keys[:-1])
            + f" (saw {result['colour']}/{result['shape']}/{result['background']}, travel {result['travel_x']:.1f},"
            f"{result['travel_y']:.1f}, area x{(result['area_ratio'] or 0):.2f}) {seconds[-1]:.2f} s",
            flush=True,
        )
    n = len(pairs)
    print(f"\n{n} videos, {args.steps} {args.sampler} steps ({args.scheduler}), cfg {args.cfg}, {args.threads} threads")
    for k in keys:
        print(f"  {k[:-3]:<11} {totals[k] / n:6.1%}  ({totals[k]}/{n})")
    print(f"  seconds per video: mean {np.mean(seconds):.2f}, median {np.median(seconds):.2f}")
    for attr, counts in by_attr.items():
        names = sorted({name for name, _ in counts})
        print(
            f"  {attr}: "
            + ", ".join(
                f"{name} {counts[(name, True)]}/{counts[(name, True)] + counts[(name, False)]}" for name in names
            )
        )
    for attr, rows in confusion.items():
        print_confusion(attr, rows)
    if args.noise_priors:
        compare_noise_priors(
            model,
            text_encoder,
            vae,
            pairs[: args.noise_priors],
            steps=args.steps,
            cfg=args.cfg,
            sampler=args.sampler,
            scheduler=args.scheduler,
        )
    if args.long:
        long_video_seams(
            model, text_encoder, vae, pairs[0][0], steps=args.steps, cfg=args.cfg, scheduler=args.scheduler
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
