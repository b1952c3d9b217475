"""Socket type names. ComfyUI's own types where we interoperate, ``FF_`` types for our objects."""

IMAGE = "IMAGE"  # float32 [F, H, W, C] in 0..1; a video is a batch of frames
MASK = "MASK"  # float32 [F, H, W]
LATENT = "LATENT"  # {"samples": [F, C, h, w], ...}
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"

MAX_SEED = 2**53 - 1  # the browser stores numbers as doubles: larger seeds lose precision on the canvas


def seed_widget(tooltip):
    """The sampler seed widget: 0..MAX_SEED with ComfyUI's control_after_generate combo."""
    return (INT, {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True, "tooltip": tooltip})


def cfg_widget():
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


def prompt_inputs(positive_tooltip="What the video should show."):
    """The positive / negative conditioning sockets shared by the samplers (in this order)."""
    return {
        "positive": (FF_CONDITIONING, {"tooltip": positive_tooltip}),
        "negative": (FF_CONDITIONING, {"tooltip": "What to steer away from (unused at cfg 1)."}),
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
