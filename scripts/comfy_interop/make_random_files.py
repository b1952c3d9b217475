"""Random-weight files in the real SD 1.5 checkpoint, AnimateDiff v2 motion module and kohya LoRA formats.

The shapes come from the shared key manifests (``../shared/fixtures/manifests``); the values are random (no
released weights are involved), scaled so activations stay finite. They let the interop graphs in ``graphs.json``
run in a real ComfyUI on a machine with no model files (see README.md here):

    python scripts/comfy_interop/make_random_files.py MANIFEST_DIR COMFY_TREE/models
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

LORA_BLOCKS = {"input_blocks_1_1": 320, "input_blocks_2_1": 320, "middle_block_1": 1280, "output_blocks_11_1": 320}
LORA_PROJECTIONS = ("attn1_to_q", "attn1_to_k", "attn1_to_v", "attn2_to_q")


def random_tensor(key: str, shape: list, generator: torch.Generator) -> torch.Tensor:
    """fp16 values for one key: norm scales 1, biases 0, weights N(0, 1/fan_in); position ids 0..n-1."""
    if "position_ids" in key:
        return torch.arange(shape[-1]).reshape(shape).to(torch.int64)
    if len(shape) == 1:  # 1-D weights are norm scales
        return (torch.ones if key.endswith("weight") else torch.zeros)(shape, dtype=torch.float16)
    fan_in = 1
    for size in shape[1:]:
        fan_in *= size
    return (torch.randn(shape, generator=generator) / max(fan_in, 1) ** 0.5).to(torch.float16)


def write_from_manifest(manifest: Path, out: Path, generator: torch.Generator) -> None:
    """A safetensors file with every key of ``manifest`` at its shape."""
    keys = json.loads(manifest.read_text())["keys"]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: random_tensor(k, shape, generator) for k, shape in keys.items()}, str(out))
    print(out, len(keys), "keys")


def write_lora(out: Path, generator: torch.Generator) -> None:
    """A kohya-format LoRA (rank 8) on attention projections of four transformer blocks of SD 1.5's UNet."""
    lora = {}
    for block, dim in LORA_BLOCKS.items():
        for projection in LORA_PROJECTIONS:
            name = f"lora_unet_{block}_transformer_blocks_0_{projection}"
            lora[name + ".lora_down.weight"] = (torch.randn(8, dim, generator=generator) * 0.2).half()
            lora[name + ".lora_up.weight"] = (torch.randn(dim, 8, generator=generator) * 0.2).half()
            lora[name + ".alpha"] = torch.tensor(8.0).half()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(lora, str(out))
    print(out, len(lora), "keys")


def main(argv: list) -> None:
    """Write the three files under MODELS_DIR's checkpoints/, animatediff_models/ and loras/."""
    manifests, models = Path(argv[0]), Path(argv[1])
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    write_from_manifest(manifests / "sd15_checkpoint.json", models / "checkpoints/sd15_random.safetensors", generator)
    write_from_manifest(
        manifests / "animatediff_mm_sd_v15_v2.json",
        models / "animatediff_models/mm_sd_v15_v2_random.safetensors",
        generator,
    )
    write_lora(models / "loras/lora_random.safetensors", generator)


if __name__ == "__main__":
    main(sys.argv[1:])
