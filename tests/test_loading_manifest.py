"""Key coverage against the real-checkpoint manifests, on the meta device (no real weights allocated)."""

import json
from pathlib import Path

import pytest
import torch
from fixture_paths import MANIFESTS

from framefold.pipelines.loading.checkpoint import assemble_checkpoint, split_checkpoint
from framefold.pipelines.loading.clip import build_text_encoder
from framefold.pipelines.loading.clip_keys import normalize_clip_state_dict
from framefold.pipelines.loading.state_dict import StateDictError, model_shapes
from framefold.pipelines.loading.vae import build_vae
from framefold.pipelines.loading.vae_keys import diffusers_vae_to_original
from framefold.pipelines.models.clip import CLIPTextConfig, CLIPTextModel
from framefold.pipelines.models.vae import AutoencoderKL, AutoencoderKLConfig


def _manifest(name):
    return json.loads((MANIFESTS / name).read_text())


def _meta(keys):
    """name -> meta tensor of the listed shape (float, or int64 for position_ids)."""
    out = {}
    for k, shape in keys.items():
        dtype = torch.int64 if k.endswith("position_ids") else torch.float32
        out[k] = torch.empty(shape, dtype=dtype, device="meta")
    return out


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def _meta_model(cls, cfg):
    with torch.device("meta"):
        return cls(cfg)


def test_vae_ft_mse_original_keys_map_exactly():
    m = _manifest("sd_vae_ft_mse.json")
    expected = {k: tuple(v) for k, v in m["keys"].items()}
    assert model_shapes(_meta_model(AutoencoderKL, AutoencoderKLConfig())) == expected
    vae = build_vae(_meta({**m["keys"], **m["optional_keys"]}), dtype=None)  # optional keys ignored, config inferred
    assert vae.config == AutoencoderKLConfig()
    assert sum(p.numel() for p in vae.model.parameters()) == m["param_count"]
    assert all(p.is_meta for p in vae.model.parameters())


def test_vae_ft_mse_diffusers_keys_map_exactly():
    m = _manifest("sd_vae_ft_mse.json")
    renamed = diffusers_vae_to_original(_meta(m["diffusers_format_keys"]))
    assert _shapes(renamed) == {k: tuple(v) for k, v in m["keys"].items()}
    # old diffusers names for the mid attention
    old = {
        k.replace(".to_q.", ".query.")
        .replace(".to_k.", ".key.")
        .replace(".to_v.", ".value.")
        .replace(".to_out.0.", ".proj_attn."): v
        for k, v in _meta(m["diffusers_format_keys"]).items()
    }
    assert _shapes(diffusers_vae_to_original(old)) == _shapes(renamed)
    vae = build_vae(_meta(m["diffusers_format_keys"]), dtype=None)
    assert sum(p.numel() for p in vae.model.parameters()) == m["param_count"]


def test_sd15_vae_and_clip_parts():
    m = _manifest("sd15_checkpoint.json")
    keys = {**m["keys"], **m["optional_keys"]}
    parts = split_checkpoint(_meta(keys))
    assert len(parts.unet) == 686 and len(parts.vae) == 248 and len(parts.clip) == 197
    assert _shapes(parts.vae) == model_shapes(_meta_model(AutoencoderKL, AutoencoderKLConfig()))
    clip = normalize_clip_state_dict(parts.clip)
    assert "embeddings.position_ids" in clip  # a buffer: dropped, with a warning, by the state-dict check
    del clip["embeddings.position_ids"]
    assert _shapes(clip) == model_shapes(_meta_model(CLIPTextModel, CLIPTextConfig()))
    enc = build_text_encoder(parts.clip, dtype=None)
    assert enc.model.config == CLIPTextConfig()
    assert sum(p.numel() for p in enc.model.parameters()) == m["components"]["text_encoder"]["param_count"]


@pytest.mark.parametrize("variant", ["standard", "nai_prefix", "full_ema"])
def test_sd15_whole_checkpoint_routing(variant):
    m = _manifest("sd15_checkpoint.json")
    keys = {**m["keys"], **m["optional_keys"]}
    if variant == "nai_prefix":
        keys = {
            k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
            for k, v in keys.items()
        }
    if variant == "full_ema":
        keys.update(m["optional_ema_keys"])
    model, text_encoder, vae = assemble_checkpoint(_meta(keys), dtype="fp32", name="sd15")
    total = sum(p.numel() for mod in (model.unet, text_encoder.model, vae.model) for p in mod.parameters())
    assert total == m["param_count"]
    assert vae.config.scaling_factor == m["config"]["scale_factor"]
    assert model.schedule.beta_start == m["config"]["linear_start"]
    assert model.schedule.beta_end == m["config"]["linear_end"]


def test_sd15_unexpected_and_missing_keys_are_errors():
    m = _manifest("sd15_checkpoint.json")
    keys = dict(m["keys"])
    keys["some_new_thing.weight"] = [3]
    with pytest.raises(StateDictError, match="unexpected: some_new_thing.weight"):
        assemble_checkpoint(_meta(keys), name="sd15")
    keys = dict(m["keys"])
    del keys["first_stage_model.decoder.conv_out.bias"]
    with pytest.raises(StateDictError, match="missing: first_stage_model.decoder.conv_out.bias"):
        assemble_checkpoint(_meta(keys), name="sd15")
    keys = dict(m["keys"])
    keys["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = [1024]
    with pytest.raises(StateDictError, match=r"final_layer_norm.weight \(1024,\) vs \(768,\)"):
        assemble_checkpoint(_meta(keys), name="sd15")


def test_vae_ft_mse_inverse_map_names_every_diffusers_key():
    from framefold.pipelines.loading.vae_keys import original_vae_to_diffusers_names

    m = _manifest("sd_vae_ft_mse.json")
    names = original_vae_to_diffusers_names(m["keys"], 4)
    assert sorted(names.values()) == sorted(m["diffusers_format_keys"])
    for original, diffusers_name in names.items():
        a, b = m["keys"][original], m["diffusers_format_keys"][diffusers_name]
        assert a == b or (a[2:] == [1, 1] and a[:2] == b), original
