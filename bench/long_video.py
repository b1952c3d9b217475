"""VidRD long video: seam visibility of the two output assemblies (drop vs keep), peak memory, seconds.

For each configuration a fresh subprocess generates 64-frame videos (prompts x seeds), decodes them and
measures ``pipelines.metrics.seam_ratios`` at the clip joins (1.0 = a join no more visible than an ordinary
frame step; >> 1 a jump; << 1 a freeze). Configurations:

- ``vidrd`` (M 4, alpha 4, beta 0.4): the clips do not depend on the assembly, so one run is measured both ways:
  ``drop`` (later clips' M prompt frames left out of the output) and ``keep`` (whole clips concatenated);
- ``independent``: no VidRD (alpha 0, beta 0, M 0; whole clips) — what a plain clip-by-clip run gives.

The default assembly is the one whose median seam_ratio is closer to 1 in log terms (a freeze, ratio << 1, is as
visible as a jump, ratio >> 1).

Models (``--model``): ``default`` = the embedded default model (``default_model/``); ``gp`` = an analytic proxy,
the exact denoiser of a Gaussian-process video (every latent pixel an AR(1) sequence over frames with
correlation ``--rho``, time-reversible, so FNR's premise holds), figures on the latents themselves; ``tiny`` = a
tiny random UNet + motion module (mechanics only: its "videos" are noise). Prints figures; never fails on them.

Run: ``python bench/long_video.py [--model default|gp|tiny] [--steps 50] [--frames 64] [--seeds 2]``
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, statistics, sys, time
import torch
torch.set_num_threads(2)
from framefold.pipelines.sampling import schedules
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.sampling.vidrd import VidRDOptions, sample_long_video
from framefold.pipelines.metrics import seam_ratios
sys.path.insert(0, sys.argv[2])
from long_video import gp_denoiser, load_model

cfg = json.loads(sys.argv[1])
if cfg["model"] == "gp":
    from framefold.pipelines.models.bundle import ScheduleConfig
    n, schedule, kind = 16, ScheduleConfig(), f"analytic GP proxy, rho {cfg['rho']}"
    frame_shape = (3, 16, 16)
    denoisers = [gp_denoiser(n, cfg["rho"])]
    decode = lambda latent: latent.permute(0, 2, 3, 1) * 0.2 + 0.5
else:
    model, text_encoder, vae, prompts, kind = load_model(cfg["model"] == "tiny", cfg["model_dir"])
    prompts = prompts[:cfg["prompts"]]
    n, schedule = model.frame_window, model.schedule
    latent_size = cfg["size"] // vae.downscale
    frame_shape = (vae.latent_channels, latent_size, latent_size)
    negative = text_encoder.encode("")
    denoisers = [GuidedDenoiser(model, text_encoder.encode(p), negative, cfg["cfg"]) for p in prompts]
    decode = vae.decode
m = cfg["prompt_frames"]
options = VidRDOptions(n, m, cfg["alpha"], cfg["beta"], "drop" if cfg["name"] == "vidrd" else "keep")
sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(schedule), cfg["steps"],
                                   schedules.default_spacing(schedule))
ratios, seconds, records = {}, [], []
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    for denoise in denoisers:
        for seed in range(cfg["seeds"]):
            clips = {}

            def keep_final(clip, step, sigma, x):
                if step == cfg["steps"] - 1:      # the last state, at sigma 0, is the clip's clean latent
                    clips[clip] = x.clone()

            t0 = time.perf_counter()
            result = sample_long_video(denoise, frame_shape, cfg["frames"], sigmas, observer=keep_final,
                                       generator=torch.Generator().manual_seed(seed), options=options)
            seconds.append(time.perf_counter() - t0)
            records.append(list(result.recorded_shape))
            # the clips do not depend on the assembly, so one run gives both: "drop" as returned, "keep" by
            # concatenating whole clips
            assemblies = {options.overlap: (result.latent, result.joins)}
            if cfg["name"] == "vidrd":
                whole = torch.cat([clips[i] for i in sorted(clips)])[:cfg["frames"]]
                assemblies["keep"] = (whole, list(range(n, cfg["frames"], n)))
            for name, (latent, joins) in assemblies.items():
                ratios.setdefault(name, []).extend(seam_ratios(decode(latent), joins))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = {name: {"ratios": r, "median": statistics.median(r), "mean": statistics.fmean(r)} for name, r in ratios.items()}
print(json.dumps({**cfg, "model": kind, "clip_frames": n, "assemblies": summary,
                  "seconds_per_video": statistics.fmean(seconds), "recorded_shape": records[0],
                  "base_kib": base, "peak_kib": peak}))
"""

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


def main():
    """Measure the three configurations and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps per clip (paper: 50)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels")
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--model", choices=("default", "gp", "tiny"), default="default")
    parser.add_argument("--rho", type=float, default=0.95, help="frame correlation of the gp proxy")
    parser.add_argument(
        "--model-dir",
        default=None,
        help="folder with checkpoints/ and animatediff_models/ (default: the package's default_model/)",
    )
    parser.add_argument("--prompts", type=int, default=3, help="how many of the built-in prompts to use")
    parser.add_argument("--only", default=None, help="comma-separated subset of drop,keep,independent")
    args = parser.parse_args()
    folder = Path(args.model_dir) if args.model_dir else ROOT / "default_model"
    if args.model == "default" and not any((folder / "checkpoints").glob("*.safetensors")):
        print(f"no checkpoint in {folder / 'checkpoints'}: measuring the gp proxy instead")
        args.model = "gp"
    common = dict(
        steps=args.steps,
        frames=args.frames,
        seeds=args.seeds,
        size=args.size,
        cfg=args.cfg,
        model=args.model,
        rho=args.rho,
        model_dir=args.model_dir,
        prompts=args.prompts,
    )
    configs = [
        dict(name="vidrd", prompt_frames=4, alpha=4.0, beta=0.4, **common),
        dict(name="independent", prompt_frames=0, alpha=0.0, beta=0.0, **common),
    ]
    if args.only:
        configs = [c for c in configs if c["name"] in args.only.split(",")]
    for cfg in configs:
        r = measure(cfg)
        print(
            f"{r['name']} [{r['model']}] {r['frames']} frames, N={r['clip_frames']}, {r['steps']} steps: "
            f"{r['seconds_per_video']:.1f} s/video; peak RSS {r['peak_kib'] / 1024:.0f} MiB (after setup "
            f"{r['base_kib'] / 1024:.0f} MiB); recorded DSG trajectory {r['recorded_shape']}"
        )
        for name, a in r["assemblies"].items():
            print(
                f"    {name:5s} seam_ratio median {a['median']:.2f} mean {a['mean']:.2f} over {len(a['ratios'])} "
                f"joins (min {min(a['ratios']):.2f} max {max(a['ratios']):.2f}); |log| of the median "
                f"{abs(math.log(a['median'])) if a['median'] > 0 else float('inf'):.2f}"
            )


if __name__ == "__main__":
    main()
