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
