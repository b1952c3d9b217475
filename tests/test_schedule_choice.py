"""Beta schedules as data on the model: the "auto" rule for AnimateDiff modules, the override node, provenance,
and an end-to-end comparison with diffusers' AnimateDiffPipeline on the AnimateDiff inference schedule."""

import pytest
import torch

from framefold.nodes.model_sampling import FrameFoldModelSampling
from framefold.nodes.motion import FrameFoldApplyMotionModule
from framefold.pipelines.loading.motion import build_motion_module
from framefold.pipelines.loading.unet import build_unet
from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig, attach_motion_module
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
from framefold.pipelines.models.unet import UNetConfig, UNetModel
from framefold.pipelines.sampling import samplers, schedules
from framefold.pipelines.sampling.guidance import GuidedDenoiser
from framefold.pipelines.video.provenance import values_from_prompt

diffusers = pytest.importorskip("diffusers")

CONFIG = UNetConfig(
    model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
)


def _module(version):
    """A small motion module set of an AnimateDiff release layout (v2: mid block, 32-frame tables)."""
    mid, pe = {"v1": (False, 24), "v2": (True, 32), "v3": (False, 32), "custom": (False, 16)}[version]
    return MotionModule(
        MotionModuleConfig(
            block_channels=(32, 64), layers_per_block=1, mid_block=mid, pe_length=pe, num_heads=4, version=version
        )
    )


def _abar(model):
    return schedules.alphas_cumprod_from_config(model.schedule)


def _diffusers_abar(beta_schedule, **kwargs):
    sched = diffusers.DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule=beta_schedule, **kwargs)
    return sched.alphas_cumprod


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_auto_picks_animatediff_linear_schedule_for_released_module_versions(version):
    model = DiffusionModel(unet=UNetModel(CONFIG))
    assert model.schedule.beta_schedule == "scaled_linear"
    (animated,) = FrameFoldApplyMotionModule().apply(model, _module(version), 1.0)
    assert animated.schedule.beta_schedule == "linear" and animated.schedule_choice == "auto"
    assert torch.equal(_abar(animated), _diffusers_abar("linear"))
    assert torch.equal(_abar(model), _diffusers_abar("scaled_linear"))
    # the figures: alpha-bar at t = 501 and sigma_max, SD's scaled_linear vs AnimateDiff's linear
    assert abs(_abar(model)[501].item() - 0.275) < 1e-3 and abs(_abar(animated)[501].item() - 0.160) < 1e-3
    sigma_max = [schedules.train_sigmas(_abar(m))[-1].item() for m in (model, animated)]
    assert abs(sigma_max[0] - 14.61) < 0.01 and abs(sigma_max[1] - 25.15) < 0.01


def test_auto_keeps_the_checkpoint_schedule_for_custom_modules_and_after_removal():
    native = ScheduleConfig(zero_terminal_snr=True, prediction_type="v_prediction")
    model = DiffusionModel(unet=UNetModel(CONFIG), schedule=native)
    (custom,) = FrameFoldApplyMotionModule().apply(model, _module("custom"), 1.0)
    assert custom.schedule == native
    (v2,) = FrameFoldApplyMotionModule().apply(model, _module("v2"), 1.0)
    assert v2.schedule == ScheduleConfig(beta_schedule="linear", zero_terminal_snr=True, prediction_type="v_prediction")
    (back,) = FrameFoldApplyMotionModule().apply(v2, _module("custom"), 1.0)  # replacing the module re-resolves
    assert back.schedule == native


def test_override_node_changes_the_schedule_and_the_choice_survives_attaching():
    model = DiffusionModel(unet=UNetModel(CONFIG))
    (chosen,) = FrameFoldModelSampling().apply(model, "scaled_linear", False)
    (animated,) = FrameFoldApplyMotionModule().apply(chosen, _module("v3"), 1.0)
    assert animated.schedule.beta_schedule == "scaled_linear"
    assert torch.equal(_abar(animated), _diffusers_abar("scaled_linear"))
    (after,) = FrameFoldModelSampling().apply(animated, "squaredcos_cap_v2", False)
    assert torch.equal(_abar(after), _diffusers_abar("squaredcos_cap_v2"))
    (zsnr,) = FrameFoldModelSampling().apply(animated, "auto", True)
    assert zsnr.schedule.beta_schedule == "linear" and zsnr.schedule.zero_terminal_snr
    expected = _diffusers_abar("linear", rescale_betas_zero_snr=True)
    assert torch.allclose(_abar(zsnr), expected, atol=1e-7, rtol=0)
    (auto_again,) = FrameFoldModelSampling().apply(after, "auto", False)
    assert auto_again.schedule.beta_schedule == "linear"  # auto with a v3 module attached


def test_schedule_choice_is_recorded_in_provenance():
    prompt = {
        "4": {"class_type": "FrameFoldModelSampling", "inputs": {"model": ["1", 0], "beta_schedule": "linear"}},
    }
    found = values_from_prompt(prompt)
    assert found["beta_schedules"] == [
        {"node": "4", "class_type": "FrameFoldModelSampling", "input": "beta_schedule", "value": "linear"}
    ]


def test_unknown_schedule_names_are_refused():
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        ScheduleConfig(beta_schedule="cosine")
    with pytest.raises(ValueError, match="choice must be one of"):
        DiffusionModel(unet=UNetModel(CONFIG)).with_schedule_choice("sqrt_linear")


def _randomise(model, seed, scale=0.05):
    """Random weights (norm scales near 1): small enough that the random model's x0 stays in a latent's range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)
    return model


def test_end_to_end_matches_diffusers_animatediff_pipeline_on_the_animatediff_schedule():
    """Same random-weight UNet + v2-layout motion module, AnimateDiff's inference scheduler config (DDIM, linear
    betas, steps_offset 1, leading spacing): the final latents agree to 1e-4."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel

    image = UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=2,
        norm_num_groups=32,
    ).eval()
    _randomise(image, 0)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=32,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    _randomise(adapter, 1)
    vae = AutoencoderKL(block_out_channels=(32, 32), norm_num_groups=32, latent_channels=4).eval()
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        steps_offset=1,
        clip_sample=False,
    )
    pipe = AnimateDiffPipeline(
        vae=vae, text_encoder=None, tokenizer=None, unet=image, motion_adapter=adapter, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)

    frames, steps, cfg = 4, 6, 2.0
    g = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(1, 7, 64, generator=g), torch.randn(1, 7, 64, generator=g)
    noise = torch.randn(frames, 4, 16, 16, generator=g)
    with torch.no_grad():
        theirs = pipe(
            prompt_embeds=pos,
            negative_prompt_embeds=neg,
            num_frames=frames,
            height=32,
            width=32,
            num_inference_steps=steps,
            guidance_scale=cfg,
            latents=noise.permute(1, 0, 2, 3).unsqueeze(0).clone(),
            output_type="latent",
        ).frames
    theirs = theirs[0].permute(1, 0, 2, 3)

    # ours: the same weights loaded through FrameFold's loaders; v2 layout named explicitly (small channels)
    unet = build_unet(image.state_dict(), CONFIG)
    mm = build_motion_module(adapter.state_dict(), num_heads=4, version="v2")
    model = attach_motion_module(DiffusionModel(unet=unet), mm, norm_across_frames=True)  # diffusers: joint norm
    assert model.schedule.beta_schedule == "linear"  # picked by "auto"
    sigmas = schedules.sampling_sigmas(_abar(model), steps, "leading", final_sigma="zero")
    denoiser = GuidedDenoiser(model, Conditioning(pos), Conditioning(neg), cfg)
    with torch.no_grad():
        ours = samplers.sample("ddim", denoiser, noise, sigmas)
    worst = (ours - theirs).abs().max().item()
    print(f"max |ours - diffusers| = {worst:.2e} (latent scale {theirs.abs().max().item():.2f})")
    assert (ours - noise).abs().max() > 0.1  # the run moved
    assert worst <= 1e-4
    # on SD's scaled_linear schedule the same run differs: the schedule really matters
    sd_model = model.with_schedule_choice("scaled_linear")
    sd_sigmas = schedules.sampling_sigmas(_abar(sd_model), steps, "leading", final_sigma="zero")
    with torch.no_grad():
        sd_run = samplers.sample(
            "ddim", GuidedDenoiser(sd_model, Conditioning(pos), Conditioning(neg), cfg), noise, sd_sigmas
        )
    assert (sd_run - theirs).abs().max() > 1e-2
