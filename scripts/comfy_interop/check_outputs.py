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


def frames(folder: Path, prefix: str) -> np.ndarray:
    """The 8-bit frames core's Save Image wrote with ``prefix``, stacked."""
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.glob(f"{prefix}_*_.png"))])


def main(folder: Path) -> None:
    """Print the figures the note reports; exit 1 when a check fails (graph E's VAE is random: it checks that
    the two encoders and decoders agree, not that the image comes back)."""
    with_lora, without = latent(folder, "ffA_lora"), latent(folder, "ffA_nolora")
    core_ksampler = latent(folder, "ffD_core_ksampler_sd15")
    lora_effect = float((with_lora - without).abs().max())
    start, end = red_square_centre_x(folder, 1), red_square_centre_x(folder, 16)
    print(
        f"A: LoRA changes FrameFold's sampler output: max |difference| {lora_effect:.3f} (shape {tuple(with_lora.shape)})"
    )
    print(f"B: FrameFold model in core KSampler, 'a red square moving right': centre x {start:.1f} -> {end:.1f} px")
    print(f"D: core checkpoint -> FrameFold motion -> core KSampler: finite {bool(core_ksampler.isfinite().all())}")
    encode_gap = float((latent(folder, "ffE_framefold_encode") - latent(folder, "ffE_core_encode")).abs().max())
    reference = frames(folder, "ffE_core_then_core_decode").astype(int)
    cross = [frames(folder, f"ffE_{name}").astype(int) for name in ("ff_then_core_decode", "core_then_ff_decode")]
    decode_gap = max(int(np.abs(c - reference).max()) for c in cross)
    print(f"E: FrameFold VAE Encode vs core VAE Encode: max |latent difference| {encode_gap:.2e}")
    print(f"E: either encoder, either decoder vs core -> core: max {decode_gap}/255 over {len(reference)} frames")
    ok = lora_effect > 1e-3 and end - start > 8 and bool(core_ksampler.isfinite().all())
    ok = ok and encode_gap <= 1e-5 and decode_gap <= 1
    print("interop graphs:", "OK" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
