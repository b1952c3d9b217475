"""Image-to-video (first-frame hold) and FreeInit (frequency re-initialisation)."""

import math

import pytest
import torch
from test_vidrd_tiny import cond, mixing_model

from framefold.pipelines.sampling import freeinit, samplers, schedules
from framefold.pipelines.sampling.freeinit import FreeInitOptions
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.sampling.i2v import first_frame_hold, image_to_video
from framefold.pipelines.sampling.vidrd import VidRDOptions, sample_long_video

SHAPE = (6, 4, 6, 6)


def setup(steps=5):
    """Denoiser, sigmas, noise, image latent and alphas_cumprod for small runs."""
    model = mixing_model(frame_window=8)
    denoise = GuidedDenoiser(model, cond(1), cond(2), cfg=2.0)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    sigmas = schedules.sampling_sigmas(abar, steps, "leading")
    g = torch.Generator().manual_seed(11)
    noise = torch.randn(SHAPE, generator=g)
    image = torch.randn((1, *SHAPE[1:]), generator=g)
    return denoise, sigmas, noise, image, abar


# ---- image to video ---------------------------------------------------------------------------------------------


def test_strength_one_ends_exactly_on_the_image_latent():
    denoise, sigmas, noise, image, _ = setup()
    out = image_to_video(denoise, image, noise, sigmas, strength=1.0)
    assert torch.equal(out[0], image[0])
    assert not torch.allclose(out[1], image[0], atol=1e-3)


def test_strength_one_holds_frame_zero_at_every_step():
    denoise, sigmas, noise, image, _ = setup()
    seen = []
    image_to_video(
        denoise, image, noise, sigmas, strength=1.0, hooks=[lambda i, s, x: seen.append((float(s), x[0].clone()))]
    )
    for sigma, frame in seen:
        assert torch.allclose(frame, image[0] + sigma * noise[0], atol=1e-5)


def test_strength_zero_is_plain_text_to_video():
    denoise, sigmas, noise, image, _ = setup()
    out = image_to_video(denoise, image, noise, sigmas, strength=0.0)
    plain = samplers.sample("ddim", denoise, noise, sigmas)
    assert torch.allclose(out, plain, atol=1e-6)


def test_partial_strength_pulls_frame_zero_towards_the_image():
    denoise, sigmas, noise, image, _ = setup()
    plain = image_to_video(denoise, image, noise, sigmas, strength=0.0)
    half = image_to_video(denoise, image, noise, sigmas, strength=0.5)
    assert (half[0] - image[0]).abs().mean() < (plain[0] - image[0]).abs().mean()
    assert not torch.equal(half[0], image[0])


def test_i2v_bad_inputs_raise():
    denoise, sigmas, noise, image, _ = setup()
    with pytest.raises(ValueError, match="strength"):
        image_to_video(denoise, image, noise, sigmas, strength=1.5)
    with pytest.raises(ValueError, match="does not match"):
        image_to_video(denoise, image[:, :, :4], noise, sigmas)
    with pytest.raises(ValueError, match="strength"):
        first_frame_hold(image, noise, -0.1)


def test_long_video_first_clip_can_hold_an_image():
    denoise, sigmas, _, image, _ = setup()
    noise = torch.randn((8, *SHAPE[1:]), generator=torch.Generator().manual_seed(2))
    result = sample_long_video(
        denoise,
        SHAPE[1:],
        14,
        sigmas,
        generator=torch.Generator().manual_seed(0),
        options=VidRDOptions(clip_frames=8, prompt_frames=2),
        first_noise=noise,
        first_clip_hooks=[first_frame_hold(image, noise, 1.0)],
    )
    assert torch.equal(result.latent[0], image[0])


# ---- FreeInit filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["butterworth", "gaussian", "ideal"])
def test_low_pass_filter_shape_and_centre(method):
    opts = FreeInitOptions(method=method, spatial_cutoff=0.5, temporal_cutoff=0.5)
    mask = freeinit.low_pass_filter(8, 10, 12, opts)
    assert mask.shape == (8, 10, 12)
    assert mask.min() >= 0 and mask.max() <= 1
    assert mask[4, 5, 6] == 1.0  # DC sits in the middle after fftshift
    assert mask[0, 0, 0] < 0.5  # the corners are high frequencies
    # monotone non-increasing along a ray from the centre
    ray = mask[4, 5, 6:]
    assert (ray[1:] <= ray[:-1] + 1e-7).all()


def test_filter_formulas():
    opts = FreeInitOptions(method="gaussian", spatial_cutoff=0.25, temporal_cutoff=0.5)
    d2 = freeinit.squared_frequency_distance(4, 4, 4, 0.25, 0.5)
    # bin (f=0, y=1, x=2): ((0.25/0.5) * -1)^2 + (-0.5)^2 + 0^2 = 0.5
    assert d2[0, 1, 2].item() == pytest.approx(0.5)
    assert freeinit.low_pass_filter(4, 4, 4, opts)[0, 1, 2].item() == pytest.approx(math.exp(-0.5 / (2 * 0.0625)))
    bw = FreeInitOptions(method="butterworth", order=4, spatial_cutoff=0.25, temporal_cutoff=0.5)
    assert freeinit.low_pass_filter(4, 4, 4, bw)[0, 1, 2].item() == pytest.approx(1 / (1 + (0.5 / 0.0625) ** 4))
    ideal = freeinit.low_pass_filter(4, 4, 4, FreeInitOptions(method="ideal", spatial_cutoff=0.5))
    assert ideal.unique().tolist() == [0.0, 1.0]
    d2_ideal = freeinit.squared_frequency_distance(4, 4, 4, 0.5, 0.25)
    assert torch.equal(ideal, (d2_ideal <= 0.25).float())


def spectrum(x):
    """fftshifted 3-D spectrum over (frames, h, w) per channel, [C, F, h, w]."""
    dims = (-3, -2, -1)
    return torch.fft.fftshift(torch.fft.fftn(x.double().permute(1, 0, 2, 3), dim=dims), dim=dims)


def test_frequency_mix_keeps_the_low_band_of_the_previous_result():
    g = torch.Generator().manual_seed(0)
    low, high = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    mask = freeinit.low_pass_filter(6, 6, 6, FreeInitOptions(method="ideal", spatial_cutoff=0.5, temporal_cutoff=0.5))
    assert 0 < mask.sum() < mask.numel()
    mixed = freeinit.frequency_mix(low, high, mask)
    band = mask.bool().expand(SHAPE[1], -1, -1, -1)
    assert torch.allclose(spectrum(mixed)[band], spectrum(low)[band], atol=1e-4)
    assert torch.allclose(spectrum(mixed)[~band], spectrum(high)[~band], atol=1e-4)


def test_frequency_mix_with_soft_filter_is_the_weighted_spectrum_sum():
    g = torch.Generator().manual_seed(1)
    low, high = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    mask = freeinit.low_pass_filter(6, 6, 6, FreeInitOptions())
    mixed = freeinit.frequency_mix(low, high, mask)
    m = mask.double()
    assert torch.allclose(spectrum(mixed), spectrum(low) * m + spectrum(high) * (1 - m), atol=1e-4)
    assert torch.allclose(freeinit.frequency_mix(low, high, torch.ones_like(mask)), low, atol=1e-5)
    assert torch.allclose(freeinit.frequency_mix(low, high, torch.zeros_like(mask)), high, atol=1e-5)


def test_reinitialised_noise_keeps_the_low_band_of_the_renoised_latent():
    _, _, noise, image, abar = setup()
    latent = image.expand(SHAPE).clone() + 0.1 * torch.arange(6.0)[:, None, None, None]
    opts = FreeInitOptions(method="ideal", spatial_cutoff=0.5, temporal_cutoff=0.5)
    new = freeinit.reinitialize_noise(latent, noise, abar, torch.Generator().manual_seed(4), opts)
    renoised = latent * abar[-1].sqrt() + noise * (1 - abar[-1]).sqrt()
    band = freeinit.low_pass_filter(6, 6, 6, opts).bool().expand(SHAPE[1], -1, -1, -1)
    assert torch.allclose(spectrum(new)[band], spectrum(renoised)[band], atol=1e-4)
    fresh = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(spectrum(new)[~band], spectrum(fresh)[~band], atol=1e-4)


def test_sample_with_freeinit_runs_n_passes_from_reinitialised_noise():
    denoise, sigmas, noise, _, abar = setup(steps=3)
    starts = []

    def run(initial):
        starts.append(initial.clone())
        return samplers.sample("ddim", denoise, initial, sigmas)

    opts = FreeInitOptions(iterations=3)
    latent, last = freeinit.sample_with_freeinit(run, noise, abar, torch.Generator().manual_seed(0), opts)
    assert len(starts) == 3 and torch.equal(starts[0], noise)
    assert torch.equal(last, starts[-1]) and not torch.equal(starts[1], starts[2])
    assert torch.equal(latent, samplers.sample("ddim", denoise, last, sigmas))
    once, _ = freeinit.sample_with_freeinit(
        run, noise, abar, torch.Generator().manual_seed(0), FreeInitOptions(iterations=1)
    )
    assert torch.equal(once, samplers.sample("ddim", denoise, noise, sigmas))


@pytest.mark.parametrize(
    "kwargs",
    [dict(iterations=0), dict(method="box"), dict(order=0), dict(spatial_cutoff=0.0), dict(temporal_cutoff=1.5)],
)
def test_bad_freeinit_options_raise(kwargs):
    with pytest.raises(ValueError):
        FreeInitOptions(**kwargs)


def test_freeinit_on_the_first_long_video_clip_is_deterministic():
    denoise, sigmas, _, _, abar = setup(steps=3)
    opts = VidRDOptions(clip_frames=8, prompt_frames=2)

    def run(seed, iterations):
        return sample_long_video(
            denoise,
            SHAPE[1:],
            12,
            sigmas,
            generator=torch.Generator().manual_seed(seed),
            options=opts,
            freeinit=FreeInitOptions(iterations=iterations),
            alphas_cumprod=abar,
        ).latent

    a, b = run(1, 2), run(1, 2)
    assert torch.equal(a, b)
    assert not torch.allclose(a, run(1, 1))
