"""Noise priors: unit variance, the inter-frame correlation each formula promises, determinism."""

import math

import pytest
import torch

from framefold.pipelines.noise import (
    NoisePrior,
    frame_noise_reversal,
    freenoise_noise,
    motion_translated_noise,
    past_dependent_noise,
    pyoco_mixed_noise,
    pyoco_progressive_noise,
    videofusion_noise,
)

SHAPE = (8, 4, 48, 48)  # 9216 elements per frame
N = SHAPE[1] * SHAPE[2] * SHAPE[3]
CORR_TOL = 6 / math.sqrt(N)  # ~6 standard errors of a correlation estimate


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def corr(a, b):
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def assert_unit_gaussian(noise):
    """Per-frame mean ~0 and variance ~1 within sampling error."""
    per_frame = noise.reshape(noise.shape[0], -1)
    assert per_frame.mean(1).abs().max() < 6 / math.sqrt(N)
    assert (per_frame.var(1) - 1).abs().max() < 6 * math.sqrt(2 / N)


ALL = [
    NoisePrior("iid"),
    NoisePrior("videofusion", lam=0.6, base_frame=4),
    NoisePrior("pyoco_mixed", alpha=1.5),
    NoisePrior("pyoco_progressive", alpha=2.0),
    NoisePrior("freenoise", window=4, stride=2),
    NoisePrior("motion", delta_x=2, delta_y=1),
    NoisePrior("vidrd"),
]


@pytest.mark.parametrize("prior", ALL, ids=lambda p: p.method)
def test_unit_variance_and_determinism(prior):
    a = prior.sample(SHAPE, gen(1))
    assert a.shape == SHAPE and a.dtype == torch.float32
    assert_unit_gaussian(a)
    assert torch.equal(a, prior.sample(SHAPE, gen(1)))
    assert not torch.allclose(a, prior.sample(SHAPE, gen(2)))


def test_iid_frames_uncorrelated():
    x = NoisePrior("iid").sample(SHAPE, gen(3))
    assert abs(corr(x[0], x[1])) < CORR_TOL


@pytest.mark.parametrize("lam", [0.25, 0.6, 0.9])
def test_videofusion_correlation_is_sqrt_li_lj(lam):
    x = videofusion_noise(SHAPE, gen(4), lam=lam)
    for i, j in [(0, 1), (2, 7)]:
        assert abs(corr(x[i], x[j]) - lam) < CORR_TOL


def test_videofusion_per_frame_lambda_and_base_frame():
    lams = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2, 0.4, 0.8]
    x = videofusion_noise(SHAPE, gen(5), lam=lams, base_frame=SHAPE[0] // 2)
    lams[SHAPE[0] // 2] = 1.0
    for i, j in [(0, 4), (1, 3), (2, 7), (4, 6)]:
        assert abs(corr(x[i], x[j]) - math.sqrt(lams[i] * lams[j])) < CORR_TOL
    assert_unit_gaussian(x)
    with pytest.raises(ValueError):
        videofusion_noise(SHAPE, gen(5), lam=1.5)
    with pytest.raises(ValueError):
        videofusion_noise(SHAPE, gen(5), lam=[0.5, 0.5])


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_pyoco_mixed_correlation(alpha):
    x = pyoco_mixed_noise(SHAPE, gen(6), alpha)
    expected = alpha**2 / (1 + alpha**2)
    for i, j in [(0, 1), (3, 7)]:
        assert abs(corr(x[i], x[j]) - expected) < CORR_TOL


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_pyoco_progressive_autoregressive_correlation(alpha):
    x = pyoco_progressive_noise(SHAPE, gen(7), alpha)
    rho = alpha / math.sqrt(1 + alpha**2)
    for lag in (1, 2, 4):
        measured = sum(corr(x[i], x[i + lag]) for i in range(SHAPE[0] - lag)) / (SHAPE[0] - lag)
        assert abs(measured - rho**lag) < CORR_TOL
    assert_unit_gaussian(x)


def test_freenoise_reuses_window_noise_in_shuffled_chunks():
    x = freenoise_noise(SHAPE, gen(8), window=4, stride=2)
    for start in range(4, SHAPE[0], 2):
        chunk, source = x[start : start + 2], x[start - 4 : start - 2]
        matches = [[torch.equal(c, s) for s in source] for c in chunk]
        assert all(sum(row) == 1 for row in matches)  # a permutation of the source chunk
    assert abs(corr(x[0], x[1])) < CORR_TOL  # the first window stays i.i.d.
    shuffled = any(
        not torch.equal(freenoise_noise(SHAPE, gen(s), 4, 2)[4], freenoise_noise(SHAPE, gen(s), 4, 2)[0])
        for s in range(10)
    )
    assert shuffled


def test_motion_translation_is_a_global_shift():
    x = motion_translated_noise(SHAPE, gen(9), delta_x=2, delta_y=-1)
    for k in range(SHAPE[0]):
        assert torch.equal(x[k], torch.roll(x[0], shifts=(-k, 2 * k), dims=(-2, -1)))
    assert abs(corr(x[0], x[1])) < CORR_TOL  # shifted white noise is uncorrelated pixel-wise


def test_fnr_is_exact_reversal():
    prev = NoisePrior("vidrd").sample(SHAPE, gen(10))
    nxt = frame_noise_reversal(prev)
    for j in range(SHAPE[0]):
        assert torch.equal(nxt[j], prev[SHAPE[0] - j - 1])
    assert torch.equal(NoisePrior("vidrd", alpha=None).next_clip(prev, gen(0)), nxt)


def test_pns_alpha_controls_dependence_on_previous_clip():
    prev = NoisePrior("vidrd").sample(SHAPE, gen(11))
    rev = prev.flip(0)
    M = 3
    measured = []
    for alpha in (0.0, 1.0, 4.0, 20.0):
        nxt = past_dependent_noise(prev, gen(12), prompt_frames=M, alpha=alpha)
        assert torch.equal(nxt[:M], rev[:M])  # prompt frames: plain FNR
        assert_unit_gaussian(nxt)
        c = sum(corr(nxt[j], rev[j]) for j in range(M, SHAPE[0])) / (SHAPE[0] - M)
        assert abs(c - alpha / math.sqrt(1 + alpha**2)) < CORR_TOL
        measured.append(c)
    assert abs(measured[0]) < CORR_TOL and measured == sorted(measured) and measured[-1] > 0.99
    same = NoisePrior("vidrd", alpha=1.0, prompt_frames=M)
    assert torch.equal(same.next_clip(prev, gen(5)), same.next_clip(prev, gen(5)))
    assert not torch.equal(same.next_clip(prev, gen(5)), same.next_clip(prev, gen(6)))


def test_unknown_method_rejected():
    with pytest.raises(ValueError):
        NoisePrior("pink")
