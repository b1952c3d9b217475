"""Long-video nodes: VidRD iterative long-video sampler, image-to-video, FreeInit options."""

import torch

from ..pipelines.control.apply import control_for_clip
from ..pipelines.models.bundle import Conditioning, DiffusionModel
from ..pipelines.models.vae import VAE
from ..pipelines.noise import NoisePrior
from ..pipelines.sampling import samplers, schedules
from ..pipelines.sampling.context import ContextOptions
from ..pipelines.sampling.freeinit import FILTERS, FreeInitOptions, sample_with_freeinit
from ..pipelines.sampling.guidance import GuidedDenoiser
from ..pipelines.sampling.i2v import first_frame_hook, first_frame_start, image_to_video
from ..pipelines.sampling.vidrd import DEFAULT_OVERLAP, OVERLAP_MODES, VidRDOptions, sample_long_video
from . import _types as T
from ._comfy import with_host_progress
from ._errors import NodeInputError

CATEGORY = "FrameFold/sampling"
SAMPLER_NAMES = list(samplers.SAMPLERS)
SCHEDULER_NAMES = list(schedules.SPACINGS)
FF_FREEINIT = T.FF_FREEINIT
NOISE_REUSE = ("pns", "fnr")


def _sampler_widgets():
    """sampler_name / scheduler widgets (DDIM + leading spacing by default, as the VidRD paper samples)."""
    return {
        "sampler_name": (
            SAMPLER_NAMES,
            {"default": "ddim", "tooltip": "Sampler run for every clip; ddim is what the VidRD paper uses."},
        ),
        "scheduler": (
            SCHEDULER_NAMES,
            {
                "default": "leading",
                "tooltip": "Timestep spacing (leading for SD/AnimateDiff DDIM; trailing for zero-terminal-SNR models).",
            },
        ),
    }


def _check_model_and_prompts(node, model, positive, negative, frames_ok):
    """Shared type checks; ``frames_ok`` lists the accepted per-frame prompt counts besides 1."""
    if not isinstance(model, DiffusionModel):
        raise NodeInputError(node, "model", "a FF_MODEL from a FrameFold loader")
    for name, cond in (("positive", positive), ("negative", negative)):
        if not isinstance(cond, Conditioning):
            raise NodeInputError(node, name, "a FF_CONDITIONING from FrameFold Text Encode")
        if cond.embeds.shape[0] not in (1, *frames_ok):
            raise NodeInputError(
                node,
                name,
                f"one prompt or {' / '.join(map(str, frames_ok))} per-frame prompts, got {cond.embeds.shape[0]}",
            )


def _check_optional(node, noise, freeinit, sampler_name, scheduler):
    """Shared checks of the optional noise prior / FreeInit inputs and the sampler widgets."""
    if noise is not None and not isinstance(noise, NoisePrior):
        raise NodeInputError(node, "noise", "a FF_NOISE from FrameFold Noise Prior")
    if freeinit is not None and not isinstance(freeinit, FreeInitOptions):
        raise NodeInputError(node, "freeinit", "a FF_FREEINIT from FrameFold FreeInit Options")
    if sampler_name not in samplers.SAMPLERS:
        raise NodeInputError(node, "sampler_name", f"one of {SAMPLER_NAMES}")
    if scheduler not in schedules.SPACINGS:
        raise NodeInputError(node, "scheduler", f"one of {SCHEDULER_NAMES}")


def _draw_noise(node, prior, shape, generator):
    """Initial noise from the optional prior (i.i.d. without one)."""
    try:
        return (prior or NoisePrior("iid")).sample(tuple(shape), generator)
    except ValueError as e:
        raise NodeInputError(node, "noise", str(e)) from e


def _sigmas(node, model, steps, scheduler):
    """The sampling sigmas for the model's schedule."""
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    try:
        return abar, schedules.sampling_sigmas(abar, steps, scheduler)
    except ValueError as e:
        raise NodeInputError(node, "steps", str(e)) from e


def _clip_prompts(cond, positions, total_frames):
    """The conditioning for one clip: unchanged for one prompt, the rows at ``positions`` for per-frame prompts;
    ControlNets keep the control images of those frames."""
    if cond.embeds.shape[0] != 1:
        cond = Conditioning(cond.embeds[torch.tensor(positions)], cond.prompt, cond.control)
    return control_for_clip(cond, positions, total_frames)


class FrameFoldLongVideoSampler:
    """VidRD (Reuse and Diffuse): a video of any length, clip by clip, each clip prompted by the previous one's
    last frames through reversed noise (FNR), past-dependent noise (PNS) and staged guidance (DSG)."""

    @classmethod
    def INPUT_TYPES(cls):
        """Model, prompts, a latent giving the frame size, the VidRD knobs, then the sampler widgets."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet with its motion module; one clip is denoised at a time."}),
                **T.prompt_inputs("What the video should show: one prompt, or one per output frame."),
                "latent": (
                    T.LATENT,
                    {
                        "tooltip": "Gives the frame size and channels (e.g. FrameFold Empty Video Latent); its frame "
                        "count is used only when total_frames is 0."
                    },
                ),
                "seed": T.seed_widget("Seed of clip 0's noise, of every PNS draw and of the sampler's noise."),
                "total_frames": (
                    T.INT,
                    {"default": 64, "min": 0, "max": 4096, "tooltip": "Output frames; 0 = the latent's frame count."},
                ),
                "clip_frames": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": 256,
                        "tooltip": "Frames per clip N; 0 = the model's frame window (16 for AnimateDiff).",
                    },
                ),
                "prompt_frames": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 0,
                        "max": 255,
                        "tooltip": "M: the last M frames of a clip prompt the next clip (less than clip_frames). "
                        "Paper default 4.",
                    },
                ),
                "alpha": (
                    T.FLOAT,
                    {
                        "default": 4.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "PNS: share of the previous clip's reversed noise kept in the new frames; 0 = fresh "
                        "noise, larger = more consistent, more repetitive. Paper default 4.",
                    },
                ),
                "beta": (
                    T.FLOAT,
                    {
                        "default": 0.4,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "DSG: fraction of the steps in which the prompt frames copy the previous clip's "
                        "trajectory (frame 0 longest); 0 = no guidance. Paper default 0.4.",
                    },
                ),
                "steps": (T.INT, {"default": 50, "min": 1, "max": 1000, "tooltip": "Denoising steps per clip."}),
                "cfg": T.cfg_widget(),
                "overlap": (
                    list(OVERLAP_MODES),
                    {
                        "default": DEFAULT_OVERLAP,
                        "tooltip": "drop: later clips' M prompt frames (mirrors of the previous clip's end) are left "
                        "out; keep: whole clips are concatenated.",
                    },
                ),
            },
            "optional": {
                **_sampler_widgets(),
                "noise_reuse": (
                    list(NOISE_REUSE),
                    {
                        "default": "pns",
                        "tooltip": "pns: reversed noise mixed with fresh noise by alpha (eq. 7); fnr: plain reversed "
                        "noise (eq. 6, alpha ignored).",
                    },
                ),
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior for clip 0 (default: i.i.d.)."}),
                "freeinit": (FF_FREEINIT, {"tooltip": "FreeInit re-initialisation passes for clip 0."}),
                "first_frame": (
                    T.LATENT,
                    {
                        "tooltip": "Optional encoded image (FrameFold VAE Encode of one image): clip 0's first frame "
                        "is held to it, as in FrameFold Image to Video."
                    },
                ),
                "first_frame_strength": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "How firmly frame 0 is held to first_frame (1 = pinned).",
                    },
                ),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("All generated frames as one latent video.",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Long video with one model (VidRD): memory stays at one clip. Progress counts all clips' steps."

    @with_host_progress
    def sample(
        self,
        model,
        positive,
        negative,
        latent,
        seed,
        total_frames,
        clip_frames,
        prompt_frames,
        alpha,
        beta,
        steps,
        cfg,
        overlap,
        sampler_name="ddim",
        scheduler="leading",
        noise_reuse="pns",
        noise=None,
        freeinit=None,
        first_frame=None,
        first_frame_strength=1.0,
    ):
        """Validate, build the options and denoiser(s), run the VidRD loop."""
        node = type(self).__name__
        samples, total, options = self._check(
            model,
            positive,
            negative,
            latent,
            total_frames,
            clip_frames,
            prompt_frames,
            alpha,
            beta,
            overlap,
            noise_reuse,
        )
        _check_optional(node, noise, freeinit, sampler_name, scheduler)
        frame_shape = tuple(samples.shape[1:])
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        first = _draw_noise(node, noise, (options.clip_frames, *frame_shape), generator)
        abar, sigmas = _sigmas(node, model, steps, scheduler)
        hold = self._first_frame_hold(first_frame, first_frame_strength, frame_shape, first, float(sigmas[0]))
        per_frame = max(positive.embeds.shape[0], negative.embeds.shape[0]) > 1 or bool(
            positive.control + negative.control
        )

        def denoiser_for(positions):
            clipped = [_clip_prompts(c, positions, total) for c in (positive, negative)]
            return GuidedDenoiser(model, *clipped, cfg)

        result = sample_long_video(
            None if per_frame else GuidedDenoiser(model, positive, negative, cfg),
            frame_shape,
            total,
            sigmas,
            generator=generator,
            options=options,
            sampler=sampler_name,
            first_noise=first.to(model.device),
            denoise_for_clip=denoiser_for if per_frame else None,
            freeinit=freeinit,
            alphas_cumprod=abar,
            first_clip_hook=hold[0],
            first_clip_start=hold[1],
        )
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
        return ({**out, "samples": result.latent},)

    def _check(
        self,
        model,
        positive,
        negative,
        latent,
        total_frames,
        clip_frames,
        prompt_frames,
        alpha,
        beta,
        overlap,
        noise_reuse,
    ):
        """Validate the required inputs; returns ``(samples, total_frames, VidRDOptions)``."""
        node = type(self).__name__
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
            raise NodeInputError(node, "latent", "a LATENT dict with 'samples' [F,C,h,w]")
        total = int(total_frames) or samples.shape[0]
        _check_model_and_prompts(node, model, positive, negative, (total,))
        if noise_reuse not in NOISE_REUSE:
            raise NodeInputError(node, "noise_reuse", f"one of {list(NOISE_REUSE)}")
        window = getattr(model.unet, "frame_window", None) or model.frame_window
        n = int(clip_frames) or window
        if n > window:
            raise NodeInputError(node, "clip_frames", f"at most the model's frame window ({window}), got {n}")
        if overlap not in OVERLAP_MODES:
            raise NodeInputError(node, "overlap", f"one of {list(OVERLAP_MODES)}")
        if not 0 <= prompt_frames < n:
            raise NodeInputError(node, "prompt_frames", f"a value in [0, clip_frames) = [0, {n}), got {prompt_frames}")
        if not 0.0 <= beta <= 1.0:
            raise NodeInputError(node, "beta", f"a value in [0, 1], got {beta}")
        if alpha < 0:
            raise NodeInputError(node, "alpha", f"a value >= 0, got {alpha}")
        options = VidRDOptions(
            n, int(prompt_frames), None if noise_reuse == "fnr" else float(alpha), float(beta), overlap
        )
        return samples, total, options

    def _first_frame_hold(self, first_frame, strength, frame_shape, first_noise, sigma0):
        """(step hook, start transform) holding clip 0's frame 0 to ``first_frame``; (None, None) without one."""
        if first_frame is None:
            return None, None
        node = type(self).__name__
        image = first_frame.get("samples") if isinstance(first_frame, dict) else None
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or tuple(image.shape[1:]) != frame_shape:
            raise NodeInputError(
                node,
                "first_frame",
                f"a LATENT with samples [1, {', '.join(map(str, frame_shape))}] (the same frame size as 'latent')",
            )
        if not 0.0 <= strength <= 1.0:
            raise NodeInputError(node, "first_frame_strength", f"a value in [0, 1], got {strength}")
        image = image[:1].float().to(first_noise.device)
        return (
            first_frame_hook(image, first_noise[0], float(strength)),
            first_frame_start(image, first_noise[0], sigma0, float(strength)),
        )


class FrameFoldImageToVideo:
    """Image-to-video: the first latent frame is held to the encoded image at every step (strength-blended), the
    motion module animates it."""

    @classmethod
    def INPUT_TYPES(cls):
        """Model, prompts, VAE and image, then frames, strength and the sampler widgets."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The UNet with its motion module."}),
                **T.prompt_inputs(),
                "vae": (T.FF_VAE, {"tooltip": "Encodes the image into the first latent frame."}),
                "image": (
                    T.IMAGE,
                    {
                        "tooltip": "The first frame (the batch's first image is used); width and height must be "
                        "multiples of the VAE's downscale (8 for SD)."
                    },
                ),
                "strength": (
                    T.FLOAT,
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "1 pins frame 0 to the image; lower lets it drift; 0 ignores the image.",
                    },
                ),
                "frames": (T.INT, {"default": 16, "min": 1, "max": 4096, "tooltip": "Frames to generate."}),
                "seed": T.seed_widget("Seed of the initial noise and of the sampler's noise."),
                "steps": (T.INT, {"default": 25, "min": 1, "max": 1000, "tooltip": "Denoising steps."}),
                "cfg": T.cfg_widget(),
            },
            "optional": {
                **_sampler_widgets(),
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior for the initial noise (default: i.i.d.)."}),
                "context": (
                    T.FF_CONTEXT,
                    {"tooltip": "Context windows for more frames than the motion module's window."},
                ),
                "freeinit": (FF_FREEINIT, {"tooltip": "FreeInit re-initialisation passes."}),
            },
        }

    RETURN_TYPES = (T.LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The latent video; at strength 1 its first frame is the image's latent.",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Animate a still image: first-frame latent held at every denoising step."

    @with_host_progress
    def generate(
        self,
        model,
        positive,
        negative,
        vae,
        image,
        strength,
        frames,
        seed,
        steps,
        cfg,
        sampler_name="ddim",
        scheduler="leading",
        noise=None,
        context=None,
        freeinit=None,
    ):
        """Encode the image, draw the noise, sample with the first frame held (FreeInit passes if given)."""
        node = type(self).__name__
        _check_model_and_prompts(node, model, positive, negative, (int(frames),))
        _check_optional(node, noise, freeinit, sampler_name, scheduler)
        if not isinstance(vae, VAE):
            raise NodeInputError(node, "vae", "a FF_VAE from a FrameFold loader")
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
            raise NodeInputError(node, "image", "an IMAGE [F,H,W,3] in 0..1")
        if not 0.0 <= strength <= 1.0:
            raise NodeInputError(node, "strength", f"a value in [0, 1], got {strength}")
        if context is not None and not isinstance(context, ContextOptions):
            raise NodeInputError(node, "context", "a FF_CONTEXT from FrameFold Context Options")
        limit = getattr(model.unet, "frame_window", None)
        window = context.length if context is not None else int(frames)
        if limit and window > limit:
            raise NodeInputError(
                node,
                "context" if context is not None else "frames",
                f"at most {limit} frames per window (the motion module's length); connect "
                f"FrameFold Context Options for longer videos",
            )
        try:
            image_latent = vae.encode(image[:1, :, :, :3].float())
        except ValueError as e:
            raise NodeInputError(node, "image", str(e)) from e
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        initial = _draw_noise(node, noise, (int(frames), *image_latent.shape[1:]), generator)
        abar, sigmas = _sigmas(node, model, steps, scheduler)
        device = model.device
        denoise = GuidedDenoiser(model, positive, negative, cfg, context=context)
        image_latent = image_latent.to(device)

        def run(start_noise):
            return image_to_video(
                denoise,
                image_latent,
                start_noise,
                sigmas,
                strength=float(strength),
                sampler=sampler_name,
                generator=generator,
            )

        if freeinit is not None and freeinit.iterations > 1:
            out, _ = sample_with_freeinit(run, initial.to(device), abar, generator, freeinit, steps=steps)
        else:
            out = run(initial.to(device))
        return ({"samples": out.float().cpu()},)


class FrameFoldFreeInitOptions:
    """FreeInit: re-run sampling from noise whose low frequencies come from the previous result (fewer flickers,
    more coherent layout); costs one full sampling pass per iteration."""

    @classmethod
    def INPUT_TYPES(cls):
        """Passes, filter type and its cut-offs."""
        return {
            "required": {
                "iterations": (
                    T.INT,
                    {"default": 3, "min": 1, "max": 10, "tooltip": "Sampling passes in total (1 = FreeInit off)."},
                ),
                "filter_type": (
                    list(FILTERS),
                    {
                        "default": "butterworth",
                        "tooltip": "Low-pass filter on the 3-D (time, height, width) spectrum: butterworth (smooth, "
                        "paper default), gaussian (softest), ideal (hard cut).",
                    },
                ),
                "order": (
                    T.INT,
                    {
                        "default": 4,
                        "min": 1,
                        "max": 16,
                        "tooltip": "Butterworth order: higher is closer to the ideal filter.",
                    },
                ),
                "spatial_cutoff": (
                    T.FLOAT,
                    {
                        "default": 0.25,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Normalised spatial stop frequency d_s (0..1).",
                    },
                ),
                "temporal_cutoff": (
                    T.FLOAT,
                    {
                        "default": 0.25,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Normalised temporal stop frequency d_t (0..1).",
                    },
                ),
            }
        }

    RETURN_TYPES = (FF_FREEINIT,)
    RETURN_NAMES = ("freeinit",)
    OUTPUT_TOOLTIPS = ("FreeInit options for the Long Video Sampler and Image to Video nodes.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = "FreeInit (Wu et al. 2023) noise re-initialisation settings."

    def build(self, iterations, filter_type, order, spatial_cutoff, temporal_cutoff):
        """Pack the widgets into FreeInitOptions."""
        node = type(self).__name__
        if filter_type not in FILTERS:
            raise NodeInputError(node, "filter_type", f"one of {list(FILTERS)}")
        for name, value in (("iterations", iterations), ("order", order)):
            if int(value) < 1:
                raise NodeInputError(node, name, f"an integer >= 1, got {value}")
        for name, value in (("spatial_cutoff", spatial_cutoff), ("temporal_cutoff", temporal_cutoff)):
            if not 0.0 < float(value) <= 1.0:
                raise NodeInputError(node, name, f"a value in (0, 1], got {value}")
        return (
            FreeInitOptions(int(iterations), filter_type, int(order), float(spatial_cutoff), float(temporal_cutoff)),
        )


NODE_CLASS_MAPPINGS = {
    "FrameFoldLongVideoSampler": FrameFoldLongVideoSampler,
    "FrameFoldImageToVideo": FrameFoldImageToVideo,
    "FrameFoldFreeInitOptions": FrameFoldFreeInitOptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameFoldLongVideoSampler": "FrameFold Long Video Sampler (VidRD)",
    "FrameFoldImageToVideo": "FrameFold Image to Video",
    "FrameFoldFreeInitOptions": "FrameFold FreeInit Options",
}
