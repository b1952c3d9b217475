"""Context windows and classifier-free guidance inside the denoise callable."""

import pytest
import torch
from test_sampling_tinymodel import tiny_cond, tiny_model

from framefold.pipelines.models.bundle import Conditioning
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.context import ContextOptions, slice_frames, uniform_windows, window_weights
from framefold.pipelines.sampling.guidance import GuidedDenoiser, match_lengths, rescale_guidance


def latent(frames, seed=0):
    return torch.randn(frames, 4, 5, 5, generator=torch.Generator().manual_seed(seed))


def run(denoise, x, steps=4, name="euler"):
    ac = schedules.alphas_cumprod_from_config(denoise.model.schedule)
    sigmas = schedules.sampling_sigmas(ac, steps, "trailing")
    return samplers.sample(name, denoise, x, sigmas, generator=torch.Generator().manual_seed(0))


# --- windows -------------------------------------------------------------------------------------------------


def test_uniform_windows_cover_every_frame_with_the_requested_overlap():
    windows = uniform_windows(40, 16, 4)
    assert all(len(w) == 16 for w in windows)
    assert sorted({f for w in windows for f in w}) == list(range(40))
    assert windows[0] == list(range(16)) and windows[1][0] == 12 and windows[-1] == list(range(24, 40))
    assert uniform_windows(10, 16, 4) == [list(range(10))]


def test_closed_loop_windows_wrap_and_stride_adds_dilated_windows():
    looped = uniform_windows(24, 16, 4, closed_loop=True)
    assert any(w[0] > w[-1] for w in looped)  # a window wraps from the end to the start
    assert all(len(set(w)) == 16 for w in looped)
    dilated = uniform_windows(64, 16, 4, stride=2)
    assert len(dilated) > len(uniform_windows(64, 16, 4))
    assert [0, 2, 4] == dilated[-1][:3] or any(w[:3] == [0, 2, 4] for w in dilated)


def test_window_weights():
    assert window_weights(5, "flat").tolist() == [1, 1, 1, 1, 1]
    assert window_weights(5, "pyramid").tolist() == [1, 2, 3, 2, 1]
    torch.testing.assert_close(window_weights(6, "overlap-linear", 2), torch.tensor([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3]))
    with pytest.raises(ValueError):
        ContextOptions(length=8, overlap=8)
    with pytest.raises(ValueError):
        ContextOptions(fuse="gaussian")


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m"])
def test_one_window_covering_all_frames_equals_plain_sampler_exactly(name):
    model = tiny_model()
    x = latent(8)
    plain = run(GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 4.0), x, name=name)
    flat = run(
        GuidedDenoiser(
            model, tiny_cond(1), tiny_cond(2), 4.0, context=ContextOptions(length=8, overlap=2, fuse="flat")
        ),
        x,
        name=name,
    )
    assert torch.equal(plain, flat)
    pyramid = run(
        GuidedDenoiser(
            model, tiny_cond(1), tiny_cond(2), 4.0, context=ContextOptions(length=16, overlap=4, fuse="pyramid")
        ),
        x,
        name=name,
    )
    assert torch.equal(pyramid, plain)


def test_windows_bound_the_model_batch_and_change_the_result_for_temporal_models():
    model = tiny_model(temporal=0.5)
    denoise = GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 4.0, context=ContextOptions(length=6, overlap=2))
    x = latent(20)
    model.unet.seen_batches.clear()
    windowed = run(denoise, x)
    assert max(model.unet.seen_batches) == 12  # one window of 6 frames x (cond, uncond)
    plain = run(GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 4.0), x)
    assert not torch.allclose(windowed, plain)


def test_windows_are_exact_for_a_frame_independent_model_with_per_frame_prompts():
    model = tiny_model(temporal=0.0)
    per_frame = Conditioning(torch.randn(20, 4, 8, generator=torch.Generator().manual_seed(7)))
    x = latent(20)
    plain = run(GuidedDenoiser(model, per_frame, tiny_cond(2), 4.0), x)
    for fuse in ("flat", "pyramid", "overlap-linear"):
        for opts in (ContextOptions(6, 2, fuse=fuse), ContextOptions(6, 3, stride=2, closed_loop=True, fuse=fuse)):
            windowed = run(GuidedDenoiser(model, per_frame, tiny_cond(2), 4.0, context=opts), x)
            torch.testing.assert_close(windowed, plain, rtol=0, atol=1e-5)


def test_control_hook_gets_window_frames_and_slices_per_frame_tensors():
    model = tiny_model()
    hints = {"hint": torch.arange(20.0).view(20, 1), "scale": torch.tensor(0.5), "nested": [torch.zeros(20, 2)]}
    seen = []

    def control(frames, n_conds, **model_inputs):
        sliced = slice_frames(hints, frames, 20)
        seen.append((frames.tolist(), n_conds, sliced["hint"].flatten().tolist(), sliced["nested"][0].shape))
        return sliced

    GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 3.0, control=control, context=ContextOptions(8, 2))(
        latent(20), 3.0
    )
    assert [s[0] for s in seen] == uniform_windows(20, 8, 2)
    assert all(s[1] == 2 and s[2] == [float(f) for f in s[0]] and s[3] == (8, 2) for s in seen)


# --- guidance ------------------------------------------------------------------------------------------------


def test_cfg_batches_cond_and_uncond_in_one_call_and_cfg1_skips_uncond():
    model = tiny_model()
    x, sigma = latent(3), 2.0
    pos, neg = tiny_cond(1), tiny_cond(2)
    model.unet.seen_batches.clear()
    guided = GuidedDenoiser(model, pos, neg, 5.0)(x, sigma)
    assert model.unet.seen_batches == [6]
    only_pos = GuidedDenoiser(model, pos, neg, 1.0)(x, sigma)
    assert model.unet.seen_batches == [6, 3]
    only_neg = GuidedDenoiser(model, neg, None, 1.0)(x, sigma)
    torch.testing.assert_close(guided, only_neg + (only_pos - only_neg) * 5.0, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="negative"):
        GuidedDenoiser(model, pos, None, 5.0)


def test_guidance_rescale():
    cond, guided = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4) * 3
    assert torch.equal(rescale_guidance(guided, cond, 0.0), guided)
    torch.testing.assert_close(rescale_guidance(guided, cond, 1.0).std(), cond.std())
    model = tiny_model()
    a = GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 7.0)(latent(3), 5.0)
    b = GuidedDenoiser(model, tiny_cond(1), tiny_cond(2), 7.0, guidance_rescale=0.7)(latent(3), 5.0)
    assert not torch.allclose(a, b)


def test_long_prompts_repeat_chunkwise_to_common_length_or_error():
    a, b = torch.randn(1, 77, 8), torch.randn(1, 154, 8)
    ra, rb = match_lengths(a, b)
    assert ra.shape == rb.shape == (1, 154, 8) and torch.equal(ra[:, 77:], a) and torch.equal(rb, b)
    model = tiny_model()
    out = GuidedDenoiser(model, Conditioning(a), Conditioning(b), 3.0)(latent(2), 1.0)
    assert out.shape == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="multiples of 77"):
        match_lengths(torch.randn(1, 5, 8), torch.randn(1, 77, 8))


def test_per_frame_conditioning_must_match_frame_count():
    model = tiny_model()
    bad = Conditioning(torch.randn(5, 4, 8))
    with pytest.raises(ValueError, match="per-frame"):
        GuidedDenoiser(model, bad, tiny_cond(2), 3.0)(latent(3), 1.0)
