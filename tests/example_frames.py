"""Capture the frames every example workflow hands to its Save Video nodes (used by the regression test).

Run as a script to (re)write ``tests/data/example_frames/<example>.npz`` (all examples, or the ones named
on the command line): for each Save Video node, keyed by its file name prefix, the frames as uint8 and
the SHA-256 of their float32 bytes. Regenerate an example's file only when its output is meant to change.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_workflows"
FIXTURE_DIR = Path(__file__).resolve().parent / "data" / "example_frames"


def fixture_path(example):
    """The fixture file of one example (by file stem)."""
    return FIXTURE_DIR / f"{example}.npz"


def float_digest(images):
    """SHA-256 of an IMAGE batch's float32 bytes (bit-identity check)."""
    array = images.detach().to(torch.float32).contiguous().cpu().numpy()
    return hashlib.sha256(array.tobytes()).hexdigest()


def capture_example_frames(path, output_dir):
    """Run one example with ``framefold run``; return ``(file name prefix, IMAGE batch)`` for each save."""
    from framefold.host.cli import main as framefold_main
    from framefold.pipelines.video import io as video_io

    originals = {"write_video": video_io.write_video, "write_video_numbered": video_io.write_video_numbered}
    captured = []

    def recording_write_video(frames, path, *args, **kwargs):
        name = re.sub(r"_\d+_(\.\w+)?$", "", Path(path).name)
        captured.append((name, frames.detach().clone()))
        return originals["write_video"](frames, path, *args, **kwargs)

    def recording_write_video_numbered(frames, directory, base_name, *args, **kwargs):
        captured.append((base_name, frames.detach().clone()))
        return originals["write_video_numbered"](frames, directory, base_name, *args, **kwargs)

    recorders = {"write_video": recording_write_video, "write_video_numbered": recording_write_video_numbered}
    patched = [
        (module, name)
        for module in list(sys.modules.values())
        if module is not None and (module.__name__ or "").startswith("framefold")
        for name, original in originals.items()
        if getattr(module, name, None) is original
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixture was made with one thread; float sums differ with more
    try:
        for module, name in patched:
            setattr(module, name, recorders[name])
        code = framefold_main(["run", str(path), "--output-dir", str(output_dir), "--quiet"])
    finally:
        torch.set_num_threads(threads)
        for module, name in patched:
            setattr(module, name, originals[name])
    if code != 0:
        raise RuntimeError(f"{path.name}: framefold run exited {code}")
    return captured


def to_uint8(images):
    """IMAGE batch -> uint8 array as the video writer quantises it."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def main(names=None):
    """Write the fixture files from the current code."""
    import tempfile

    torch.set_num_threads(1)
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        if names and path.stem not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            frames = capture_example_frames(path, tmp)
        arrays = {name: to_uint8(images) for name, images in frames}
        digests = {name: float_digest(images) for name, images in frames}
        np.savez_compressed(fixture_path(path.stem), digests=np.array(json.dumps(digests)), **arrays)
        print(path.stem, {name: d[:16] for name, d in digests.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
