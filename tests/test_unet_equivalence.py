"""Our UNet equals diffusers' UNet2DConditionModel on tiny random configs (fp32, max abs diff <= 1e-4).

diffusers is a test-only oracle here: weights flow diffusers -> our loader's diffusers map, and
LDM-named weights -> our loader and -> diffusers' own single-file converter.
"""

import pytest
import torch

from framefold.pipelines.loading.unet import build_unet
from framefold.pipelines.models.unet import UNetConfig, UNetModel

TOL = 1e-4


def tiny_config(**overrides):
    """Two levels, one res block, attention on the low-resolution level (diffusers-expressible)."""
    base = dict(
        model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), num_heads=2, context_dim=64
    )
    return UNetConfig(**{**base, **overrides})


def diffusers_unet(config: UNetConfig, seed=0):
    """A diffusers UNet2DConditionModel with the same architecture and random (non-trivial) weights."""
    from diffusers import UNet2DConditionModel

    levels = range(len(config.channel_mult))
    down = tuple("CrossAttnDownBlock2D" if l in config.attention_levels else "DownBlock2D" for l in levels)
    up = tuple("CrossAttnUpBlock2D" if l in config.attention_levels else "UpBlock2D" for l in reversed(levels))
    heads = (
        config.num_heads
        if config.num_heads != -1
        else tuple(config.model_channels * m // config.num_head_channels for m in config.channel_mult)
    )
    model = UNet2DConditionModel(
        sample_size=16,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        block_out_channels=tuple(config.model_channels * m for m in config.channel_mult),
        layers_per_block=config.num_res_blocks,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=config.context_dim,
        attention_head_dim=heads,
        norm_num_groups=config.norm_groups,
        use_linear_projection=config.use_linear_projection,
        transformer_layers_per_block=config.transformer_depth,
    ).eval()
    randomise(model, seed)
    return model


def randomise(model, seed):
    """Random weights everywhere (norm scales near 1) so that no layer is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            p.copy_(1.0 + noise if ("norm" in name and name.endswith("weight")) else noise)


def inputs(n=3, context_dim=64, seed=1, size=16):
    """Latents, timesteps and per-frame text context for a tiny UNet."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, size, size, generator=g)
    t = torch.tensor([10, 500, 999][:n] + [250] * max(0, n - 3))
    c = torch.randn(n, 7, context_dim, generator=g)
    return x, t, c


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(num_heads=-1, num_head_channels=16, use_linear_projection=True),  # SD2-style
        dict(attention_levels=(0, 1), transformer_depth=2),
    ],
)
def test_matches_diffusers_unet_through_diffusers_key_map(overrides):
    config = tiny_config(**overrides)
    reference = diffusers_unet(config)
    ours = build_unet(reference.state_dict(), config)
    x, t, c = inputs()
    with torch.no_grad():
        expected = reference(x, t, c).sample
        got = ours(x, t, c)
    assert (expected - got).abs().max().item() <= TOL


def test_config_inferred_from_diffusers_names():
    config = tiny_config(num_heads=8)
    assert build_unet(diffusers_unet(config).state_dict()).config == config


def test_original_ldm_state_dict_matches_diffusers_single_file_conversion():
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = tiny_config(num_heads=8)
    source = UNetModel(config)
    randomise(source, seed=3)
    checkpoint = {"model.diffusion_model." + k: v.clone() for k, v in source.state_dict().items()}
    ours = build_unet(checkpoint)  # prefixed, config inferred from shapes
    assert ours.config == config
    reference = diffusers_unet(config)
    converted = convert_ldm_unet_checkpoint(checkpoint, {"layers_per_block": config.num_res_blocks})
    reference.load_state_dict(converted, strict=True)
    x, t, c = inputs(seed=4)
    with torch.no_grad():
        expected = reference(x, t, c).sample
        got = ours(x, t, c)
    assert (expected - got).abs().max().item() <= TOL
    assert isinstance(reference, UNet2DConditionModel)


def test_control_residuals_match_diffusers_additional_residuals():
    config = tiny_config()
    reference = diffusers_unet(config)
    ours = build_unet(reference.state_dict(), config)
    x, t, c = inputs(n=2)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        down = [torch.randn(s, generator=g) * 0.5 for s in skip_shapes(ours, x)]
        mid = torch.randn(down[-1].shape, generator=g) * 0.5
        expected = reference(
            x, t, c, down_block_additional_residuals=tuple(down), mid_block_additional_residual=mid
        ).sample
        got = ours(x, t, c, control={"down": down, "mid": mid})
        plain = ours(x, t, c)
    assert (expected - got).abs().max().item() <= TOL
    assert (plain - got).abs().max().item() > 1e-3


def skip_shapes(unet, x):
    """Shapes of the skip tensors: conv_in output and every input block's output."""
    shapes = []
    h, w = x.shape[-2:]
    ch = unet.config.model_channels
    shapes.append((x.shape[0], ch, h, w))
    for level, mult in enumerate(unet.config.channel_mult):
        ch = unet.config.model_channels * mult
        for _ in range(unet.config.num_res_blocks):
            shapes.append((x.shape[0], ch, h, w))
        if level != len(unet.config.channel_mult) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            shapes.append((x.shape[0], ch, h, w))
    return shapes


def test_control_with_wrong_number_of_residuals_is_an_error():
    unet = UNetModel(tiny_config())
    x, t, c = inputs(n=1)
    with pytest.raises(ValueError, match="'down' needs"):
        unet(x, t, c, control={"down": [torch.zeros(1)]})


def test_odd_latent_size_matches_diffusers():
    config = tiny_config()
    reference = diffusers_unet(config)
    ours = build_unet(reference.state_dict(), config)
    x, t, c = inputs(n=1, size=13)
    with torch.no_grad():
        assert (reference(x, t, c).sample - ours(x, t, c)).abs().max().item() <= TOL


def test_context_per_video_is_shared_by_its_frames():
    unet = UNetModel(tiny_config())
    randomise(unet, 5)
    x, t, c = inputs(n=3)
    x = torch.cat([x, x])  # 2 videos x 3 frames
    t = torch.cat([t, t])
    per_video = torch.randn(2, 7, 64)
    with torch.no_grad():
        a = unet(x, t, per_video, num_frames=3)
        b = unet(x, t, per_video.repeat_interleave(3, dim=0), num_frames=3)
    assert torch.equal(a, b)


def test_shared_context_attention_equals_per_frame_repeat():
    from framefold.pipelines.models.layers import Attention

    attn = Attention(32, 64, heads=4, dim_head=8)
    randomise(attn, 8)
    x = torch.randn(6, 10, 32)
    context = torch.randn(2, 7, 64)
    with torch.no_grad():
        grouped = attn(x, context)  # 2 videos x 3 frames share one context each
        repeated = attn(x, context.repeat_interleave(3, dim=0).clone())
    assert torch.allclose(grouped, repeated, atol=1e-6)


def test_one_prompt_for_all_frames_matches_diffusers_with_repeated_context():
    config = tiny_config()
    reference = diffusers_unet(config)
    ours = build_unet(reference.state_dict(), config)
    x, t, _ = inputs(n=3)
    prompt = torch.randn(1, 7, 64)
    with torch.no_grad():
        expected = reference(x, t, prompt.expand(3, -1, -1)).sample
        assert (expected - ours(x, t, prompt, num_frames=3)).abs().max().item() <= TOL
        assert (expected - ours(x, t, prompt.expand(3, -1, -1).clone(), num_frames=3)).abs().max().item() <= TOL
