"""Text conditioning node: prompt -> FF_CONDITIONING."""

import logging
from typing import Any, Dict

from ..pipelines.generate import encode_prompt
from ..pipelines.prompt_feedback import prompt_warnings
from . import _types as T
from ._comfy import comfy_modules
from ._errors import node_inputs

log = logging.getLogger("framefold")

CATEGORY = "FrameFold/conditioning"


class FrameFoldTextEncode:
    """Encode a prompt with the checkpoint's text encoder."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Prompt text, text encoder and clip skip."""
        return {
            "required": {
                "text": (
                    T.STRING,
                    {
                        "multiline": True,
                        "dynamicPrompts": True,
                        "default": "",
                        "tooltip": "The prompt. (word:1.2) sets a weight, (word) multiplies it by 1.1, [word] divides "
                        "it by 1.1. Prompts longer than 75 tokens are encoded in chunks of 77.",
                    },
                ),
                "text_encoder": (T.FF_TEXT_ENCODER, {"tooltip": "Text encoder from FrameFold Load Checkpoint."}),
            },
            "optional": {
                "clip_skip": (
                    T.INT,
                    {
                        "default": 0,
                        "min": 0,
                        "max": 48,
                        "step": 1,
                        "tooltip": "Use the output of the n-th last CLIP layer (1 = last, 2 = penultimate), final "
                        "layer norm applied like ComfyUI's CLIP Set Last Layer -n. 0 = the model's default "
                        "(1 for SD1.x, 2 for SD2.x).",
                    },
                ),
            },
        }

    RETURN_TYPES = (T.FF_CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Turns a prompt into text embeddings for the sampler."

    def encode(self, text: str, text_encoder: Any, clip_skip: int = 0) -> Dict[str, Any]:
        """Tokenize (with emphasis and chunking) and run the text encoder; warnings about the prompt go to the
        node (``ui.text``, shown on the canvas), to ``ui.warnings`` (printed by ``framefold run``) and, inside
        ComfyUI, to its log."""
        with node_inputs(self):
            conditioning = encode_prompt(text_encoder, text, clip_skip)
        warnings = prompt_warnings(getattr(text_encoder, "tokenizer", None), text)
        if not warnings:
            return {"result": (conditioning,)}
        if comfy_modules() is not None:
            for warning in warnings:
                log.warning("FrameFold Text Encode: %s", warning)
        return {"ui": {"text": ["\n".join(warnings)], "warnings": warnings}, "result": (conditioning,)}


NODE_CLASS_MAPPINGS = {"FrameFoldTextEncode": FrameFoldTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldTextEncode": "FrameFold Text Encode"}
