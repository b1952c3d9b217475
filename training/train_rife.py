"""Train the tiny RIFE 4.7 IFNet shipped in ``default_model/frame_interpolation/`` on procedural videos.

    python training/train_rife.py [--steps 900] [--seed 0] [--out default_model/frame_interpolation/...]

Data: clips of :mod:`pipelines.synthetic` rendered with 33 frames (about 1 px of motion per frame at 64x64).
A sample is two frames ``k`` apart (k = 2 mostly, sometimes 4) and a frame between them at ``t = j / k``;
pairs are randomly swapped (with ``t -> 1 - t``) and flipped. Loss: L1 of the final merged frame plus half
the mean L1 of the coarser blocks' merges (they share the flow, so this guides the coarse flow early), each
weighted ``1 + 20 |img0 - img1|`` per pixel so the moving object, not the static background, dominates.
Adam with a cosine learning rate. Same key names as the 4.7 release, narrower blocks (the file is < 1 MB);
it loads through :func:`pipelines.loading.rife.load_rife` like a released file. One thread, a few minutes.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from framefold.pipelines import synthetic
from framefold.pipelines.interpolation.ifnet import IFNet, IFNetConfig
from framefold.pipelines.loading.files import write_safetensors

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "default_model" / "frame_interpolation" / "framefold-tiny-rife.safetensors"
TINY_WIDTHS = (32, 24, 16, 16)
CLIP_FRAMES = 33


def parse_args() -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clips", type=int, default=128, help="clips in the training pool (uint8 in memory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args()


def render_pool(count: int, seed: int) -> np.ndarray:
    """``count`` random clips as uint8 ``[count, 33, 64, 64, 3]`` (seeded)."""
    rng = np.random.default_rng([seed, 1])
    clips = [synthetic.render_scene(synthetic.random_scene(rng, frames=CLIP_FRAMES)) for _ in range(count)]
    return np.round(np.stack(clips) * 255).astype(np.uint8)


def draw_batch(pool: np.ndarray, batch: int, rng: np.random.Generator):
    """(img0, img1, target) ``[B, 3, 64, 64]`` float and t ``[B]`` from random clips, gaps and times."""
    a, b, g, ts = [], [], [], []
    for _ in range(batch):
        clip = pool[rng.integers(len(pool))]
        gap = 2 if rng.random() < 0.7 else 4
        i = int(rng.integers(CLIP_FRAMES - gap))
        j = int(rng.integers(1, gap))
        first, last, mid, t = clip[i], clip[i + gap], clip[i + j], j / gap
        if rng.random() < 0.5:
            first, last, t = last, first, 1 - t
        a.append(first)
        b.append(last)
        g.append(mid)
        ts.append(t)
    stack = [torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255 for x in (a, b, g)]
    if rng.random() < 0.5:
        stack = [x.flip(-1) for x in stack]
    if rng.random() < 0.5:
        stack = [x.flip(-2) for x in stack]
    return (*stack, torch.tensor(ts, dtype=torch.float32))


def motion_weight(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weight ``1 + 20 |img0 - img1|``: the few moving pixels are what the flow must get right."""
    return 1.0 + 20.0 * (img0 - img1).abs().mean(1, keepdim=True)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``weight * |pred - target|``."""
    return (weight * (pred - target).abs()).mean()


def train(args: argparse.Namespace) -> tuple:
    """Run the training loop; returns (model, summary of losses and seconds)."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng([args.seed, 2])
    pool = render_pool(args.clips, args.seed)
    model = IFNet(IFNetConfig(TINY_WIDTHS))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, recent, log = time.time(), [], []
    for step in range(args.steps):
        lr = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        img0, img1, target, t = draw_batch(pool, args.batch, rng)
        merged = model.forward_all(img0, img1, t)
        weight = motion_weight(img0, img1)
        coarse = sum(weighted_l1(m, target, weight) for m in merged[:-1]) / len(merged[:-1])
        loss = weighted_l1(merged[-1], target, weight) + 0.5 * coarse
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        recent.append(float(F.l1_loss(merged[-1].detach(), target)))
        if (step + 1) % 100 == 0:
            log.append((step + 1, float(np.mean(recent))))
            print(f"step {step + 1}: final L1 {np.mean(recent):.4f} ({time.time() - start:.0f} s)", flush=True)
            recent = []
    summary = {"steps": args.steps, "seconds": round(time.time() - start, 1), "final_l1": log[-1][1] if log else None}
    return model, summary


def main() -> None:
    """Train and write the safetensors file (IFNet 4.7 key names, fp32, training summary in the metadata)."""
    args = parse_args()
    model, model_summary = train(args)
    meta = {"framefold": json.dumps({"kind": "rife", "arch": "4.7", "widths": TINY_WIDTHS, **model_summary})}
    write_safetensors(args.out, model.state_dict(), meta)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {model_summary}")


if __name__ == "__main__":
    main()
