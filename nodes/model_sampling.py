"""Model sampling node: choose the noise (beta) schedule a model samples on."""

from typing import Any, Dict, Tuple

from ..pipelines.models.bundle import SCHEDULE_CHOICES, DiffusionModel
from . import _types as T
from ._errors import NodeInputError

SCHEDULE_TOOLTIP = (
    "auto: AnimateDiff's linear betas (0.00085 -> 0.012, as its motion modules were trained and are sampled) "
    "when an AnimateDiff v1/v2/v3 module is attached, else the checkpoint's own schedule. scaled_linear: Stable "
    "Diffusion's betas. linear: linear in beta. squaredcos_cap_v2: the cosine schedule. The choice stays with "
    "the model when a motion module is attached later."
)


class FrameFoldModelSampling:
    """Override the beta schedule of a model (the 'auto' rule otherwise picks it)."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        """Model, beta schedule and the zero-terminal-SNR rescale."""
        return {
            "required": {
                "model": (T.FF_MODEL, {"tooltip": "The model whose noise schedule to set."}),
                "beta_schedule": (list(SCHEDULE_CHOICES), {"default": "auto", "tooltip": SCHEDULE_TOOLTIP}),
                "zero_terminal_snr": (
                    T.BOOLEAN,
                    {
                        "default": False,
                        "tooltip": "Rescale the betas so the last timestep is pure noise (Lin et al.); for models "
                        "trained that way (use 'trailing' spacing). Off keeps the checkpoint's own setting with "
                        "'auto' and turns it off otherwise.",
                    },
                ),
            }
        }

    RETURN_TYPES = (T.FF_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = "FrameFold/model"
    DESCRIPTION = "Sets the beta schedule the samplers use for this model; recorded in saved videos' provenance."

    def apply(self, model: DiffusionModel, beta_schedule: str, zero_terminal_snr: bool) -> Tuple[DiffusionModel]:
        """A copy of the model (weights shared) sampling on the chosen schedule."""
        name = type(self).__name__
        if not isinstance(model, DiffusionModel):
            raise NodeInputError(name, "model", f"a FF_MODEL (DiffusionModel), got {type(model).__name__}")
        if beta_schedule not in SCHEDULE_CHOICES:
            raise NodeInputError(name, "beta_schedule", f"one of {list(SCHEDULE_CHOICES)}, got {beta_schedule!r}")
        native = model.native_schedule or model.schedule
        zsnr = True if zero_terminal_snr else (native.zero_terminal_snr if beta_schedule == "auto" else False)
        return (model.with_schedule_choice(beta_schedule, zsnr),)


NODE_CLASS_MAPPINGS = {"FrameFoldModelSampling": FrameFoldModelSampling}
NODE_DISPLAY_NAME_MAPPINGS = {"FrameFoldModelSampling": "FrameFold Model Sampling"}
