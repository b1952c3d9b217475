"""Image-to-video by first-frame latent replacement (seed 000 §4.1, ConsistI2V-style, training-free).

The first latent frame is held to the encoded image during sampling. At the start and after every step, with
the current noise level ``sigma`` (sigma space, ``x = x0 + sigma * eps``)::

    x[0] = strength * (image_latent + sigma * noise0) + (1 - strength) * x[0]

``noise0`` is frame 0's own initial noise, so the held frame stays consistent with the start point. Strength 1
replaces frame 0 outright (it ends exactly on the image latent at a final sigma of 0); strength 0 is plain
text-to-video; values between pull frame 0 towards the image without pinning it. The motion module carries the
image's content to the other frames through temporal attention.
"""

from typing import Any, Optional, Sequence

import torch

from .hooks import FrameHold, HookLike
from .samplers import Denoiser, sample


def _frame_latent(image_latent: torch.Tensor) -> torch.Tensor:
    """``[C, h, w]`` from ``[1, C, h, w]`` or ``[C, h, w]``."""
    if image_latent.dim() == 4:
        if image_latent.shape[0] != 1:
            raise ValueError(f"expected one image latent [1, C, h, w], got {tuple(image_latent.shape)}")
        image_latent = image_latent[0]
    if image_latent.dim() != 3:
        raise ValueError(f"expected an image latent [C, h, w], got {tuple(image_latent.shape)}")
    return image_latent


def first_frame_hold(image_latent: torch.Tensor, noise: torch.Tensor, strength: float = 1.0) -> FrameHold:
    """The :class:`~.hooks.FrameHold` of frame 0 to ``image_latent`` (``[1, C, h, w]``) for a video whose unit
    initial noise is ``noise [F, C, h, w]`` (frame 0's row noises the held frame)."""
    frame = _frame_latent(image_latent)
    if tuple(frame.shape) != tuple(noise.shape[1:]):
        raise ValueError(
            f"image latent {tuple(image_latent.shape)} does not match the video's frame shape {tuple(noise.shape[1:])}"
        )
    return FrameHold(0, frame, noise[0], strength)


def image_to_video(
    denoiser: Denoiser,
    image_latent: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    strength: float = 1.0,
    sampler: str = "ddim",
    generator: Optional[torch.Generator] = None,
    hooks: Sequence[HookLike] = (),
    **sampler_options: Any,
) -> torch.Tensor:
    """Sample a video whose first frame is held to ``image_latent`` (``[1, C, h, w]``, scaled like the VAE's).

    noise: unit initial noise ``[F, C, h, w]`` (frame 0's row is the held frame's noise). ``hooks`` run after
    the hold. Returns the VP latent ``[F, C, h, w]``.
    """
    hold = first_frame_hold(image_latent, noise, strength)
    return sample(sampler, denoiser, noise, sigmas, generator=generator, hooks=[hold, *hooks], **sampler_options)
