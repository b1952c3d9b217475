"""Train the default ControlNet (framefold-tiny-controlnet) for the embedded default model.

    python -m framefold.training.controlnet --state /tmp/ff_cn/state.pt --minutes 20 --threads 1

The ControlNet (:class:`pipelines.models.controlnet.ControlNetModel`, the class every ControlNet file loads
into) starts as a copy of framefold-tiny's UNet encoder with zero convolutions (ControlNet's recipe) and a
4x-down hint embedding (64 px control image -> 16 px latent). The UNet, motion module, VAE and text encoder
stay frozen. Data: procedural clips from :mod:`pipelines.synthetic`; the control image of a frame is its
Canny edge map (:func:`pipelines.control.preprocess.canny`, the example workflow's preprocessor) or the
object's silhouette. So that the control wins over the prompt, half of the captions name another motion
than the clip shows (the target is always the clip the control shows), and 10% are empty (CFG). A share of
the clips keep control on a few frames only (keyframe control; the other frames get no residuals).

Loss: the default model's objective (v-prediction on its zero-terminal-SNR schedule, min-SNR-5 weights)
through the frozen video UNet with the ControlNet's residuals. All randomness is seeded per step; the state
(ControlNet, optimizer, step) is saved every ``--save-every`` seconds and resumed when the file exists, and
each save exports ``default_model/controlnet/framefold-tiny-controlnet.safetensors``.
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..pipelines import synthetic
from ..pipelines.control import preprocess
from ..pipelines.models.controlnet import ControlNetConfig, ControlNetModel

EXPORT_NAME = "framefold-tiny-controlnet.safetensors"
HINT_KINDS = ("canny", "silhouette")


def control_images(video: np.ndarray, kind: str) -> torch.Tensor:
    """Control images ``[F, 3, H, W]`` (0..1) of a rendered clip ``[F, H, W, 3]``: Canny edges or silhouette."""
    frames = torch.from_numpy(video)
    image = preprocess.canny(frames) if kind == "canny" else preprocess.silhouette(frames)
    return image.permute(0, 3, 1, 2).contiguous()


def controlnet_from_unet(unet: torch.nn.Module, embedding_channels: Tuple[int, ...] = (16, 32, 64)) -> ControlNetModel:
    """A ControlNet whose encoder is a copy of ``unet``'s (time_embed, input_blocks, middle_block)."""
    net = ControlNetModel(ControlNetConfig(unet.config, 3, embedding_channels))
    shared = {
        k: v for k, v in unet.state_dict().items() if k.split(".")[0] in ("time_embed", "input_blocks", "middle_block")
    }
    missing, unexpected = net.load_state_dict(shared, strict=False)
    if unexpected or any(k.split(".")[0] in ("time_embed", "input_blocks", "middle_block") for k in missing):
        raise RuntimeError(f"encoder copy mismatch: missing {missing}, unexpected {unexpected}")
    return net


def keyframe_mask(rng: np.random.Generator, frames: int, sparse_fraction: float) -> torch.Tensor:
    """Which frames of one clip carry control ``[F]`` (all, or a few keyframes for ``sparse_fraction`` of clips)."""
    keep = torch.ones(frames)
    if rng.random() < sparse_fraction:
        keep.zero_()
        if rng.random() < 0.5:
            keep[[0, frames - 1]] = 1
        else:
            keep[torch.as_tensor(rng.choice(frames, size=int(rng.integers(1, 5)), replace=False))] = 1
    return keep


def training_batch(rng: np.random.Generator, clips: int, sparse_fraction: float):
    """(videos [B,F,H,W,3], captions, hints [B*F,3,H,W], keep [B*F]) for one step."""
    videos, captions, hints, keeps = [], [], [], []
    for _ in range(clips):
        scene = synthetic.random_scene(rng)
        video = synthetic.render_scene(scene)
        roll = rng.random()
        if roll < 0.1:
            caption = ""
        elif roll < 0.55:
            others = [m for m in synthetic.MOTIONS if m != scene.motion]
            caption = synthetic.with_attributes(scene, motion=others[int(rng.integers(len(others)))]).caption
        else:
            caption = scene.caption
        kind = HINT_KINDS[0] if rng.random() < 0.7 else HINT_KINDS[1]
        videos.append(video)
        captions.append(caption)
        hints.append(control_images(video, kind))
        keeps.append(keyframe_mask(rng, scene.frames, sparse_fraction))
    return np.stack(videos), captions, torch.cat(hints), torch.cat(keeps)


def object_weight_map(videos: np.ndarray, latent_size: int, object_weight: float) -> torch.Tensor:
    """Loss weights per latent pixel ``[B*F, 1, h, w]``: ``1 + object_weight`` on the object (its silhouette
    max-pooled to the latent grid), 1 on the background. Where the object is, is what the control says; most
    of a frame is background, which the UNet predicts well without it."""
    frames = torch.from_numpy(np.ascontiguousarray(videos.reshape(-1, *videos.shape[2:])))
    mask = preprocess.silhouette(frames)[..., 0]
    grid = torch.nn.functional.max_pool2d(mask[:, None], mask.shape[-1] // latent_size)
    return 1.0 + object_weight * grid


def keyframe_loss_weights(keep: torch.Tensor, frames: int, keyframe_weight: float) -> torch.Tensor:
    """Loss weights per frame ``[B*F]``: ``1 + keyframe_weight`` on the controlled frames of keyframe clips,
    1 elsewhere. Only those frames' residuals reach the UNet, and they are 1-4 of 16 frames in a few clips:
    unweighted, "the object is where the keyframe puts it" is a tiny share of the loss."""
    per_clip = keep.view(-1, frames)
    sparse = (per_clip.min(dim=1).values == 0).float()[:, None]
    return (1.0 + keyframe_weight * per_clip * sparse).flatten()


def initial_weights(path: str, net: ControlNetModel) -> Dict[str, torch.Tensor]:
    """The weights of an exported ControlNet file, checked to fit ``net`` (a warm start)."""
    from ..pipelines.loading.controlnet import load_controlnet

    loaded = load_controlnet(path).model.state_dict()
    wanted = net.state_dict()
    if set(loaded) != set(wanted) or any(loaded[k].shape != wanted[k].shape for k in wanted):
        raise SystemExit(f"--init-from {path}: not a ControlNet of this model's shape")
    return loaded


class Trainer:
    """Frozen default model + trainable ControlNet; :meth:`step` runs one seeded training step."""

    def __init__(self, args: argparse.Namespace):
        from ..pipelines.loading.checkpoint import load_checkpoint
        from ..pipelines.loading.motion import load_motion_module
        from ..pipelines.sampling.schedules import alphas_cumprod_from_config

        root = Path(args.model)
        model, self.text_encoder, self.vae = load_checkpoint(root / "checkpoints" / "framefold-tiny.safetensors")
        motion = load_motion_module(root / "animatediff_models" / "framefold-tiny-motion.safetensors")
        self.unet = model.unet
        self.animated = model.unet.with_motion(motion)
        for p in self.animated.parameters():
            p.requires_grad_(False)
        for p in self.vae.model.parameters():
            p.requires_grad_(False)
        self.schedule = model.schedule
        self.abar = alphas_cumprod_from_config(model.schedule)
        self.controlnet = controlnet_from_unet(model.unet)
        if args.init_from:
            self.controlnet.load_state_dict(initial_weights(args.init_from, self.controlnet))
        self.optimizer = torch.optim.AdamW(self.controlnet.parameters(), lr=args.lr, weight_decay=0.0)
        self.args = args
        self.step_index = 0
        self._captions: Dict[str, torch.Tensor] = {}

    def caption_states(self, captions: List[str], frames: int) -> torch.Tensor:
        """Text-encoder states per frame ``[B*F, L, D]`` (cached per caption)."""
        out = []
        for caption in captions:
            if caption not in self._captions:
                with torch.no_grad():
                    self._captions[caption] = self.text_encoder.encode(caption).embeds[0]
            out.append(self._captions[caption])
        return torch.stack(out).repeat_interleave(frames, 0)

    def step(self) -> Dict[str, float]:
        """One step: render, encode, noise, ControlNet + frozen UNet, v-prediction loss, update."""
        args, frames = self.args, synthetic.FRAMES
        rng = np.random.default_rng([args.seed, 7, self.step_index])
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        videos, captions, hints, keep = training_batch(rng, args.batch, args.sparse_fraction)
        with torch.no_grad():
            pixels = torch.from_numpy(videos.reshape(-1, *videos.shape[2:])).permute(0, 3, 1, 2) * 2 - 1
            mean, _ = self.vae.model.encode_moments(pixels)
            latents = mean * self.vae.config.scaling_factor
        clips, total = args.batch, self.abar.shape[0]
        uniform = torch.randint(0, total, (clips,), generator=g)
        high = torch.randint(int(total * 0.7), total, (clips,), generator=g)
        t = torch.where(torch.rand(clips, generator=g) < args.high_noise_fraction, high, uniform)
        a = self.abar[t].repeat_interleave(frames)[:, None, None, None]
        noise = torch.randn(latents.shape, generator=g)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        timesteps = t.repeat_interleave(frames).float()
        context = self.caption_states(captions, frames)
        residuals = self.controlnet(noisy, timesteps, context, hints)
        gate = keep[:, None, None, None]
        control = {"down": [r * gate for r in residuals["down"]], "mid": residuals["mid"] * gate}
        pred = self.animated(noisy, timesteps, context, num_frames=frames, control=control)
        target = a.sqrt() * noise - (1 - a).sqrt() * latents
        snr = self.abar[t] / (1 - self.abar[t])
        weight = (torch.clamp(snr + 1, max=5.0) / (snr + 1)).repeat_interleave(frames)
        error = (pred - target).square()
        per_frame = error.mean(dim=(1, 2, 3))
        if args.object_weight:
            error = error * object_weight_map(videos, latents.shape[-1], args.object_weight)
        if args.keyframe_weight:
            weight = weight * keyframe_loss_weights(keep, frames, args.keyframe_weight)
        loss = (error.mean(dim=(1, 2, 3)) * weight).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.controlnet.parameters(), 1.0)
        self.optimizer.step()
        self.step_index += 1
        return {"step": self.step_index, "loss": float(loss.detach()), "mse": float(per_frame.detach().mean())}

    def save(self, state_path: Path, out_dir: Path) -> None:
        """Save the resumable state (temp name, then rename) and export the shippable ControlNet file."""
        from ..pipelines.loading.controlnet import save_controlnet

        state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        state = {"controlnet": self.controlnet.state_dict(), "optimizer": self.optimizer.state_dict()}
        torch.save({**state, "step": self.step_index, "seed": self.args.seed}, tmp)
        os.replace(tmp, state_path)
        out_dir.mkdir(parents=True, exist_ok=True)
        extra = {"trained": {"steps": self.step_index, "seed": self.args.seed, "hints": list(HINT_KINDS)}}
        save_controlnet(out_dir / EXPORT_NAME, self.controlnet, extra=extra)

    def resume(self, state_path: Path) -> bool:
        """Load a saved state if there is one; True when resumed."""
        if not state_path.is_file():
            return False
        state = torch.load(state_path, weights_only=True)
        self.controlnet.load_state_dict(state["controlnet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_index = int(state["step"])
        return True


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", default="/tmp/ff_controlnet/state.pt", help="training state (resumed if present)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "default_model" / "controlnet"))
    p.add_argument(
        "--model",
        default=str(Path(__file__).resolve().parents[1] / "default_model"),
        help="folder with the frozen model (checkpoints/framefold-tiny.safetensors and its motion module)",
    )
    p.add_argument("--init-from", help="start from an exported ControlNet file instead of the UNet's encoder copy")
    p.add_argument("--object-weight", type=float, default=0.0, help="extra loss weight on the object's latent pixels")
    p.add_argument(
        "--keyframe-weight",
        type=float,
        default=0.0,
        help="extra loss weight on the controlled frames of keyframe clips",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--minutes", type=float, default=20.0, help="time budget of this run")
    p.add_argument("--steps", type=int, default=100000, help="stop at this total step count")
    p.add_argument("--batch", type=int, default=2, help="16-frame clips per step")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--sparse-fraction", type=float, default=0.25, help="share of clips with keyframe control")
    p.add_argument("--high-noise-fraction", type=float, default=0.3, help="share of clips with t >= 0.7 T")
    p.add_argument("--save-every", type=float, default=120.0, help="seconds between saves")
    p.add_argument("--log-every", type=int, default=20)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Train (or resume) for the time budget, saving and exporting as it goes."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    trainer = Trainer(args)
    state_path, out_dir = Path(args.state), Path(args.out)
    if trainer.resume(state_path):
        print(json.dumps({"resumed": trainer.step_index}), flush=True)
    start = last_save = time.monotonic()
    losses: List[float] = []
    while trainer.step_index < args.steps and time.monotonic() - start < args.minutes * 60:
        parts = trainer.step()
        losses.append(parts["loss"])
        if trainer.step_index % args.log_every == 0:
            mean = sum(losses[-args.log_every :]) / len(losses[-args.log_every :])
            print(json.dumps({**parts, "mean_loss": round(mean, 5), "s": round(time.monotonic() - start)}), flush=True)
        if time.monotonic() - last_save > args.save_every:
            trainer.save(state_path, out_dir)
            last_save = time.monotonic()
    trainer.save(state_path, out_dir)
    print(json.dumps({"done": trainer.step_index}), flush=True)


if __name__ == "__main__":
    main()
