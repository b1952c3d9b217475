"""Train the embedded default model (framefold-tiny) from scratch on procedural videos.

    python scripts/train_default_model.py --state /tmp/ff_train/state.pt --out default_model \
        --vae-minutes 10 --image-minutes 12 --video-minutes 50

Stages: ``vae`` -> ``text`` (only with ``--text-minutes``: the text encoder trained CLIP-style against
clips, then frozen) -> ``image`` (UNet + text encoder on single frames) -> ``video`` (UNet + motion module +
text encoder on 16-frame clips) -> ``done``. Each stage runs for its step count or its time budget,
whichever comes first. The run saves its full state (weights, optimizer, EMA, stage, step, losses) to
``--state`` every ``--save-every`` seconds and at every stage change, and resumes from it when it
exists; during the diffusion stages each save also exports the shippable files to ``--out``:
``checkpoints/framefold-tiny.safetensors`` and ``animatediff_models/framefold-tiny-motion.safetensors``.
Losses go to stdout as JSON lines; a tqdm bar goes to stderr. See ``training/steps.py``.

The defaults reproduce session 1's weights (epsilon prediction); the shipped weights are fine-tunes of them
with the options below (the recipe is in default_model/README.md). Options tried in session 2 to make the
motion words steer the motion (none got there on its own): ``--prediction
v_prediction --zero-terminal-snr --offset-noise 0 --high-noise-fraction 0.3`` (the caption must supply the
layout at t = T), ``--still-captions`` (image steps without motion words), ``--deep`` (a third UNet level),
``--vae-from OLD_STATE`` (keep a trained VAE, start at the image stage), ``--finetune-from OLD_STATE``
(start the video stage from an earlier run's weights, optionally ``--reset-text-encoder``).

Session 3 found why the motion words never steer the motion (default_model/README.md): the text encoder
trained through the UNet's loss keeps them out of the padding tokens that cross-attention reads. The options
for that: ``--text-minutes N`` (contrastive text stage, then a frozen text encoder; with ``--finetune-from``
it runs before the video stage), ``--freeze-text`` (keep an earlier run's text encoder), and
``--terminal-every N --terminal-clips K`` (v + zero SNR only: every N-th video step is a t = T step against
the mean of K clips per caption).

Session 4: ``--terminal-table K`` computes those means once, for every caption of the grammar over K layouts
each (kept beside the state file), so a terminal step costs one UNet pass on ``--terminal-batch`` captions
instead of rendering and encoding K clips per caption; ``--terminal-motion-weight MOTION=W`` draws the
captions of a motion W times as often (growing/shrinking learned last).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from framefold.pipelines import synthetic
from framefold.pipelines.models.bundle import ScheduleConfig
from framefold.training import steps as training

STAGES = ("vae", "text", "image", "video", "done")
DIFFUSION_STAGES = ("image", "video")


def parse_args(argv=None):
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", default="/tmp/ff_train/state.pt", help="training state file (resumed if present)")
    p.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / "default_model"),
        help="folder receiving checkpoints/ and animatediff_models/",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--micro", action="store_true", help="use the micro config (tests)")
    p.add_argument("--vae-steps", type=int, default=100000)
    p.add_argument("--vae-minutes", type=float, default=10.0)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--vae-crop", type=int, default=32)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--text-steps", type=int, default=100000)
    p.add_argument(
        "--text-minutes",
        type=float,
        default=0.0,
        help="contrastive text-encoder stage (0 = skip it and train the text encoder with the UNet; "
        "otherwise the text encoder is frozen in the diffusion stages)",
    )
    p.add_argument(
        "--freeze-text",
        action="store_true",
        help="keep the text encoder fixed in the diffusion stages (implied by --text-minutes > 0; use it "
        "with --finetune-from a run that had the text stage)",
    )
    p.add_argument("--text-batch", type=int, default=64, help="caption/clip pairs per text step")
    p.add_argument("--text-lr", type=float, default=1e-3)
    p.add_argument("--image-steps", type=int, default=100000)
    p.add_argument("--image-minutes", type=float, default=12.0)
    p.add_argument("--image-batch", type=int, default=32)
    p.add_argument("--video-steps", type=int, default=100000)
    p.add_argument("--video-minutes", type=float, default=50.0)
    p.add_argument("--video-batch", type=int, default=2, help="clips of 16 frames per step")
    p.add_argument("--video-lr", type=float, default=5e-4)
    p.add_argument(
        "--image-every",
        type=int,
        default=3,
        help="in the video stage, every N-th step is an image step (joint image-video training; 0 = never)",
    )
    p.add_argument(
        "--terminal-every",
        type=int,
        default=0,
        help="in the video stage, every N-th step (that is not an image step) is a t = T step against the "
        "mean of --terminal-clips clips per caption (v-prediction + zero terminal SNR only; 0 = never)",
    )
    p.add_argument("--terminal-clips", type=int, default=8)
    p.add_argument(
        "--terminal-focus",
        metavar="'COLOUR SHAPE BACKGROUND'",
        help="for the first --terminal-focus-steps video steps, terminal steps draw only this colour, shape "
        "and background (any motion): a narrow set on which the motion words start to act sooner",
    )
    p.add_argument("--terminal-focus-steps", type=int, default=0)
    p.add_argument(
        "--terminal-table",
        type=int,
        default=0,
        metavar="K",
        help="terminal steps take their targets from a table of mean latent clips of every caption, each "
        "over K layouts, computed once at the start of the video stage (0 = render K = "
        "--terminal-clips clips per step instead)",
    )
    p.add_argument("--terminal-batch", type=int, default=8, help="captions per terminal step with --terminal-table")
    p.add_argument(
        "--terminal-motion-weight",
        action="append",
        default=[],
        metavar="MOTION=W",
        help="with --terminal-table: draw captions with this motion W times as often (repeatable)",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cfg-dropout", type=float, default=0.1)
    p.add_argument(
        "--offset-noise",
        type=float,
        default=0.1,
        help="std of the per-clip, per-channel constant added to the noise (use 0 with zero terminal SNR)",
    )
    p.add_argument("--prediction", choices=("epsilon", "v_prediction"), default="epsilon")
    p.add_argument(
        "--zero-terminal-snr",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="rescale the schedule to zero SNR at t = T (Lin et al. 2023; sample with trailing spacing)",
    )
    p.add_argument(
        "--high-noise-fraction",
        type=float,
        default=0.0,
        help="fraction of the diffusion clips whose timestep comes from [--high-noise-from, T)",
    )
    p.add_argument(
        "--still-captions",
        action="store_true",
        help="image steps use captions without the motion phrase (a single frame does not show it)",
    )
    p.add_argument("--deep", action="store_true", help="use training.deep_config() (three UNet levels)")
    p.add_argument("--high-noise-from", type=int, default=900)
    p.add_argument(
        "--vae-from",
        metavar="STATE",
        help="take the trained VAE (and its scaling factor) from an earlier run's state file and start "
        "at the image stage",
    )
    p.add_argument(
        "--reset-text-encoder",
        action="store_true",
        help="with --finetune-from: start the text encoder from fresh weights (see the module docstring)",
    )
    p.add_argument(
        "--finetune-from",
        metavar="STATE",
        help="start the video stage from the (EMA) weights of an earlier run's state file, with this "
        "run's schedule (how the shipped weights were moved from epsilon to v + zero SNR), or from the "
        "shipped files of a model folder (e.g. default_model)",
    )
    p.add_argument(
        "--shape-pairs-every",
        type=int,
        default=0,
        metavar="N",
        help="in the video stage, every N-th step (that is not an image step) is a paired-shape step: layouts "
        "rendered as every shape with shared noise, the loss weighted where the shapes differ "
        "(training.shape_pair_step; 0 = never)",
    )
    p.add_argument("--shape-pair-layouts", type=int, default=2, help="layouts per paired-shape step")
    p.add_argument(
        "--shape-pair-frames",
        action="store_true",
        help="paired-shape steps take one frame per layout through the image UNet (cheaper: use more layouts)",
    )
    p.add_argument("--shape-pair-t-from", type=int, default=200, help="paired-shape steps draw t from [this, T)")
    p.add_argument(
        "--shape-object-weight", type=float, default=4.0, help="extra loss weight where the shapes' renders differ"
    )
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between saves")
    p.add_argument("--log-every", type=int, default=10)
    return p.parse_args(argv)


def new_state(model):
    """Fresh training state."""
    return {"stage": "vae", "step": 0, "stage_seconds": 0.0, "losses": {}, "durations": {}}


def save_state(path, model, optimizer, ema, state, aligner=None):
    """Write everything needed to resume (atomic: temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer else None,
        "ema": ema.state_dict() if ema else None,
        "state": json.dumps(state),
        "scaling_factor": float(model.vae.config.scaling_factor),
        "aligner": aligner.state_dict() if aligner is not None else None,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def text_stage_enabled(args):
    """Whether the run has the contrastive text stage (and so a frozen text encoder afterwards)."""
    return args.text_minutes > 0 and args.text_steps > 0


def text_frozen(args):
    """Whether the diffusion stages leave the text encoder as it is."""
    return text_stage_enabled(args) or args.freeze_text


def make_optimizer(model, stage, args, aligner=None):
    """AdamW over the VAE (stage vae), the text encoder + its aligner (stage text) or UNet + motion (+ text
    encoder unless it had its own stage) in the diffusion stages."""
    if stage == "vae":
        return torch.optim.AdamW(model.vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    if stage == "text":
        params = list(model.text.parameters()) + list(aligner.parameters())
        return torch.optim.AdamW(params, lr=args.text_lr, weight_decay=0.01)
    params = model.denoiser_parameters(include_text=not text_frozen(args))
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)


def export(model, ema, out):
    """Write the shippable files."""
    out = Path(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "animatediff_models").mkdir(parents=True, exist_ok=True)
    training.export_model(
        model,
        out / "checkpoints" / "framefold-tiny.safetensors",
        out / "animatediff_models" / "framefold-tiny-motion.safetensors",
        ema=ema,
    )


@torch.no_grad()
def measure_scaling_factor(model, seed):
    """1 / std of the VAE latents of 64 random frames."""
    rng = training.step_rng(seed, "vae", 10**9)
    pixels = training.vae_batch(rng, 64, None)
    mean, _ = model.vae.encode_moments(pixels)
    return 1.0 / float(mean.std())


def read_state_file(model, path, only_vae=False):
    """Read a state file written by ``save_state`` into ``model`` (all weights, or only the VAE), with the VAE's
    scaling factor; returns the file's contents and its training state (stage, losses, durations)."""
    blob = torch.load(path, weights_only=True)
    training.set_scaling_factor(model, blob["scaling_factor"])
    if only_vae:
        model.vae.load_state_dict({k[len("vae.") :]: v for k, v in blob["model"].items() if k.startswith("vae.")})
    else:
        model.load_state_dict(blob["model"])
    return blob, json.loads(blob["state"])


def start_from_vae(model, path, args):
    """Load only the VAE of an earlier run's state file; return a state that starts after the VAE stage."""
    _, earlier = read_state_file(model, path, only_vae=True)
    state = new_state(model)
    state.update(stage="text" if text_stage_enabled(args) else "image", vae_from=str(path))
    state["losses"]["vae"] = earlier["losses"].get("vae")
    state["durations"]["vae"] = earlier["durations"].get("vae")
    print(json.dumps({"event": "vae_from", "from": str(path)}), flush=True)
    return state


def start_finetune(model, path, reset_text_encoder=False, seed=0, text_stage=False):
    """Load an earlier run's weights (its EMA where saved; or the shipped files when ``path`` is a model folder
    such as ``default_model``) and return a state that starts at the video stage (or at the text stage first,
    with ``text_stage``).

    ``reset_text_encoder`` re-initialises the text encoder (seeded): one trained first on single frames has
    learned to keep the motion words out of every later token, and cross-attention reads mostly the later
    (padding) tokens, so the motion words never reach the UNet; fine-tuning alone does not undo that.
    """
    if Path(path).is_dir():
        training.load_exported_model(model, path)
        blob, earlier = {}, {}
    else:
        blob, earlier = read_state_file(model, path)
    if blob.get("ema"):
        ema = training.EMA(model.denoiser_parameters())
        ema.load_state_dict(blob["ema"])
        ema.copy_to(model.denoiser_parameters())
    if reset_text_encoder:
        from framefold.pipelines.models.clip import CLIPTextModel

        torch.manual_seed(seed)
        model.text.load_state_dict(CLIPTextModel(model.text.config).state_dict())
    state = new_state(model)
    state.update(
        stage="text" if text_stage else "video",
        finetuned_from={"file": str(path), "losses": earlier.get("losses"), "durations": earlier.get("durations")},
    )
    print(json.dumps({"event": "finetune", "from": str(path)}), flush=True)
    return state


def stage_limits(stage, args):
    """(max steps, max seconds) of a stage."""
    return {
        "vae": (args.vae_steps, args.vae_minutes * 60),
        "text": (args.text_steps, args.text_minutes * 60),
        "image": (args.image_steps, args.image_minutes * 60),
        "video": (args.video_steps, args.video_minutes * 60),
    }[stage]


def lr_at(stage, step, seconds, args):
    """Warm-up then a cosine decay over the stage's time budget (time-based: the budget is wall time)."""
    base = {"vae": args.vae_lr, "text": args.text_lr, "image": args.lr, "video": args.video_lr}[stage]
    steps, budget = stage_limits(stage, args)
    progress = max(min(1.0, seconds / budget), min(1.0, step / steps))
    warm = min(1.0, (step + 1) / 30) if stage != "video" else 1.0
    import math

    return base * warm * (0.15 + 0.85 * 0.5 * (1 + math.cos(math.pi * progress)))


def next_stage(stage, state, args):
    """The stage after ``stage``: the text stage only when enabled, no image stage in a fine-tune (it keeps
    the earlier run's image model)."""
    skipped = set() if text_stage_enabled(args) else {"text"}
    if state.get("finetuned_from"):
        skipped.add("image")
    later = STAGES[STAGES.index(stage) + 1 :]
    return next(s for s in later if s not in skipped)


def run_step(model, stage, step, args, abar, aligner=None, table=None):
    """One training step of ``stage``: returns (loss tensor, figures dict)."""
    rng = training.step_rng(args.seed, stage, step)
    gen = training.step_generator(args.seed, stage, step)
    if stage == "text":
        videos, _, scenes = synthetic.random_batch(rng, args.text_batch)
        return training.text_alignment_step(model, aligner, videos, scenes)
    if stage == "vae":
        full = step % 4 == 3
        pixels = training.vae_batch(
            rng, args.vae_batch // 4 if full else args.vae_batch, None if full else args.vae_crop
        )
        return training.vae_step(model, pixels, gen)
    if stage == "image" or (stage == "video" and args.image_every and step % args.image_every == args.image_every - 1):
        scenes = [synthetic.random_scene(rng) for _ in range(args.image_batch)]
        frames = [synthetic.render_scene(s)[rng.integers(s.frames)] for s in scenes]
        videos = torch.stack([torch.from_numpy(f) for f in frames]).numpy()[:, None]
        latents = training.encode_latents(model, videos, gen)
        texts = [training.still_caption(s) if args.still_captions else s.caption for s in scenes]
        captions = training.caption_dropout(texts, rng, args.cfg_dropout)
        return training.diffusion_step(
            model,
            latents,
            captions,
            1,
            abar,
            gen,
            use_motion=False,
            offset_noise=args.offset_noise,
            high_noise_fraction=args.high_noise_fraction,
            high_noise_from=args.high_noise_from,
        )
    if stage == "video" and args.shape_pairs_every and step % args.shape_pairs_every == args.shape_pairs_every - 1:
        return training.shape_pair_step(
            model,
            rng,
            gen,
            abar,
            layouts=args.shape_pair_layouts,
            t_from=args.shape_pair_t_from,
            object_weight=args.shape_object_weight,
            single_frames=args.shape_pair_frames,
        )
    if stage == "video" and args.terminal_every and step % args.terminal_every == args.terminal_every - 1:
        focused = step < args.terminal_focus_steps
        if table is not None and not (focused and args.terminal_focus):
            combos, means, weights = table
            return training.terminal_table_step(
                model, combos, means, args.terminal_batch, rng, gen, args.cfg_dropout, weights=weights
            )
        return terminal_step(model, rng, gen, args, focused=focused)
    videos, captions, _ = synthetic.random_batch(rng, args.video_batch)
    latents = training.encode_latents(model, videos, gen)
    captions = training.caption_dropout(captions, rng, args.cfg_dropout)
    return training.diffusion_step(
        model,
        latents,
        captions,
        videos.shape[1],
        abar,
        gen,
        use_motion=True,
        offset_noise=args.offset_noise,
        high_noise_fraction=args.high_noise_fraction,
        high_noise_from=args.high_noise_from,
    )


def focus_scene(rng, focus):
    """A scene of the ``--terminal-focus`` colour, shape and background with a random motion."""
    colour, shape, background = focus.split()
    motion = synthetic.GRAMMAR.motions[rng.integers(len(synthetic.GRAMMAR.motions))]
    return synthetic.layout_scene(colour, shape, motion, background, rng)


def terminal_step(model, rng, gen, args, focused=False):
    """A t = T step: ``--video-batch`` captions, ``--terminal-clips`` clips (layouts) of each."""
    if focused and args.terminal_focus:
        scenes = [focus_scene(rng, args.terminal_focus) for _ in range(args.video_batch)]
    else:
        scenes = [synthetic.random_scene(rng) for _ in range(args.video_batch)]
    clips = [
        synthetic.layout_scene(s.colour, s.shape, s.motion, s.background, rng)
        for s in scenes
        for _ in range(args.terminal_clips)
    ]
    with torch.no_grad():
        latents = training.encode_latents(model, np.stack([synthetic.render_scene(c) for c in clips]), gen)
    captions = training.caption_dropout([s.caption for s in scenes], rng, args.cfg_dropout)
    return training.terminal_mean_step(model, latents, captions, synthetic.FRAMES, gen)


def parse_motion_weights(specs):
    """``--terminal-motion-weight MOTION=W`` options -> ``{motion: W}``; a bad option stops the run."""
    weights = {}
    for spec in specs:
        motion, _, value = spec.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if motion not in synthetic.GRAMMAR.motions or not weight >= 0:
            raise SystemExit(
                f"--terminal-motion-weight wants MOTION=W with MOTION one of "
                f"{', '.join(synthetic.GRAMMAR.motions)} and W >= 0; got {spec!r}"
            )
        weights[motion] = weight
    return weights


def layout_fingerprint():
    """A few seeded scene layouts as text: a saved table made before the generator changed is not reused."""
    scenes = [synthetic.layout_scene(*combo, 0) for combo in synthetic.GRAMMAR.combinations()[:24:4]]
    return repr([(s.start, s.end, s.start_size, s.end_size) for s in scenes])


def terminal_table(model, args):
    """The ``--terminal-table`` targets ``(combinations, means, draw weights or None)``, or None.

    The means are computed once, then kept beside the state file."""
    if not (args.terminal_table and args.terminal_every):
        return None
    path = Path(args.state).with_suffix(f".terminal{args.terminal_table}.pt")
    saved = torch.load(path, weights_only=True) if path.exists() else None
    if saved is not None and saved.get("layouts") == layout_fingerprint():
        combos, means = [tuple(c) for c in saved["combinations"]], saved["means"]
    else:
        if saved is not None:
            print(json.dumps({"event": "terminal_table_stale", "file": str(path)}), flush=True)
        started = time.time()
        model.eval()
        combos, means = training.terminal_mean_table(model, args.terminal_table, args.seed)
        torch.save({"combinations": combos, "means": means, "layouts": layout_fingerprint()}, path)
        print(
            json.dumps(
                {
                    "event": "terminal_table",
                    "captions": len(combos),
                    "clips_each": args.terminal_table,
                    "seconds": round(time.time() - started, 1),
                }
            ),
            flush=True,
        )
    by_motion = parse_motion_weights(args.terminal_motion_weight)
    weights = [by_motion.get(combo[2], 1.0) for combo in combos] if by_motion else None
    return combos, means, weights


def main(argv=None):
    """Train (or resume) until every stage is done."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from tqdm import tqdm

    config = training.micro_config() if args.micro else training.deep_config() if args.deep else training.TinyConfig()
    config.schedule = ScheduleConfig(prediction_type=args.prediction, zero_terminal_snr=args.zero_terminal_snr)
    if args.terminal_focus:
        parsed = synthetic.GRAMMAR.parse(args.terminal_focus)
        if len(args.terminal_focus.split()) != 3 or None in (parsed["colour"], parsed["shape"], parsed["background"]):
            raise SystemExit(
                f"--terminal-focus wants 'COLOUR SHAPE BACKGROUND' of the grammar, got {args.terminal_focus!r}"
            )
    parse_motion_weights(args.terminal_motion_weight)  # refuse a bad option before any work
    if args.terminal_every and not (args.prediction == "v_prediction" and args.zero_terminal_snr):
        raise SystemExit(
            "--terminal-every needs --prediction v_prediction --zero-terminal-snr "
            "(at t = T the target is then -x0, whose mean over clips the terminal steps use)"
        )
    model = training.TinyModel(config)
    state = new_state(model)
    blob = None
    if Path(args.state).exists():
        blob, state = read_state_file(model, args.state)
        print(json.dumps({"event": "resumed", "stage": state["stage"], "step": state["step"]}), flush=True)
    elif args.vae_from:
        state = start_from_vae(model, args.vae_from, args)
    elif args.finetune_from:
        state = start_finetune(
            model, args.finetune_from, args.reset_text_encoder, args.seed, text_stage=text_stage_enabled(args)
        )
    aligner = training.TextVideoAligner(model.text.config.hidden_size)
    if blob is not None and blob.get("aligner"):
        aligner.load_state_dict(blob["aligner"])
    abar = training.alphas_cumprod(config.schedule)
    ema = None
    while state["stage"] != "done":
        stage = state["stage"]
        optimizer = make_optimizer(model, stage, args, aligner)
        if stage in DIFFUSION_STAGES:
            ema = training.EMA(model.denoiser_parameters(), decay=0.995)
        if blob is not None and blob["optimizer"] is not None:
            optimizer.load_state_dict(blob["optimizer"])
            if ema is not None and blob["ema"] is not None:
                ema.load_state_dict(blob["ema"])
        blob = None
        max_steps, budget = stage_limits(stage, args)
        table = terminal_table(model, args) if stage == "video" else None
        model.train()
        if stage != "vae":
            model.vae.eval().requires_grad_(False)
        if stage in DIFFUSION_STAGES and text_frozen(args):
            model.text.requires_grad_(False)
        bar = tqdm(
            desc=stage,
            initial=state["step"],
            total=max_steps if max_steps < 100000 else None,
            file=sys.stderr,
            mininterval=5,
        )
        started = time.time() - state["stage_seconds"]
        last_save = time.time()
        running = None
        while state["step"] < max_steps and time.time() - started < budget:
            step = state["step"]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(stage, step, time.time() - started, args)
            loss, parts = run_step(model, stage, step, args, abar, aligner, table)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
            if ema is not None:
                ema.update()
            running = float(loss) if running is None else 0.95 * running + 0.05 * float(loss)
            state["step"] = step + 1
            state["stage_seconds"] = time.time() - started
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            if state["step"] % args.log_every == 0:
                state["losses"][stage] = running
                print(
                    json.dumps(
                        {
                            "stage": stage,
                            "step": state["step"],
                            "loss": round(float(loss), 5),
                            "ema_loss": round(running, 5),
                            **{k: round(v, 5) for k, v in parts.items()},
                            "lr": optimizer.param_groups[0]["lr"],
                            "seconds": round(state["stage_seconds"], 1),
                        }
                    ),
                    flush=True,
                )
            if time.time() - last_save > args.save_every:
                save_state(args.state, model, optimizer, ema, state, aligner if stage == "text" else None)
                if stage in DIFFUSION_STAGES:
                    export(model, ema, args.out)
                last_save = time.time()
        bar.close()
        state["losses"][stage] = running
        state["durations"][stage] = state["stage_seconds"]
        if stage == "vae":
            factor = measure_scaling_factor(model, args.seed)
            training.set_scaling_factor(model, factor)
            print(json.dumps({"event": "scaling_factor", "value": factor}), flush=True)
        state["stage"] = next_stage(stage, state, args)
        state["step"] = 0
        state["stage_seconds"] = 0.0
        print(
            json.dumps(
                {"event": "stage_done", "stage": stage, "seconds": state["durations"][stage], "final_ema_loss": running}
            ),
            flush=True,
        )
        save_state(args.state, model, None, ema, state)
        if stage in DIFFUSION_STAGES:
            export(model, ema, args.out)
    print(json.dumps({"event": "done", "durations": state["durations"], "losses": state["losses"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
