"""Write example_workflows/*.json (UI format) from the API graphs below.

The graphs are the source of truth; this script turns them into canvas-loadable files with the host's own
``api_to_ui`` so widget order always matches the node definitions. Run it after changing a node's inputs:

    python scripts/make_example_workflows.py [OUT_DIR] [--no-thumbnails]

Each example is also run once (``framefold run``, minutes on a CPU) and the first frame of its first video is saved
as ``<name>.jpg``, the template thumbnail ComfyUI's template browser asks for.
"""

import json
import sys
import tempfile
from pathlib import Path

from framefold.host.registry import default_registry
from framefold.host.workflow import api_to_ui

CHECKPOINT = "framefold-tiny.safetensors"
MOTION_MODULE = "framefold-tiny-motion.safetensors"
SIZE = 64
FRAMES = 16
STEPS = 20
CFG = 2.0
# The default model is v-prediction with zero terminal SNR: trailing spacing starts at t = T, where the
# caption alone decides the layout and motion. Stronger guidance exaggerates "this shape minus the average
# shape" into squares and concave three-pointed stars: on the session-7 weights bench/default_model.py
# (72 pairs) gives shape right 94% at cfg 2, 75% at cfg 3, 51% at cfg 4.5, and all five attributes right
# 92% / 69% / 46%; motion stays >= 94% at cfg 2 (default_model/README.md).
SCHEDULER = "trailing"


def _model_nodes(prompt, negative=""):
    """Loader, motion module and text nodes shared by every example (ids 1-5)."""
    return {
        "1": {"class_type": "FrameFoldCheckpointLoader", "inputs": {"ckpt_name": CHECKPOINT, "dtype": "auto"}},
        "2": {"class_type": "FrameFoldLoadMotionModule", "inputs": {"model_name": MOTION_MODULE}},
        "3": {
            "class_type": "FrameFoldApplyMotionModule",
            "inputs": {"model": ["1", 0], "motion_module": ["2", 0], "motion_scale": 1.0},
        },
        "4": {"class_type": "FrameFoldTextEncode", "inputs": {"text": prompt, "text_encoder": ["1", 1]}},
        "5": {"class_type": "FrameFoldTextEncode", "inputs": {"text": negative, "text_encoder": ["1", 1]}},
    }


def _sampler(latent, seed, noise=None, steps=STEPS):
    """A Video Sampler node reading model 3 and prompts 4/5."""
    inputs = {
        "model": ["3", 0],
        "positive": ["4", 0],
        "negative": ["5", 0],
        "latent": latent,
        "seed": seed,
        "steps": steps,
        "cfg": CFG,
        "sampler_name": "ddim",
        "scheduler": SCHEDULER,
        "denoise": 1.0,
    }
    if noise is not None:
        inputs["noise"] = noise
    return {"class_type": "FrameFoldVideoSampler", "inputs": inputs}


def _noise_prior(method):
    """A Noise Prior node of ``method`` with the node's default knobs."""
    return {
        "class_type": "FrameFoldNoisePrior",
        "inputs": {
            "method": method,
            "videofusion_lambda": 0.5,
            "base_frame": -1,
            "alpha": 1.0,
            "window": 16,
            "stride": 4,
            "delta_x": 1.0,
            "delta_y": 0.0,
            "prompt_frames": 4,
        },
    }


def _decode_and_save(samples, prefix, fps=8.0):
    """VAE Decode + Save Video (mp4) nodes."""
    return (
        {"class_type": "FrameFoldVAEDecode", "inputs": {"samples": samples, "vae": ["1", 2]}},
        {
            "class_type": "FrameFoldSaveVideo",
            "inputs": {
                "images": None,
                "fps": fps,
                "filename_prefix": prefix,
                "format": "mp4",
                "crf": 12,
                "lossless": False,
            },
        },
    )


def _chain(graph, start_id, samples, prefix, fps=8.0):
    """Add decode -> save at ids start_id, start_id+1; returns the decode id."""
    decode, save = _decode_and_save(samples, prefix, fps)
    graph[str(start_id)] = decode
    save["inputs"]["images"] = [str(start_id), 0]
    graph[str(start_id + 1)] = save
    return str(start_id)


def text_to_video():
    """The main job: one prompt -> a 16-frame 64x64 mp4."""
    graph = _model_nodes("a red circle moving right on a black background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = _sampler(["6", 0], seed=42)
    _chain(graph, 8, ["7", 0], "FrameFold/text_to_video")
    return graph


def long_video_vidrd():
    """VidRD: 64 frames from the 16-frame model, clip by clip (FNR + PNS + DSG), with seam metrics."""
    graph = _model_nodes("a blue square moving left on a white background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = {
        "class_type": "FrameFoldLongVideoSampler",
        "inputs": {
            "model": ["3", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "latent": ["6", 0],
            "seed": 7,
            "total_frames": 64,
            "clip_frames": 0,
            "prompt_frames": 4,
            "alpha": 4.0,
            # tuned on the default model by bench/long_video.py: the paper's M 4 / beta 0.4 / drop left a jump of
            # about M frame steps at every join (seam ratio median 2.7); drop_first + beta 0.7 joins like a frame step
            "beta": 0.7,
            "steps": STEPS,
            "cfg": CFG,
            "overlap": "drop_first",
            "sampler_name": "ddim",
            "scheduler": SCHEDULER,
        },
    }
    decode = _chain(graph, 8, ["7", 0], "FrameFold/long_video_vidrd")
    graph["10"] = {
        "class_type": "FrameFoldVideoMetrics",
        "inputs": {"images": [decode, 0], "warp_error": False, "join_indices": "16,31,46,61"},
    }
    return graph


def noise_prior_comparison():
    """Same prompt and seed sampled from i.i.d. noise and from a VideoFusion prior; metrics on both."""
    graph = _model_nodes("a green triangle moving up on a gradient background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = _noise_prior("iid")
    graph["8"] = _noise_prior("videofusion")
    graph["9"] = _sampler(["6", 0], seed=3, noise=["7", 0])
    graph["10"] = _sampler(["6", 0], seed=3, noise=["8", 0])
    iid = _chain(graph, 11, ["9", 0], "FrameFold/noise_iid")
    vf = _chain(graph, 13, ["10", 0], "FrameFold/noise_videofusion")
    graph["15"] = {"class_type": "FrameFoldVideoMetrics", "inputs": {"images": [iid, 0], "warp_error": True}}
    graph["16"] = {"class_type": "FrameFoldVideoMetrics", "inputs": {"images": [vf, 0], "warp_error": True}}
    return graph


def image_to_video():
    """Image-to-video: a still (the first frame of a generated clip) animated with a new motion prompt."""
    graph = _model_nodes("a yellow circle moving down on a black background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = _sampler(["6", 0], seed=11)
    graph["8"] = {"class_type": "FrameFoldVAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    graph["9"] = {
        "class_type": "FrameFoldSelectFrames",
        "inputs": {"images": ["8", 0], "start": 0, "count": 1, "stride": 1},
    }
    graph["10"] = {
        "class_type": "FrameFoldImageToVideo",
        "inputs": {
            "model": ["3", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "vae": ["1", 2],
            "image": ["9", 0],
            "strength": 1.0,
            "frames": FRAMES,
            "seed": 12,
            "steps": STEPS,
            "cfg": CFG,
            "sampler_name": "ddim",
            "scheduler": SCHEDULER,
        },
    }
    _chain(graph, 11, ["10", 0], "FrameFold/image_to_video")
    return graph


def interpolate_video():
    """Temporal super-resolution: the text-to-video clip, 4x frames by optical flow, saved at 32 fps."""
    graph = _model_nodes("a red circle moving right on a black background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = _sampler(["6", 0], seed=42)
    graph["8"] = {"class_type": "FrameFoldVAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    graph["9"] = {
        "class_type": "FrameFoldInterpolateFrames",
        "inputs": {
            "images": ["8", 0],
            "method": "flow",
            "multiplier": 4,
            "fps": 8.0,
            "target_fps": 0.0,
            "scene_cut_threshold": 0.6,
        },
    }
    _, save = _decode_and_save(None, "FrameFold/interpolate_video")
    save["inputs"]["images"] = ["9", 0]
    save["inputs"]["fps"] = ["9", 2]  # 8 fps x 4 = 32 fps, carried from the interpolation node
    graph["10"] = save
    return graph


CONTROLNET = "framefold-tiny-controlnet.safetensors"


def controlnet_video():
    """ControlNet: the edges of a procedural clip (a square moving down) steer a prompt that says 'right'."""
    graph = _model_nodes("a red square moving right on a black background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = {
        "class_type": "FrameFoldSyntheticVideo",
        "inputs": {
            "caption": "a cyan square moving down on a black background",
            "seed": 5,
            "frames": FRAMES,
            "size": SIZE,
        },
    }
    graph["8"] = {"class_type": "FrameFoldCanny", "inputs": {"images": ["7", 0], "low": 100, "high": 200}}
    graph["9"] = {"class_type": "FrameFoldLoadControlNet", "inputs": {"controlnet_name": CONTROLNET, "dtype": "auto"}}
    graph["10"] = {
        "class_type": "FrameFoldApplyControlNet",
        "inputs": {
            "positive": ["4", 0],
            "negative": ["5", 0],
            "controlnet": ["9", 0],
            "images": ["8", 0],
            "strength": 1.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
            "resize": "crop",
            "frame_indices": "",
        },
    }
    sampler = _sampler(["6", 0], seed=21)
    sampler["inputs"].update(positive=["10", 0], negative=["10", 1])
    graph["11"] = sampler
    _chain(graph, 12, ["11", 0], "FrameFold/controlnet_video")
    return graph


def upscale_video():
    """Cascaded spatial SR (seed 000 §2.1): text_to_video at 64x64 -> 2x latent re-denoise with the video model
    (temporal stage) -> 2x per-frame model upscale -> a 256x256 mp4."""
    graph = _model_nodes("a red circle moving right on a black background")
    graph["6"] = {
        "class_type": "FrameFoldEmptyVideoLatent",
        "inputs": {"vae": ["1", 2], "width": SIZE, "height": SIZE, "frames": FRAMES},
    }
    graph["7"] = _sampler(["6", 0], seed=42)
    graph["8"] = {
        "class_type": "FrameFoldLatentUpscaleRedenoise",
        "inputs": {
            "model": ["3", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "latent": ["7", 0],
            "scale": 2.0,
            "upscale_method": "bicubic",
            "denoise": 0.4,
            "seed": 43,
            "steps": 10,
            "cfg": CFG,
            "sampler_name": "ddim",
            "scheduler": SCHEDULER,
            "tile_size": 0,
            "tile_overlap": 8,
        },
    }
    graph["9"] = {"class_type": "FrameFoldVAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}}
    graph["10"] = {
        "class_type": "FrameFoldLoadUpscaleModel",
        "inputs": {"model_name": "framefold-tiny-compact-x2.safetensors"},
    }
    graph["11"] = {
        "class_type": "FrameFoldUpscaleVideoModel",
        # an explicit tile size: "auto" depends on the free memory, and the frames must not
        "inputs": {
            "images": ["9", 0],
            "upscale_model": ["10", 0],
            "scale_by": 0.0,
            "tile_size": 64,
            "tile_overlap": 16,
        },
    }
    _, save = _decode_and_save(None, "FrameFold/upscale_video")
    save["inputs"]["images"] = ["11", 0]
    graph["12"] = save
    return graph


EXAMPLES = {
    "text_to_video": text_to_video,
    "long_video_vidrd": long_video_vidrd,
    "noise_prior_comparison": noise_prior_comparison,
    "image_to_video": image_to_video,
    "interpolate_video": interpolate_video,
    "controlnet_video": controlnet_video,
    "upscale_video": upscale_video,
}


THUMBNAIL_SIDE = 256  # ComfyUI's template browser shows <name>.jpg beside each example


def first_frame(video_path: Path):
    """The first frame of a video file as an RGB uint8 array ``[H, W, 3]``."""
    import av

    with av.open(str(video_path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise RuntimeError(f"{video_path}: no frames")


def write_thumbnail(workflow: Path) -> Path:
    """Run ``workflow`` with ``framefold run`` and save the first frame of its first video as ``<name>.jpg``
    (nearest-neighbour enlarged to :data:`THUMBNAIL_SIDE` pixels on the long side)."""
    import cv2

    from framefold.host.cli import main as framefold_main

    with tempfile.TemporaryDirectory() as tmp:
        if framefold_main(["run", str(workflow), "--output-dir", tmp, "--quiet"]) != 0:
            raise RuntimeError(f"{workflow.name}: framefold run failed")
        videos = sorted(p for p in Path(tmp).rglob("*") if p.suffix in (".mp4", ".webm", ".webp", ".gif"))
        if not videos:
            raise RuntimeError(f"{workflow.name}: wrote no video")
        rgb = first_frame(videos[0])
    scale = max(1, THUMBNAIL_SIDE // max(rgb.shape[:2]))
    big = cv2.resize(rgb, (rgb.shape[1] * scale, rgb.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    path = workflow.with_suffix(".jpg")
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 90])
    return path


def main(out_dir=None, thumbnails: bool = True):
    """Write every example as UI-format JSON into ``out_dir`` (default: the package's example_workflows), and with
    ``thumbnails`` run each one for its template thumbnail ``<name>.jpg`` (minutes on a CPU)."""
    out = Path(out_dir) if out_dir else Path(__file__).resolve().parent.parent / "example_workflows"
    out.mkdir(parents=True, exist_ok=True)
    registry = default_registry()
    for name, build in EXAMPLES.items():
        ui = api_to_ui(build(), registry)
        (out / f"{name}.json").write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote {out / (name + '.json')}")
        if thumbnails:
            print(f"wrote {write_thumbnail(out / f'{name}.json')}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-thumbnails"]
    main(args[0] if args else None, thumbnails="--no-thumbnails" not in sys.argv[1:])
