"""Interpolation nodes and diffusion in-betweening: frame counts, exact key frames, fps output, clear errors."""

import pytest
import torch

from framefold.nodes._errors import NodeInputError
from framefold.nodes.inbetween import FrameFoldDiffusionInbetween
from framefold.nodes.interpolate import FrameFoldInterpolateFrames, FrameFoldLoadFrameInterpolationModel
from framefold.pipelines.generate import InbetweenOptions, inbetween_video
from framefold.pipelines.interpolation import InterpolationOptions, interpolate_video
from framefold.pipelines.interpolation.diffusion import blended_start, inbetween, key_positions
from framefold.pipelines.options import OptionError


def _clip(frames=4, size=32, seed=0):
    return torch.rand((frames, size, size, 3), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["flow", "rife"])
def test_interpolate_node_multiplier_count_fps_and_exact_ends(method):
    model = (
        FrameFoldLoadFrameInterpolationModel().load("framefold-tiny-rife.safetensors")[0] if method == "rife" else None
    )
    clip = _clip()
    images, count, fps = FrameFoldInterpolateFrames().interpolate(clip, method, 3, 8.0, interpolation_model=model)
    assert count == images.shape[0] == (4 - 1) * 3 + 1 and fps == 24.0
    assert torch.equal(images[0], clip[0]) and torch.equal(images[-1], clip[-1])


def test_interpolate_node_target_fps_keeps_the_duration():
    images, count, fps = FrameFoldInterpolateFrames().interpolate(_clip(16), "flow", 2, 8.0, target_fps=30.0)
    assert count == 57 and images.shape[0] == 57
    assert (count - 1) / fps == pytest.approx(15 / 8)


def test_interpolate_node_errors_name_the_input():
    node = FrameFoldInterpolateFrames()
    with pytest.raises(NodeInputError, match="input 'interpolation_model'"):
        node.interpolate(_clip(), "rife", 2, 8.0)
    with pytest.raises(NodeInputError, match="input 'images'"):
        node.interpolate(torch.zeros(4, 4), "flow", 2, 8.0)
    with pytest.raises(NodeInputError, match="input 'method'"):
        node.interpolate(_clip(), "film", 2, 8.0)


def test_load_node_refuses_a_file_of_another_kind():
    with pytest.raises(NodeInputError, match="input 'model_name'.*not found"):
        FrameFoldLoadFrameInterpolationModel().load("missing.pth")


def test_blended_start_places_the_keys():
    keys = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    start = blended_start(keys, 4)
    assert start.shape[0] == 9 and key_positions(3, 4) == [0, 4, 8]
    assert torch.equal(start[[0, 4, 8]], keys)
    assert torch.allclose(start[2], (keys[0] + keys[1]) / 2)


@pytest.mark.parametrize("multiplier, strength", [(2, 1.0), (3, 0.6)])
def test_inbetween_ends_exactly_on_the_keys(multiplier, strength):
    keys = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    frames = (3 - 1) * multiplier + 1
    noise = torch.randn((frames, 4, 4, 4), generator=torch.Generator().manual_seed(2))
    sigmas = torch.tensor([8.0, 3.0, 1.0, 0.3, 0.0])

    def denoise(x, sigma):  # a stand-in model: predicts the mean frame (couples the frames like a video model)
        return x.mean(0, keepdim=True).expand_as(x) / (1 + sigma)

    out = inbetween(denoise, keys, noise, sigmas, multiplier=multiplier, denoise_strength=strength)
    assert out.shape == (frames, 4, 4, 4)
    assert torch.equal(out[key_positions(3, multiplier)], keys)
    assert not torch.allclose(out[1], blended_start(keys, multiplier)[1])


def test_diffusion_node_with_the_default_model():
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.motion import load_motion_module

    model, text_encoder, vae = load_checkpoint(resolve_model("checkpoints", "framefold-tiny.safetensors"))
    module = load_motion_module(resolve_model("animatediff_models", "framefold-tiny-motion.safetensors"))
    model = model.with_options(unet=model.unet.with_motion(module), frame_window=module.max_frames)
    keys = vae.encode(_clip(2, 64))
    positive, negative = text_encoder.encode("a red circle moving right on a black background"), text_encoder.encode("")
    node = FrameFoldDiffusionInbetween()
    (latent,) = node.inbetween(model, positive, negative, {"samples": keys}, 4, 0, 2, 4.5, "ddim", "trailing", 1.0)
    assert latent["samples"].shape == (5, *keys.shape[1:])
    assert torch.equal(latent["samples"][[0, 4]], keys)
    with pytest.raises(NodeInputError, match="input 'keyframes'"):
        node.inbetween(model, positive, negative, {"samples": keys[:1]}, 4, 0, 2, 4.5, "ddim", "trailing", 1.0)
    with pytest.raises(NodeInputError, match="input 'context'"):
        node.inbetween(model, positive, negative, {"samples": keys}, 16, 0, 2, 4.5, "ddim", "trailing", 1.0)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"method": "film"}, "method"),
        ({"multiplier": 1.5}, "multiplier"),
        ({"fps": 0.0}, "fps"),
        ({"target_fps": -1.0}, "target_fps"),
        ({"rife_scale": 3.0}, "rife_scale"),
    ],
)
def test_interpolation_options_name_the_bad_field(fields, field):
    with pytest.raises(OptionError) as info:
        InterpolationOptions(**fields)
    assert info.value.field == field


def test_interpolate_video_names_the_missing_model_and_bad_images():
    with pytest.raises(OptionError) as info:
        interpolate_video(_clip(), InterpolationOptions(method="rife"))
    assert info.value.field == "model"
    with pytest.raises(OptionError) as info:
        interpolate_video(torch.zeros(4, 4, 4, 2), InterpolationOptions())
    assert info.value.field == "images"


def test_inbetween_options_and_entry_point_name_the_bad_input():
    with pytest.raises(OptionError) as info:
        InbetweenOptions(multiplier=0)
    assert info.value.field == "multiplier"
    with pytest.raises(OptionError) as info:
        inbetween_video(None, None, None, torch.zeros(1, 4, 2, 2), InbetweenOptions())
    assert info.value.field == "key_latents"
    with pytest.raises(OptionError) as info:
        inbetween_video(None, None, None, torch.zeros(2, 4, 2, 2), InbetweenOptions())
    assert info.value.field == "model"
