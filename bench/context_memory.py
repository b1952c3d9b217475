"""Peak memory of context-window sampling: 256 frames vs 16 frames (target: within 1.5x).

Each measurement runs in a fresh subprocess (peak RSS, ``ru_maxrss``, is per process). The model is a tiny
stand-in UNet whose per-frame activations are large (a 4 -> 128 -> 4 channel conv stack at 64x64 latents), so
activation memory dominates like in a real UNet. Prints figures; it does not pass or fail.

Run: ``python bench/context_memory.py`` (add ``--no-window-contrast`` to skip the 64-frame no-window run).
"""

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.context import ContextOptions
from framefold.pipelines.sampling.guidance import GuidedDenoiser

frames, use_windows = int(sys.argv[1]), sys.argv[2] == "1"

class WideUNet(torch.nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.inp = torch.nn.Conv2d(4, width, 3, padding=1)
        self.mid = torch.nn.Conv2d(width, width, 1)
        self.out = torch.nn.Conv2d(width, 4, 3, padding=1)
    def forward(self, x, t, context, *, num_frames, **options):
        h = torch.nn.functional.silu(self.inp(x))
        h = h + h.view(-1, num_frames, *h.shape[1:]).mean(1).repeat_interleave(num_frames, 0)
        return self.out(torch.nn.functional.silu(self.mid(h))) * 0.1 + x * 0.9

with torch.no_grad():
    model = DiffusionModel(WideUNet(), ScheduleConfig())
    g = torch.Generator().manual_seed(0)
    pos = Conditioning(torch.randn(1, 77, 8, generator=g)); neg = Conditioning(torch.zeros(1, 77, 8))
    ctx = ContextOptions(16, 4, 1, False, "pyramid") if use_windows else None
    denoise = GuidedDenoiser(model, pos, neg, 7.5, context=ctx)
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), 2, "trailing")
    noise = torch.randn(frames, 4, 64, 64, generator=g)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    samplers.sample("euler", denoise, noise, sigmas)
    took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": frames, "windows": use_windows, "base_kib": base, "peak_kib": peak,
                  "model_calls": denoise.calls, "seconds": took}))
"""


def measure(frames, windows):
    """Peak RSS of one 2-step sampling run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(frames), "1" if windows else "0"], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"measurement failed ({frames} frames):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    runs = [measure(16, True), measure(256, True)]
    if "--no-window-contrast" not in sys.argv:
        runs.append(measure(64, False))
    for r in runs:
        print(
            f"frames={r['frames']:4d} windows={str(r['windows']):5s} peak RSS {r['peak_kib'] / 1024:8.1f} MiB "
            f"(after setup {r['base_kib'] / 1024:7.1f} MiB, growth {(r['peak_kib'] - r['base_kib']) / 1024:7.1f} "
            f"MiB) model calls {r['model_calls']:3d}  {r['seconds']:.1f} s"
        )
    ratio = runs[1]["peak_kib"] / runs[0]["peak_kib"]
    print(f"peak RSS 256 frames / 16 frames with context windows: {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
