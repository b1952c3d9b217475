"""Text conditioning node: prompt -> FF_CONDITIONING."""

from . import _types as T
from ._errors import NodeInputError

CATEGORY = "FrameFold/conditioning"


class FrameFoldTextEncode:
    """Encode a prompt with the checkpoint's text encoder."""

    @classmethod
    def INPUT_TYPES(cls):
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

    def encode(self, text, text_encoder, clip_skip=0):
        """Tokenize (with emphasis and chunking) and run the text encoder."""
        layers = len(text_encoder.model.encoder.layers)
        if not 0 <= clip_skip <= layers:
            raise NodeInputError(
                type(self).__name__, "clip_skip", f"0 (model default) or a value in 1..{layers} for this text encoder"
            )
        if clip_skip:
            text_encoder = text_encoder.with_clip_skip(clip_skip)
        return (text_encoder.encode(text),)


NODE_CLASS_MAPPINGS = {"FrameFoldTextEncode": FrameFoldTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldTextEncode": "FrameFold Text Encode"}
