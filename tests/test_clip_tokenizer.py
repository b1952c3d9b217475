"""Tokenizers: emphasis parsing, 77-token chunking, CLIP BPE ids, vocab files, missing vocabulary."""

import json

import pytest

from framefold.pipelines.models.tokenizers import (
    CLIPTokenizer,
    PromptTokenizer,
    _bytes_to_unicode,
    build_tokenizer,
    parse_emphasis,
    register_tokenizer_type,
)


class WordTokenizer(PromptTokenizer):
    """A word-level tokenizer made the documented way: override text_to_ids only."""

    def __init__(self, vocab, chunk_length=77):
        super().__init__(bos_id=0, eos_id=1, pad_id=2, chunk_length=chunk_length)
        self.vocab = {w: i + 3 for i, w in enumerate(vocab)}

    def text_to_ids(self, text):
        return [self.vocab[w] for w in text.lower().replace(",", " ").split() if w in self.vocab]

    def to_config(self):
        return {"type": "test_word", "vocab": list(self.vocab)}


def test_emphasis_rules():
    assert parse_emphasis("a (cat:1.3) dog") == [("a ", 1.0), ("cat", 1.3), (" dog", 1.0)]
    segs = dict((t, w) for t, w in parse_emphasis("x (a) ((b)) [c] (d [e]:2)"))
    assert segs["a"] == pytest.approx(1.1) and segs["b"] == pytest.approx(1.21)
    assert segs["c"] == pytest.approx(1 / 1.1)
    assert segs["d "] == pytest.approx(2.0) and segs["e"] == pytest.approx(2.0 / 1.1)
    assert parse_emphasis(r"\(literal\) (unclosed") == [("(literal) (unclosed", 1.0)]
    assert parse_emphasis("") == []


def test_clip_bpe_known_ids():
    tok = CLIPTokenizer()
    chunks = tok.tokenize("a photo of a cat")
    assert len(chunks) == 1
    assert chunks[0].ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert chunks[0].ids[7:] == [49407] * 70 and chunks[0].weights == [1.0] * 77
    assert tok.text_to_ids("Cat,") == [2368, 267]


def test_long_prompts_are_split_in_chunks_of_75():
    tok = CLIPTokenizer()
    chunks = tok.tokenize("cat " * 100)
    assert len(chunks) == 2
    for c in chunks:
        assert len(c.ids) == 77 and c.ids[0] == 49406
    assert chunks[0].ids[1:76] == [2368] * 75 and chunks[0].ids[76] == 49407
    assert chunks[1].ids[1:26] == [2368] * 25 and chunks[1].ids[26] == 49407


def test_short_words_move_to_the_next_chunk_long_words_split():
    tok = WordTokenizer([f"w{i}" for i in range(10)], chunk_length=6)  # 4 tokens per chunk

    class Multi(WordTokenizer):
        def text_to_ids(self, text):
            return [5] * int(text[1:]) if text.startswith("n") else super().text_to_ids(text)

    multi = Multi(["w0"], chunk_length=6)
    # three 1-token words then a 2-token word: the 2-token word does not fit (1 slot left) -> next chunk
    chunks = multi.tokenize("w0 w0 w0 n2")
    assert [c.ids for c in chunks] == [[0, 3, 3, 3, 1, 2], [0, 5, 5, 1, 2, 2]]
    # a word of max_word_tokens (8) or more tokens is split across chunks
    chunks = multi.tokenize("w0 n9")
    assert [c.ids for c in chunks] == [[0, 3, 5, 5, 5, 1], [0, 5, 5, 5, 5, 1], [0, 5, 5, 1, 2, 2]]
    assert tok.tokenize("")[0].ids == [0, 1, 2, 2, 2, 2]


def test_weights_follow_tokens():
    tok = WordTokenizer(["red", "cat", "dog"])
    chunk = tok.tokenize("red (cat:1.5) [dog]")[0]
    assert chunk.ids[:5] == [0, 3, 4, 5, 1]
    assert chunk.weights[:5] == pytest.approx([1.0, 1.0, 1.5, 1 / 1.1, 1.0])


def _tiny_bpe_files(tmp_path):
    byte_map = _bytes_to_unicode()
    chars = [byte_map[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    merges = [
        ("c", "a"),
        ("ca", "t</w>"),
        ("d", "o"),
        ("do", "g</w>"),
        ("p", "h"),
        ("ph", "o"),
        ("pho", "t"),
        ("phot", "o</w>"),
        ("t", "h"),
        ("th", "e</w>"),
        ("'", "s</w>"),
        ("h", "é"),
    ]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n", encoding="utf-8"
    )
    return vocab, merges


def test_bpe_from_vocab_files_matches_transformers(tmp_path):
    from transformers import CLIPTokenizer as HFTokenizer

    vocab, merges = _tiny_bpe_files(tmp_path)
    ours = CLIPTokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt")
    ref = HFTokenizer(vocab=vocab, merges=list(merges))
    for text in ("a photo of the cat", "The DOG's 123 héllo!", "cat,dog...photo"):
        expected = ref(text)["input_ids"]
        got = [ours.bos_id] + [i for w in text.split() for i in ours.text_to_ids(w)] + [ours.eos_id]
        assert got == expected, text
    assert ours.to_config() == {
        "type": "clip_bpe",
        "vocab": str(tmp_path / "vocab.json"),
        "merges": str(tmp_path / "merges.txt"),
    }


def test_missing_vocabulary_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="instant-clip-tokenizer.*vocab.json"):
        CLIPTokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt")
    with pytest.raises(ValueError, match="both vocab.json and merges.txt"):
        CLIPTokenizer(vocab_path=tmp_path / "vocab.json")


def test_build_tokenizer_registry():
    assert isinstance(build_tokenizer({"type": "clip_bpe"}), CLIPTokenizer)
    register_tokenizer_type("test_word", lambda cfg: WordTokenizer(cfg["vocab"]))
    tok = build_tokenizer(WordTokenizer(["a", "b"]).to_config())
    assert tok.tokenize("b a")[0].ids[:4] == [0, 4, 3, 1]
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        build_tokenizer({"type": "nope"})
