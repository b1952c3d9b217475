"""The word-level tokenizer of the embedded default model."""

import pytest

from framefold.pipelines import synthetic
from framefold.pipelines.models.tokenizers import PromptTokenizer, build_tokenizer
from framefold.pipelines.models.word_tokenizer import BOS, EOS, UNK, WordTokenizer


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer(synthetic.GRAMMAR.vocabulary())


def test_is_a_prompt_tokenizer_with_specials_first(tok):
    assert isinstance(tok, PromptTokenizer)
    assert tok.vocab[:3] == [BOS, EOS, UNK]
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (0, 1, 1, 2)
    assert tok.vocab_size == 3 + len(synthetic.GRAMMAR.vocabulary())


def test_round_trip_of_every_caption(tok):
    for caption in synthetic.all_captions()[::7] + synthetic.all_captions(template=1)[::11]:
        chunks = tok.tokenize(caption)
        assert len(chunks) == 1 and len(chunks[0].ids) == 77
        ids = chunks[0].ids
        n = len(caption.split())
        assert ids[0] == tok.bos_id and ids[n + 1] == tok.eos_id and set(ids[n + 1 :]) == {tok.pad_id}
        assert tok.decode(ids) == caption


def test_case_punctuation_unknown_words_and_emphasis(tok):
    ids = tok.tokenize("A RED circle, moving (left:1.5) on a zebra background!")[0]
    assert tok.decode(ids.ids) == "a red circle moving left on a background"  # unknown words give no token
    assert tok.unk_id not in ids.ids and tok.unknown_words("A zebra, (zebra:1.2) ok!") == ["zebra", "ok"]
    assert ids.weights[5] == pytest.approx(1.5) and ids.weights[4] == 1.0
    assert tok.text_to_ids("...") == []


def test_long_prompts_are_chunked_by_the_base_class(tok):
    chunks = tok.tokenize(" ".join(["red"] * 100))
    assert len(chunks) == 2 and all(len(c.ids) == 77 for c in chunks)
    assert sum(i == tok.ids["red"] for c in chunks for i in c.ids) == 100


def test_config_round_trip_through_build_tokenizer(tok):
    again = build_tokenizer(tok.to_config())
    assert isinstance(again, WordTokenizer) and again.vocab == tok.vocab
    assert (
        again.tokenize("a cyan square shrinking on a white background")[0].ids
        == tok.tokenize("a cyan square shrinking on a white background")[0].ids
    )


def test_bad_vocabularies_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        WordTokenizer(["red", "Red"])
    with pytest.raises(ValueError, match="type 'word'"):
        WordTokenizer.from_config({"type": "word"})
