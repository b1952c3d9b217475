"""Checks what ``graphs.json`` wrote into a ComfyUI output folder (see README.md here).

python scripts/comfy_interop/check_outputs.py COMFY_TREE/output
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.torch import load_file


def latent(folder: Path, prefix: str):
    """The samples of the newest ``<prefix>_NNNNN_.latent`` core's Save Latent wrote."""
    return load_file(str(sorted(folder.glob(f"{prefix}_*_.latent"))[-1]))["latent_tensor"]


def red_square_centre_x(folder: Path, index: int) -> float:
    """Column of the centre of the red pixels of frame ``index`` of the KSampler video (Save Image files)."""
    rgb = np.asarray(Image.open(folder / f"ffB_frames_{index:05d}_.png").convert("RGB")).astype(float) / 255
    red = (rgb[..., 0] > 0.5) & (rgb[..., 1] < 0.4) & (rgb[..., 2] < 0.4)
    return float(np.nonzero(red)[1].mean())


def main(folder: Path) -> None:
    """Print the figures the note reports; exit 1 when a check fails."""
    with_lora, without = latent(folder, "ffA_lora"), latent(folder, "ffA_nolora")
    core_ksampler = latent(folder, "ffD_core_ksampler_sd15")
    lora_effect = float((with_lora - without).abs().max())
    start, end = red_square_centre_x(folder, 1), red_square_centre_x(folder, 16)
    print(
        f"A: LoRA changes FrameFold's sampler output: max |difference| {lora_effect:.3f} (shape {tuple(with_lora.shape)})"
    )
    print(f"B: FrameFold model in core KSampler, 'a red square moving right': centre x {start:.1f} -> {end:.1f} px")
    print(f"D: core checkpoint -> FrameFold motion -> core KSampler: finite {bool(core_ksampler.isfinite().all())}")
    ok = lora_effect > 1e-3 and end - start > 8 and bool(core_ksampler.isfinite().all())
    print("interop graphs:", "OK" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
