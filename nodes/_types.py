"""Socket type names (ComfyUI's own types where we interoperate, ``FF_`` types for our objects), the widgets
shared by several nodes, and reading a LATENT dict."""

from typing import Any, Dict, Tuple

import torch

from ..pipelines.sampling import schedules
from ..pipelines.sampling.samplers import SAMPLERS
from ._errors import NodeInputError

Widget = Tuple[Any, Dict[str, Any]]

IMAGE = "IMAGE"  # float32 [F, H, W, C] in 0..1; a video is a batch of frames
MASK = "MASK"  # float32 [F, H, W]
LATENT = "LATENT"  # {"samples": [F, C, h, w], ...}
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"

MAX_SEED = 2**53 - 1  # the browser stores numbers as doubles: larger seeds lose precision on the canvas


def seed_widget(tooltip: str) -> Widget:
    """The sampler seed widget: 0..MAX_SEED with ComfyUI's control_after_generate combo."""
    return (INT, {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True, "tooltip": tooltip})


def size_policy_widget() -> Widget:
    """How an image whose sides are not multiples of the VAE downscale is fitted (pipelines/latents.py)."""
    return (
        ["crop", "pad", "resize"],
        {
            "default": "crop",
            "tooltip": "Sides that are not multiples of the VAE downscale (8 for SD): crop (default, centred, as "
            "ComfyUI's VAE Encode does), pad (centred, edge pixels repeated) or resize (bilinear, nearest multiple).",
        },
    )


def cfg_widget() -> Widget:
    """The classifier-free guidance scale widget shared by the samplers."""
    return (
        FLOAT,
        {
            "default": 7.5,
            "min": 0.0,
            "max": 100.0,
            "step": 0.1,
            "round": 0.01,
            "tooltip": "Classifier-free guidance scale; 1 runs the positive prompt only (faster).",
        },
    )


def steps_widget(default: int, tooltip: str) -> Widget:
    """The sampler steps widget (1..1000)."""
    return (INT, {"default": default, "min": 1, "max": 1000, "tooltip": tooltip})


def fraction_widget(tooltip: str, default: float = 1.0, low: float = 0.0) -> Widget:
    """A FLOAT widget in ``low..1`` with steps of 0.01 (strengths, denoise, fractions of the steps)."""
    return (FLOAT, {"default": default, "min": low, "max": 1.0, "step": 0.01, "tooltip": tooltip})


CORE_NOTE = " FrameFold Text Encode or core CLIP Text Encode (one plain text conditioning)."


def prompt_inputs(positive_tooltip: str = "What the video should show.") -> Dict[str, Widget]:
    """The positive / negative conditioning sockets shared by the samplers (in this order)."""
    return {
        "positive": (FF_CONDITIONING + ",CONDITIONING", {"tooltip": positive_tooltip + CORE_NOTE}),
        "negative": (
            FF_CONDITIONING + ",CONDITIONING",
            {"tooltip": "What to steer away from (unused at cfg 1)." + CORE_NOTE},
        ),
    }


FF_MODEL = "FF_MODEL"  # pipelines.models.bundle.DiffusionModel
FF_TEXT_ENCODER = "FF_TEXT_ENCODER"  # text encoder + tokenizer
FF_VAE = "FF_VAE"
FF_CONDITIONING = "FF_CONDITIONING"
FF_MOTION_MODULE = "FF_MOTION_MODULE"
FF_NOISE = "FF_NOISE"  # a noise prior
FF_CONTEXT = "FF_CONTEXT"  # context-window options
FF_CONTROLNET = "FF_CONTROLNET"
FF_METRICS = "FF_METRICS"
FF_FREEINIT = "FF_FREEINIT"  # pipelines.sampling.freeinit.FreeInitOptions

SAMPLER_TOOLTIP = (
    "ddim (deterministic), euler, euler_ancestral (adds noise each step), dpmpp_2m (good in few steps), lcm (for "
    "LCM-distilled models, 4-8 steps, cfg ~1-2)."
)
SCHEDULER_TOOLTIP = (
    "Timestep spacing: leading (SD/AnimateDiff DDIM), trailing (needed for zero-terminal-SNR models), linspace, "
    "karras, lcm (use with the lcm sampler)."
)
# option fields of pipelines/generate.py's SamplingOptions -> the sampler widgets' names (saved workflows use them)
SAMPLER_WIDGET_NAMES = {"sampler": "sampler_name", "spacing": "scheduler", "denoise_strength": "denoise"}


def sampler_widgets(
    sampler_tooltip: str = SAMPLER_TOOLTIP, scheduler_tooltip: str = SCHEDULER_TOOLTIP, spacing: str = "leading"
) -> Dict[str, Widget]:
    """The sampler_name / scheduler widgets (DDIM by default; ``spacing`` is the scheduler's default)."""
    return {
        "sampler_name": (list(SAMPLERS), {"default": "ddim", "tooltip": sampler_tooltip}),
        "scheduler": (list(schedules.SPACINGS), {"default": spacing, "tooltip": scheduler_tooltip}),
    }


def sampling_fields(seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str) -> Dict[str, Any]:
    """The sampler widgets as the fields of ``pipelines/generate.py`` ``SamplingOptions`` (its subclasses too)."""
    return {"steps": steps, "cfg": cfg, "sampler": sampler_name, "spacing": scheduler, "seed": int(seed)}


def latent_samples(node: object, latent: Any, input_name: str) -> torch.Tensor:
    """The ``samples [F, C, h, w]`` of a LATENT dict, or a NodeInputError naming ``input_name``."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        node_class = node.__name__ if isinstance(node, type) else type(node).__name__
        raise NodeInputError(node_class, input_name, "a LATENT dict with 'samples' [F,C,h,w]")
    return samples
