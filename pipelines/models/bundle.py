"""What a FF_MODEL socket carries: a UNet plus everything a sampler needs to call it."""

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass(frozen=True)
class ScheduleConfig:
    """The training noise schedule of a model (diffusers' DDPMScheduler names)."""

    beta_schedule: str = "scaled_linear"  # "scaled_linear" | "linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"  # "epsilon" | "v_prediction"
    zero_terminal_snr: bool = False


@dataclass(frozen=True)
class DiffusionModel:
    """A denoising UNet (with or without motion modules) and how to call it.

    The UNet contract: ``unet(x, timesteps, context, num_frames=F, **options)`` with x ``[B*F, C, h, w]``
    (frames folded into the batch), timesteps ``[B*F]``, context ``[B*F, L, D]``; returns the model
    output (epsilon or v) shaped like x. ``options`` are the call-time knobs below plus ``control``.
    Changing a knob gives a new bundle that shares the UNet's weights.
    """

    unet: torch.nn.Module
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    frame_window: int = 16  # frames the motion module was trained on
    motion_scale: float = 1.0
    attention_backend: str = "auto"
    temporal_pattern: Optional[str] = None  # e.g. cross-frame attention for zero-shot video
    name: str = ""
    # The latent format of the VAE the model was trained with: LATENT values are raw VAE latents (ComfyUI's
    # convention), the UNet works on (z - shift) * scale.
    latent_scale: float = 0.18215
    latent_shift: float = 0.0

    def latents_in(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents (a LATENT's samples) -> the UNet's latent space (ComfyUI's ``process_in``)."""
        return (latents - self.latent_shift) * self.latent_scale

    def latents_out(self, latents: torch.Tensor) -> torch.Tensor:
        """The UNet's latent space -> raw VAE latents (ComfyUI's ``process_out``)."""
        return latents / self.latent_scale + self.latent_shift

    @property
    def device(self) -> torch.device:
        """Device of the UNet's weights."""
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the UNet's weights."""
        return next(self.unet.parameters()).dtype

    def with_options(self, **changes) -> "DiffusionModel":
        """A copy with some knobs changed; the UNet (and its weights) is shared, not copied."""
        return dataclasses.replace(self, **changes)

    def __call__(self, x, timesteps, context, *, num_frames, control=None):
        """Run the UNet once with this bundle's knobs."""
        return self.unet(
            x,
            timesteps,
            context,
            num_frames=num_frames,
            motion_scale=self.motion_scale,
            attention_backend=self.attention_backend,
            temporal_pattern=self.temporal_pattern,
            control=control,
        )


@dataclass(frozen=True)
class Conditioning:
    """What a FF_CONDITIONING socket carries: text embeddings for one prompt.

    embeds: ``[1, L, D]`` for one prompt for all frames, or ``[F, L, D]`` for per-frame prompts.
    L is a multiple of 77 when a long prompt was encoded in chunks (ComfyUI's convention).
    """

    embeds: torch.Tensor
    prompt: str = ""
