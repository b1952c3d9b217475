"""Entry points of the generation features: one call per feature, each taking a self-validating options object.

- :func:`generate_video`: text-to-video and video-to-video (:class:`VideoOptions`);
- :func:`animate_image`: image-to-video by first-frame hold, seed 000 §4.1 (:class:`ImageToVideoOptions`);
- :func:`generate_long_video`: VidRD clip-by-clip long video, seed 003 §4.3 (:class:`LongVideoOptions`);
- :func:`inbetween_video`: diffusion in-betweening between key-frame latents, seed 001 §4.2 (:class:`InbetweenOptions`);
- :func:`encode_prompt`: the text conditioning all of them take.

Each call seeds one CPU ``torch.Generator`` from ``options.seed`` and draws, in this order, the initial noise (from
the optional noise prior) and then the sampler's own noise, so the same options give bit-identical latents. Latents
in and out are raw VAE latents (ComfyUI's LATENT convention); the model's latent format scales them for the UNet. Every
bad value raises :class:`~.options.OptionError` naming the option or input (``model``, ``positive``, ``noise``,
``context``, ``freeinit``, ``first_frame``, ``image``, ``vae``, ``key_latents`` or an options field).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch

from .control.apply import control_for_clip
from .device import Float32Denoiser, compute_device
from .interpolation.diffusion import inbetween, key_positions
from .latents import SIZE_POLICIES, fit_to_multiple
from .memory import check_sampler_memory
from .models.bundle import Conditioning, DiffusionModel
from .models.clip import TextEncoder
from .models.vae import VAE
from .noise import NoisePrior
from .offload import default_placement
from .options import OptionError, check_choice, check_range, check_type, check_whole
from .sampling import schedules
from .sampling.context import ContextOptions
from .sampling.freeinit import FreeInitOptions, sample_with_freeinit
from .sampling.guidance import GuidedDenoiser, frame_embeds
from .sampling.hooks import FrameHold, LastState
from .sampling.i2v import first_frame_hold, image_to_video
from .sampling.samplers import SAMPLERS, Denoiser, sample
from .sampling.schedules import from_sigma_space
from .sampling.vidrd import DEFAULT_OVERLAP, OVERLAP_MODES, LongVideoResult, VidRDOptions, sample_long_video

NOISE_REUSE = ("pns", "fnr")


@dataclass(frozen=True)
class SamplingOptions:
    """What every sampling feature needs: steps, CFG scale, sampler, timestep spacing and seed."""

    steps: int = 20
    cfg: float = 7.5
    sampler: str = "ddim"
    spacing: str = "leading"
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("steps", self.steps, 1)
        check_range("cfg", self.cfg, 0.0)
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("spacing", self.spacing, schedules.SPACINGS)


@dataclass(frozen=True)
class VideoOptions(SamplingOptions):
    """:func:`generate_video`: ``denoise_strength`` 1 starts from pure noise, lower keeps more of the latent."""

    denoise_strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("denoise_strength", self.denoise_strength, 0.0, 1.0, low_open=True)


@dataclass(frozen=True)
class InbetweenOptions(VideoOptions):
    """:func:`inbetween_video`: key ``k`` lands on output frame ``k * multiplier``; ``denoise_strength`` below 1
    keeps that much of the linear blend of the keys the run starts from."""

    multiplier: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_whole("multiplier", self.multiplier, 1)


@dataclass(frozen=True)
class ImageToVideoOptions(SamplingOptions):
    """:func:`animate_image`: frames to generate, how firmly frame 0 is held to the image (1 = pinned) and how its
    sides are fitted to the VAE downscale (:data:`~.latents.SIZE_POLICIES`)."""

    frames: int = 16
    image_strength: float = 1.0
    size_policy: str = "crop"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("frames", self.frames, 1)
        check_range("image_strength", self.image_strength, 0.0, 1.0)
        check_choice("size_policy", self.size_policy, SIZE_POLICIES)


@dataclass(frozen=True)
class LongVideoOptions(SamplingOptions):
    """:func:`generate_long_video`. ``total_frames`` 0 = the latent's frame count; ``clip_frames`` 0 = the model's
    frame window; ``noise_reuse`` "fnr" ignores ``alpha``. The VidRD fields (``prompt_frames``, ``alpha``, ``beta``,
    ``overlap``) are validated by the :class:`~.sampling.vidrd.VidRDOptions` built from them once the clip length
    is known."""

    total_frames: int = 64
    clip_frames: int = 0
    prompt_frames: int = 4
    alpha: float = 4.0
    beta: float = 0.4
    overlap: str = DEFAULT_OVERLAP
    noise_reuse: str = "pns"
    first_frame_strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("total_frames", self.total_frames, 0)
        check_range("clip_frames", self.clip_frames, 0)
        check_choice("noise_reuse", self.noise_reuse, NOISE_REUSE)
        check_range("first_frame_strength", self.first_frame_strength, 0.0, 1.0)

    def vidrd(self, frame_window: int) -> VidRDOptions:
        """The VidRD loop's options for a model with this frame window."""
        clip_frames = self.clip_frames or frame_window
        if clip_frames > frame_window:
            raise OptionError("clip_frames", f"at most the model's frame window ({frame_window}), got {clip_frames}")
        alpha = None if self.noise_reuse == "fnr" else float(self.alpha)
        return VidRDOptions(clip_frames, self.prompt_frames, alpha, float(self.beta), self.overlap)


def encode_prompt(text_encoder: TextEncoder, text: str, clip_skip: int = 0) -> Conditioning:
    """The prompt's text embeddings; ``clip_skip`` n > 0 takes the n-th last CLIP layer (0 = the model's default)."""
    check_type("text_encoder", text_encoder, TextEncoder, "a TextEncoder from FrameFold Load Checkpoint")
    layers = len(text_encoder.model.encoder.layers)
    if not 0 <= clip_skip <= layers:
        raise OptionError("clip_skip", f"0 (model default) or a value in 1..{layers} for this text encoder")
    if clip_skip:
        text_encoder = text_encoder.with_clip_skip(clip_skip)
    return text_encoder.encode(text)


def _check_inputs(
    model: Any, positive: Any, negative: Any, frames: int, noise: Any = None, freeinit: Any = None
) -> None:
    """Types of the model, prompts and optional noise prior / FreeInit options; prompt counts (1 or per frame)."""
    check_type("model", model, DiffusionModel, "a DiffusionModel from a FrameFold loader")
    for name, cond in (("positive", positive), ("negative", negative)):
        check_type(name, cond, Conditioning, "a Conditioning from FrameFold Text Encode")
        if cond.embeds.shape[0] not in (1, frames):
            raise OptionError(name, f"one prompt or {frames} per-frame prompts, got {cond.embeds.shape[0]}")
    if noise is not None:
        check_type("noise", noise, NoisePrior, "a NoisePrior from FrameFold Noise Prior")
    if freeinit is not None:
        check_type("freeinit", freeinit, FreeInitOptions, "FreeInitOptions from FrameFold FreeInit Options")


def _check_window(model: DiffusionModel, context: Optional[ContextOptions], frames: int, field: str) -> None:
    """Frames denoised at once (the context window, or all frames) must fit the motion module's window; without
    context windows the error names ``field``."""
    if context is not None:
        check_type("context", context, ContextOptions, "ContextOptions from FrameFold Context Options")
    limit = getattr(model.unet, "frame_window", None)  # set when a motion module is attached
    window = context.length if context is not None else frames
    if limit and window > limit:
        raise OptionError(
            "context" if context is not None else field,
            f"context windows of at most {limit} frames (the motion module's length) for this {frames}-frame video, "
            f"got {'no context' if context is None else f'length {window}'}",
        )


class _Run(NamedTuple):
    """What every sampling run starts from: its generator, unit initial noise (CPU) and schedule."""

    generator: torch.Generator
    noise: torch.Tensor
    alphas_cumprod: torch.Tensor
    sigmas: torch.Tensor


def _start_run(
    model: DiffusionModel,
    options: SamplingOptions,
    noise_shape: Sequence[int],
    prior: Optional[NoisePrior],
    strength: float = 1.0,
) -> _Run:
    """Seed the run's one CPU generator, draw the initial noise from the prior (i.i.d. without one), and build
    the sigmas of ``options.steps`` steps on the model's schedule (the last ``strength`` of it)."""
    generator = torch.Generator(device="cpu").manual_seed(int(options.seed))
    try:
        noise = (prior or NoisePrior("iid")).sample(tuple(noise_shape), generator)
    except ValueError as e:
        raise OptionError("noise", str(e)) from e
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    try:
        sigmas = schedules.denoise_sigmas(abar, options.steps, options.spacing, strength)
    except ValueError as e:
        raise OptionError("steps", str(e)) from e
    return _Run(generator, noise, abar, sigmas)


def _start_guided_run(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    options: VideoOptions,
    shape: Sequence[int],
    noise: Optional[NoisePrior],
    context: Optional[ContextOptions],
) -> Tuple[_Run, Denoiser]:
    """Check the inputs of a run over a latent of ``shape [F, C, h, w]`` at ``options.denoise_strength`` (memory
    pre-flight included: :func:`~.memory.check_sampler_memory`), start it (:func:`_start_run`) and build its
    guided denoiser (sampler state kept in fp32: :class:`~.device.Float32Denoiser`)."""
    _check_inputs(model, positive, negative, shape[0], noise)
    _check_window(model, context, shape[0], "context")
    check_sampler_memory(model, tuple(shape), options.cfg, context, compute_device())
    run = _start_run(model, options, shape, noise, options.denoise_strength)
    return run, Float32Denoiser(GuidedDenoiser(model, positive, negative, options.cfg, context=context))


def generate_video(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: torch.Tensor,
    options: VideoOptions,
    *,
    noise: Optional[NoisePrior] = None,
    context: Optional[ContextOptions] = None,
) -> torch.Tensor:
    """Denoise ``latent [F, C, h, w]`` (its shape only, at denoise strength 1) into a video latent (float32, CPU).

    noise: the initial-noise prior (default i.i.d.); context: sliding context windows for more frames than the
    motion module's window.
    """
    run, denoiser = _start_guided_run(model, positive, negative, options, latent.shape, noise, context)
    last = LastState()
    try:
        with default_placement().use(model):
            out = sample(
                options.sampler,
                denoiser,
                run.noise.to(model.device),
                run.sigmas,
                latent=model.latents_in(latent.float()).to(device=model.device, dtype=torch.float32),
                denoise_strength=options.denoise_strength,
                generator=run.generator,
                hooks=[last],
            )
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_out_of_memory(e) or last.x is None:
            raise
        partial = model.latents_out(from_sigma_space(last.x, last.sigma or 0.0).float().cpu())
        raise SamplingOutOfMemory(last.steps_done, len(run.sigmas) - 1, partial, e) from e
    return model.latents_out(out.float().cpu())


def is_out_of_memory(error: BaseException) -> bool:
    """True for an allocator failure: CUDA/MPS out of memory or the CPU allocator refusing a buffer."""
    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class SamplingOutOfMemory(RuntimeError):
    """The memory ran out during sampling (after the pre-flight let the run start); carries the last state.

    steps_done / total_steps: progress when it happened; latents: the last sampled state as a LATENT (raw VAE
    latents, noisy unless the run was nearly done), so the work can be kept.
    """

    def __init__(self, steps_done: int, total_steps: int, latents: torch.Tensor, cause: BaseException) -> None:
        super().__init__(f"out of memory at sampler step {steps_done + 1} of {total_steps}: {cause}")
        self.steps_done, self.total_steps, self.latents = steps_done, total_steps, latents


def animate_image(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    vae: VAE,
    image: torch.Tensor,
    options: ImageToVideoOptions,
    *,
    noise: Optional[NoisePrior] = None,
    context: Optional[ContextOptions] = None,
    freeinit: Optional[FreeInitOptions] = None,
) -> torch.Tensor:
    """Image-to-video: a video latent (float32, CPU) whose frame 0 is held to the encoded ``image`` (IMAGE
    ``[F, H, W, 3]``, the first one is used) at every step; FreeInit passes when ``freeinit`` is given."""
    _check_inputs(model, positive, negative, options.frames, noise, freeinit)
    check_type("vae", vae, VAE, "a VAE from a FrameFold loader")
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise OptionError("image", "an IMAGE [F,H,W,3] in 0..1")
    _check_window(model, context, options.frames, "frames")
    try:
        image = fit_to_multiple(image[:1, :, :, :3].float(), vae.downscale, options.size_policy, "image")
        image_latent = model.latents_in(vae.encode(image, scaled=False))
    except ValueError as e:
        raise OptionError("image", str(e)) from e
    run = _start_run(model, options, (options.frames, *image_latent.shape[1:]), noise)
    denoiser = GuidedDenoiser(model, positive, negative, options.cfg, context=context)
    image_latent = image_latent.to(model.device)

    def one_pass(start_noise: torch.Tensor) -> torch.Tensor:
        return image_to_video(
            denoiser,
            image_latent,
            start_noise,
            run.sigmas,
            strength=float(options.image_strength),
            sampler=options.sampler,
            generator=run.generator,
        )

    initial = run.noise.to(model.device)
    if freeinit is not None and freeinit.iterations > 1:
        out, _ = sample_with_freeinit(
            one_pass, initial, run.alphas_cumprod, run.generator, freeinit, steps=options.steps
        )
    else:
        out = one_pass(initial)
    return model.latents_out(out.float().cpu())


def inbetween_video(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    key_latents: torch.Tensor,
    options: InbetweenOptions,
    *,
    context: Optional[ContextOptions] = None,
) -> torch.Tensor:
    """Diffusion in-betweening: a video latent ``[(K - 1) m + 1, C, h, w]`` (float32, CPU) whose frames
    ``0, m, 2m, ...`` are the ``K`` ``key_latents [K, C, h, w]`` exactly and whose frames between are denoised
    (:func:`~.interpolation.diffusion.inbetween`); context: sliding windows beyond the motion module's window."""
    if not isinstance(key_latents, torch.Tensor) or key_latents.ndim != 4 or key_latents.shape[0] < 2:
        raise OptionError("key_latents", "a latent with at least 2 key frames [K, C, h, w]")
    frames = key_positions(key_latents.shape[0], options.multiplier)[-1] + 1
    shape = (frames, *key_latents.shape[1:])
    run, denoiser = _start_guided_run(model, positive, negative, options, shape, None, context)
    with default_placement().use(model):
        out = inbetween(
            denoiser,
            model.latents_in(key_latents.float()).to(device=model.device, dtype=torch.float32),
            run.noise.to(model.device),
            run.sigmas,
            multiplier=options.multiplier,
            sampler=options.sampler,
            denoise_strength=options.denoise_strength,
            generator=run.generator,
        )
    out = model.latents_out(out.float().cpu())
    # the keys end exactly on their latents in the UNet's space; the raw round trip may differ in the last bit
    out[key_positions(key_latents.shape[0], options.multiplier)] = key_latents.float().cpu()
    return out


def clip_conditioning(cond: Conditioning, positions: Sequence[int], total_frames: int, which: str) -> Conditioning:
    """The conditioning of one long-video clip: per-frame prompts sliced at the output frames the clip shows
    (:func:`~.sampling.guidance.frame_embeds`; one prompt is repeated for every frame); attached ControlNets keep
    the control images of those frames (:func:`~.control.apply.control_for_clip`)."""
    frames = torch.tensor(positions)
    clipped = Conditioning(frame_embeds(cond.embeds, frames, total_frames, which), cond.prompt, cond.control)
    return control_for_clip(clipped, positions, total_frames)


def _clip_denoisers(
    model: DiffusionModel, positive: Conditioning, negative: Conditioning, cfg: float, total_frames: int
) -> Tuple[Optional[Denoiser], Optional[Callable[[List[int]], Denoiser]]]:
    """``(denoiser, None)`` for one prompt each and no ControlNet, else ``(None, denoiser_for_clip)`` (per-frame
    prompts or control images follow the clip's frames)."""
    per_clip = max(positive.embeds.shape[0], negative.embeds.shape[0]) > 1 or bool(positive.control + negative.control)
    if not per_clip:
        return GuidedDenoiser(model, positive, negative, cfg), None

    def for_clip(positions: List[int]) -> Denoiser:
        pos = clip_conditioning(positive, positions, total_frames, "positive")
        neg = clip_conditioning(negative, positions, total_frames, "negative")
        return GuidedDenoiser(model, pos, neg, cfg)

    return None, for_clip


def generate_long_video(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: torch.Tensor,
    options: LongVideoOptions,
    *,
    noise: Optional[NoisePrior] = None,
    freeinit: Optional[FreeInitOptions] = None,
    first_frame: Optional[torch.Tensor] = None,
) -> LongVideoResult:
    """VidRD long video: ``options.total_frames`` latent frames (float32, CPU) of ``latent``'s frame shape, clip by
    clip. noise: prior of clip 0's noise; freeinit: passes for clip 0; first_frame: an image latent
    ``[1, C, h, w]`` that clip 0's frame 0 is held to (``options.first_frame_strength``)."""
    total = int(options.total_frames) or latent.shape[0]
    _check_inputs(model, positive, negative, total, noise, freeinit)
    vidrd = options.vidrd(getattr(model.unet, "frame_window", None) or model.frame_window)
    frame_shape = tuple(latent.shape[1:])
    run = _start_run(model, options, (vidrd.clip_frames, *frame_shape), noise)
    hooks: List[FrameHold] = []
    if first_frame is not None:
        if (
            not isinstance(first_frame, torch.Tensor)
            or first_frame.ndim != 4
            or tuple(first_frame.shape[1:]) != frame_shape
        ):
            raise OptionError(
                "first_frame", f"a latent [1, {', '.join(map(str, frame_shape))}] (the same frame size as the video)"
            )
        image = model.latents_in(first_frame[:1].float()).to(run.noise.device)
        hooks.append(first_frame_hold(image, run.noise, float(options.first_frame_strength)))
    denoiser, for_clip = _clip_denoisers(model, positive, negative, options.cfg, total)
    result = sample_long_video(
        denoiser,
        frame_shape,
        total,
        run.sigmas,
        generator=run.generator,
        options=vidrd,
        sampler=options.sampler,
        first_noise=run.noise.to(model.device),
        denoiser_for_clip=for_clip,
        freeinit=freeinit,
        alphas_cumprod=run.alphas_cumprod,
        first_clip_hooks=hooks,
    )
    return dataclasses.replace(result, latent=model.latents_out(result.latent.float().cpu()))


__all__ = [
    "SamplingOutOfMemory",
    "is_out_of_memory",
    "OVERLAP_MODES",
    "NOISE_REUSE",
    "SamplingOptions",
    "VideoOptions",
    "ImageToVideoOptions",
    "LongVideoOptions",
    "InbetweenOptions",
    "generate_video",
    "inbetween_video",
    "animate_image",
    "generate_long_video",
    "encode_prompt",
]
