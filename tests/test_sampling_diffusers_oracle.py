"""Acceptance: our samplers follow diffusers' schedulers step by step on a tiny model (diffusers is test-only)."""

import math

import pytest
import torch
from test_sampling_tinymodel import tiny_cond, tiny_model

from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.guidance import GuidedDenoiser

diffusers = pytest.importorskip("diffusers")

FRAMES, SHAPE = 3, (3, 4, 6, 6)
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def _noise(seed=11):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def _diffusers_run(scheduler, model, pos, neg, cfg, x, steps, seed):
    """Drive a diffusers scheduler the way its pipelines do; return the per-step VP trajectory and sigmas."""
    scheduler.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    ctx_pos = pos.embeds.expand(FRAMES, -1, -1)
    ctx = ctx_pos if cfg == 1 else torch.cat([ctx_pos, neg.embeds.expand(FRAMES, -1, -1)])
    trajectory = []
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t)
        n = 1 if cfg == 1 else 2
        out = model(inp.repeat(n, 1, 1, 1), t.float().expand(FRAMES * n), ctx, num_frames=FRAMES)
        if cfg != 1:
            cond, uncond = out[:FRAMES], out[FRAMES:]
            out = uncond + cfg * (cond - uncond)
        x = scheduler.step(out, t, x, generator=gen).prev_sample
        trajectory.append(x.clone())
    return trajectory


def _ours_run(name, model, pos, neg, cfg, x, sigmas, seed, **options):
    """Our sampler with a recording step hook; returns sigma-space states converted to VP latents."""
    recorded = []

    def record(i, sigma, x_now):
        recorded.append(schedules.from_sigma_space(x_now, float(sigma)).clone())

    denoise = GuidedDenoiser(model, pos, neg, cfg)
    samplers.SAMPLERS[name](
        denoise, x, sigmas, generator=torch.Generator().manual_seed(seed), step_hook=record, **options
    )
    return recorded


def _assert_same(ours, theirs):
    """Every recorded step agrees within 1e-4 (and the run moved: the check can fail)."""
    assert len(ours) == len(theirs)
    worst = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
    print(f"max deviation over {len(ours)} steps: {worst:.2e} scale {max(t.abs().max().item() for t in theirs):.2f}")
    assert (ours[0] - ours[-1]).abs().max() > 0.1
    assert worst < 1e-4, f"max deviation {worst:.2e}"


def _ac(prediction_type, zero_snr=False):
    model = tiny_model(prediction_type, zero_terminal_snr=zero_snr)
    return model, schedules.alphas_cumprod_from_config(model.schedule)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("eta,cfg,alpha_to_one", [(0.0, 1.0, False), (0.0, 5.0, True), (1.0, 3.0, False)])
def test_ddim_matches_diffusers(prediction_type, eta, cfg, alpha_to_one):
    model, ac = _ac(prediction_type)
    pos, neg = tiny_cond(1), tiny_cond(2)
    sched = diffusers.DDIMScheduler(
        **SD,
        prediction_type=prediction_type,
        clip_sample=False,
        set_alpha_to_one=alpha_to_one,
        steps_offset=1,
        timestep_spacing="leading",
    )
    steps = 10
    sigmas = schedules.sampling_sigmas(ac, steps, "leading", final_sigma="zero" if alpha_to_one else "alpha0")
    noise = _noise()
    x0 = schedules.initial_latent(noise, sigmas)
    ours = _ours_run("ddim", model, pos, neg, cfg, x0, sigmas, seed=5, eta=eta)
    theirs = _diffusers_run_eta(sched, model.unet, pos, neg, cfg, noise.clone(), steps, 5, eta)
    _assert_same(ours, theirs)


def _diffusers_run_eta(scheduler, model, pos, neg, cfg, x, steps, seed, eta):
    """DDIM with eta needs the eta argument at each step."""
    original = scheduler.step
    scheduler.step = lambda out, t, x, generator=None: original(out, t, x, eta=eta, generator=generator)
    try:
        return _diffusers_run(scheduler, model, pos, neg, cfg, x, steps, seed)
    finally:
        scheduler.step = original


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize(
    "spacing,karras", [("linspace", False), ("leading", False), ("trailing", False), ("linspace", True)]
)
def test_euler_matches_diffusers(prediction_type, spacing, karras):
    model, ac = _ac(prediction_type)
    pos, neg = tiny_cond(3), tiny_cond(4)
    sched = diffusers.EulerDiscreteScheduler(
        **SD, prediction_type=prediction_type, timestep_spacing=spacing, steps_offset=1, use_karras_sigmas=karras
    )
    steps = 8
    sigmas = schedules.sampling_sigmas(ac, steps, "karras" if karras else spacing)
    sched.set_timesteps(steps)
    torch.testing.assert_close(sigmas, sched.sigmas.float(), rtol=1e-5, atol=1e-6)
    noise = _noise(12)
    start = noise * sched.init_noise_sigma  # diffusers' start scale for these spacings
    theirs = _diffusers_run(sched, model.unet, pos, neg, 4.0, start.clone(), steps, seed=0)
    ours = _ours_run("euler", model, pos, neg, 4.0, start.clone(), sigmas, seed=0)
    vp = [schedules.from_sigma_space(x, float(s)) for x, s in zip(theirs, sigmas[1:])]
    _assert_same(ours, vp)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_euler_ancestral_matches_diffusers(prediction_type):
    model, ac = _ac(prediction_type)
    pos, neg = tiny_cond(5), tiny_cond(6)
    sched = diffusers.EulerAncestralDiscreteScheduler(
        **SD, prediction_type=prediction_type, timestep_spacing="trailing", steps_offset=1
    )
    steps = 8
    sigmas = schedules.sampling_sigmas(ac, steps, "trailing")
    sched.set_timesteps(steps)
    noise = _noise(13)
    start = noise * sched.init_noise_sigma
    theirs = _diffusers_run(sched, model.unet, pos, neg, 3.0, start.clone(), steps, seed=21)
    ours = _ours_run("euler_ancestral", model, pos, neg, 3.0, start.clone(), sigmas, seed=21)
    vp = [schedules.from_sigma_space(x, float(s)) for x, s in zip(theirs, sigmas[1:])]
    _assert_same(ours, vp)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [6, 20])
def test_dpmpp_2m_matches_diffusers(prediction_type, steps):
    model, ac = _ac(prediction_type)
    pos, neg = tiny_cond(7), tiny_cond(8)
    sched = diffusers.DPMSolverMultistepScheduler(
        **SD,
        prediction_type=prediction_type,
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        timestep_spacing="trailing",
        final_sigmas_type="zero",
    )
    sigmas = schedules.sampling_sigmas(ac, steps, "trailing")
    noise = _noise(14)
    theirs = _diffusers_run(sched, model.unet, pos, neg, 2.5, noise.clone(), steps, seed=0)
    ours = _ours_run("dpmpp_2m", model, pos, neg, 2.5, schedules.initial_latent(noise, sigmas), sigmas, seed=0)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_lcm_matches_diffusers(prediction_type):
    model, ac = _ac(prediction_type)
    pos = tiny_cond(9)
    sched = diffusers.LCMScheduler(**SD, prediction_type=prediction_type)
    steps = 4
    sigmas = schedules.sampling_sigmas(ac, steps, "lcm")
    sched.set_timesteps(steps)
    assert sched.timesteps.tolist() == [999, 759, 499, 259]
    noise = _noise(15)
    theirs = _diffusers_run(sched, model.unet, pos, None, 1.0, noise.clone(), steps, seed=33)
    ours = _ours_run("lcm", model, pos, None, 1.0, schedules.initial_latent(noise, sigmas), sigmas, seed=33)
    _assert_same(ours, theirs)


def test_zero_terminal_snr_v_prediction_euler_matches_diffusers():
    model, ac = _ac("v_prediction", zero_snr=True)
    pos, neg = tiny_cond(1), tiny_cond(2)
    sched = diffusers.EulerDiscreteScheduler(
        **SD, prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True
    )
    steps = 6
    sigmas = schedules.sampling_sigmas(ac, steps, "trailing")
    sched.set_timesteps(steps)
    torch.testing.assert_close(sigmas, sched.sigmas.float(), rtol=1e-5, atol=1e-6)
    start = _noise(3) * sched.init_noise_sigma
    theirs = _diffusers_run(sched, model.unet, pos, neg, 2.0, start.clone(), steps, seed=0)
    ours = _ours_run("euler", model, pos, neg, 2.0, start.clone(), sigmas, seed=0)
    vp = [schedules.from_sigma_space(x, float(s)) for x, s in zip(theirs, sigmas[1:])]
    _assert_same(ours, vp)


def test_betas_and_alphas_cumprod_match_diffusers():
    for zero_snr in (False, True):
        for beta_schedule in ("scaled_linear", "linear", "squaredcos_cap_v2"):
            cfg = dict(SD, beta_schedule=beta_schedule)
            sched = diffusers.DDIMScheduler(**cfg, rescale_betas_zero_snr=zero_snr)
            betas = schedules.make_betas(beta_schedule, 0.00085, 0.012, 1000)
            if zero_snr:
                betas = schedules.rescale_zero_terminal_snr(betas)
            torch.testing.assert_close(schedules.alphas_cumprod_from_betas(betas), sched.alphas_cumprod, rtol=0, atol=0)
    assert math.isclose(float(schedules.train_sigmas(sched.alphas_cumprod)[-1]), math.sqrt(2**24 - 1), rel_tol=1e-6)


def test_documented_spacing_differences_from_diffusers():
    """schedules.SPACING_NOTES (the sampler tooltip's text) states two deliberate differences: check both."""
    notes = schedules.SPACING_NOTES
    ours = schedules.spaced_timesteps(2, "leading")
    dpm = diffusers.DPMSolverMultistepScheduler(**SD, timestep_spacing="leading", steps_offset=1)
    dpm.set_timesteps(2)
    assert ours.tolist() == [501.0, 1.0] and dpm.timesteps.tolist() == [667, 334]
    assert "501, 1" in notes and "667, 334" in notes
    ac = schedules.alphas_cumprod_from_config(tiny_model().schedule)
    for spacing in ("linspace", "trailing"):
        euler = diffusers.EulerDiscreteScheduler(**SD, timestep_spacing=spacing)
        euler.set_timesteps(10)
        sigmas = schedules.sampling_sigmas(ac, 10, spacing)
        sigma_max = float(sigmas[0])
        assert math.isclose(float(euler.init_noise_sigma), sigma_max, rel_tol=1e-5)
        start = schedules.initial_latent(torch.ones(1), sigmas)
        assert math.isclose(float(start), math.sqrt(1 + sigma_max**2), rel_tol=1e-6)
    assert "sqrt(1 + sigma_max^2)" in notes and "noise * sigma_max" in notes
    sd_sigma_max = float(schedules.train_sigmas(ac)[-1])
    assert math.isclose(math.sqrt(1 + sd_sigma_max**2) / sd_sigma_max - 1, 0.0023, abs_tol=2e-4)  # "0.2% smaller"
