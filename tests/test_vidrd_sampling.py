"""VidRD long-video generation: eq. 6-8 wiring, output assembly, bounded memory, determinism."""

import math

import pytest
import torch
from test_vidrd_tiny import cond, mixing_model

from framefold.pipelines import progress
from framefold.pipelines.noise import past_dependent_noise
from framefold.pipelines.sampling import schedules, vidrd
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.sampling.vidrd import VidRDOptions, dsg_guided, sample_long_video

FRAME = (4, 6, 6)


def setup(steps=6, frame_window=8, seed=0):
    """Model, denoiser and sigmas for a small run."""
    model = mixing_model(seed=seed, frame_window=frame_window)
    denoise = GuidedDenoiser(model, cond(1), cond(2), cfg=3.0)
    abar = schedules.alphas_cumprod_from_config(model.schedule)
    return model, denoise, schedules.sampling_sigmas(abar, steps, "leading")


def run_observed(options, total, steps=6, seed=0, **kwargs):
    """Run sample_long_video and keep every clip's states: ``states[clip][step]`` (step -1 = start)."""
    model, denoise, sigmas = setup(steps, options.clip_frames)
    states = {}

    def observe(clip, step, sigma, x):
        states.setdefault(clip, {})[step] = x.clone()

    g = torch.Generator().manual_seed(seed)
    result = sample_long_video(denoise, FRAME, total, sigmas, generator=g, options=options, observer=observe, **kwargs)
    return result, states, sigmas, model


# ---- eq. 8 as a table -------------------------------------------------------------------------------------------


def test_dsg_table_follows_eq8_literally():
    steps, m = 10, 4
    for beta in (0.0, 0.25, 0.4, 0.7, 1.0):
        table = dsg_guided(steps, m, beta)
        for i in range(steps):
            t = steps - i
            for j in range(m):
                expected = t > (1 - beta) * steps + beta * steps * j / m + 1e-9
                assert bool(table[i, j]) == expected, (beta, i, j)


def test_dsg_table_beta_one_and_zero():
    steps, m = 8, 4
    full = dsg_guided(steps, m, 1.0)
    # beta 1: frame j is guided for the first steps * (1 - j/M) steps; frame 0 at every step
    assert full.sum(0).tolist() == [8, 6, 4, 2]
    assert full[:, 0].all()
    assert not dsg_guided(steps, m, 0.0).any()
    # paper defaults: 50 steps, M 4, beta 0.4 -> 20, 15, 10, 5 guided steps
    assert dsg_guided(50, 4, 0.4).sum(0).tolist() == [20, 15, 10, 5]


def test_guided_steps_are_a_prefix_and_shrink_with_j():
    table = dsg_guided(12, 3, 0.6)
    for j in range(3):
        column = table[:, j].tolist()
        k = sum(column)
        assert column == [True] * k + [False] * (12 - k)
    assert table.sum(0).tolist() == sorted(table.sum(0).tolist(), reverse=True)


# ---- DSG replay inside a real run -------------------------------------------------------------------------------


def test_beta_one_prompt_frames_follow_reversed_previous_trajectory_exactly():
    n, m, steps = 8, 3, 6
    options = VidRDOptions(clip_frames=n, prompt_frames=m, alpha=4.0, beta=1.0, overlap="keep")
    result, states, _, _ = run_observed(options, total=2 * n, steps=steps)
    table = dsg_guided(steps, m, 1.0)
    for i in range(steps):
        for j in range(m):
            same = torch.equal(states[1][i][j], states[0][i][n - 1 - j])
            assert same == bool(table[i, j]), (i, j)
    # frame 0 is guided at every step: clip 1 starts exactly on clip 0's last frame
    assert torch.equal(result.latent[n], result.latent[n - 1])


def test_beta_zero_never_replays():
    n, m, steps = 8, 3, 6
    options = VidRDOptions(clip_frames=n, prompt_frames=m, alpha=4.0, beta=0.0, overlap="keep")
    _, states, _, _ = run_observed(options, total=2 * n, steps=steps)
    for i in range(steps):
        for j in range(m):
            assert not torch.equal(states[1][i][j], states[0][i][n - 1 - j])
    # the start noise of the prompt frames is still the reversed noise (FNR part of eq. 7)
    for j in range(m):
        assert torch.equal(states[1][-1][j], states[0][-1][n - 1 - j])


def test_default_beta_replays_the_listed_steps_only():
    n, m, steps = 8, 4, 10
    options = VidRDOptions(clip_frames=n, prompt_frames=m, beta=0.4)
    _, states, _, _ = run_observed(options, total=n + (n - m), steps=steps)
    table = dsg_guided(steps, m, 0.4)
    assert table.sum(0).tolist() == [4, 3, 2, 1]
    for i in range(steps):
        for j in range(m):
            assert torch.equal(states[1][i][j], states[0][i][n - 1 - j]) == bool(table[i, j])


# ---- FNR / PNS wiring -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [None, 0.0, 4.0])
def test_next_clip_initial_noise_is_eq6_or_eq7(alpha):
    n, m, steps = 8, 3, 4
    options = VidRDOptions(clip_frames=n, prompt_frames=m, alpha=alpha, beta=0.4)
    first = torch.randn((n, *FRAME), generator=torch.Generator().manual_seed(7))
    _, states, sigmas, _ = run_observed(options, total=n + (n - m), steps=steps, seed=3, first_noise=first)
    scale = math.sqrt(1 + float(sigmas[0]) ** 2)
    noise0 = states[0][-1] / scale
    noise1 = states[1][-1] / scale
    assert torch.allclose(noise0, first, atol=1e-6)
    if alpha is None:
        expected = first.flip(0)  # eq. 6
    else:
        # the generator was seeded 3 and nothing else drew from it before clip 1 (first noise given, DDIM eta 0)
        expected = past_dependent_noise(first, torch.Generator().manual_seed(3), m, alpha)
        keep = alpha / math.sqrt(1 + alpha**2)
        fresh = torch.randn((n, *FRAME), generator=torch.Generator().manual_seed(3)) / math.sqrt(1 + alpha**2)
        assert torch.allclose(expected[m:], first.flip(0)[m:] * keep + fresh[m:], atol=1e-6)  # eq. 7 by hand
    assert torch.allclose(noise1, expected, atol=1e-5)
    assert torch.equal(noise1[:m] * scale, states[0][-1].flip(0)[:m])  # prompt frames: exactly reversed


# ---- output assembly --------------------------------------------------------------------------------------------


def test_drop_mode_leaves_prompt_frames_out():
    n, m, steps = 8, 3, 4
    options = VidRDOptions(clip_frames=n, prompt_frames=m, overlap="drop")
    total = n + 2 * (n - m)
    result, states, _, _ = run_observed(options, total=total, steps=steps)
    assert result.clips == 3 and result.joins == [n, n + (n - m)]
    last = steps - 1  # final sigma is 0: the last state is the clean latent
    assert torch.equal(result.latent[:n], states[0][last])
    assert torch.equal(result.latent[n : n + n - m], states[1][last][m:])
    assert torch.equal(result.latent[n + n - m :], states[2][last][m:])


def test_keep_mode_concatenates_whole_clips_and_truncates():
    n, m, steps = 8, 3, 4
    options = VidRDOptions(clip_frames=n, prompt_frames=m, overlap="keep")
    total = 2 * n + 3
    result, states, _, _ = run_observed(options, total=total, steps=steps)
    assert result.clips == 3 and result.joins == [n, 2 * n]
    assert result.latent.shape == (total, *FRAME)
    assert torch.equal(result.latent[n : 2 * n], states[1][steps - 1])
    assert torch.equal(result.latent[2 * n :], states[2][steps - 1][:3])


def test_drop_first_mode_leaves_only_the_mirror_axis_out():
    n, m, steps = 8, 3, 4
    options = VidRDOptions(clip_frames=n, prompt_frames=m, beta=1.0, overlap="drop_first")
    total = n + 2 * (n - 1)
    result, states, _, _ = run_observed(options, total=total, steps=steps)
    assert result.clips == 3 and result.joins == [n, 2 * n - 1]
    last = steps - 1
    assert torch.equal(result.latent[:n], states[0][last])
    assert torch.equal(result.latent[n : 2 * n - 1], states[1][last][1:])
    assert torch.equal(result.latent[2 * n - 1 :], states[2][last][1:])
    # beta 1: the dropped frame 0 is exactly the previous clip's last frame (already in the output), so the first
    # kept frame is its neighbour in the new clip, not the M-th frame as with "drop"
    for clip in (1, 2):
        assert torch.equal(states[clip][last][0], states[clip - 1][last][n - 1])


def test_drop_first_layout_and_clip_count():
    options = VidRDOptions(overlap="drop_first")
    assert options.new_frames_per_clip == 15
    assert vidrd.clip_count(64, options) == 5  # 16 + 4 * 15 = 76 >= 64
    kept, start, positions = vidrd.clip_layout(2, options)
    assert (kept, start) == (1, 31) and positions[:3] == [30, 31, 32] and positions[-1] == 45
    # no prompt frames: nothing mirrors the previous clip, so whole clips are kept
    whole = VidRDOptions(prompt_frames=0, overlap="drop_first")
    assert whole.new_frames_per_clip == 16 and vidrd.clip_layout(1, whole) == (0, 16, list(range(16, 32)))


def test_clip_count_and_layout():
    assert vidrd.clip_count(64, VidRDOptions()) == 5  # 16 + 4 * 12 = 64
    assert vidrd.clip_count(64, VidRDOptions(overlap="keep")) == 4
    assert vidrd.clip_count(10, VidRDOptions()) == 1
    kept, start, positions = vidrd.clip_layout(1, VidRDOptions())
    assert (kept, start) == (4, 16) and positions[:5] == [15, 14, 13, 12, 16] and positions[-1] == 27


def test_per_clip_denoisers_get_output_positions():
    n, m = 8, 2
    options = VidRDOptions(clip_frames=n, prompt_frames=m)
    _, denoise, sigmas = setup(3, n)
    seen = []

    def for_clip(positions):
        seen.append(positions)
        return denoise

    sample_long_video(
        None, FRAME, 14, sigmas, generator=torch.Generator().manual_seed(0), options=options, denoiser_for_clip=for_clip
    )
    assert seen == [list(range(8)), [7, 6, 8, 9, 10, 11, 12, 13]]


# ---- memory, determinism, progress, errors ----------------------------------------------------------------------


def test_64_frames_from_a_16_frame_model_records_only_m_frames_times_steps():
    steps, m = 5, 4
    options = VidRDOptions(clip_frames=16, prompt_frames=m, beta=1.0)
    model, denoise, sigmas = setup(steps, 16)
    result = sample_long_video(denoise, FRAME, 64, sigmas, generator=torch.Generator().manual_seed(0), options=options)
    assert result.latent.shape == (64, *FRAME) and torch.isfinite(result.latent).all()
    assert result.clips == 5 and result.joins == [16, 28, 40, 52]
    assert model.unet.max_frames_seen == 16  # never more than one clip through the model
    assert result.recorded_shape == (steps, m, *FRAME)
    # default beta records only the guided steps of frame 0
    result = sample_long_video(
        denoise,
        FRAME,
        64,
        sigmas,
        generator=torch.Generator().manual_seed(0),
        options=VidRDOptions(clip_frames=16, prompt_frames=m, beta=0.4),
    )
    assert result.recorded_shape == (2, m, *FRAME)


def test_same_seed_same_video_different_seed_differs():
    options = VidRDOptions(clip_frames=8, prompt_frames=2)
    _, denoise, sigmas = setup(3, 8)

    def run(seed):
        return sample_long_video(
            denoise, FRAME, 20, sigmas, generator=torch.Generator().manual_seed(seed), options=options
        ).latent

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_progress_is_one_bar_over_all_clips():
    options = VidRDOptions(clip_frames=8, prompt_frames=2)
    _, denoise, sigmas = setup(3, 8)
    seen = []
    with progress.use_sink(progress.ProgressSink(lambda s, t, p: seen.append((s, t)))):
        sample_long_video(denoise, FRAME, 20, sigmas, generator=torch.Generator().manual_seed(0), options=options)
    assert seen == [(k, 9) for k in range(1, 10)]  # 3 clips x 3 steps


def test_interrupt_stops_between_steps():
    options = VidRDOptions(clip_frames=8, prompt_frames=2)
    _, denoise, sigmas = setup(3, 8)
    calls = []
    sink = progress.ProgressSink(lambda s, t, p: calls.append(s), lambda: len(calls) >= 4)
    with progress.use_sink(sink), pytest.raises(progress.Interrupted):
        sample_long_video(denoise, FRAME, 20, sigmas, generator=torch.Generator().manual_seed(0), options=options)
    assert calls == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(prompt_frames=16),
        dict(prompt_frames=-1),
        dict(beta=1.5),
        dict(alpha=-1.0),
        dict(overlap="blend"),
        dict(clip_frames=0),
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        VidRDOptions(**kwargs)


def test_bad_first_noise_and_sampler_raise():
    _, denoise, sigmas = setup(2, 8)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="first_noise"):
        sample_long_video(
            denoise,
            FRAME,
            10,
            sigmas,
            generator=g,
            options=VidRDOptions(clip_frames=8),
            first_noise=torch.zeros(7, *FRAME),
        )
    with pytest.raises(ValueError, match="sampler"):
        sample_long_video(denoise, FRAME, 10, sigmas, generator=g, options=VidRDOptions(clip_frames=8), sampler="heun")


@pytest.mark.parametrize("sampler", ["ddim", "euler", "euler_ancestral", "dpmpp_2m", "lcm"])
def test_every_sampler_replays_frame_zero_at_beta_one(sampler):
    n = 8
    options = VidRDOptions(clip_frames=n, prompt_frames=2, beta=1.0, overlap="keep")
    _, denoise, sigmas = setup(3, n)
    result = sample_long_video(
        denoise, FRAME, 2 * n, sigmas, generator=torch.Generator().manual_seed(0), options=options, sampler=sampler
    )
    assert torch.equal(result.latent[n], result.latent[n - 1])
    assert torch.isfinite(result.latent).all()


def test_clips_do_not_depend_on_the_assembly():
    n, m, steps = 8, 3, 4
    _, drop_states, _, _ = run_observed(VidRDOptions(n, m, overlap="drop"), total=n + 2 * (n - m), steps=steps)
    keep, _, _, _ = run_observed(VidRDOptions(n, m, overlap="keep"), total=3 * n, steps=steps)
    whole = torch.cat([drop_states[i][steps - 1] for i in range(3)])
    assert torch.equal(keep.latent, whole)
