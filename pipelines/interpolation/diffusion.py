"""Diffusion in-betweening: the video model fills the frames between known key frames (seed 001 §4.2).

It generalises the image-to-video first-frame hold (:mod:`pipelines.sampling.i2v`): ``K`` key-frame latents are
placed every ``multiplier`` frames of a ``(K - 1) * multiplier + 1`` frame latent, and after every sampler step
those frames are replaced by the key latents noised to the current level with their own fixed noise
(a :class:`pipelines.sampling.hooks.FrameHold`), so they end exactly on the keys while the motion module
makes the frames between agree with them. The run starts from a latent where the frames between are linear
blends of their neighbouring keys: with ``denoise < 1`` sampling keeps that much of the blend's layout (and the
keys are held from the start); at ``denoise = 1`` it starts from pure noise, as text-to-video does.

The only sampler coupling is one hook passed to the public :func:`pipelines.sampling.samplers.sample`; the entry
point that seeds the run and builds the denoiser is :func:`pipelines.generate.inbetween_video`.
"""

from typing import Callable, List, Optional

import torch

from ..options import check_whole
from ..sampling.hooks import FrameHold
from ..sampling.samplers import sample

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def key_positions(keys: int, multiplier: int) -> List[int]:
    """Frame indices of the key frames in the output: ``0, m, 2m, ..., (keys - 1) m``."""
    if keys < 2:
        raise ValueError(f"in-betweening needs at least 2 key frames, got {keys}")
    check_whole("multiplier", multiplier, 1)
    return [i * int(multiplier) for i in range(keys)]


def blended_start(key_latents: torch.Tensor, multiplier: int) -> torch.Tensor:
    """``[(K - 1) m + 1, C, h, w]``: the keys at their positions, linear blends of neighbouring keys between."""
    positions = key_positions(key_latents.shape[0], multiplier)
    out = torch.empty((positions[-1] + 1, *key_latents.shape[1:]), dtype=key_latents.dtype)
    for k, (p0, p1) in enumerate(zip(positions, positions[1:])):
        for j in range(p1 - p0):
            t = j / (p1 - p0)
            out[p0 + j] = key_latents[k] + t * (key_latents[k + 1] - key_latents[k])
    out[positions[-1]] = key_latents[-1]
    return out


def inbetween(
    denoiser: Denoiser,
    key_latents: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    multiplier: int,
    sampler: str = "ddim",
    denoise_strength: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Latent video ``[(K - 1) m + 1, C, h, w]`` whose frames ``0, m, 2m, ...`` are ``key_latents`` exactly.

    ``noise``: unit initial noise of the output's shape (its key rows are the keys' fixed hold noise);
    ``sigmas``: the schedule ending at 0 (so the held keys end exactly on the keys).
    """
    positions = key_positions(key_latents.shape[0], multiplier)
    start = blended_start(key_latents, multiplier)
    if tuple(noise.shape) != tuple(start.shape):
        raise ValueError(f"noise {tuple(noise.shape)} must have the output's shape {tuple(start.shape)}")
    keys = key_latents.to(noise)
    hold = FrameHold(frames=tuple(positions), clean=keys, noise=noise[positions])
    return sample(
        sampler,
        denoiser,
        noise,
        sigmas,
        latent=start.to(noise),
        denoise_strength=denoise_strength,
        generator=generator,
        hooks=[hold],
    )
