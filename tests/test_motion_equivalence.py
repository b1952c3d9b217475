"""UNet + AnimateDiff motion module vs diffusers UNetMotionModel, and the temporal layers' properties."""

import pytest
import torch
from einops import rearrange

from framefold.pipelines.loading.motion import build_motion_module, load_motion_module, save_motion_module
from framefold.pipelines.loading.motion_keys import original_to_diffusers
from framefold.pipelines.loading.state_dict import StateDictError
from framefold.pipelines.loading.unet import build_unet
from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig, TemporalConv
from framefold.pipelines.models.unet import AnimatedUNet, UNetConfig, UNetModel

TOL = 1e-4
CONFIG = UNetConfig(
    model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
)


def randomise(model, seed):
    """Random weights everywhere (norm scales near 1; buffers such as pe tables untouched)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)
    return model


def tiny_motion_config(**overrides):
    """A motion module set that fits CONFIG (two levels, one module per down level)."""
    base = dict(block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4)
    return MotionModuleConfig(**{**base, **overrides})


def video_inputs(b=2, f=5, seed=1):
    """b videos of f frames folded into the batch, per-frame timesteps and text context."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b * f, 4, 16, 16, generator=g)
    t = torch.tensor([10, 700, 300][:b]).repeat_interleave(f)
    c = torch.randn(b * f, 7, 64, generator=g)
    return x, t, c


@pytest.mark.parametrize("mid_block", [True, False])
def test_matches_diffusers_unet_motion_model(mid_block):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

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
    randomise(image, 0)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=32,
        motion_max_seq_length=16,
        use_motion_mid_block=mid_block,
    )
    randomise(adapter, 1)
    reference = UNetMotionModel.from_unet2d(image, adapter).eval()

    unet = build_unet(image.state_dict(), CONFIG)
    # diffusers' AnimateDiffTransformer3D normalises the whole [b, c, f, h, w] video jointly
    mm = build_motion_module(adapter.state_dict(), num_heads=4, norm_across_frames=True)
    assert mm.config.mid_block == mid_block
    ours = unet.with_motion(mm)
    b, f = 2, 5
    x, t, c = video_inputs(b, f)
    with torch.no_grad():
        expected = reference(rearrange(x, "(b f) c h w -> b c f h w", f=f), t[::f], c).sample
        got = ours(x, t, c, num_frames=f)
        image_only = unet(x, t, c, num_frames=f)
    expected = rearrange(expected, "b c f h w -> (b f) c h w")
    assert (expected - got).abs().max().item() <= TOL
    assert (image_only - got).abs().max().item() > 1e-2  # the motion module really contributed


def test_released_naming_round_trip_gives_identical_outputs():
    mm = randomise(MotionModule(tiny_motion_config(mid_block=True)), 2)
    via_diffusers = build_motion_module(original_to_diffusers(mm.state_dict()), num_heads=4)
    via_released = build_motion_module(mm.state_dict(), num_heads=4)
    unet = randomise(UNetModel(CONFIG), 3)
    x, t, c = video_inputs()
    with torch.no_grad():
        a = unet.with_motion(mm)(x, t, c, num_frames=5)
        b = unet.with_motion(via_diffusers)(x, t, c, num_frames=5)
        d = unet.with_motion(via_released)(x, t, c, num_frames=5)
    assert torch.equal(a, b) and torch.equal(a, d)


def test_untrained_motion_module_is_identity_and_scale_zero_disables_it():
    unet = randomise(UNetModel(CONFIG), 4)
    x, t, c = video_inputs()
    fresh = unet.with_motion(MotionModule(tiny_motion_config()))
    trained = unet.with_motion(randomise(MotionModule(tiny_motion_config()), 5))
    with torch.no_grad():
        image = unet(x, t, c, num_frames=5)
        assert torch.equal(fresh(x, t, c, num_frames=5), image)
        assert torch.equal(trained(x, t, c, num_frames=5, motion_scale=0.0), image)
        full = trained(x, t, c, num_frames=5)
        half = trained(x, t, c, num_frames=5, motion_scale=0.5)
    assert (full - image).abs().max() > 1e-2
    assert (half - image).abs().max() > 1e-3 and (half - full).abs().max() > 1e-3


def test_motion_scale_multiplies_the_module_residual():
    module = randomise(MotionModule(tiny_motion_config()), 6).down_blocks[0].motion_modules[0]
    x = torch.randn(2 * 4, 32, 4, 4)
    with torch.no_grad():
        base = module(x, 4) - x
        scaled = module(x, 4, scale=0.3) - x
    assert torch.allclose(scaled, 0.3 * base, atol=1e-6)


def test_frames_interact_only_through_temporal_layers():
    unet = randomise(UNetModel(CONFIG), 7)
    animated = unet.with_motion(randomise(MotionModule(tiny_motion_config()), 8))
    x, t, c = video_inputs(b=1, f=4)
    changed = x.clone()
    changed[3] += 1.0  # perturb the last frame only
    with torch.no_grad():
        image_a, image_b = unet(x, t, c, num_frames=4), unet(changed, t, c, num_frames=4)
        video_a, video_b = animated(x, t, c, num_frames=4), animated(changed, t, c, num_frames=4)
    assert torch.equal(image_a[0], image_b[0])  # per-frame image model: frame 0 unaffected
    assert (video_a[0] - video_b[0]).abs().max() > 1e-4  # motion module: frame 0 sees frame 3


def test_v1_joint_groupnorm_shares_statistics_across_frames():
    unet = randomise(UNetModel(CONFIG), 9)
    fresh = MotionModule(tiny_motion_config(unet_joint_groupnorm=True))  # identity modules, v1 GroupNorm mode
    x, t, c = video_inputs(b=1, f=4)
    changed = x.clone()
    changed[3] += 1.0
    with torch.no_grad():
        a = unet.with_motion(fresh)(x, t, c, num_frames=4)
        b = unet.with_motion(fresh)(changed, t, c, num_frames=4)
        single = unet.with_motion(fresh)(x[:1], t[:1], c[:1], num_frames=1)
    assert (a[0] - b[0]).abs().max() > 1e-4
    assert torch.allclose(single, unet(x[:1], t[:1], c[:1]), atol=1e-6)  # one frame: joint == per-frame
    with torch.no_grad():  # motion_scale 0 is the plain image model, GroupNorm included
        assert torch.equal(
            unet.with_motion(fresh)(x, t, c, num_frames=4, motion_scale=0.0), unet(x, t, c, num_frames=4)
        )


def test_window_longer_than_positional_table_is_a_clear_error():
    animated = UNetModel(CONFIG).with_motion(MotionModule(tiny_motion_config(pe_length=4)))
    x, t, c = video_inputs(b=1, f=5)
    with pytest.raises(ValueError, match="at most 4 frames"):
        animated(x, t, c, num_frames=5)


def test_temp_conv_zero_init_is_identity_and_trained_mixes_frames():
    config = CONFIG.with_options(temporal_conv=True)
    unet = UNetModel(config)
    plain = UNetModel(CONFIG)
    plain.load_state_dict({k: v for k, v in unet.state_dict().items() if not k.startswith("temporal_convs.")})
    x, t, c = video_inputs(b=1, f=4)
    with torch.no_grad():
        assert torch.equal(unet(x, t, c, num_frames=4), plain(x, t, c, num_frames=4))
        layer = TemporalConv(32)
        h = torch.randn(8, 32, 3, 3)
        assert torch.equal(layer(h, 4), h)
        randomise(layer, 10)
        out = layer(h, 4)
        changed = h.clone()
        changed[1] += 1.0  # frame 1 of video 0 reaches the other frames of video 0, never video 1
        out2 = layer(changed, 4)
    assert all((out - out2)[i].abs().max() > 1e-4 for i in (0, 2, 3))
    assert torch.equal(out[4:], out2[4:])


def test_sd_file_into_temp_conv_unet_needs_explicit_permission():
    plain = randomise(UNetModel(CONFIG), 11)
    config = CONFIG.with_options(temporal_conv=True)
    with pytest.raises(StateDictError, match="temporal_convs"):
        build_unet(plain.state_dict(), config)
    unet = build_unet(plain.state_dict(), config, new_temporal_layers_ok=True)
    x, t, c = video_inputs(b=1, f=3)
    with torch.no_grad():
        assert torch.equal(unet(x, t, c, num_frames=3), plain(x, t, c, num_frames=3))


def test_attaching_shares_weights_and_state_dict_layout():
    unet = UNetModel(CONFIG)
    mm = MotionModule(tiny_motion_config())
    animated = unet.with_motion(mm)
    assert isinstance(animated, AnimatedUNet) and animated.without_motion() is unet
    assert animated.unet.time_embed[0].weight is unet.time_embed[0].weight
    keys = set(animated.state_dict())
    assert {"unet." + k for k in unet.state_dict()} | {"motion." + k for k in mm.state_dict()} == keys
    assert animated.frame_window == 16


def test_save_and_load_motion_module_file(tmp_path):
    mm = randomise(MotionModule(tiny_motion_config(num_heads=2, norm_groups=16)), 12)
    path = save_motion_module(tmp_path / "tiny_mm.safetensors", mm)
    loaded = load_motion_module(path)
    assert loaded.config == mm.config
    for k, v in mm.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_missing_positional_tables_are_recomputed_only_when_all_are_absent():
    mm = MotionModule(tiny_motion_config())
    sd = {k: v for k, v in mm.state_dict().items() if not k.endswith("pos_encoder.pe")}
    with pytest.raises(ValueError, match="pe_length"):
        build_motion_module(sd, num_heads=4)
    rebuilt = build_motion_module(sd, num_heads=4, pe_length=16)
    for k, v in mm.state_dict().items():
        assert torch.allclose(rebuilt.state_dict()[k], v)
    sd_one_gone = dict(mm.state_dict())
    del sd_one_gone[
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe"
    ]
    with pytest.raises(StateDictError, match="pos_encoder.pe"):
        build_motion_module(sd_one_gone, num_heads=4)


def test_temporal_patterns_route_to_the_right_attention():
    unet = randomise(UNetModel(CONFIG), 13)
    animated = unet.with_motion(randomise(MotionModule(tiny_motion_config()), 14))
    x, t, c = video_inputs(b=1, f=4)
    with torch.no_grad():
        full = animated(x, t, c, num_frames=4)
        wide_window = animated(x, t, c, num_frames=4, temporal_pattern="window:3")
        narrow_window = animated(x, t, c, num_frames=4, temporal_pattern="window:0")
        own_frame = animated(x, t, c, num_frames=4, temporal_pattern="cross_frame:self")
        first_frame = animated(x, t, c, num_frames=4, temporal_pattern="cross_frame:first")
        image_first = unet(x, t, c, num_frames=4, temporal_pattern="cross_frame:first")
        image = unet(x, t, c, num_frames=4)
    assert torch.allclose(wide_window, full, atol=1e-5)  # a window covering all frames = full attention
    assert (narrow_window - full).abs().max() > 1e-4
    assert torch.allclose(own_frame, full, atol=1e-5)  # spatial keys from the frame itself = plain
    assert (first_frame - full).abs().max() > 1e-4
    # without motion modules, cross-frame attention leaves frame 0 alone and changes the others
    assert torch.allclose(image_first[0], image[0], atol=1e-5)
    assert (image_first[1:] - image[1:]).abs().max() > 1e-4


def test_unknown_temporal_pattern_is_an_error():
    x, t, c = video_inputs(b=1, f=2)
    with pytest.raises(ValueError):
        UNetModel(CONFIG)(x, t, c, num_frames=2, temporal_pattern="spiral:3")


def test_gradients_reach_the_motion_module_and_outputs_match_inference():
    unet = randomise(UNetModel(CONFIG), 15)
    mm = MotionModule(tiny_motion_config())  # zero-initialised proj_out, as when training starts
    animated = unet.with_motion(mm)
    x, t, c = video_inputs(b=1, f=4)
    out = animated(x, t, c, num_frames=4)
    out.square().mean().backward()
    proj_out = mm.down_blocks[0].motion_modules[0].temporal_transformer.proj_out.weight
    assert proj_out.grad is not None and proj_out.grad.abs().max() > 0
    with torch.no_grad():
        assert torch.allclose(animated(x, t, c, num_frames=4), out.detach(), atol=1e-6)
