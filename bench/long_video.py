"""VidRD long video: seam visibility and within-clip flicker of independent clips, the VidRD paper defaults and the
tuned setting, side by side, with peak memory and seconds.

For each configuration a fresh subprocess generates 64-frame videos over prompt x seed pairs with the long-video
example's settings (``example_workflows/long_video_vidrd.json``: 20 DDIM steps, trailing spacing, cfg 2, PNS) and
measures, on the decoded frames, ``pipelines.metrics.seam_ratios`` at the clip joins (1.0 = a join no more visible
than an ordinary frame step; >> 1 a jump; << 1 a freeze) and the within-clip flicker (mean |frame step| over the
steps that are not joins). Configurations (``--only`` picks a subset):

- ``independent``: no VidRD (M 0, alpha 0, beta 0; whole clips) - what a plain clip-by-clip run gives;
- ``paper``: the paper's defaults as the example had them before (M 4, alpha 4, beta 0.4, overlap drop);
- ``paper-keep``: the same clips concatenated whole (overlap keep);
- ``tuned``: the long-video example's setting (:data:`TUNED`: M 4, alpha 4, beta 0.7, overlap drop_first), see
  ``pipelines/sampling/vidrd.py`` for why.

Models (``--model``): ``default`` = the embedded default model (``default_model/``); ``gp`` = an analytic proxy,
the exact denoiser of a Gaussian-process video (every latent pixel an AR(1) sequence over frames with
correlation ``--rho``, time-reversible, so FNR's premise holds), figures on the latents themselves; ``tiny`` = a
tiny random UNet + motion module (mechanics only: its "videos" are noise). Prints figures; never fails on them.

Run: ``python bench/long_video.py [--model default|gp|tiny] [--pairs 8] [--frames 64] [--only tuned,paper]``
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, statistics, sys, time
import torch
torch.set_num_threads(1)
from framefold.pipelines.generate import LongVideoOptions, generate_long_video
from framefold.pipelines.sampling import schedules
from framefold.pipelines.sampling.vidrd import VidRDOptions, sample_long_video
from framefold.pipelines.metrics.quality import frame_differences, seam_ratios
sys.path.insert(0, sys.argv[2])
from long_video import PAIRS, gp_denoiser, load_model

cfg = json.loads(sys.argv[1])
vidrd = {k: cfg[k] for k in ("prompt_frames", "alpha", "beta", "overlap")}
pairs = PAIRS[: cfg["pairs"]]
if cfg["model"] == "gp":
    from framefold.pipelines.models.bundle import ScheduleConfig
    n, kind = 16, f"analytic GP proxy, rho {cfg['rho']}"
    denoise = gp_denoiser(n, cfg["rho"])
    schedule = ScheduleConfig()
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(schedule), cfg["steps"],
                                       schedules.default_spacing(schedule))

    def generate(prompt, seed):
        result = sample_long_video(denoise, (3, 16, 16), cfg["frames"], sigmas, generator=torch.Generator().manual_seed(seed),
                                   options=VidRDOptions(n, **vidrd))
        return result.latent.permute(0, 2, 3, 1) * 0.2 + 0.5, result.joins
else:
    model, text_encoder, vae, _, kind = load_model(cfg["model"] == "tiny", cfg["model_dir"])
    negative = text_encoder.encode("")
    size = cfg["size"] // vae.downscale
    empty = torch.zeros(16, vae.latent_channels, size, size)

    def generate(prompt, seed):
        options = LongVideoOptions(steps=cfg["steps"], cfg=cfg["cfg"], sampler="ddim", spacing=cfg["spacing"],
                                   seed=seed, total_frames=cfg["frames"], **vidrd)
        result = generate_long_video(model, text_encoder.encode(prompt), negative, empty, options)
        return vae.decode(result.latent), result.joins

ratios, flickers, seconds = [], [], []
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    for prompt, seed in pairs:
        t0 = time.perf_counter()
        frames, joins = generate(prompt, seed)
        seconds.append(time.perf_counter() - t0)
        ratios.extend(seam_ratios(frames, joins))
        steps = frame_differences(frames)
        inside = torch.ones_like(steps, dtype=torch.bool)
        inside[[j - 1 for j in joins]] = False
        flickers.append(float(steps[inside].mean()))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({**cfg, "model": kind, "ratios": ratios, "median": statistics.median(ratios),
                  "mean": statistics.fmean(ratios), "flicker": statistics.fmean(flickers),
                  "seconds_per_video": statistics.fmean(seconds), "base_kib": base, "peak_kib": peak}))
"""

# prompt x seed pairs: the example's prompt and seed first, then every motion word, two seeds each
PAIRS = [
    ("a blue square moving left on a white background", 7),
    ("a red circle moving right on a black background", 0),
    ("a green triangle moving up on a gray background", 1),
    ("a yellow square moving down on a black background", 2),
    ("a blue square moving left on a white background", 3),
    ("a red circle moving right on a black background", 4),
    ("a green triangle moving up on a gray background", 5),
    ("a yellow square moving down on a black background", 6),
    ("a red square growing on a white background", 8),
    ("a blue circle shrinking on a gray background", 9),
]

PROMPTS = [
    "a red circle moving right on a black background",
    "a blue square moving down on a white background",
    "a green triangle growing on a gray background",
]


def gp_denoiser(frames, rho):
    """Exact x0 of a video whose pixels are unit-variance AR(1) sequences over frames (covariance rho^|i-j|)."""
    import torch

    idx = torch.arange(frames, dtype=torch.float64)
    cov = rho ** (idx[:, None] - idx[None, :]).abs()

    def denoise(x, sigma):
        flat = x.double().reshape(x.shape[0], -1)
        system = cov + sigma**2 * torch.eye(frames, dtype=torch.float64)
        return (cov @ torch.linalg.solve(system, flat)).reshape(x.shape).to(x.dtype)

    return denoise


def load_model(tiny=False, model_dir=None):
    """``(DiffusionModel, TextEncoder, VAE, prompts, description)``: the default model (or the checkpoint +
    motion module under ``model_dir``, e.g. a training export), or a tiny random one."""
    import torch

    folder = Path(model_dir) if model_dir else ROOT / "default_model"
    if not tiny:
        checkpoints = sorted((folder / "checkpoints").glob("*.safetensors"))
        if not checkpoints:
            raise FileNotFoundError(f"no checkpoint in {folder / 'checkpoints'}")
        from framefold.pipelines.loading.checkpoint import load_checkpoint
        from framefold.pipelines.loading.motion import load_motion_module

        model, text_encoder, vae = load_checkpoint(checkpoints[0])
        motion = sorted((folder / "animatediff_models").glob("*.safetensors"))
        if motion:
            mm = load_motion_module(motion[0])
            model = model.with_options(unet=model.unet.with_motion(mm), frame_window=mm.max_frames)
        return model, text_encoder, vae, PROMPTS, f"{checkpoints[0]} + {motion[0].name if motion else 'no motion'}"
    from framefold.pipelines.models.bundle import Conditioning, DiffusionModel
    from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
    from framefold.pipelines.models.unet import UNetConfig, UNetModel
    from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig

    torch.manual_seed(0)
    unet = UNetModel(
        UNetConfig(
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_levels=(1,),
            num_heads=2,
            context_dim=64,
            norm_groups=8,
        )
    )
    mm = MotionModule(
        MotionModuleConfig(block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4, norm_groups=8)
    )
    model = DiffusionModel(unet=unet.with_motion(mm), frame_window=16)
    vae = VAE(AutoencoderKL(AutoencoderKLConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1, norm_groups=8)))

    class RandomText:
        """A stand-in text encoder: a fixed random embedding per prompt."""

        def encode(self, prompt):
            g = torch.Generator().manual_seed(sum(map(ord, prompt)))
            return Conditioning(torch.randn(1, 77, 64, generator=g), prompt)

    return model, RandomText(), vae, PROMPTS[:1], "tiny random UNet + motion module (mechanics only)"


def measure(cfg):
    """One configuration in a fresh process (peak RSS is per process)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg), str(Path(__file__).resolve().parent)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"run failed for {cfg}:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# the long-video example's setting (scripts/make_example_workflows.py long_video_vidrd), tuned on the default model
TUNED = dict(prompt_frames=4, alpha=4.0, beta=0.7, overlap="drop_first")


def configurations():
    """``{name: VidRD fields}``: independent clips, the paper's defaults (drop and keep), the tuned setting."""
    return {
        "independent": dict(prompt_frames=0, alpha=0.0, beta=0.0, overlap="keep"),
        "paper": dict(prompt_frames=4, alpha=4.0, beta=0.4, overlap="drop"),
        "paper-keep": dict(prompt_frames=4, alpha=4.0, beta=0.4, overlap="keep"),
        "tuned": TUNED,
    }


def main():
    """Measure the configurations and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps per clip (the example: 20)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=8, help=f"prompt x seed pairs (at most {len(PAIRS)})")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--spacing", default="trailing")
    parser.add_argument("--model", choices=("default", "gp", "tiny"), default="default")
    parser.add_argument("--rho", type=float, default=0.95, help="frame correlation of the gp proxy")
    parser.add_argument(
        "--model-dir",
        default=None,
        help="folder with checkpoints/ and animatediff_models/ (default: the package's default_model/)",
    )
    parser.add_argument("--only", default=None, help="comma-separated subset of independent,paper,paper-keep,tuned")
    args = parser.parse_args()
    folder = Path(args.model_dir) if args.model_dir else ROOT / "default_model"
    if args.model == "default" and not any((folder / "checkpoints").glob("*.safetensors")):
        print(f"no checkpoint in {folder / 'checkpoints'}: measuring the gp proxy instead")
        args.model = "gp"
    common = dict(
        steps=args.steps,
        frames=args.frames,
        pairs=min(args.pairs, len(PAIRS)),
        size=args.size,
        cfg=args.cfg,
        spacing=args.spacing,
        model=args.model,
        rho=args.rho,
        model_dir=args.model_dir,
    )
    configs = configurations()
    names = args.only.split(",") if args.only else list(configs)
    for name in names:
        r = measure(dict(name=name, **configs[name], **common))
        low, high = min(r["ratios"]), max(r["ratios"])
        print(
            f"{name:11s} M {r['prompt_frames']} alpha {r['alpha']} beta {r['beta']} {r['overlap']:10s} "
            f"seam_ratio median {r['median']:.2f} mean {r['mean']:.2f} ({len(r['ratios'])} joins, {low:.2f}..{high:.2f})"
            f"; within-clip flicker {r['flicker']:.4f}; {r['seconds_per_video']:.1f} s/video, peak RSS "
            f"{r['peak_kib'] / 1024:.0f} MiB [{r['model']}, {r['pairs']} pairs, {r['frames']} frames]",
            flush=True,
        )


if __name__ == "__main__":
    main()
