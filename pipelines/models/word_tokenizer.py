"""A word-level tokenizer for the embedded default model's caption vocabulary.

The default model is trained on captions from a small grammar (``pipelines.synthetic``), so a word ->
id table is all it needs. Only the word -> ids step lives here; BOS/EOS/padding, 77-token chunks and
``(emphasis:1.2)`` parsing come from :class:`~.tokenizers.PromptTokenizer`.

The vocabulary list starts with three special tokens: ``<|startoftext|>`` (BOS), ``<|endoftext|>``
(EOS, also used as padding like CLIP) and ``<unk>``. Words are matched case-insensitively with
punctuation stripped (``"Left,"`` -> ``left``). **A word that is not in the vocabulary gives no token**
(nor does a word made only of punctuation): a long prompt whose first sentence is a caption keeps that caption
instead of drowning it in chunks of ``<unk>``. Text Encode lists the dropped words in a warning
(``pipelines.prompt_feedback``). The ``<unk>`` id stays in the vocabulary (the model saw it in training).
"""

from typing import List, Sequence

from .tokenizers import PromptTokenizer, parse_emphasis

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
UNK = "<unk>"
SPECIALS = (BOS, EOS, UNK)


def normalize_word(word: str) -> str:
    """Lower-case ``word`` and drop every character that is not a letter or a digit."""
    return "".join(c for c in word.lower() if c.isalnum())


class WordTokenizer(PromptTokenizer):
    """Word -> id table over a fixed vocabulary (``vocab[i]`` has id ``i``; the specials come first)."""

    def __init__(self, words: Sequence[str], chunk_length: int = 77):
        vocab = list(SPECIALS) + [normalize_word(w) for w in words if w not in SPECIALS]
        if len(set(vocab)) != len(vocab):
            raise ValueError("WordTokenizer: the vocabulary has duplicate words (after lower-casing)")
        if any(not w for w in vocab):
            raise ValueError("WordTokenizer: a vocabulary word has no letters or digits")
        self.vocab = vocab
        self.ids = {w: i for i, w in enumerate(vocab)}
        super().__init__(bos_id=self.ids[BOS], eos_id=self.ids[EOS], pad_id=self.ids[EOS], chunk_length=chunk_length)
        self.unk_id = self.ids[UNK]

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials included): the text encoder's embedding table size."""
        return len(self.vocab)

    def text_to_ids(self, text: str) -> List[int]:
        """One space-free word -> ``[id]`` (``[]`` if it is unknown or only punctuation)."""
        word = normalize_word(text)
        return [self.ids[word]] if word in self.ids else []  # normalised words never match the <specials>

    def unknown_words(self, prompt: str) -> List[str]:
        """The words of ``prompt`` (emphasis syntax removed) that are not in the vocabulary, in order, once each."""
        found: List[str] = []
        for text, _weight in parse_emphasis(prompt):
            for word in text.replace("\n", " ").split(" "):
                normal = normalize_word(word)
                if normal and normal not in self.ids and normal not in found:
                    found.append(normal)
        return found

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to words, specials and padding dropped (for debugging and tests)."""
        specials = {self.bos_id, self.eos_id, self.pad_id}
        return " ".join(self.vocab[i] for i in ids if i not in specials)

    def to_config(self) -> dict:
        """``{"type": "word", "vocab": [...]}`` (the list includes the specials, in id order)."""
        return {"type": "word", "vocab": list(self.vocab), "chunk_length": self.chunk_length}

    @classmethod
    def from_config(cls, cfg: dict) -> "WordTokenizer":
        """Rebuild from :meth:`to_config`'s dict (the specials may be present or not)."""
        if cfg.get("type", "word") != "word" or not isinstance(cfg.get("vocab"), (list, tuple)):
            raise ValueError(f"WordTokenizer config needs type 'word' and a vocab list, got keys {sorted(cfg)}")
        return cls(cfg["vocab"], chunk_length=int(cfg.get("chunk_length", 77)))
