"""How fast a wrong file is refused: header identification vs reading the tensors.

    python bench/loader_validation.py [--mib 512] [--repeat 5]

Writes a large synthetic AnimateDiff-style motion module (``--mib`` of float32 tensors, safetensors and a
legacy .ckpt) and the embedded default checkpoint next to it, then times, for each file: the VAE / checkpoint
loaders' header check (what the loader nodes' VALIDATE_INPUTS run, refusing the file and naming what it is),
and a full ``read_state_dict`` of the same file (what a loader would read before it could tell). Prints figures;
passes or fails nothing.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from framefold.nodes._folders import EMBEDDED_DIR
from framefold.pipelines.loading import checkpoint, vae
from framefold.pipelines.loading.files import read_state_dict, write_safetensors


def _motion_like(mib: int) -> dict:
    """Motion-module keys whose tensors add up to about ``mib`` MiB."""
    per_tensor = 1280 * 1280
    count = max(1, mib * 2**20 // (4 * per_tensor))
    sd = {
        f"down_blocks.0.motion_modules.{i}.temporal_transformer.proj_in.weight": torch.zeros(1280, 1280)
        for i in range(count)
    }
    sd["down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"] = (
        torch.zeros(1, 32, 1280)
    )
    return sd


def _best_seconds(fn, repeat: int) -> float:
    """Fastest of ``repeat`` timed calls (exceptions are the expected outcome)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            fn()
        except ValueError:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print one JSON line per (file, check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sd = _motion_like(args.mib)
        files = {
            "motion_module.safetensors": write_safetensors(Path(tmp) / "motion_module.safetensors", sd),
            "default checkpoint": EMBEDDED_DIR / "checkpoints" / "framefold-tiny.safetensors",
        }
        torch.save({"state_dict": sd}, Path(tmp) / "motion_module.ckpt")
        files["motion_module.ckpt"] = Path(tmp) / "motion_module.ckpt"
        del sd
        for label, path in files.items():
            checks = {
                "vae header check (refuses)": lambda p=path: vae.check_vae_file(p),
                "checkpoint header check": lambda p=path: checkpoint.check_checkpoint_file(p),
                "full read_state_dict": lambda p=path: read_state_dict(p),
            }
            for name, fn in checks.items():
                seconds = _best_seconds(fn, args.repeat)
                size = path.stat().st_size / 2**20
                print(json.dumps({"file": label, "mib": round(size, 1), "check": name, "seconds": round(seconds, 4)}))


if __name__ == "__main__":
    main()
