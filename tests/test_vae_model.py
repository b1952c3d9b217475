"""AutoencoderKL: equivalence with diffusers, the original-format path, temporal decoder, chunked/tiled decode."""

import dataclasses

import pytest
import torch

from framefold.pipelines.loading.vae import build_vae
from framefold.pipelines.loading.vae_keys import original_vae_to_diffusers_names
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig, DecoderTemporalConv

TINY = AutoencoderKLConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4)


def _randomize(module, seed=0, std=0.2):
    """Deterministic non-trivial weights (zero-init layers become non-zero too)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def _tiny_model(seed=0, **overrides):

    return _randomize(AutoencoderKL(dataclasses.replace(TINY, **overrides)), seed).eval()


def _diffusers_vae():
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL

    return DiffusersAutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
    ).eval()


def _to_diffusers_state(sd, levels=2):
    names = original_vae_to_diffusers_names(sd.keys(), levels)
    out = {}
    for k, v in sd.items():
        new = names[k]
        out[new] = v.reshape(v.shape[0], v.shape[1]) if ".attentions.0.to_" in new and v.ndim == 4 else v
    return out


def test_encode_decode_match_diffusers():
    ours = _tiny_model()
    ref = _diffusers_vae()
    ref.load_state_dict(_to_diffusers_state(ours.state_dict()), strict=True)
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.randn(2, 4, 4, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mean, logvar = ours.encode_moments(x)
        dist = ref.encode(x).latent_dist
        assert (mean - dist.mean).abs().max() <= 1e-4
        assert (logvar - dist.logvar).abs().max() <= 1e-4
        assert (ours.decode(z) - ref.decode(z).sample).abs().max() <= 1e-4


def test_diffusers_names_load_into_our_model():
    """diffusers-format files (current and old query/key/value/proj_attn names) load through vae_keys."""
    ref = _randomize(_diffusers_vae(), seed=3)
    sd = ref.state_dict()
    vae = build_vae(sd, TINY)
    old = {
        k.replace("to_q", "query").replace("to_k", "key").replace("to_v", "value").replace("to_out.0", "proj_attn"): v
        for k, v in sd.items()
    }
    vae_old = build_vae(old, TINY)
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = ref.decode(z).sample
        assert (vae.model.decode(z) - expected).abs().max() <= 1e-4
        assert (vae_old.model.decode(z) - expected).abs().max() <= 1e-4


def test_original_format_through_diffusers_single_file_converter():
    """An original-layout (first_stage_model.*) state dict: diffusers' converter and our loader agree."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    src = _tiny_model(seed=5)
    ckpt = {f"first_stage_model.{k}": v for k, v in src.state_dict().items()}
    ref = _diffusers_vae()
    converted = convert_ldm_vae_checkpoint(ckpt, dict(ref.config))
    ref.load_state_dict(converted, strict=True)
    ours = build_vae({k[len("first_stage_model.") :]: v for k, v in ckpt.items()}, TINY)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        assert (ours.model.encode_moments(x)[0] - ref.encode(x).latent_dist.mean).abs().max() <= 1e-4
        z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(7))
        assert (ours.model.decode(z) - ref.decode(z).sample).abs().max() <= 1e-4


def test_config_inferred_from_shapes():
    from framefold.pipelines.loading.vae import infer_vae_config

    sd = _tiny_model().state_dict()
    assert infer_vae_config(sd, norm_groups=4) == TINY
    temporal = _tiny_model(temporal_decoder=True, temporal_conv_layers=3).state_dict()
    inferred = infer_vae_config(temporal, norm_groups=4)
    assert inferred.temporal_decoder and inferred.temporal_conv_layers == 3 and inferred.temporal_kernel == 3


def test_untrained_temporal_decoder_equals_image_decoder():
    image = _tiny_model(seed=8)
    temporal = AutoencoderKL(dataclasses.replace(TINY, temporal_decoder=True)).eval()
    missing, unexpected = temporal.load_state_dict(image.state_dict(), strict=False)
    assert not unexpected and missing and all(".temp_conv" in k for k in missing)
    z = torch.randn(6, 4, 4, 4, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a = image.decode(z)
        b = temporal.decode(z, num_frames=6)
    assert (a - b).abs().max() <= 1e-6


def test_temporal_layers_mix_frames_when_trained():
    model = _tiny_model(seed=10, temporal_decoder=True)
    z = torch.randn(5, 4, 4, 4, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        together = model.decode(z, num_frames=5)
        alone = model.decode(z[2:3], num_frames=1)
    assert (together[2:3] - alone).abs().max() > 1e-3


def test_temporal_receptive_radius():
    model = AutoencoderKL(dataclasses.replace(TINY, temporal_decoder=True))
    n_convs = sum(isinstance(m, DecoderTemporalConv) for m in model.modules())
    assert n_convs == 2 + len(TINY.ch_mult) * (TINY.num_res_blocks + 1)
    assert model.decoder.temporal_radius() == n_convs * 2  # 2 layers of kernel 3 each


def test_chunked_decode_with_trained_temporal_decoder_is_exact():
    """Chunks get temporal_radius context frames on each side, so chunking does not change the result."""
    vae = VAE(_tiny_model(seed=12, temporal_decoder=True))
    latents = torch.randn(23, 4, 3, 3, generator=torch.Generator().manual_seed(13))
    whole = vae.decode(latents, frame_chunk=23)
    for chunk in (1, 4, 10):
        assert (vae.decode(latents, frame_chunk=chunk) - whole).abs().max() <= 1e-5
    # Without the context the chunk borders would differ: the overlap is needed.
    vae_off = vae.decode(latents, frame_chunk=4, temporal=False)
    assert (vae_off - whole).abs().max() > 1e-3


def test_chunked_tiled_decode_of_64_frames_matches_whole_decode():
    """Frame chunking is exact; spatial tiling is approximate (GroupNorm/attention see one tile).

    Stated tolerance for this tiny random VAE at 12x12 latents, 8-latent-pixel tiles, 4 overlap:
    mean abs error <= 0.015 and max abs error <= 0.12 (images in 0..1; measured 0.0069 and 0.079).
    Larger tiles give smaller errors.
    """
    vae = VAE(_tiny_model(seed=14))
    latents = torch.randn(64, 4, 12, 12, generator=torch.Generator().manual_seed(15))
    whole = vae.decode(latents, frame_chunk=64)
    chunked = vae.decode(latents, frame_chunk=8)
    assert torch.equal(chunked, whole) or (chunked - whole).abs().max() <= 1e-6
    tiled = vae.decode(latents, frame_chunk=8, tile=16, tile_overlap=8)  # image pixels: 8 / 4 latent pixels
    err = (tiled - whole).abs()
    assert err.mean() <= 0.015 and err.max() <= 0.12
    small_tiles = (vae.decode(latents[:8], tile=12, tile_overlap=4) - whole[:8]).abs().mean()
    assert err[:8].mean() < small_tiles
    assert tiled.shape == (64, 24, 24, 3) and tiled.min() >= 0 and tiled.max() <= 1


def test_tiling_is_exact_for_a_pointwise_map():
    """The blending itself is exact: tiling a 1x1 conv reproduces the untiled result."""
    from framefold.pipelines.models.vae import tiled_apply

    conv = torch.nn.Conv2d(3, 2, 1)
    x = torch.randn(2, 3, 37, 29, generator=torch.Generator().manual_seed(16))
    with torch.no_grad():
        tiled = tiled_apply(conv, x, tile=10, overlap=3, scale=1.0, out_channels=2)
        assert (tiled - conv(x)).abs().max() <= 1e-5
        up = tiled_apply(lambda t: conv(t).repeat_interleave(2, -1).repeat_interleave(2, -2), x, 10, 3, 2.0, 2)
        assert (up - conv(x).repeat_interleave(2, -1).repeat_interleave(2, -2)).abs().max() <= 1e-5


def test_video_conventions_and_sampling():
    vae = VAE(_tiny_model(seed=17))
    images = torch.rand(5, 16, 12, 3, generator=torch.Generator().manual_seed(18))
    mean = vae.encode(images)
    assert mean.shape == (5, 4, 8, 6)
    x = images.permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        expected = vae.model.encode_moments(x)[0] * vae.config.scaling_factor
    assert (mean - expected).abs().max() <= 1e-5
    assert (vae.encode(images, frame_chunk=2) - mean).abs().max() <= 1e-6
    s1 = vae.encode(images, sample=True, generator=torch.Generator().manual_seed(5), frame_chunk=2)
    s2 = vae.encode(images, sample=True, generator=torch.Generator().manual_seed(5), frame_chunk=5)
    assert (s1 - s2).abs().max() <= 1e-6 and (s1 - mean).abs().max() > 1e-3
    with pytest.raises(ValueError, match="Generator"):
        vae.encode(images, sample=True)
    out = vae.decode(mean)
    assert out.shape == (5, 16, 12, 3) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="multiple of 2"):
        vae.encode(torch.rand(1, 9, 12, 3))


def test_temporal_decoder_weights_round_trip_through_files(tmp_path):
    from framefold.pipelines.loading.vae import load_vae, save_vae

    plain = VAE(_tiny_model(seed=20))
    save_vae(tmp_path / "plain.safetensors", plain)
    # a plain VAE loaded with new (identity) Temp-Conv layers decodes exactly like before
    widened = load_vae(tmp_path / "plain.safetensors", temporal_decoder=True)
    assert widened.has_temporal_decoder and not plain.has_temporal_decoder
    latents = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(21))
    assert (widened.decode(latents) - plain.decode(latents)).abs().max() <= 1e-6
    # trained temporal weights survive save/load and are detected from the keys
    trained = VAE(_tiny_model(seed=22, temporal_decoder=True))
    save_vae(tmp_path / "temporal.safetensors", trained)
    loaded = load_vae(tmp_path / "temporal.safetensors")
    assert loaded.config.temporal_decoder
    assert (loaded.decode(latents) - trained.decode(latents)).abs().max() <= 1e-6
    assert (loaded.decode(latents, temporal=False) - loaded.decode(latents)).abs().max() > 1e-3


def test_tiled_encode_is_close_to_whole_encode():
    vae = VAE(_tiny_model(seed=23))
    images = torch.rand(2, 36, 28, 3, generator=torch.Generator().manual_seed(24))
    whole = vae.encode(images)
    tiled = vae.encode(images, tile=17, tile_overlap=7)  # rounded to 16 / 6 (multiples of the downscale)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().mean() <= 0.1 * whole.abs().mean()


def test_zero_initialised_temporal_layers_are_trainable():
    """VidRD fine-tuning: freeze everything but Temp-Conv; the zero last conv still receives gradients."""
    model = AutoencoderKL(dataclasses.replace(TINY, temporal_decoder=True))
    params = model.temporal_parameters()
    assert len(params) == 6 * 8  # 6 Temp-Convs (2 mid + 2 levels x 2 blocks) x 2 norms + 2 convs, weight + bias each
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(25))
    target = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(26))
    loss = (model.decode(z, num_frames=4) - target).pow(2).mean()
    loss.backward()
    last = model.decoder.mid.temp_conv_1.convs[-1].weight
    assert last.grad is not None and last.grad.abs().sum() > 0
    assert model.decoder.conv_out.weight.grad is None
