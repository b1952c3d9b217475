"""Applying ControlNets while sampling: strength, start/end percent, keyframes, masks, stacking, resize, windows,
VidRD clips, image-to-video and FreeInit (tiny random models, CPU)."""

import pytest
import torch

from framefold.pipelines.control.apply import (
    ControlApplication,
    control_for_clip,
    fit_images,
    percent_to_sigma,
    with_control,
)
from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig
from framefold.pipelines.models.controlnet import ControlNet, ControlNetConfig, ControlNetModel
from framefold.pipelines.models.unet import UNetConfig, UNetModel
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.context import ContextOptions
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.sampling.i2v import image_to_video

UNET = UNetConfig(
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_levels=(1,),
    num_heads=2,
    context_dim=8,
    norm_groups=8,
)
SIZE = 4  # latent pixels; control images are 4x larger


def randomise(module, seed, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)
    return module.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DiffusionModel(unet=randomise(UNetModel(UNET), 1), schedule=ScheduleConfig())


@pytest.fixture(scope="module")
def controlnet():
    return ControlNet(randomise(ControlNetModel(ControlNetConfig(UNET, 3, (8, 8, 8))), 2), "tiny")


def images(frames, seed=3, size=SIZE * 4):
    return torch.rand(frames, size, size, 3, generator=torch.Generator().manual_seed(seed))


def cond(seed, frames=1):
    return Conditioning(torch.randn(frames, 5, 8, generator=torch.Generator().manual_seed(seed)))


def latent(frames, seed=5):
    return torch.randn(frames, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def sample(model, positive, negative, frames, steps=6, cfg=3.0, context=None, denoiser_out=None):
    denoiser = GuidedDenoiser(model, positive, negative, cfg, context=context)
    if denoiser_out is not None:
        denoiser_out.append(denoiser)
    sigmas = schedules.sampling_sigmas(schedules.alphas_cumprod_from_config(model.schedule), steps, "leading")
    return samplers.sample("ddim", denoiser, latent(frames), sigmas)


def test_strength_zero_is_exactly_the_uncontrolled_output(model, controlnet):
    pos, neg = cond(1), cond(2)
    plain = sample(model, pos, neg, 4)
    zero = ControlApplication(controlnet, images(4), strength=0.0)
    out = sample(model, with_control(pos, zero), with_control(neg, zero), 4)
    assert torch.equal(out, plain)
    full = ControlApplication(controlnet, images(4), strength=1.0)
    assert (sample(model, with_control(pos, full), neg, 4) - plain).abs().max() > 1e-3


def test_start_end_percent_apply_control_only_on_steps_inside_the_range(model, controlnet):
    app = ControlApplication(controlnet, images(2), start_percent=0.3, end_percent=0.7)
    made = []
    steps = 10
    sample(model, with_control(cond(1), app), cond(2), 2, steps=steps, denoiser_out=made)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    sigmas = schedules.sampling_sigmas(abar, steps, "leading")
    step_t = [float(schedules.timestep_at_sigma(float(s), schedules.train_sigmas(abar))) for s in sigmas[:-1]]
    expected = [i for i, t in enumerate(step_t) if 0.3 * 999 - 1e-6 <= t <= 0.7 * 999 + 1e-6]
    received = sorted({call for call, _, ci, _ in made[0].control.applied if ci == 0})
    assert received == expected
    assert 0 < len(expected) < steps
    assert all(ci == 0 for _, _, ci, _ in made[0].control.applied)  # the negative has no ControlNet


def test_percent_to_sigma_ends():
    sig = schedules.train_sigmas(schedules.alphas_cumprod_from_config(ScheduleConfig()))
    assert percent_to_sigma(0.0, sig) == float("inf") and percent_to_sigma(1.0, sig) == 0.0
    assert percent_to_sigma(0.2, sig) > percent_to_sigma(0.8, sig) > 0


def hook_residuals(model, application, x, frames, num_frames, sigma=3.0):
    """Residuals the guidance hook produces for the rows of ``frames`` (cfg 1)."""
    denoiser = GuidedDenoiser(model, with_control(cond(1), application), None, 1.0)
    t = torch.full((len(frames),), 500.0)
    ctx = cond(1).embeds.expand(len(frames), -1, -1)
    return denoiser.control(frames, 1, x=x, timesteps=t, context=ctx, sigma=sigma, num_frames=num_frames)


def test_keyframe_control_gives_residuals_only_on_its_frames(model, controlnet):
    app = ControlApplication(controlnet, images(2), frame_indices=(0, 5))
    r = hook_residuals(model, app, latent(8), torch.arange(8), 8)
    for level in r["down"] + [r["mid"]]:
        nonzero = [i for i in range(8) if level[i].abs().max() > 0]
        assert nonzero == [0, 5]
    none = hook_residuals(model, app, latent(3), torch.tensor([1, 2, 3]), 8)
    assert none is None


def test_a_frames_residuals_depend_only_on_its_own_control_image(model, controlnet):
    base, changed = images(6), images(6).clone()
    changed[2] = images(1, seed=11)[0]
    x, frames = latent(6), torch.arange(6)
    a = hook_residuals(model, ControlApplication(controlnet, base), x, frames, 6)
    b = hook_residuals(model, ControlApplication(controlnet, changed), x, frames, 6)
    others = [0, 1, 3, 4, 5]
    for ra, rb in zip(a["down"] + [a["mid"]], b["down"] + [b["mid"]]):
        torch.testing.assert_close(ra[others], rb[others], rtol=0, atol=1e-6)
        assert (ra[2] - rb[2]).abs().max() > 1e-4


def test_window_rows_get_their_frames_control(model, controlnet):
    app = ControlApplication(controlnet, images(10))
    x = latent(10)
    full = hook_residuals(model, app, x, torch.arange(10), 10)
    window = torch.tensor([6, 7, 8, 9])
    part = hook_residuals(model, app, x[window], window, 10)
    for rf, rp in zip(full["down"] + [full["mid"]], part["down"] + [part["mid"]]):
        torch.testing.assert_close(rp, rf[window], rtol=0, atol=1e-5)


def test_context_windows_with_control_equal_whole_video_for_a_frame_independent_model(model, controlnet):
    app = ControlApplication(controlnet, images(12), strength=0.8)
    pos, neg = with_control(cond(1), app), with_control(cond(2), app)
    plain = sample(model, pos, neg, 12)
    windowed = sample(model, pos, neg, 12, context=ContextOptions(5, 2, fuse="flat"))
    torch.testing.assert_close(windowed, plain, rtol=0, atol=1e-5)


def test_stacked_controlnets_add_their_residuals(model, controlnet):
    other = ControlNet(randomise(ControlNetModel(controlnet.config), 7), "other")
    a = ControlApplication(controlnet, images(3), strength=0.5)
    b = ControlApplication(other, images(3, seed=8), strength=1.5)
    x, frames = latent(3), torch.arange(3)
    ra, rb = hook_residuals(model, a, x, frames, 3), hook_residuals(model, b, x, frames, 3)
    denoiser = GuidedDenoiser(model, with_control(with_control(cond(1), a), b), None, 1.0)
    t, ctx = torch.full((3,), 500.0), cond(1).embeds.expand(3, -1, -1)
    both = denoiser.control(frames, 1, x=x, timesteps=t, context=ctx, sigma=3.0, num_frames=3)
    for s, p, q in zip(both["down"] + [both["mid"]], ra["down"] + [ra["mid"]], rb["down"] + [rb["mid"]]):
        torch.testing.assert_close(s, p + q, rtol=0, atol=1e-6)


def test_mask_scales_residuals_spatially(model, controlnet):
    mask = torch.zeros(1, SIZE * 4, SIZE * 4)
    mask[:, :, : SIZE * 2] = 1.0  # left half controlled
    x, frames = latent(2), torch.arange(2)
    masked = hook_residuals(model, ControlApplication(controlnet, images(2), mask=mask), x, frames, 2)
    plain = hook_residuals(model, ControlApplication(controlnet, images(2)), x, frames, 2)
    level = 0  # full latent resolution
    half = SIZE // 2
    assert masked["down"][level][..., half:].abs().max() == 0
    torch.testing.assert_close(masked["down"][level][..., :half], plain["down"][level][..., :half])


def test_resize_modes_crop_pad_stretch():
    wide = torch.zeros(1, 1, 4, 8)
    wide[..., :, 2:6] = 1.0  # the middle half is white
    assert fit_images(wide, 4, 4, "crop").min() == 1.0  # centre crop keeps the white middle
    padded = fit_images(wide, 8, 8, "pad")
    assert padded.shape == (1, 1, 8, 8) and padded[..., :2, :].abs().max() == 0 and padded[..., 6:, :].abs().max() == 0
    stretched = fit_images(wide, 8, 8, "stretch")
    assert stretched.shape == (1, 1, 8, 8) and stretched[..., 0].max() < 0.5
    with pytest.raises(ValueError, match="resize mode"):
        fit_images(wide, 4, 4, "zoom")


def test_bad_image_counts_and_indices_are_clear_errors(model, controlnet):
    with pytest.raises(ValueError, match="3 control images for a 5-frame video"):
        hook_residuals(model, ControlApplication(controlnet, images(3)), latent(5), torch.arange(5), 5)
    with pytest.raises(ValueError, match="frame index 9 outside"):
        hook_residuals(model, ControlApplication(controlnet, images(1), (9,)), latent(5), torch.arange(5), 5)
    with pytest.raises(ValueError, match="distinct"):
        ControlApplication(controlnet, images(2), (1, 1))
    with pytest.raises(ValueError, match="start_percent"):
        ControlApplication(controlnet, images(2), start_percent=0.8, end_percent=0.2)


def test_vidrd_clip_keeps_the_control_of_its_frames(model, controlnet):
    imgs = images(3)
    app = ControlApplication(controlnet, imgs, frame_indices=(0, 6, 12))
    clipped = control_for_clip(with_control(cond(1), app), [4, 5, 6, 7, 8, 9, 10, 11], 16).control[0]
    assert clipped.frame_indices == (2,) and torch.equal(clipped.images[0], imgs[1])
    assert control_for_clip(with_control(cond(1), app), [1, 2, 3], 16).control == ()
    per_frame = ControlApplication(controlnet, images(16))
    clip = per_frame.for_positions([8, 9, 10, 11], 16)
    assert clip.frame_indices == (0, 1, 2, 3) and torch.equal(clip.images, per_frame.images[8:12])


def test_image_to_video_and_freeinit_runs_receive_control(model, controlnet):
    from framefold.pipelines.sampling.freeinit import FreeInitOptions, sample_with_freeinit

    app = ControlApplication(controlnet, images(4))
    denoiser = GuidedDenoiser(model, with_control(cond(1), app), cond(2), 3.0)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    sigmas = schedules.sampling_sigmas(abar, 4, "leading")
    image_latent = latent(1, seed=9)
    out = image_to_video(denoiser, image_latent, latent(4), sigmas)
    assert out.shape == (4, 4, SIZE, SIZE) and len(denoiser.control.applied) == 4
    denoiser.control.applied.clear()
    g = torch.Generator().manual_seed(0)
    sample_with_freeinit(
        lambda noise: image_to_video(denoiser, image_latent, noise, sigmas),
        latent(4),
        abar,
        g,
        FreeInitOptions(2),
        steps=4,
    )
    assert len(denoiser.control.applied) == 8  # two passes of four steps, control on every one
