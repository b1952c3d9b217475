"""Core MODEL <-> FrameFold FF_MODEL (the design is in README.md, "Inside ComfyUI").

From core: a ComfyUI ``ModelPatcher`` (Load Checkpoint, LoRA loaders, ...) is asked to apply its weight patches
(``load_models_gpu``), then FrameFold's UNet is built on the meta device and given the patched tensors of
``patcher.model.diffusion_model`` by assignment: the weights are shared, not copied, and a LoRA that core applied
is in what FrameFold runs. Patched tensors are new tensors (core replaces a patched parameter unless a pack asks
for in-place updates), so the FF_MODEL keeps the weights it was made with even after core unpatches its model.
What a ModelPatcher can carry besides weight patches (attention patches, wrappers, object patches other than the
model sampling) changes how core's UNet runs, not its weights: FrameFold cannot honour it and refuses it by name.

To core: FrameFold's (motion) UNet goes behind core's ``BaseModel`` as its ``diffusion_model``. Core's samplers
batch the prompts of one step together (``transformer_options["cond_or_uncond"]`` lists them), so the frames of
one video are ``batch // len(cond_or_uncond)``. The module exposes FrameFold's UNet under its LDM names (the UNet's
children at the root, the motion module as ``motion``), so core LoRA loaders find their keys.

The noise schedule crosses as data: core's ``model_sampling`` (beta schedule, range, zero terminal SNR, eps or v)
becomes a FrameFold ScheduleConfig and back, and each crossing checks that both give the same sigmas.
"""

import importlib
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from ..pipelines.loading.unet import build_unet
from ..pipelines.models.bundle import DiffusionModel, ScheduleConfig
from ..pipelines.sampling import schedules
from ._errors import NodeInputError

# core's beta schedule names (comfy/ldm/modules/diffusionmodules/util.make_beta_schedule) -> diffusers' names
CORE_TO_FRAMEFOLD_SCHEDULE = {"linear": "scaled_linear", "sqrt_linear": "linear", "cosine": "squaredcos_cap_v2"}
FRAMEFOLD_TO_CORE_SCHEDULE = {v: k for k, v in CORE_TO_FRAMEFOLD_SCHEDULE.items()}
# model_options entries that change how core runs its UNet (FrameFold runs its own UNet and cannot apply them)
UNSUPPORTED_MODEL_OPTIONS = (
    "model_function_wrapper",
    "sampler_cfg_function",
    "sampler_pre_cfg_function",
    "sampler_post_cfg_function",
    "denoise_mask_function",
)
SCHEDULE_TOLERANCE = 1e-4  # max |alphas_cumprod difference| between core's schedule and FrameFold's


def comfy_module(name: str) -> Any:
    """``importlib.import_module(name)`` for a ComfyUI module; a clear error outside ComfyUI."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RuntimeError(f"{name} is not importable: this node only works inside ComfyUI") from e


# -- schedules ------------------------------------------------------------------------------------------


def prediction_of(model_sampling: Any) -> str:
    """``"epsilon"`` or ``"v_prediction"`` for a core model sampling object (by its classes, as core builds it)."""
    names = {cls.__name__ for cls in type(model_sampling).__mro__}
    if "ModelSamplingDiscrete" not in names:
        raise ValueError(f"a discrete-time model sampling (SD 1.x/2.x), got {type(model_sampling).__name__}")
    if "V_PREDICTION" in names:
        return "v_prediction"
    if "EPS" in names:
        return "epsilon"
    raise ValueError(f"an epsilon or v-prediction model, got {sorted(n for n in names if n.isupper())}")


def core_alphas_cumprod(model_sampling: Any) -> torch.Tensor:
    """``alphas_cumprod [T]`` of a core ``ModelSamplingDiscrete`` (it stores sigmas)."""
    sigmas = model_sampling.sigmas.detach().double().cpu()
    return 1.0 / (1.0 + sigmas**2)


def check_same_schedule(schedule: ScheduleConfig, model_sampling: Any) -> None:
    """Raise ValueError unless FrameFold's ``schedule`` gives core's sigmas (alphas_cumprod within tolerance)."""
    ours = schedules.alphas_cumprod_from_config(schedule).double()
    theirs = core_alphas_cumprod(model_sampling)
    if ours.shape != theirs.shape:
        raise ValueError(f"core's schedule has {theirs.numel()} timesteps, FrameFold's {ours.numel()}")
    gap = float((ours - theirs).abs().max())
    if gap > SCHEDULE_TOLERANCE:
        raise ValueError(f"core's noise schedule is not {schedule.describe()} (alphas_cumprod differ by {gap:.2e})")


def schedule_from_core(model_sampling: Any, sampling_settings: Dict[str, Any]) -> ScheduleConfig:
    """FrameFold's ScheduleConfig for a core model sampling object, checked against its sigmas."""
    core_name = sampling_settings.get("beta_schedule", "linear")
    if core_name not in CORE_TO_FRAMEFOLD_SCHEDULE:
        raise ValueError(f"a beta schedule in {sorted(CORE_TO_FRAMEFOLD_SCHEDULE)}, got {core_name!r}")
    schedule = ScheduleConfig(
        beta_schedule=CORE_TO_FRAMEFOLD_SCHEDULE[core_name],
        beta_start=float(getattr(model_sampling, "linear_start", sampling_settings.get("linear_start", 0.00085))),
        beta_end=float(getattr(model_sampling, "linear_end", sampling_settings.get("linear_end", 0.012))),
        num_train_timesteps=int(getattr(model_sampling, "num_timesteps", 1000)),
        prediction_type=prediction_of(model_sampling),
        zero_terminal_snr=bool(getattr(model_sampling, "zsnr", False)),
    )
    check_same_schedule(schedule, model_sampling)
    return schedule


def sampling_settings_for(schedule: ScheduleConfig) -> Dict[str, Any]:
    """Core ``sampling_settings`` giving the same betas as FrameFold's ``schedule``."""
    return {
        "beta_schedule": FRAMEFOLD_TO_CORE_SCHEDULE[schedule.beta_schedule],
        "linear_start": schedule.beta_start,
        "linear_end": schedule.beta_end,
        "timesteps": schedule.num_train_timesteps,
        "zsnr": schedule.zero_terminal_snr,
    }


# -- core MODEL -> FF_MODEL -----------------------------------------------------------------------------


def unsupported_patches(patcher: Any) -> List[str]:
    """Names of what ``patcher`` carries besides weight patches and a model-sampling override."""
    found: List[str] = []
    options = getattr(patcher, "model_options", {}) or {}
    transformer = options.get("transformer_options", {}) or {}
    found += [f"transformer_options[{k!r}]" for k in ("patches", "patches_replace") if transformer.get(k)]
    found += [f"model_options[{k!r}]" for k in UNSUPPORTED_MODEL_OPTIONS if options.get(k)]
    found += [f"object patch {k!r}" for k in (getattr(patcher, "object_patches", {}) or {}) if k != "model_sampling"]
    for name in ("wrappers", "callbacks"):
        if any(v for v in (getattr(patcher, name, {}) or {}).values()):
            found.append(f"{name} (from another pack)")
    return found


def patched_unet_weights(patcher: Any) -> Dict[str, torch.Tensor]:
    """The UNet state dict of ``patcher`` with its weight patches (LoRAs) applied, fully loaded by core."""
    model_management = comfy_module("comfy.model_management")
    model_management.load_models_gpu([patcher], force_full_load=True)
    return dict(patcher.model.diffusion_model.state_dict())


def model_from_core(node_class: str, patcher: Any, input_name: str = "model") -> DiffusionModel:
    """FrameFold's model for a core MODEL: its UNet (weights shared, patches applied), schedule and latent format.

    A MODEL made by "FrameFold Model to ComfyUI" gives back the FrameFold model inside it.
    """
    base = getattr(patcher, "model", None)
    if base is None or not hasattr(base, "diffusion_model"):
        raise NodeInputError(node_class, input_name, f"a ComfyUI MODEL (ModelPatcher), got {type(patcher).__name__}")
    inner = base.diffusion_model
    if isinstance(inner, FrameFoldCoreUNet):
        comfy_module("comfy.model_management").load_models_gpu([patcher], force_full_load=True)
        return inner.framefold_model
    refused = unsupported_patches(patcher)
    if refused:
        raise NodeInputError(
            node_class,
            input_name,
            f"a MODEL with weight patches (LoRA) only; FrameFold runs its own UNet and cannot apply {refused}",
        )
    latent_format = base.latent_format
    try:
        model_sampling = patcher.get_model_object("model_sampling")
        sampling_settings = dict(getattr(base.model_config, "sampling_settings", {}) or {})
        schedule = schedule_from_core(model_sampling, sampling_settings)
        unet = build_unet(patched_unet_weights(patcher), source="ComfyUI MODEL (diffusion_model)")
    except ValueError as e:
        raise NodeInputError(node_class, input_name, f"an SD 1.x/2.x UNet model FrameFold can run: {e}") from e
    if unet.config.in_channels != int(getattr(latent_format, "latent_channels", 4)):
        raise NodeInputError(node_class, input_name, "a model whose UNet takes its latent format's channels")
    return DiffusionModel(
        unet=unet,
        schedule=schedule,
        name=f"ComfyUI {type(base).__name__}",
        latent_scale=float(latent_format.scale_factor),
        latent_shift=float(getattr(latent_format, "shift_factor", None) or 0.0),
    )


# -- FF_MODEL -> core MODEL -----------------------------------------------------------------------------


class FrameFoldCoreUNet(nn.Module):
    """FrameFold's (motion) UNet answering core's ``diffusion_model(x, t, context=..., control=..., ...)`` call."""

    def __init__(self, model: DiffusionModel):
        super().__init__()
        unet: Any = model.unet
        base = unet.without_motion() if hasattr(unet, "without_motion") else unet
        for name, child in base.named_children():  # LDM names at the root, for core's LoRA key maps
            self.add_module(name, child)
        motion = getattr(unet, "motion", None)
        if motion is not None:
            self.add_module("motion", motion)
        object.__setattr__(self, "_framefold_model", model)  # the same modules: not registered a second time

    @property
    def framefold_model(self) -> DiffusionModel:
        """The FrameFold model this module runs."""
        return self.__dict__["_framefold_model"]

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights (core's BaseModel.get_dtype asks for it)."""
        return next(self.parameters()).dtype

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        control: Any = None,
        transformer_options: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Core's call: x ``[chunks*F, C, h, w]`` where each prompt chunk holds the F frames of the video."""
        model = self.framefold_model
        options = transformer_options or {}
        if control is not None:
            raise ValueError(
                "a core ControlNet reached FrameFold's UNet: use FrameFold Apply ControlNet with FrameFold's sampler"
            )
        if options.get("patches") or options.get("patches_replace"):
            raise ValueError("attention patches (IP-Adapter and the like) cannot be applied to FrameFold's UNet")
        if context is None:
            raise ValueError("FrameFold's UNet needs text conditioning (context)")
        chunks = max(len(options.get("cond_or_uncond", [0])), 1)
        if x.shape[0] % chunks:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of the {chunks} prompts core batched together")
        frames = x.shape[0] // chunks
        if getattr(model.unet, "motion", None) is not None and frames > model.frame_window:
            raise ValueError(
                f"{frames} frames in one batch but the motion module handles {model.frame_window}: use FrameFold's "
                "sampler with context windows for longer videos"
            )
        return model(x, timesteps, context.to(x.dtype), num_frames=frames)


def latent_format_for(model: DiffusionModel, channels: int) -> Any:
    """Core's latent format object for ``model`` (core's SD15 one when it is SD 1.5's, for its previews)."""
    formats = comfy_module("comfy.latent_formats")
    core_format: Any = formats.LatentFormat
    if channels == 4 and model.latent_scale == 0.18215 and model.latent_shift == 0.0:
        return formats.SD15()

    class FrameFoldLatentFormat(core_format):
        latent_channels = channels
        scale_factor = model.latent_scale
        shift_factor = model.latent_shift

        def process_in(self, latent: torch.Tensor) -> torch.Tensor:
            return (latent - self.shift_factor) * self.scale_factor

        def process_out(self, latent: torch.Tensor) -> torch.Tensor:
            return latent / self.scale_factor + self.shift_factor

    return FrameFoldLatentFormat()


def model_to_core(node_class: str, model: Any, input_name: str = "model") -> Any:
    """A core MODEL (ModelPatcher around a BaseModel) running FrameFold's ``model``; the weights are shared."""
    if not isinstance(model, DiffusionModel):
        raise NodeInputError(node_class, input_name, f"a FrameFold model (FF_MODEL), got {type(model).__name__}")
    model_base = comfy_module("comfy.model_base")
    model_patcher = comfy_module("comfy.model_patcher")
    supported = comfy_module("comfy.supported_models_base")
    management = comfy_module("comfy.model_management")
    schedule = model.schedule
    unet: Any = model.unet
    channels = int(unet.config.in_channels)
    config = supported.BASE({"disable_unet_model_creation": True, "in_channels": channels})
    config.latent_format = latent_format_for(model, channels)
    config.sampling_settings = sampling_settings_for(schedule)
    kind = model_base.ModelType.V_PREDICTION if schedule.prediction_type == "v_prediction" else model_base.ModelType.EPS
    base = model_base.BaseModel(config, model_type=kind, device=model.device)
    base.diffusion_model = FrameFoldCoreUNet(model)
    try:
        check_same_schedule(schedule, base.model_sampling)
    except ValueError as e:
        raise NodeInputError(node_class, input_name, f"a schedule core can reproduce: {e}") from e
    return model_patcher.ModelPatcher(
        base, load_device=management.get_torch_device(), offload_device=management.unet_offload_device()
    )


def conditioning_to_core(embeds: torch.Tensor) -> List[List[Any]]:
    """Core CONDITIONING (one plain entry) for FrameFold text embeddings ``[1, L, D]`` (or ``[F, L, D]``)."""
    return [[embeds, {}]]
