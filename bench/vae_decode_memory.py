"""Peak memory of chunked VAE decoding: 64 frames vs 8 frames (target: within 1.3x).

Each measurement runs in a fresh subprocess and reports the growth of the process's peak resident set
(``resource.getrusage(...).ru_maxrss``) during ``VAE.decode`` alone, so imports and model weights are not
counted. The 64-frame output tensor itself (unavoidable) is included in the figure.

Usage: python bench/vae_decode_memory.py [--size 32] [--chunk 8]
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(frames, chunk, size, temporal, tile):
    """Decode ``frames`` latent frames in one process and print JSON figures."""
    import torch

    from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = AutoencoderKLConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8, temporal_decoder=temporal)
    model = AutoencoderKL(cfg).eval()
    if temporal:  # make the temporal layers non-trivial so the context frames matter
        for m in model.modules():
            if hasattr(m, "convs"):
                torch.nn.init.normal_(m.convs[-1].weight, std=0.02)
    vae = VAE(model)
    latents = torch.randn(frames, 4, size, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    d = vae.downscale  # decode tiles are in image pixels; this bench sizes them in latent pixels
    images = vae.decode(latents, frame_chunk=chunk, tile=tile * d, tile_overlap=4 * d)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "frames": frames,
                "chunk": chunk,
                "temporal": temporal,
                "tile": tile,
                "peak_growth_mib": (after - before) / 1024.0,
                "output_mib": images.numel() * 4 / 2**20,
                "seconds": seconds,
                "radius": model.decoder.temporal_radius() if temporal else 0,
            }
        )
    )


def _measure(frames, chunk, size, temporal=False, tile=0):
    """Run one child process and parse its JSON line."""
    cmd = [sys.executable, __file__, "--child", str(frames), str(chunk), str(size), str(int(temporal)), str(tile)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    """Print the table of measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="latent height/width (pixels = 4x)")
    parser.add_argument("--chunk", type=int, default=8, help="frame chunk size")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        frames, chunk, size, temporal, tile = (int(v) for v in args.child)
        _child(frames, chunk, size, bool(temporal), tile)
        return
    rows = [
        ("image decoder, 8 frames", _measure(8, args.chunk, args.size)),
        ("image decoder, 64 frames", _measure(64, args.chunk, args.size)),
        ("image decoder, 64 frames, all at once", _measure(64, 64, args.size)),
        ("image decoder, 8 frames, tiles 16", _measure(8, args.chunk, args.size, tile=16)),
        ("image decoder, 64 frames, tiles 16", _measure(64, args.chunk, args.size, tile=16)),
        ("temporal decoder, 8 frames", _measure(8, args.chunk, args.size, temporal=True)),
        ("temporal decoder, 64 frames", _measure(64, args.chunk, args.size, temporal=True)),
    ]
    print(f"VAE ch=32 ch_mult=(1,2,2), latents {args.size}x{args.size} -> {4 * args.size}px, chunk {args.chunk}")
    print(f"{'case':42s} {'peak growth MiB':>16s} {'output MiB':>11s} {'seconds':>8s}")
    for name, r in rows:
        print(f"{name:42s} {r['peak_growth_mib']:16.1f} {r['output_mib']:11.1f} {r['seconds']:8.2f}")
    base, long = rows[0][1]["peak_growth_mib"], rows[1][1]["peak_growth_mib"]
    print(f"ratio 64/8 frames (chunked image decoder): {long / base:.2f}x (target <= 1.3x)")
    tb, tl = rows[3][1]["peak_growth_mib"], rows[4][1]["peak_growth_mib"]
    print(f"ratio 64/8 frames (chunked + tiled): {tl / tb:.2f}x")
    rb, rl = rows[5][1]["peak_growth_mib"], rows[6][1]["peak_growth_mib"]
    print(
        f"ratio 64/8 frames (temporal decoder, radius {rows[5][1]['radius']} context frames per side): {rl / rb:.2f}x"
    )


if __name__ == "__main__":
    main()
