"""nodes/interop.py: a core VAE (stand-in: an object with ``first_stage_model``, as comfy.sd.VAE has, holding an
original-format KL autoencoder) becomes FrameFold's VAE with the same weights and outputs."""

import types

import pytest
import torch

from framefold.nodes._errors import NodeInputError
from framefold.nodes.interop import FrameFoldVAEFromComfy
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig

TINY = AutoencoderKLConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1)  # core VAEs use 32 GroupNorm groups


def test_core_vae_becomes_an_equal_framefold_vae():
    torch.manual_seed(0)
    core_model = AutoencoderKL(TINY).eval()
    core_vae = types.SimpleNamespace(first_stage_model=core_model)
    (ff,) = FrameFoldVAEFromComfy().convert(core_vae)
    assert isinstance(ff, VAE) and ff.downscale == 2
    for key, value in core_model.state_dict().items():
        assert torch.equal(ff.model.state_dict()[key], value), key
    images = torch.rand(2, 8, 8, 3)
    reference = VAE(core_model)
    assert torch.equal(ff.encode(images, scaled=False), reference.encode(images, scaled=False))


def test_not_a_core_vae_is_refused_by_name():
    with pytest.raises(NodeInputError, match="FrameFoldVAEFromComfy: input 'vae'.*ComfyUI VAE"):
        FrameFoldVAEFromComfy().convert("vae")
