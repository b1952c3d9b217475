"""nodes/_comfy_model.py through the interop nodes, against the ComfyUI double (tests/comfy_double.py).

Core MODEL -> FrameFold: weights shared with core's diffusion_model, core's weight patches (LoRA) applied and kept,
the schedule and latent format carried, other patches refused by name. FrameFold -> core MODEL: core's BaseModel
(its input scaling, timestep and x0 formulas) around FrameFold's motion UNet gives FrameFold's own x0, prompts
batched by core are split into videos correctly.
"""

import sys

import pytest
import torch
from comfy_double import install_comfy_models

from framefold.nodes._comfy_model import FrameFoldCoreUNet
from framefold.nodes._core_types import conditioning_from_core
from framefold.nodes._errors import NodeInputError
from framefold.nodes.interop import FrameFoldConditioningToComfy, FrameFoldModelFromComfy, FrameFoldModelToComfy
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.motion import load_motion_module
from framefold.pipelines.models.bundle import Conditioning, attach_motion_module
from framefold.pipelines.models.unet import UNetConfig, UNetModel
from framefold.pipelines.sampling import schedules

# SD 1.5's layout at a small size: 32 GroupNorm groups and 8 heads, as FrameFold infers for SD 1.x files
CORE_UNET = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), context_dim=16)
PATCHED_KEY = "input_blocks.1.0.in_layers.2.weight"


@pytest.fixture()
def comfy(monkeypatch):
    torch.set_num_threads(1)
    return install_comfy_models(monkeypatch)


def randomised_unet(seed=0):
    g = torch.Generator().manual_seed(seed)
    unet = UNetModel(CORE_UNET).eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)
    return unet


def core_patcher(comfy, unet, model_type="EPS", sampling_settings=None):
    """A core MODEL as Load Checkpoint makes one, with ``unet`` as its diffusion_model (same LDM names)."""
    config = comfy["supported_models_base"].BASE({"disable_unet_model_creation": True})
    config.latent_format = sys.modules["comfy.latent_formats"].SD15()
    config.sampling_settings = dict(sampling_settings or {})
    base = comfy["model_base"].BaseModel(config, model_type=comfy["model_base"].ModelType[model_type])
    base.diffusion_model = unet
    return comfy["model_patcher"].ModelPatcher(base, torch.device("cpu"), torch.device("cpu"))


def run_unet(unet, seed=1):
    g = torch.Generator().manual_seed(seed)
    x, context = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 3, 16, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500.0, 500.0]), context)


def test_core_model_becomes_framefold_model_sharing_weights(comfy):
    unet = randomised_unet()
    (model,) = FrameFoldModelFromComfy().convert(core_patcher(comfy, unet))
    for key, value in unet.state_dict().items():
        assert model.unet.state_dict()[key].data_ptr() == value.data_ptr(), key  # shared, not copied
    assert torch.equal(run_unet(model.unet), run_unet(unet))
    assert model.schedule.beta_schedule == "scaled_linear" and model.schedule.prediction_type == "epsilon"
    assert (model.latent_scale, model.latent_shift) == (0.18215, 0.0)


def test_core_weight_patches_take_effect_and_survive_core_unpatching(comfy):
    unet = randomised_unet()
    plain = core_patcher(comfy, unet)
    original = unet.state_dict()[PATCHED_KEY].clone()
    delta = torch.full_like(original, 0.05)
    lora = plain.clone()
    lora.add_patches({"diffusion_model." + PATCHED_KEY: delta})
    (with_lora,) = FrameFoldModelFromComfy().convert(lora)
    assert torch.allclose(with_lora.unet.state_dict()[PATCHED_KEY], original + delta)
    (without,) = FrameFoldModelFromComfy().convert(plain)  # core unpatches its model for the plain patcher
    assert torch.equal(unet.state_dict()[PATCHED_KEY], original)
    assert torch.equal(without.unet.state_dict()[PATCHED_KEY], original)
    assert torch.allclose(with_lora.unet.state_dict()[PATCHED_KEY], original + delta)  # kept its patched weights
    assert not torch.allclose(run_unet(with_lora.unet), run_unet(without.unet), atol=1e-4)


def test_v_prediction_and_zero_terminal_snr_cross_over(comfy):
    patcher = core_patcher(comfy, randomised_unet(), "V_PREDICTION", {"zsnr": True, "beta_schedule": "sqrt_linear"})
    (model,) = FrameFoldModelFromComfy().convert(patcher)
    assert model.schedule.prediction_type == "v_prediction" and model.schedule.zero_terminal_snr
    assert model.schedule.beta_schedule == "linear"  # core's sqrt_linear = linear in beta


@pytest.mark.parametrize(
    "patch, named",
    [
        (lambda p: p.model_options["transformer_options"].update(patches={"attn2_patch": [print]}), "patches"),
        (lambda p: p.model_options.update(sampler_cfg_function=print), "sampler_cfg_function"),
        (lambda p: p.object_patches.update(diffusion_model=object()), "diffusion_model"),
    ],
)
def test_patches_framefold_cannot_apply_are_refused_by_name(comfy, patch, named):
    patcher = core_patcher(comfy, randomised_unet())
    patch(patcher)
    with pytest.raises(NodeInputError, match=f"FrameFoldModelFromComfy: input 'model'.*{named}"):
        FrameFoldModelFromComfy().convert(patcher)


def test_a_schedule_framefold_cannot_reproduce_is_refused(comfy):
    patcher = core_patcher(comfy, randomised_unet())
    odd = type(patcher.model.model_sampling)()
    odd.sigmas = odd.sigmas * 1.5
    patcher.object_patches["model_sampling"] = odd
    with pytest.raises(NodeInputError, match="noise schedule"):
        FrameFoldModelFromComfy().convert(patcher)


def test_not_a_core_model_is_refused(comfy):
    with pytest.raises(NodeInputError, match="FrameFoldModelFromComfy: input 'model'.*ModelPatcher"):
        FrameFoldModelFromComfy().convert("model")
    with pytest.raises(NodeInputError, match="FrameFoldModelToComfy: input 'model'.*FF_MODEL"):
        FrameFoldModelToComfy().convert("model")


@pytest.fixture(scope="module")
def default_video_model():
    from framefold.nodes._folders import resolve_model

    model, text_encoder, _ = load_checkpoint(resolve_model("checkpoints", "framefold-tiny.safetensors"))
    module = load_motion_module(resolve_model("animatediff_models", "framefold-tiny-motion.safetensors"))
    return attach_motion_module(model, module), text_encoder


def test_framefold_model_in_core_base_model_gives_framefold_x0(comfy, default_video_model):
    model, _ = default_video_model
    (patcher,) = FrameFoldModelToComfy().convert(model)
    base = patcher.model
    assert isinstance(base.diffusion_model, FrameFoldCoreUNet)
    assert "diffusion_model.input_blocks.0.0.weight" in base.state_dict()  # LDM names, as core LoRA maps expect
    frames, g = 16, torch.Generator().manual_seed(3)
    sigma = base.model_sampling.sigmas[600]  # a training sigma: core's timestep is exactly 600
    x = torch.randn(2 * frames, 4, 16, 16, generator=g) * float(sigma)
    context = torch.randn(2, 77, model.unet.config.context_dim, generator=g).repeat_interleave(frames, 0)
    with torch.no_grad():
        core_x0 = base.apply_model(
            x, sigma.expand(2 * frames), c_crossattn=context, transformer_options={"cond_or_uncond": [0, 1]}
        )
        ours = []
        for video in range(2):
            part = slice(video * frames, (video + 1) * frames)
            out = model(
                schedules.to_model_input(x[part], sigma), torch.full((frames,), 600.0), context[part], num_frames=frames
            )
            ours.append(schedules.denoised_from_output(x[part], out, sigma, model.schedule.prediction_type))
    assert torch.allclose(core_x0, torch.cat(ours), atol=1e-5, rtol=1e-4)
    latents = torch.randn(2, 4, 16, 16)
    assert torch.allclose(base.latent_format.process_in(latents), model.latents_in(latents))


def test_round_trip_and_too_many_frames(comfy, default_video_model):
    model, _ = default_video_model
    (patcher,) = FrameFoldModelToComfy().convert(model)
    (back,) = FrameFoldModelFromComfy().convert(patcher)
    assert back is model
    with pytest.raises(ValueError, match="context windows"):
        x = torch.zeros(model.frame_window + 1, 4, 16, 16)
        patcher.model.diffusion_model(x, torch.zeros(x.shape[0]), context=torch.zeros(x.shape[0], 77, 32))


def test_conditioning_goes_to_core_and_back(default_video_model):
    _, text_encoder = default_video_model
    embeds = torch.randn(1, 77, 32)
    (core,) = FrameFoldConditioningToComfy().convert(Conditioning(embeds, prompt="x"))
    assert core[0][1] == {} and torch.equal(core[0][0], embeds)
    assert torch.equal(conditioning_from_core("Sampler", "positive", core).embeds, embeds)
    with pytest.raises(NodeInputError, match="FrameFoldConditioningToComfy: input 'conditioning'.*ControlNets"):
        FrameFoldConditioningToComfy().convert(Conditioning(embeds, control=(object(),)))


def test_outside_comfyui_the_model_nodes_say_so(default_video_model):
    model, _ = default_video_model
    with pytest.raises(RuntimeError, match="only works inside ComfyUI"):
        FrameFoldModelToComfy().convert(model)
