"""Train the two tiny 2x upscalers shipped in ``default_model/upscale_models/`` on procedural frames.

Data: random scenes of :mod:`pipelines.synthetic` rendered at 128x128 (the ground truth), shrunk to 64x64 with
area averaging (the input); random aligned crops of 24x24 input / 48x48 target pixels. Loss: MSE (L1 leaves
the compact net at nearest-neighbour upsampling, the median of the sub-pixel ambiguity). One CPU thread,
seeded; on an idle core about 3 min (RRDBNet) and 1 min (compact):

    PYTHONPATH=... python -m framefold.training.train_upscalers --out default_model/upscale_models

- ``framefold-tiny-rrdb-x2.safetensors``: RRDBNet (ESRGAN new-arch keys), 16 features, 2 RRDB blocks, growth 8,
  scale 2 (so the input is pixel-unshuffled, as in basicsr's x2 models).
- ``framefold-tiny-compact-x2.safetensors``: SRVGGNetCompact (realesr-general keys), 16 features, 6 convs, PReLU.
"""

import argparse
import json
import math
import time
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..pipelines.loading.files import write_safetensors
from ..pipelines.models.upscalers import (
    RRDBNetConfig,
    SRVGGNetCompactConfig,
    UpscalerConfig,
    build_upscaler,
)
from ..pipelines.synthetic import random_scene, render_scene

HR_SIZE = 128
SCALE = 2
MODELS = {
    "framefold-tiny-rrdb-x2": RRDBNetConfig(num_feat=16, num_block=2, num_grow_ch=8, scale=SCALE),
    "framefold-tiny-compact-x2": SRVGGNetCompactConfig(num_feat=16, num_conv=6, upscale=SCALE),
}
# Steps and peak learning rate per model: RRDBNet has no input skip, so it needs more and faster steps.
STEPS = {"framefold-tiny-rrdb-x2": 1500, "framefold-tiny-compact-x2": 1000}
LEARNING_RATES = {"framefold-tiny-rrdb-x2": 3e-3, "framefold-tiny-compact-x2": 2e-3}


def downscale(frames_hr: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """``[N, 3, H, W]`` -> ``[N, 3, H/scale, W/scale]`` by area averaging (the degradation the models undo)."""
    return F.avg_pool2d(frames_hr, scale)


def frame_pool(seed: int, clips: int, frames_per_clip: int = 4) -> torch.Tensor:
    """High-resolution training frames ``[N, 3, 128, 128]`` from ``clips`` random scenes (seeded)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(clips):
        video = render_scene(random_scene(rng, size=HR_SIZE))
        picks = rng.choice(video.shape[0], size=frames_per_clip, replace=False)
        frames.append(video[picks])
    return torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).contiguous()


def random_crops(
    pool: torch.Tensor, generator: torch.Generator, batch: int, crop_lr: int = 24
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(input crops ``[B,3,crop,crop]``, target crops ``[B,3,crop*2,crop*2]``) at aligned random positions.

    Twice as many candidates as needed are drawn and the half with the most detail (largest error of nearest
    upsampling) is kept: most of a procedural frame is flat background, which any method gets right.
    """
    crop_hr = crop_lr * SCALE
    count = 2 * batch
    idx = torch.randint(pool.shape[0], (count,), generator=generator)
    ys = torch.randint(0, (HR_SIZE - crop_hr) // SCALE + 1, (count,), generator=generator) * SCALE
    xs = torch.randint(0, (HR_SIZE - crop_hr) // SCALE + 1, (count,), generator=generator) * SCALE
    hr = torch.stack([pool[i, :, y : y + crop_hr, x : x + crop_hr] for i, y, x in zip(idx, ys, xs)])
    lr = downscale(hr)
    detail = (F.interpolate(lr, scale_factor=float(SCALE), mode="nearest") - hr).abs().mean(dim=(1, 2, 3))
    keep = detail.argsort(descending=True)[:batch]
    return lr[keep], hr[keep]


def init_residual_scaled(net: torch.nn.Module, scale: float = 0.1) -> None:
    """ESRGAN's initialisation: the dense-block convs of the trunk (``net.body``) Kaiming-normal scaled by
    ``scale``, so the residual blocks start near identity; the other convs keep PyTorch's default."""
    for module in net.body.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
            module.weight.data.mul_(scale)
            torch.nn.init.zeros_(module.bias)


def train_upscaler(
    config: UpscalerConfig,
    *,
    steps: int,
    seed: int = 0,
    batch: int = 16,
    lr: float = 2e-3,
    log_every: int = 0,
    clips: int = 96,
) -> Tuple[torch.nn.Module, float]:
    """Train one net from scratch; returns (net, mean MSE of the last 50 steps)."""
    torch.manual_seed(seed)
    net = build_upscaler(config)
    if isinstance(config, RRDBNetConfig):
        init_residual_scaled(net)
    pool = frame_pool(seed, clips=clips)
    generator = torch.Generator().manual_seed(seed + 1)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        lr_crop, hr_crop = random_crops(pool, generator, batch)
        loss = F.mse_loss(net(lr_crop), hr_crop)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}/{steps} mse {np.mean(losses[-log_every:]):.5f}", flush=True)
    return net.eval(), float(np.mean(losses[-50:]))


def main(argv=None) -> None:
    """Train both models and write them (safetensors, config in the ``framefold`` metadata entry)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "default_model/upscale_models"))
    parser.add_argument("--steps", type=int, default=0, help="steps per model (0 = the STEPS table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(MODELS), help="train just this model")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name, config in MODELS.items():
        if args.only and name != args.only:
            continue
        start = time.time()
        print(f"{name}: {type(config).__name__} {config.to_dict()}", flush=True)
        steps = args.steps or STEPS[name]
        net, loss = train_upscaler(config, steps=steps, seed=args.seed, lr=LEARNING_RATES[name], log_every=250)
        path = Path(args.out) / f"{name}.safetensors"
        meta = {"architecture": type(net).__name__, "config": config.to_dict(), "steps": steps, "mse": loss}
        write_safetensors(path, net.state_dict(), {"framefold_upscaler": json.dumps(meta)})
        print(f"wrote {path} ({path.stat().st_size} bytes), last mse {loss:.5f}, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
