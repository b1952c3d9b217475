"""Benchmark: one UNet + motion module step, FrameFold vs diffusers UNetMotionModel, same weights and inputs.

Prints, per config: seconds per call for both, the time ratio (diffusers / FrameFold), the max abs output
difference, the achieved GFLOP/s (FLOPs counted with torch.utils.flop_counter) and this machine's fp32 sgemm
rate (a 2048^3 matmul) for scale. CPU, fp32, torch.inference_mode.

    python bench/unet_step.py            # tiny config, then SD1.5's real config at 256x256 x 16 frames
    python bench/unet_step.py --quick    # tiny config only

diffusers is only the reference here (a test/bench oracle); FrameFold itself never imports it. Our model
is built from diffusers' state dicts by FrameFold's loaders, so both share the same weight tensors.
The motion modules use ``norm_across_frames=True`` so that both compute the same function (diffusers'
AnimateDiffTransformer3D normalises the whole video jointly; the AnimateDiff reference normalises per frame).
"""

import argparse
import time

import torch
from einops import rearrange


def sgemm_gflops(n=2048, repeats=3):
    """Measured fp32 matmul rate of this machine (GFLOP/s, best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def build_models(size, seed=0):
    """(diffusers UNetMotionModel, FrameFold AnimatedUNet, context_dim) with shared random weights."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from framefold.pipelines.loading.motion import build_motion_module
    from framefold.pipelines.loading.unet import build_unet
    from framefold.pipelines.models.unet import UNetConfig

    torch.manual_seed(seed)
    if size == "tiny":
        channels, layers, context_dim, heads, mm_heads = (32, 64), 1, 64, 2, 4
        down = ("DownBlock2D", "CrossAttnDownBlock2D")
        up = ("CrossAttnUpBlock2D", "UpBlock2D")
        config = UNetConfig(
            model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
        )
    else:
        channels, layers, context_dim, heads, mm_heads = (320, 640, 1280, 1280), 2, 768, 8, 8
        down = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
        up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
        config = UNetConfig.sd15()
    image = UNet2DConditionModel(
        block_out_channels=channels,
        layers_per_block=layers,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=context_dim,
        attention_head_dim=heads,
    ).eval()
    adapter = MotionAdapter(
        block_out_channels=channels,
        motion_layers_per_block=layers,
        motion_num_attention_heads=mm_heads,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    with torch.no_grad():  # proj_out is zero-initialised: give the motion modules real work
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.normal_(0, 0.02)
    reference = UNetMotionModel.from_unet2d(image, adapter).eval()
    del image, adapter  # from_unet2d copied them; build ours from the reference's own tensors (shared memory)
    weights = reference.state_dict()
    unet = build_unet({k: v for k, v in weights.items() if "motion_modules." not in k}, config)
    motion = build_motion_module(
        {k: v for k, v in weights.items() if "motion_modules." in k}, num_heads=mm_heads, norm_across_frames=True
    )
    return reference, unet.with_motion(motion), context_dim


def timed(fn):
    """(wall seconds, process CPU seconds, output) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def compare(ref_call, our_call, repeats):
    """Best wall and CPU times of both calls, alternated so that neither profits from a quieter moment.

    The untimed warm-up call of FrameFold runs under the FLOP counter.
    """
    ref_out = ref_call()
    flops, our_out = count_flops(our_call)
    best = {"ref": [float("inf")] * 2, "ours": [float("inf")] * 2}
    for _ in range(repeats):
        for name, fn in (("ref", ref_call), ("ours", our_call)):
            wall, cpu, out = timed(fn)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
            if name == "ref":
                ref_out = out
            else:
                our_out = out
    return best["ref"], best["ours"], ref_out, our_out, flops


def count_flops(fn):
    """(FLOPs of one call counted by torch's FlopCounterMode, its output)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return counter.get_total_flops(), out


def run(size, frames, latent, repeats, sgemm):
    """Benchmark one config with one prompt for all frames and with a different prompt per frame."""
    reference, ours, context_dim = build_models(size)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(frames, 4, latent, latent, generator=g)
    t = torch.full((frames,), 500)
    contexts = {
        "1 prompt": torch.randn(1, 77, context_dim, generator=g).expand(frames, -1, -1).contiguous(),
        "prompt/frame": torch.randn(frames, 77, context_dim, generator=g),
    }
    video = rearrange(x, "(b f) c h w -> b c f h w", f=frames)
    for label, context in contexts.items():
        with torch.inference_mode():
            ref_call = lambda: reference(video, t[:1], context).sample  # noqa: E731
            our_call = lambda: ours(x, t, context, num_frames=frames)  # noqa: E731
            (ref_wall, ref_cpu), (our_wall, our_cpu), ref_out, our_out, flops = compare(ref_call, our_call, repeats)
        diff = (rearrange(ref_out, "b c f h w -> (b f) c h w") - our_out).abs().max().item()
        print(
            f"| {size} {latent * 8}x{latent * 8}x{frames}, {label} | {ref_wall:7.2f} / {ref_cpu:7.2f} | "
            f"{our_wall:7.2f} / {our_cpu:7.2f} | {ref_wall / our_wall:4.2f}x / {ref_cpu / our_cpu:4.2f}x | "
            f"{diff:.1e} | {flops / 1e9:7.1f} | {flops / our_wall / 1e9:6.1f} ({100 * flops / our_wall / 1e9 / sgemm:4.1f}%) | "
            f"{flops / ref_wall / 1e9:6.1f} |",
            flush=True,
        )


def main():
    """Parse arguments, run the configs, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny config only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per model (0 = 5 tiny / 1 full)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sgemm = sgemm_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 sgemm 2048^3: {sgemm:.1f} GFLOP/s")
    print("Times are best-of-N seconds per call, wall / process CPU; speed-up = diffusers / FrameFold.")
    print("GFLOP/s use wall time (FrameFold's in % of the sgemm rate); FLOPs counted on FrameFold's call.")
    print(
        "| config | diffusers s | FrameFold s | speed-up | max abs diff | GFLOP/call | FrameFold GFLOP/s | diffusers GFLOP/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    run("tiny", frames=16, latent=32, repeats=args.repeats or 5, sgemm=sgemm)
    if not args.quick:
        run("sd15", frames=16, latent=32, repeats=args.repeats or 1, sgemm=sgemm)


if __name__ == "__main__":
    main()
