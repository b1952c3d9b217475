"""Helpers of the batch tests: a tiny text-to-video workflow on the default model, job files, manifests."""

import json
import os
import subprocess
import sys
from pathlib import Path

from framefold.host.registry import default_registry
from framefold.host.workflow import load_workflow

EXAMPLE = Path(__file__).resolve().parents[1] / "example_workflows" / "text_to_video.json"
PROMPTS = [
    "a red circle",
    "a blue square",
    "a green dot",
    "a white line",
    "a yellow ball",
    "a moving bar",
    "a small star",
    "a bright ring",
    "a dark box",
]


def tiny_workflow(folder, steps=2, frames=2, size=32):
    """The text-to-video example at a tiny size with PNG-sequence output; returns its path."""
    prompt, _ = load_workflow(EXAMPLE, default_registry())
    prompt["7"]["inputs"]["steps"] = steps
    prompt["6"]["inputs"].update(frames=frames, width=size, height=size)
    prompt["8"]["inputs"]["frame_chunk"] = frames
    prompt["9"]["inputs"].update(format="png", filename_prefix="clip")
    path = Path(folder) / "tiny.json"
    path.write_text(json.dumps(prompt))
    return path


def write_jobs(path, rows):
    """A JSON-lines job file."""
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)


def read_manifest(folder):
    """Records of batch.jsonl."""
    path = Path(folder) / "batch.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cli(args, **popen):
    """Start ``framefold batch ARGS`` in a child process (one torch thread per worker)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "framefold.host.cli", "batch", *map(str, args), "--threads", "1", "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def files_under(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
