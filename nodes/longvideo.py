"""Long-video node: VidRD iterative long-video sampling (seed 003 §4.3), one clip at a time."""

from typing import Any, Dict, Optional, Tuple

from ..pipelines.generate import NOISE_REUSE, LongVideoOptions, generate_long_video
from ..pipelines.sampling.vidrd import DEFAULT_OVERLAP, OVERLAP_MODES
from . import _types as T
from ._comfy import with_host_progress
from ._core_types import prompt_pair
from ._errors import node_inputs

CATEGORY = "FrameFold/sampling"


class FrameFoldLongVideoSampler:
    """VidRD (Reuse and Diffuse): a video of any length, clip by clip, each clip prompted by the previous one's
    last frames through reversed noise (FNR), past-dependent noise (PNS) and staged guidance (DSG)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
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
                "beta": T.fraction_widget(
                    "DSG: fraction of the steps in which the prompt frames copy the previous clip's trajectory (frame "
                    "0 longest); 0 = no guidance. Paper default 0.4.",
                    default=0.4,
                ),
                "steps": T.steps_widget(50, "Denoising steps per clip."),
                "cfg": T.cfg_widget(),
                "overlap": (
                    list(OVERLAP_MODES),
                    {
                        "default": DEFAULT_OVERLAP,
                        "tooltip": "drop: later clips' M prompt frames (mirrors of the previous clip's end) are left "
                        "out; keep: whole clips are concatenated; drop_first: only each later clip's frame 0 (a copy "
                        "of the previous clip's last frame) is left out, so the motion turns back at the join "
                        "without a jump (the long-video example's setting).",
                    },
                ),
            },
            "optional": {
                **T.sampler_widgets(
                    "Sampler run for every clip; ddim is what the VidRD paper uses.",
                    "Timestep spacing (leading for SD/AnimateDiff DDIM; trailing for zero-terminal-SNR models).",
                ),
                "noise_reuse": (
                    list(NOISE_REUSE),
                    {
                        "default": "pns",
                        "tooltip": "pns: reversed noise mixed with fresh noise by alpha (eq. 7); fnr: plain reversed "
                        "noise (eq. 6, alpha ignored).",
                    },
                ),
                "noise": (T.FF_NOISE, {"tooltip": "Noise prior for clip 0 (default: i.i.d.)."}),
                "freeinit": (T.FF_FREEINIT, {"tooltip": "FreeInit re-initialisation passes for clip 0."}),
                "first_frame": (
                    T.LATENT,
                    {
                        "tooltip": "Optional encoded image (FrameFold VAE Encode of one image): clip 0's first frame "
                        "is held to it, as in FrameFold Image to Video."
                    },
                ),
                "first_frame_strength": T.fraction_widget("How firmly frame 0 is held to first_frame (1 = pinned)."),
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
        model: Any,
        positive: Any,
        negative: Any,
        latent: Dict[str, Any],
        seed: int,
        total_frames: int,
        clip_frames: int,
        prompt_frames: int,
        alpha: float,
        beta: float,
        steps: int,
        cfg: float,
        overlap: str,
        sampler_name: str = "ddim",
        scheduler: str = "leading",
        noise_reuse: str = "pns",
        noise: Optional[Any] = None,
        freeinit: Optional[Any] = None,
        first_frame: Optional[Dict[str, Any]] = None,
        first_frame_strength: float = 1.0,
    ) -> Tuple[Dict[str, Any]]:
        """Widgets -> LongVideoOptions -> generate_long_video -> the LATENT dict."""
        samples = T.latent_samples(self, latent, "latent")
        positive, negative = prompt_pair(self, positive, negative)
        image = None if first_frame is None else T.latent_samples(self, first_frame, "first_frame")
        with node_inputs(self, T.SAMPLER_WIDGET_NAMES):
            options = LongVideoOptions(
                **T.sampling_fields(seed, steps, cfg, sampler_name, scheduler),
                total_frames=int(total_frames),
                clip_frames=int(clip_frames),
                prompt_frames=int(prompt_frames),
                alpha=float(alpha),
                beta=float(beta),
                overlap=overlap,
                noise_reuse=noise_reuse,
                first_frame_strength=float(first_frame_strength),
            )
            result = generate_long_video(
                model, positive, negative, samples, options, noise=noise, freeinit=freeinit, first_frame=image
            )
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
        return ({**out, "samples": result.latent},)


NODE_CLASS_MAPPINGS = {"FrameFoldLongVideoSampler": FrameFoldLongVideoSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldLongVideoSampler": "FrameFold Long Video Sampler (VidRD)"}
