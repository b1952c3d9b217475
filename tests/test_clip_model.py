"""CLIP text transformer vs transformers' CLIPTextModel; checkpoint prefixes; TextEncoder weighting."""

import dataclasses

import pytest
import torch

from framefold.pipelines.loading.clip import build_text_encoder
from framefold.pipelines.loading.state_dict import DroppedKeysWarning
from framefold.pipelines.models.clip import CLIPTextConfig, CLIPTextModel, TextEncoder
from framefold.pipelines.models.tokenizers import PromptTokenizer

VOCAB = 64
TINY = CLIPTextConfig(
    vocab_size=VOCAB,
    hidden_size=32,
    num_layers=3,
    num_heads=4,
    intermediate_size=48,
    max_positions=77,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)


def _hf_model(act="quick_gelu", seed=0):
    from transformers import CLIPTextConfig as HFConfig
    from transformers import CLIPTextModel as HFModel

    torch.manual_seed(seed)
    cfg = HFConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=act,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return HFModel(cfg).eval()


def _ids(n=2, length=77, seed=1):
    ids = torch.randint(3, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 1
    ids[:, 10:] = 2
    return ids


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_matches_transformers_clip_text_model_with_clip_skip(act):
    ref = _hf_model(act)
    sd = {f"text_model.{k}" if not k.startswith("text_model.") else k: v for k, v in ref.state_dict().items()}
    ours = build_text_encoder(sd, dataclasses.replace(TINY, hidden_act=act)).model
    ids = _ids()
    with torch.no_grad():
        out = ref(ids, output_hidden_states=True)
        final_norm = getattr(ref, "text_model", ref).final_layer_norm
        assert (ours(ids) - out.last_hidden_state).abs().max() <= 1e-4
        for skip in (1, 2, 3):
            expected = final_norm(out.hidden_states[-skip])
            assert (ours(ids, clip_skip=skip) - expected).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="clip_skip"):
        ours(ids, clip_skip=4)


def test_sd_checkpoint_through_diffusers_single_file_converter():
    """cond_stage_model.transformer.text_model.* keys: diffusers' converter + transformers == our loader."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    ref_src = _hf_model(seed=3)
    plain = {k[len("text_model.") :] if k.startswith("text_model.") else k: v for k, v in ref_src.state_dict().items()}
    ckpt = {f"cond_stage_model.transformer.text_model.{k}": v for k, v in plain.items()}
    ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    converted = convert_ldm_clip_checkpoint(ckpt)
    ref = _hf_model(seed=4)
    expected_keys = set(ref.state_dict())
    # transformers 5 dropped the text_model. level from CLIPTextModel; older versions keep it
    if not any(k.startswith("text_model.") for k in expected_keys):
        converted = {k[len("text_model.") :] if k.startswith("text_model.") else k: v for k, v in converted.items()}
    converted = {k: v for k, v in converted.items() if not k.endswith("position_ids")}
    ref.load_state_dict(converted, strict=True)
    ours = build_text_encoder(ckpt, TINY).model
    ids = _ids(seed=5)
    with torch.no_grad():
        assert (ours(ids) - ref(ids).last_hidden_state).abs().max() <= 1e-4


def test_nai_prefix_and_float_position_ids():
    src = CLIPTextModel(TINY)
    sd = {f"cond_stage_model.transformer.{k}": v for k, v in src.state_dict().items()}
    sd["cond_stage_model.transformer.embeddings.position_ids"] = torch.arange(77, dtype=torch.float32)[None]
    with pytest.warns(
        DroppedKeysWarning, match=r"CLIP position ids \(1\): cond_stage_model\.transformer\.embeddings\.position_ids"
    ):
        ours = build_text_encoder(sd, TINY).model
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(ours(ids), src(ids))


def test_unexpected_and_missing_keys_are_listed():
    from framefold.pipelines.loading.state_dict import StateDictError

    sd = dict(CLIPTextModel(TINY).state_dict())
    del sd["final_layer_norm.bias"]
    sd["encoder.layers.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(StateDictError) as info:
        build_text_encoder(sd, TINY)
    assert "final_layer_norm.bias" in str(info.value) and "encoder.layers.0.extra.weight" in str(info.value)


class _CharTokenizer(PromptTokenizer):
    """One id per letter a..z (3..28)."""

    def __init__(self):
        super().__init__(bos_id=1, eos_id=2, pad_id=2)

    def text_to_ids(self, text):
        return [3 + ord(c) - ord("a") for c in text.lower() if "a" <= c <= "z"]


def test_text_encoder_weights_interpolate_from_empty_prompt():
    torch.manual_seed(0)
    enc = TextEncoder(_CharTokenizer(), CLIPTextModel(TINY).eval())
    plain = enc.encode("ab cd").embeds
    weighted = enc.encode("ab (cd:1.5)").embeds
    empty = enc.encode("").embeds
    assert plain.shape == (1, 77, 32)
    # BOS + a b (weight 1) are unchanged; c d (positions 3, 4) follow empty + (z - empty) * 1.5
    assert torch.equal(weighted[:, :3], plain[:, :3])
    expected = empty[:, 3:5] + (plain[:, 3:5] - empty[:, 3:5]) * 1.5
    assert (weighted[:, 3:5] - expected).abs().max() <= 1e-5
    assert enc.with_clip_skip(2).encode("ab").embeds.shape == (1, 77, 32)


def test_long_prompt_concatenates_chunks():
    enc = TextEncoder(_CharTokenizer(), CLIPTextModel(TINY).eval())
    prompt = " ".join(["abcd"] * 30)  # 120 tokens -> two chunks
    cond = enc.encode(prompt)
    assert cond.embeds.shape == (1, 154, 32) and cond.prompt == prompt
    chunks = enc.tokenizer.tokenize(prompt)
    with torch.no_grad():
        second = enc.model(torch.tensor([chunks[1].ids]))
    assert (cond.embeds[:, 77:] - second).abs().max() <= 1e-6
    many = enc.encode_many(["ab", prompt])
    assert many.embeds.shape == (2, 154, 32)


def _open_clip_state(hidden=32, layers=3, vocab=VOCAB, seed=6):
    """A random SD2-style OpenCLIP text tower (cond_stage_model.model.*)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    p = "cond_stage_model.model."
    sd = {
        p + "token_embedding.weight": r(vocab, hidden),
        p + "positional_embedding": r(77, hidden),
        p + "ln_final.weight": 1 + r(hidden),
        p + "ln_final.bias": r(hidden),
        p + "text_projection": r(hidden, hidden),
        p + "logit_scale": torch.tensor(4.6),
    }
    for i in range(layers):
        b = f"{p}transformer.resblocks.{i}."
        sd.update(
            {
                b + "ln_1.weight": 1 + r(hidden),
                b + "ln_1.bias": r(hidden),
                b + "attn.in_proj_weight": r(3 * hidden, hidden),
                b + "attn.in_proj_bias": r(3 * hidden),
                b + "attn.out_proj.weight": r(hidden, hidden),
                b + "attn.out_proj.bias": r(hidden),
                b + "ln_2.weight": 1 + r(hidden),
                b + "ln_2.bias": r(hidden),
                b + "mlp.c_fc.weight": r(48, hidden),
                b + "mlp.c_fc.bias": r(48),
                b + "mlp.c_proj.weight": r(hidden, 48),
                b + "mlp.c_proj.bias": r(hidden),
            }
        )
    return sd


def test_sd2_open_clip_text_tower_matches_diffusers_converter():
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    ckpt = _open_clip_state()
    ref = _hf_model(act="gelu")
    converted = convert_open_clip_checkpoint(ref, ckpt)
    converted = {
        k[len("text_model.") :] if k.startswith("text_model.") and not hasattr(ref, "text_model") else k: v
        for k, v in converted.items()
        if not k.startswith("text_projection")
    }
    ref.load_state_dict(converted, strict=True)
    enc = build_text_encoder(ckpt, dataclasses.replace(TINY, hidden_act="gelu"))
    assert enc.clip_skip == 2  # SD2 uses the penultimate layer by default
    ids = _ids(seed=7)
    with torch.no_grad():
        out = ref(ids, output_hidden_states=True)
        final_norm = getattr(ref, "text_model", ref).final_layer_norm
        assert (enc.model(ids, clip_skip=1) - out.last_hidden_state).abs().max() <= 1e-4
        assert (enc.model(ids, clip_skip=2) - final_norm(out.hidden_states[-2])).abs().max() <= 1e-4
    inferred = build_text_encoder(ckpt, dtype=None)
    assert inferred.model.config.hidden_act == "gelu" and inferred.model.config.pad_token_id == 0
    assert inferred.tokenizer.pad_id == 0
