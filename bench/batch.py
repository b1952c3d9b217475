"""Benchmark of batch running: jobs per minute three ways, on the same prompt x seed sweep.

    python bench/batch.py [--jobs 12] [--steps 2] [--frames 4] [--size 64] [--threads 1] [--no-ray]

1. one-by-one ``framefold run`` processes (each loads torch, the nodes and the checkpoint again);
2. ``framefold batch`` in-process (one worker process, models loaded once, text encodes reused);
3. ``framefold batch --ray`` with 2 local actors (``ray.init(num_cpus=2)``, loopback, usage stats off).

Wall-clock time includes process start-up, as a user sees it. Prints figures; passes or fails nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "example_workflows" / "text_to_video.json"
PROMPTS = ["a red circle", "a blue square", "a green dot", "a white line"]


def tiny_workflow(folder, steps, frames, size):
    """The text-to-video example with small settings and PNG output, written to ``folder``."""
    from framefold.host.registry import default_registry
    from framefold.host.workflow import load_workflow

    prompt, _ = load_workflow(EXAMPLE, default_registry())
    prompt["7"]["inputs"]["steps"] = steps
    prompt["6"]["inputs"].update(frames=frames, width=size, height=size)
    prompt["9"]["inputs"].update(format="png", filename_prefix="bench")
    path = Path(folder) / "bench.json"
    path.write_text(json.dumps(prompt))
    return path


def framefold(*args):
    """Run the framefold command in a child process; raise if it fails."""
    command = [sys.executable, "-m", "framefold.host.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return done


def timed(label, jobs, fn):
    """Run ``fn``, print jobs/minute, return seconds."""
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(f"{label:44s} {seconds:7.1f} s   {60 * jobs / seconds:6.1f} jobs/min", flush=True)
    return seconds


def main():
    """Parse the flags, build the sweep, time the three ways."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, help="jobs in the sweep (prompts x seeds)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process / worker")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    args = parser.parse_args()
    seeds = max(1, args.jobs // len(PROMPTS))
    rows = [(text, seed) for text in PROMPTS for seed in range(seeds)][: args.jobs]
    print(
        f"{len(rows)} jobs: {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, {args.threads} thread(s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workflow = tiny_workflow(tmp, args.steps, args.frames, args.size)
        jobs = Path(tmp) / "jobs.jsonl"
        jobs.write_text(
            "".join(json.dumps({"workflow": str(workflow), "4.text": t, "7.seed": s}) + "\n" for t, s in rows)
        )
        env_threads = {"OMP_NUM_THREADS": str(args.threads)}
        os.environ.update(env_threads)

        def one_by_one():
            for text, seed in rows:
                framefold(
                    "run",
                    workflow,
                    "--set",
                    f"4.text={text}",
                    "--set",
                    f"7.seed={seed}",
                    "--output-dir",
                    Path(tmp) / "run",
                    "--quiet",
                )

        timed("framefold run, one process per job", len(rows), one_by_one)
        common = [jobs, "--threads", args.threads, "--quiet"]
        timed(
            "framefold batch, in-process (1 worker)",
            len(rows),
            lambda: framefold("batch", *common, "--output-dir", Path(tmp) / "batch"),
        )
        if args.no_ray:
            return
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not installed (pip install framefold[ray]): Ray not measured")
            return
        timed(
            "framefold batch --ray, 2 local actors",
            len(rows),
            lambda: framefold("batch", *common, "--output-dir", Path(tmp) / "ray", "--ray", "--ray-workers", 2),
        )


if __name__ == "__main__":
    main()
