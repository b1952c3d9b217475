"""Cascaded latent re-denoise: latent enlargement, spatial tiles and context windows around the public sampler."""

import pytest
import torch
from test_sampling_tinymodel import TinyVideoUNet, tiny_cond, tiny_model

from framefold.pipelines.cascade import (
    RedenoiseOptions,
    latent_redenoise,
    spatially_tiled,
    upscale_latent,
)
from framefold.pipelines.models.bundle import DiffusionModel
from framefold.pipelines.sampling.context import ContextOptions


def latent(frames=4, size=8, seed=0):
    """A random latent video [F, 4, size, size]."""
    return torch.randn(frames, 4, size, size, generator=torch.Generator().manual_seed(seed))


def test_latent_is_enlarged_to_a_multiple_of_two():
    """scale 2 doubles h and w; odd results are rounded to the UNet's multiple; scale 1 is the identity."""
    x = latent(size=6)
    assert upscale_latent(x, 2.0).shape == (4, 4, 12, 12)
    assert upscale_latent(x, 1.5).shape == (4, 4, 10, 10)  # 9 -> 10
    assert upscale_latent(x, 1.0) is x


def test_spatial_tiles_blend_a_pointwise_denoiser_exactly():
    """Feathered weights normalise: tiling a per-pixel denoiser changes nothing."""
    x = latent(size=20)
    tiled = spatially_tiled(lambda t, s: t * 0.5 + s, tile=8, overlap=4)
    assert torch.allclose(tiled(x, 0.3), x * 0.5 + 0.3, atol=1e-6)


def test_redenoise_doubles_the_latent_and_is_reproducible():
    """Same seed, same result; another seed, another result; the output is 2x the input latent."""
    model, pos, neg = tiny_model(), tiny_cond(1), tiny_cond(2)
    options = RedenoiseOptions(scale=2.0, strength=0.5, steps=4, cfg=3.0, scheduler="leading", seed=5)
    a = latent_redenoise(model, pos, neg, latent(), options)
    b = latent_redenoise(model, pos, neg, latent(), options)
    c = latent_redenoise(model, pos, neg, latent(), RedenoiseOptions(**{**options.__dict__, "seed": 6}))
    assert a.shape == (4, 4, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_lower_strength_stays_closer_to_the_enlarged_latent():
    """Strength s sets how much is re-made: 0.1 changes less than 0.8 (deterministic DDIM)."""
    model, pos = tiny_model(), tiny_cond(1)
    x = latent()
    base = upscale_latent(x, 2.0)
    change = {}
    for s in (0.1, 0.8):
        out = latent_redenoise(model, pos, None, x, RedenoiseOptions(strength=s, steps=4, cfg=1.0, scheduler="leading"))
        change[s] = float((out - base).abs().mean())
    assert change[0.1] < change[0.8]


def test_context_windows_and_spatial_tiles_bound_what_the_unet_sees():
    """A 40-frame latent at 2x with 8 px tiles: the UNet never sees more than one 16-frame window of one tile."""
    unet = TinyVideoUNet(skip=0.9)
    shapes = []
    unet.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    model = DiffusionModel(unet=unet)
    options = RedenoiseOptions(strength=0.5, steps=2, cfg=1.0, scheduler="leading", tile=8, tile_overlap=4)
    out = latent_redenoise(model, tiny_cond(1), None, latent(frames=40, size=8), options)
    assert out.shape == (40, 4, 16, 16)
    assert max(s[0] for s in shapes) == 16 and max(s[2] for s in shapes) == 8 and max(s[3] for s in shapes) == 8
    assert torch.isfinite(out).all()


def test_bad_options_and_oversized_windows_are_refused():
    """Strength 0, an unknown method, and a context window longer than the motion module's are errors."""
    with pytest.raises(ValueError, match="strength must be in"):
        RedenoiseOptions(strength=0.0)
    with pytest.raises(ValueError, match="latent upscale method"):
        RedenoiseOptions(method="lanczos")

    class Windowed(TinyVideoUNet):
        frame_window = 8

    model = DiffusionModel(unet=Windowed())
    with pytest.raises(ValueError, match="at most 8 frames"):
        latent_redenoise(model, tiny_cond(1), None, latent(), RedenoiseOptions(cfg=1.0, context=ContextOptions(16, 4)))
