"""Nodes: FrameFold Long Video Sampler (VidRD), Image to Video, FreeInit Options."""

import pytest
import torch
from test_vidrd_tiny import cond, mixing_model

from framefold import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from framefold.nodes._errors import NodeInputError
from framefold.nodes.freeinit import FrameFoldFreeInitOptions
from framefold.nodes.image_to_video import FrameFoldImageToVideo
from framefold.nodes.longvideo import FrameFoldLongVideoSampler
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig
from framefold.pipelines.sampling import schedules
from framefold.pipelines.sampling.freeinit import FreeInitOptions
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.sampling.vidrd import VidRDOptions, sample_long_video

NODES = ("FrameFoldLongVideoSampler", "FrameFoldImageToVideo", "FrameFoldFreeInitOptions")


def long_video(**changes):
    """Run the Long Video node on a tiny model with small defaults."""
    args = dict(
        model=mixing_model(frame_window=8),
        positive=cond(1),
        negative=cond(2),
        latent={"samples": torch.zeros(1, 4, 6, 6)},
        seed=3,
        total_frames=20,
        clip_frames=0,
        prompt_frames=2,
        alpha=4.0,
        beta=0.4,
        steps=3,
        cfg=2.0,
        overlap="drop",
    )
    args.update(changes)
    return FrameFoldLongVideoSampler().sample(**args)[0]["samples"]


def tiny_vae():
    """A random 4x-downscaling VAE."""
    torch.manual_seed(0)
    return VAE(AutoencoderKL(AutoencoderKLConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8)))


def test_registered_with_tooltips_categories_and_display_names():
    for name in NODES:
        cls = NODE_CLASS_MAPPINGS[name]
        assert NODE_DISPLAY_NAME_MAPPINGS[name].startswith("FrameFold ")
        assert cls.CATEGORY.startswith("FrameFold/") and cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (_kind, *opts) in spec.get(section, {}).items():
                assert opts and opts[0].get("tooltip"), (name, input_name)


def test_long_video_node_matches_the_pipeline():
    out = long_video()
    assert out.shape == (20, 4, 6, 6)
    model = mixing_model(frame_window=8)
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), 3, "leading")
    g = torch.Generator().manual_seed(3)
    first = torch.randn((8, 4, 6, 6), generator=g)
    direct = sample_long_video(
        GuidedDenoiser(model, cond(1), cond(2), 2.0),
        (4, 6, 6),
        20,
        sigmas,
        generator=g,
        options=VidRDOptions(8, 2, 4.0, 0.4, "drop"),
        first_noise=first,
    ).latent
    assert torch.equal(out, model.latents_out(direct))  # the node returns raw VAE latents (ComfyUI's LATENT)


def test_long_video_node_seed_modes_and_frame_count():
    a = long_video()
    assert torch.equal(a, long_video())
    assert not torch.allclose(a, long_video(seed=4))
    assert not torch.allclose(a, long_video(noise_reuse="fnr"))
    assert long_video(overlap="keep").shape == (20, 4, 6, 6)
    assert long_video(total_frames=0, latent={"samples": torch.zeros(11, 4, 6, 6)}).shape == (11, 4, 6, 6)


def test_long_video_node_per_frame_prompts():
    embeds = torch.randn(20, 4, 8, generator=torch.Generator().manual_seed(9))
    from framefold.pipelines.models.bundle import Conditioning

    out = long_video(positive=Conditioning(embeds, "per-frame"))
    assert out.shape == (20, 4, 6, 6) and not torch.allclose(out, long_video())
    with pytest.raises(NodeInputError, match="positive"):
        long_video(positive=Conditioning(embeds[:7], "wrong count"))


@pytest.mark.parametrize(
    "changes, bad",
    [
        (dict(prompt_frames=8), "prompt_frames"),
        (dict(clip_frames=9), "clip_frames"),
        (dict(overlap="blend"), "overlap"),
        (dict(sampler_name="heun"), "sampler_name"),
        (dict(model="not a model"), "model"),
        (dict(latent={"samples": torch.zeros(4, 6, 6)}), "latent"),
        (dict(freeinit="x"), "freeinit"),
        (dict(beta=1.5), "beta"),
        (dict(alpha=-1.0), "alpha"),
        (dict(noise_reuse="both"), "noise_reuse"),
    ],
)
def test_long_video_node_bad_inputs(changes, bad):
    with pytest.raises(NodeInputError, match=f"'{bad}'"):
        long_video(**changes)


def image_to_video(**changes):
    """Run the Image to Video node on a tiny model and VAE."""
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(5))
    args = dict(
        model=mixing_model(frame_window=8),
        positive=cond(1),
        negative=cond(2),
        vae=tiny_vae(),
        image=image,
        strength=1.0,
        frames=6,
        seed=0,
        steps=3,
        cfg=2.0,
    )
    args.update(changes)
    return FrameFoldImageToVideo().generate(**args)[0]["samples"], args


def test_image_to_video_node_pins_the_first_frame():
    out, args = image_to_video()
    assert out.shape == (6, 4, 4, 4)
    assert torch.allclose(out[0], args["vae"].encode(args["image"], scaled=False)[0], atol=1e-5)
    again, _ = image_to_video()
    assert torch.equal(out, again)
    other, _ = image_to_video(seed=1)
    assert not torch.allclose(out[1:], other[1:])


def test_image_to_video_node_with_freeinit_still_pins_the_image():
    out, args = image_to_video(freeinit=FreeInitOptions(iterations=2))
    plain, _ = image_to_video()
    assert torch.allclose(out[0], args["vae"].encode(args["image"], scaled=False)[0], atol=1e-5)
    assert not torch.allclose(out[1:], plain[1:])


@pytest.mark.parametrize(
    "changes, bad",
    [
        (dict(frames=9), "frames"),
        (dict(strength=1.5), "strength"),
        (dict(image=torch.rand(1, 1, 1, 3)), "image"),  # too small to crop to the downscale
        (dict(image=torch.rand(1, 18, 16, 3), size_policy="stretch"), "size_policy"),
        (dict(vae="vae"), "vae"),
    ],
)
def test_image_to_video_node_bad_inputs(changes, bad):
    with pytest.raises(NodeInputError, match=f"'{bad}'"):
        image_to_video(**changes)


def test_freeinit_options_node():
    (opts,) = FrameFoldFreeInitOptions().build(4, "gaussian", 2, 0.3, 0.5)
    assert opts == FreeInitOptions(4, "gaussian", 2, 0.3, 0.5)
    with pytest.raises(NodeInputError, match="'filter_type'"):
        FrameFoldFreeInitOptions().build(4, "box", 2, 0.3, 0.5)
    with pytest.raises(NodeInputError, match="'spatial_cutoff'"):
        FrameFoldFreeInitOptions().build(4, "ideal", 2, 0.0, 0.5)


def test_host_registry_sees_the_widgets_in_order():
    from framefold.host.registry import default_registry

    registry = default_registry()
    layout = [(w.kind, w.name) for w in registry.widget_layout("FrameFoldLongVideoSampler")]
    assert layout[:3] == [("input", "seed"), ("control", "seed"), ("input", "total_frames")]
    assert registry.node_info("FrameFoldFreeInitOptions")["output"] == ["FF_FREEINIT"]
    assert registry.node_info("FrameFoldImageToVideo")["output"] == ["LATENT"]


def test_long_video_node_can_start_from_an_image_latent():
    image = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(8))
    out = long_video(first_frame={"samples": image})
    assert torch.allclose(out[0], image[0], atol=1e-5)  # scaled in and out by the model's latent format
    assert not torch.allclose(long_video()[0], image[0], atol=1e-2)
    with pytest.raises(NodeInputError, match="'first_frame'"):
        long_video(first_frame={"samples": torch.zeros(1, 4, 5, 6)})
