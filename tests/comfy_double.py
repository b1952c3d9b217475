"""A test double of the part of ComfyUI that FrameFold touches (CI has no ComfyUI).

Written from ComfyUI 0.3.64's source: ``folder_paths.py`` (the table, ``map_legacy``, ``add_model_folder_path``,
``get_folder_paths``, ``get_full_path``, ``get_filename_list``), ``utils/extra_config.py``
(``load_extra_path_config``) and ``latent_preview.py`` / ``comfy.utils.ProgressBar`` (previews). Install it with
:func:`install` (a pytest ``monkeypatch``), which puts the modules into ``sys.modules``.
"""

import os
import sys
import types
from pathlib import Path
from typing import Any, Dict, List

import torch

SUPPORTED_PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
CORE_FOLDERS = {  # a subset of folder_paths' own table: name -> folders under models/
    "checkpoints": ["checkpoints"],
    "loras": ["loras"],
    "vae": ["vae"],
    "text_encoders": ["text_encoders", "clip"],
    "controlnet": ["controlnet", "t2i_adapter"],
    "upscale_models": ["upscale_models"],
}


def make_folder_paths(base: Path) -> types.ModuleType:
    """A ``folder_paths`` module rooted at ``base`` (``base/models``, ``base/input`` ...), behaving like ComfyUI's."""
    fp = types.ModuleType("folder_paths")
    fp.base_path = str(base)
    fp.models_dir = os.path.join(str(base), "models")
    fp.supported_pt_extensions = set(SUPPORTED_PT_EXTENSIONS)
    fp.folder_names_and_paths = {
        name: ([os.path.join(fp.models_dir, d) for d in dirs], set(SUPPORTED_PT_EXTENSIONS))
        for name, dirs in CORE_FOLDERS.items()
    }

    def map_legacy(folder_name: str) -> str:
        return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)

    def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
        folder_name = map_legacy(folder_name)
        table = fp.folder_names_and_paths
        if folder_name in table:
            paths, _exts = table[folder_name]
            if full_folder_path in paths:
                if is_default and paths[0] != full_folder_path:
                    paths.remove(full_folder_path)
                    paths.insert(0, full_folder_path)
            elif is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
        else:
            table[folder_name] = ([full_folder_path], set())

    def get_folder_paths(folder_name: str) -> List[str]:
        return fp.folder_names_and_paths[map_legacy(folder_name)][0][:]

    def get_full_path(folder_name: str, filename: str):
        folder_name = map_legacy(folder_name)
        if folder_name not in fp.folder_names_and_paths:
            return None
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for x in fp.folder_names_and_paths[folder_name][0]:
            full_path = os.path.join(x, filename)
            if os.path.isfile(full_path):
                return full_path
        return None

    def get_filename_list(folder_name: str) -> List[str]:
        paths, exts = fp.folder_names_and_paths[map_legacy(folder_name)]
        found = set()
        for x in paths:
            for root, _dirs, files in os.walk(x, followlinks=True):
                for f in files:
                    rel = os.path.relpath(os.path.join(root, f), x).replace(os.sep, "/")
                    if os.path.splitext(f)[-1].lower() in exts or len(exts) == 0:
                        found.add(rel)
        return sorted(found)

    for name in ("input", "output", "temp", "user"):
        setattr(fp, f"get_{name}_directory", (lambda n: lambda: os.path.join(str(base), n))(name))
    fp.map_legacy = map_legacy
    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = get_folder_paths
    fp.get_full_path = get_full_path
    fp.get_filename_list = get_filename_list
    return fp


def load_extra_path_config(fp: types.ModuleType, config: Dict[str, Dict[str, Any]], yaml_dir: str) -> None:
    """ComfyUI's ``utils.extra_config.load_extra_path_config`` on an already parsed yaml document."""
    for conf in config.values():
        if conf is None:
            continue
        conf = dict(conf)
        base_path = conf.pop("base_path", None)
        if base_path is not None:
            base_path = os.path.expandvars(os.path.expanduser(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = conf.pop("is_default", False)
        for x, value in conf.items():
            for y in value.split("\n"):
                if not y:
                    continue
                full_path = os.path.join(base_path, y) if base_path else y
                if not base_path and not os.path.isabs(full_path):
                    full_path = os.path.abspath(os.path.join(yaml_dir, y))
                fp.add_model_folder_path(x, os.path.normpath(full_path), is_default)


def install(monkeypatch: Any, base: Path) -> types.ModuleType:
    """Put a ``folder_paths`` double rooted at ``base`` into ``sys.modules``; returns it."""
    fp = make_folder_paths(base)
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    return fp


SD15_LATENT_RGB_FACTORS = [  # comfy/latent_formats.py SD15
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
]


def install_comfy_progress(monkeypatch: Any, preview_method: str = "auto") -> Dict[str, Any]:
    """``comfy.utils`` (ProgressBar), ``comfy.model_management`` (interrupt check), ``comfy.latent_formats`` (SD15)
    and ``latent_preview`` (``get_previewer`` honouring ``--preview-method``: none / auto = latent2rgb) doubles.

    Returns a record: ``updates`` holds each ``update_absolute(value, total, preview)`` call.
    """
    import torch
    from PIL import Image

    record: Dict[str, Any] = {"updates": [], "previewer_devices": []}

    class ProgressBar:
        def __init__(self, total: int) -> None:
            self.total = total

        def update_absolute(self, value: int, total: Any = None, preview: Any = None) -> None:
            record["updates"].append((value, total, preview))

    class LatentFormat:
        scale_factor = 1.0
        latent_channels = 4
        latent_rgb_factors = None
        latent_rgb_factors_bias = None
        taesd_decoder_name = None

    class SD15(LatentFormat):
        def __init__(self, scale_factor: float = 0.18215) -> None:
            self.scale_factor = scale_factor
            self.latent_rgb_factors = SD15_LATENT_RGB_FACTORS
            self.taesd_decoder_name = "taesd_decoder"

    class Latent2RGBPreviewer:
        def __init__(self, factors: Any) -> None:
            self.factors = torch.tensor(factors).transpose(0, 1)

        def decode_latent_to_preview_image(self, preview_format: str, x0: Any) -> Any:
            rgb = torch.nn.functional.linear(x0[0].movedim(0, -1), self.factors.to(x0.dtype))
            ubyte = ((rgb + 1.0) / 2.0).clamp(0, 1).mul(0xFF).to(torch.uint8)
            return ("JPEG", Image.fromarray(ubyte.numpy()), 512)

    def get_previewer(device: Any, latent_format: Any) -> Any:
        record["previewer_devices"].append(device)
        if preview_method == "none":
            return None
        return Latent2RGBPreviewer(latent_format.latent_rgb_factors)

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = lambda: None
    # the device policy's questions (pipelines/device.py), answered as ComfyUI started with --cpu would
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.unet_dtype = lambda *args, **kwargs: torch.float32
    mm.text_encoder_dtype = lambda *args, **kwargs: torch.float32
    mm.vae_dtype = lambda *args, **kwargs: torch.float32
    mm.free_memory = lambda *args, **kwargs: None
    mm.soft_empty_cache = lambda *args, **kwargs: None
    mm.get_free_memory = lambda *args, **kwargs: 16 * 2**30
    formats = types.ModuleType("comfy.latent_formats")
    formats.LatentFormat, formats.SD15 = LatentFormat, SD15
    preview = types.ModuleType("latent_preview")
    preview.get_previewer = get_previewer
    comfy.utils, comfy.model_management, comfy.latent_formats = utils, mm, formats
    for name, module in (
        ("comfy", comfy),
        ("comfy.utils", utils),
        ("comfy.model_management", mm),
        ("comfy.latent_formats", formats),
        ("latent_preview", preview),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return record


# -- core models: comfy.model_sampling / model_base / model_patcher / supported_models_base (ComfyUI 0.3.64) -------


def _core_betas(schedule: str, n: int, linear_start: float, linear_end: float) -> "torch.Tensor":
    """comfy/ldm/modules/diffusionmodules/util.make_beta_schedule (float64)."""
    import math

    if schedule == "linear":
        return torch.linspace(linear_start**0.5, linear_end**0.5, n, dtype=torch.float64) ** 2
    if schedule == "sqrt_linear":
        return torch.linspace(linear_start, linear_end, n, dtype=torch.float64)
    if schedule == "cosine":
        steps = torch.arange(n + 1, dtype=torch.float64) / n + 8e-3
        alphas = torch.cos(steps / (1 + 8e-3) * math.pi / 2).pow(2)
        alphas = alphas / alphas[0]
        return torch.clamp(1 - alphas[1:] / alphas[:-1], min=0, max=0.999)
    raise ValueError(f"schedule '{schedule}' unknown.")


def _rescale_zero_terminal_snr_sigmas(sigmas: "torch.Tensor") -> "torch.Tensor":
    alphas_bar_sqrt = (1 / (sigmas * sigmas + 1)).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt**2
    alphas_bar[-1] = 4.8973451890853435e-08
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


def _reshape_sigma(sigma: "torch.Tensor", ndim: int) -> "torch.Tensor":
    return sigma.view(()) if sigma.nelement() == 1 else sigma.view(sigma.shape[:1] + (1,) * (ndim - 1))


def install_comfy_models(monkeypatch: Any) -> Dict[str, Any]:
    """The progress doubles plus ``comfy.model_sampling``, ``comfy.model_base``, ``comfy.model_patcher`` and
    ``comfy.supported_models_base`` as far as FrameFold's model adapters and a core sampler use them, and
    ``comfy.model_management.load_models_gpu`` (applies a patcher's weight patches the way core does: patched
    weights become new parameters, originals backed up). Returns the record of install_comfy_progress plus the
    modules by short name."""
    import enum

    record = install_comfy_progress(monkeypatch)
    mm = sys.modules["comfy.model_management"]

    class EPS:
        def calculate_input(self, sigma: Any, noise: Any) -> Any:
            sigma = _reshape_sigma(sigma, noise.ndim)
            return noise / (sigma**2 + self.sigma_data**2) ** 0.5

        def calculate_denoised(self, sigma: Any, model_output: Any, model_input: Any) -> Any:
            sigma = _reshape_sigma(sigma, model_output.ndim)
            return model_input - model_output * sigma

    class V_PREDICTION(EPS):
        def calculate_denoised(self, sigma: Any, model_output: Any, model_input: Any) -> Any:
            sigma = _reshape_sigma(sigma, model_output.ndim)
            d = self.sigma_data
            return model_input * d**2 / (sigma**2 + d**2) - model_output * sigma * d / (sigma**2 + d**2) ** 0.5

    class ModelSamplingDiscrete(torch.nn.Module):
        def __init__(self, model_config: Any = None, zsnr: Any = None) -> None:
            super().__init__()
            settings = model_config.sampling_settings if model_config is not None else {}
            self.linear_start = settings.get("linear_start", 0.00085)
            self.linear_end = settings.get("linear_end", 0.012)
            self.zsnr = settings.get("zsnr", False) if zsnr is None else zsnr
            betas = _core_betas(
                settings.get("beta_schedule", "linear"),
                settings.get("timesteps", 1000),
                self.linear_start,
                self.linear_end,
            )
            self.num_timesteps = int(betas.shape[0])
            alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
            sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
            if self.zsnr:
                sigmas = _rescale_zero_terminal_snr_sigmas(sigmas)
            self.register_buffer("sigmas", sigmas.float())
            self.register_buffer("log_sigmas", sigmas.log().float())
            self.sigma_data = 1.0

        def timestep(self, sigma: Any) -> Any:
            dists = sigma.log() - self.log_sigmas[:, None]
            return dists.abs().argmin(dim=0).view(sigma.shape)

    class ModelType(enum.Enum):
        EPS = 1
        V_PREDICTION = 2

    def model_sampling(model_config: Any, model_type: Any) -> Any:
        c = V_PREDICTION if model_type == ModelType.V_PREDICTION else EPS

        class ModelSampling(ModelSamplingDiscrete, c):  # type: ignore[misc, valid-type]
            pass

        return ModelSampling(model_config)

    class BaseModel(torch.nn.Module):
        def __init__(self, model_config: Any, model_type: Any = ModelType.EPS, device: Any = None) -> None:
            super().__init__()
            self.latent_format = model_config.latent_format
            self.model_config = model_config
            self.model_type = model_type
            self.model_sampling = model_sampling(model_config, model_type)
            if not model_config.unet_config.get("disable_unet_model_creation", False):
                raise NotImplementedError("the double builds no core UNet")

        def apply_model(self, x: Any, t: Any, c_crossattn: Any = None, transformer_options: Any = None) -> Any:
            sigma = t
            xc = self.model_sampling.calculate_input(sigma, x).to(self.diffusion_model.dtype)
            timestep = self.model_sampling.timestep(t).float()
            out = self.diffusion_model(
                xc, timestep, context=c_crossattn, control=None, transformer_options=transformer_options or {}
            ).float()
            return self.model_sampling.calculate_denoised(sigma, out, x)

    class BASE:
        unet_extra_config = {"num_heads": -1, "num_head_channels": 64}
        sampling_settings: Dict[str, Any] = {}

        def __init__(self, unet_config: Dict[str, Any]) -> None:
            self.unet_config = dict(unet_config, **self.unet_extra_config)
            self.sampling_settings = dict(self.sampling_settings)
            self.latent_format = sys.modules["comfy.latent_formats"].LatentFormat()

    def _set_attr(root: Any, key: str, value: Any) -> None:
        *path, name = key.split(".")
        owner = root
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, torch.nn.Parameter(value, requires_grad=False))

    class ModelPatcher:
        """Weight patches are ``{key: [delta tensor, ...]}`` (core stores LoRA factors; the sum is the same)."""

        def __init__(self, model: Any, load_device: Any, offload_device: Any) -> None:
            self.model = model
            self.load_device, self.offload_device = load_device, offload_device
            self.patches: Dict[str, List[Any]] = {}
            self.object_patches: Dict[str, Any] = {}
            self.model_options: Dict[str, Any] = {"transformer_options": {}}
            self.backup: Dict[str, Any] = {}

        def clone(self) -> "ModelPatcher":
            n = ModelPatcher(self.model, self.load_device, self.offload_device)
            n.patches = {k: list(v) for k, v in self.patches.items()}
            n.object_patches = dict(self.object_patches)
            n.model_options = {"transformer_options": dict(self.model_options["transformer_options"])}
            return n

        def add_patches(self, patches: Dict[str, Any], strength: float = 1.0) -> None:
            for key, delta in patches.items():
                self.patches.setdefault(key, []).append(delta * strength)

        def get_model_object(self, name: str) -> Any:
            return self.object_patches.get(name, getattr(self.model, name))

        def patch_model(self) -> None:
            weights = dict(self.model.state_dict())
            for key, deltas in self.patches.items():
                self.backup.setdefault(key, weights[key])
                _set_attr(self.model, key, weights[key] + sum(deltas))

        def unpatch_model(self) -> None:
            for key, weight in self.backup.items():
                _set_attr(self.model, key, weight)
            self.backup.clear()

    loaded: List[Any] = []

    def load_models_gpu(models: List[Any], force_full_load: bool = False, **kwargs: Any) -> None:
        for patcher in models:
            for other in [p for p in loaded if p.model is patcher.model and p is not patcher]:
                other.unpatch_model()
                loaded.remove(other)
            if patcher not in loaded:
                patcher.patch_model()
                loaded.append(patcher)

    mm.load_models_gpu = load_models_gpu
    modules = {
        "model_sampling": ("comfy.model_sampling", {"ModelSamplingDiscrete": ModelSamplingDiscrete, "EPS": EPS}),
        "model_base": ("comfy.model_base", {"BaseModel": BaseModel, "ModelType": ModelType}),
        "model_patcher": ("comfy.model_patcher", {"ModelPatcher": ModelPatcher}),
        "supported_models_base": ("comfy.supported_models_base", {"BASE": BASE}),
    }
    for short, (name, members) in modules.items():
        module = types.ModuleType(name)
        for attr, value in members.items():
            setattr(module, attr, value)
        if short == "model_sampling":
            module.V_PREDICTION = V_PREDICTION
        monkeypatch.setitem(sys.modules, name, module)
        setattr(sys.modules["comfy"], short, module)
        record[short] = module
    return record
