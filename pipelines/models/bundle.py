"""What a FF_MODEL socket carries: a UNet plus everything a sampler needs to call it.

The noise schedule is data on the model. ``schedule`` is the one samplers use; it is resolved from the
checkpoint's own schedule (``native_schedule``) and the graph's choice (``schedule_choice``):

* ``"auto"``: a model with an AnimateDiff v1/v2/v3 motion module attached samples on AnimateDiff's schedule
  (``linear`` betas 0.00085 -> 0.012, as AnimateDiff's inference configs and training use); any other model
  (no module, or a ``custom`` one such as the embedded default's) keeps the checkpoint's schedule;
* ``"scaled_linear"`` / ``"linear"`` / ``"squaredcos_cap_v2"``: those betas (diffusers' names), whatever is attached.

Zero terminal SNR (Lin et al.) is a flag on top of any of them.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

BETA_SCHEDULES = ("scaled_linear", "linear", "squaredcos_cap_v2")
SCHEDULE_CHOICES = ("auto",) + BETA_SCHEDULES
ANIMATEDIFF_VERSIONS = ("v1", "v2", "v3")
PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class ScheduleConfig:
    """The training noise schedule of a model (diffusers' DDPMScheduler names)."""

    beta_schedule: str = "scaled_linear"  # one of BETA_SCHEDULES
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"  # "epsilon" | "v_prediction"
    zero_terminal_snr: bool = False

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"ScheduleConfig.beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"ScheduleConfig.prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}"
            )

    def describe(self) -> str:
        """Short text, e.g. ``linear 0.00085->0.012, epsilon`` (with ``, zero terminal SNR`` when set)."""
        text = f"{self.beta_schedule} {self.beta_start}->{self.beta_end}, {self.prediction_type}"
        return text + (", zero terminal SNR" if self.zero_terminal_snr else "")


# AnimateDiff's noise_scheduler_kwargs (configs/inference/inference-v*.yaml): linear in beta.
ANIMATEDIFF_BETA_SCHEDULE = "linear"


def motion_version(unet: torch.nn.Module) -> Optional[str]:
    """The AnimateDiff version of the motion module attached to ``unet`` (None when there is none)."""
    motion = getattr(unet, "motion", None)
    config = getattr(motion, "config", None)
    return getattr(config, "version", None)


def resolve_schedule(native: ScheduleConfig, choice: str, version: Optional[str]) -> ScheduleConfig:
    """The schedule a model samples on: ``choice`` applied to the checkpoint's ``native`` one (module docstring)."""
    if choice not in SCHEDULE_CHOICES:
        raise ValueError(f"beta schedule choice must be one of {SCHEDULE_CHOICES}, got {choice!r}")
    if choice == "auto":
        if version in ANIMATEDIFF_VERSIONS:
            return dataclasses.replace(native, beta_schedule=ANIMATEDIFF_BETA_SCHEDULE)
        return native
    return dataclasses.replace(native, beta_schedule=choice)


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
    native_schedule: Optional[ScheduleConfig] = None  # the checkpoint's own schedule (None: ``schedule`` is it)
    schedule_choice: str = "auto"  # one of SCHEDULE_CHOICES
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

    def with_options(self, **changes: Any) -> "DiffusionModel":
        """A copy with some knobs changed; the UNet (and its weights) is shared, not copied."""
        return dataclasses.replace(self, **changes)

    def with_schedule_choice(self, choice: str, zero_terminal_snr: Optional[bool] = None) -> "DiffusionModel":
        """A copy sampling on ``choice`` (one of SCHEDULE_CHOICES); ``zero_terminal_snr`` None keeps the
        checkpoint's flag. The choice stays with the model when a motion module is attached later."""
        native = self.native_schedule or self.schedule
        if zero_terminal_snr is not None:
            native = dataclasses.replace(native, zero_terminal_snr=bool(zero_terminal_snr))
        resolved = resolve_schedule(native, choice, motion_version(self.unet))
        return dataclasses.replace(self, schedule=resolved, native_schedule=native, schedule_choice=choice)

    def with_unet(self, unet: torch.nn.Module, **changes: Any) -> "DiffusionModel":
        """A copy around another UNet (e.g. with a motion module attached), the schedule choice re-resolved."""
        native = self.native_schedule or self.schedule
        resolved = resolve_schedule(native, self.schedule_choice, motion_version(unet))
        return dataclasses.replace(self, unet=unet, schedule=resolved, native_schedule=native, **changes)

    def __call__(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, *, num_frames: int, control: Any = None
    ) -> torch.Tensor:
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


def attach_motion_module(
    model: DiffusionModel,
    motion_module: torch.nn.Module,
    *,
    motion_scale: float = 1.0,
    norm_across_frames: Optional[bool] = None,
) -> DiffusionModel:
    """``model`` with ``motion_module`` attached (replacing any attached one); weights are shared.

    The frame window becomes the module's positional-table length; the schedule choice is re-resolved (an
    AnimateDiff v1/v2/v3 module under ``"auto"`` switches to AnimateDiff's linear betas). norm_across_frames:
    None keeps the module's setting (False = AnimateDiff reference, per frame; True = diffusers, joint).
    Raises ValueError when the model has no FrameFold UNet or the module does not fit it.
    """
    unet: Any = model.unet
    base: Any = unet.without_motion() if hasattr(unet, "without_motion") else unet
    if not hasattr(base, "with_motion"):
        raise ValueError(f"a FrameFold UNet model that accepts motion modules, got {type(base).__name__}")
    animated = base.with_motion(motion_module, norm_across_frames)
    return model.with_unet(animated, frame_window=motion_module.max_frames, motion_scale=float(motion_scale))


@dataclass(frozen=True)
class Conditioning:
    """What a FF_CONDITIONING socket carries: text embeddings for one prompt.

    embeds: ``[1, L, D]`` for one prompt for all frames, or ``[F, L, D]`` for per-frame prompts.
    L is a multiple of 77 when a long prompt was encoded in chunks (ComfyUI's convention).
    control: ControlNets applied with this prompt (``pipelines.control.apply.ControlApplication``; they stack).
    """

    embeds: torch.Tensor
    prompt: str = ""
    control: tuple = ()
