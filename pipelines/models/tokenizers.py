"""Prompt tokenizers: emphasis parsing, 77-token chunking with per-token weights, CLIP BPE.

Conventions (ComfyUI's, so prompts behave the same in FrameFold and ComfyUI):

* Emphasis: ``(text)`` multiplies the weight by 1.1, ``[text]`` divides it by 1.1, ``(text:1.3)`` sets it
  to 1.3 whatever brackets enclose it, as ComfyUI does (brackets inside it multiply from 1.3). ``\\(``, ``\\)``, ``\\[``, ``\\]`` are literal brackets.
* Chunks: each chunk is ``BOS + up to 75 tokens + EOS`` padded to 77 with ``pad_id``. A word whose
  tokens do not fit in the current chunk starts the next chunk, unless it has at least
  ``max_word_tokens`` tokens, in which case it is split across chunks. Special tokens get weight 1.0.
* Weights are applied to the embeddings by :class:`pipelines.models.clip.TextEncoder`
  (interpolation from the empty-prompt embedding: ``empty + (z - empty) * w``), not here.

Writing another tokenizer (e.g. a word-level one) means subclassing :class:`PromptTokenizer` and overriding
only :meth:`PromptTokenizer.text_to_ids` (one word or punctuation run -> list of ids, no specials), plus
passing ``bos_id``/``eos_id``/``pad_id`` to ``__init__``. Register it for checkpoint metadata with
:func:`register_tokenizer_type` or put it in ``pipelines/models/word_tokenizer.py`` as ``WordTokenizer``
with a ``from_config(cfg: dict)`` classmethod (type ``"word"`` is looked up there lazily).
"""

import functools
import html
import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

CHUNK_LENGTH = 77


@dataclass(frozen=True)
class TokenChunk:
    """One model call's worth of tokens: ``ids`` and ``weights`` both of length ``chunk_length``."""

    ids: List[int]
    weights: List[float]


# --------------------------------------------------------------------------- emphasis parsing
def _split_top_level(text: str) -> List[Tuple[str, str]]:
    """Split into ('plain', s) / ('(', inner) / ('[', inner) pieces at bracket depth 0 (escapes kept)."""
    pieces, buf, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i : i + 2])
            i += 2
            continue
        if c in "([":
            close = ")" if c == "(" else "]"
            end = _matching(text, i, c, close)
            if end is not None:
                if buf:
                    pieces.append(("plain", "".join(buf)))
                    buf = []
                pieces.append((c, text[i + 1 : end]))
                i = end + 1
                continue
        buf.append(c)
        i += 1
    if buf:
        pieces.append(("plain", "".join(buf)))
    return pieces


def _matching(text: str, start: int, open_c: str, close_c: str):
    """Index of the bracket closing the one at ``start`` (escapes skipped), or None if unbalanced."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _unescape(text: str) -> str:
    """``\\(`` -> ``(`` etc."""
    return re.sub(r"\\([()\[\]\\])", r"\1", text)


def parse_emphasis(prompt: str, weight: float = 1.0) -> List[Tuple[str, float]]:
    """Prompt -> list of (text, weight) segments following the emphasis rules in the module docstring."""
    out = []
    for kind, piece in _split_top_level(prompt):
        if kind == "plain":
            out.append((_unescape(piece), weight))
        elif kind == "[":
            out += parse_emphasis(piece, weight / 1.1)
        else:
            m = re.fullmatch(r"(.*):\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*", piece, flags=re.S)
            if m:
                out += parse_emphasis(m.group(1), float(m.group(2)))
            else:
                out += parse_emphasis(piece, weight * 1.1)
    return [(t, w) for t, w in out if t]


# --------------------------------------------------------------------------- shared base
class PromptTokenizer:
    """Base tokenizer: prompt -> weighted 77-token chunks. Subclasses implement :meth:`text_to_ids`."""

    max_word_tokens = 8

    def __init__(self, bos_id: int, eos_id: int, pad_id: int, chunk_length: int = CHUNK_LENGTH):
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.chunk_length = chunk_length

    def text_to_ids(self, text: str) -> List[int]:
        """One word (no spaces) -> token ids without BOS/EOS. Override in subclasses."""
        raise NotImplementedError

    def to_config(self) -> dict:
        """The checkpoint-metadata form of this tokenizer (see :func:`build_tokenizer`)."""
        raise NotImplementedError

    def weighted_words(self, prompt: str) -> List[Tuple[List[int], float]]:
        """Prompt -> one (ids, weight) per space-separated word, emphasis applied."""
        words = []
        for text, weight in parse_emphasis(prompt):
            for word in text.replace("\n", " ").split(" "):
                if word:
                    ids = self.text_to_ids(word)
                    if ids:
                        words.append((ids, weight))
        return words

    def tokenize(self, prompt: str) -> List[TokenChunk]:
        """Prompt -> list of chunks (at least one), each exactly ``chunk_length`` long."""
        body = self.chunk_length - 2
        chunks: List[Any] = []
        ids: List[int] = []
        weights: List[float] = []

        def close_chunk():
            """Finish the current chunk: BOS + tokens + EOS + padding."""
            chunk_ids = [self.bos_id] + ids + [self.eos_id]
            chunk_w = [1.0] + weights + [1.0]
            pad = self.chunk_length - len(chunk_ids)
            chunks.append(TokenChunk(chunk_ids + [self.pad_id] * pad, chunk_w + [1.0] * pad))
            ids.clear()
            weights.clear()

        for word_ids, weight in self.weighted_words(prompt):
            split_allowed = len(word_ids) >= self.max_word_tokens
            pending = list(word_ids)
            while pending:
                room = body - len(ids)
                if len(pending) <= room:
                    ids.extend(pending)
                    weights.extend([weight] * len(pending))
                    pending = []
                elif split_allowed or not ids:
                    ids.extend(pending[:room])
                    weights.extend([weight] * room)
                    pending = pending[room:]
                    close_chunk()
                else:
                    close_chunk()
        if ids or not chunks:
            close_chunk()
        return chunks


# --------------------------------------------------------------------------- CLIP BPE
_PRETOKEN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
    re.IGNORECASE,
)

MISSING_VOCAB_HELP = (
    "The CLIP BPE vocabulary is missing. Install the 'instant-clip-tokenizer' package "
    "(pip install instant-clip-tokenizer; its vocabulary is compiled in), or give the paths of the "
    "tokenizer's vocab.json and merges.txt (from the model's 'tokenizer' folder)."
)


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode map."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def clean_text(text: str) -> str:
    """CLIP's text normalisation (html unescape, whitespace collapse, lowercase; ftfy is not applied)."""
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip().lower()


class BPEVocab:
    """Byte-level BPE from ``vocab.json`` + ``merges.txt`` (the CLIP tokenizer file format)."""

    def __init__(self, vocab: Dict[str, int], merges: List[Tuple[str, str]]):
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.cache: Dict[str, List[str]] = {}

    @classmethod
    def from_files(
        cls, vocab_path: Union[str, "os.PathLike[str]"], merges_path: Union[str, "os.PathLike[str]"]
    ) -> "BPEVocab":
        """Read the two files; a missing file is a clear error."""
        for p in (vocab_path, merges_path):
            if not Path(p).is_file():
                raise FileNotFoundError(f"{MISSING_VOCAB_HELP} Not found: {p}")
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        merges = []
        for line in Path(merges_path).read_text(encoding="utf-8").splitlines():
            if line.startswith("#version") or not line.strip():
                continue
            a, b = line.split()
            merges.append((a, b))
        return cls(vocab, merges)

    def bpe(self, token: str) -> List[str]:
        """Merge the characters of one pre-token (``</w>`` on the last one) by rank."""
        if token in self.cache:
            return self.cache[token]
        parts = list(token[:-1]) + [token[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, first = min(pairs)
            if rank == float("inf"):
                break
            pair = (parts[first], parts[first + 1])
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[token] = parts
        return parts

    def encode(self, text: str) -> List[int]:
        """Cleaned text -> ids (no BOS/EOS)."""
        byte_map = _bytes_to_unicode()
        ids = []
        for piece in _PRETOKEN.findall(text):
            mapped = "".join(byte_map[b] for b in piece.encode("utf-8"))
            for sub in self.bpe(mapped):
                if sub not in self.vocab:
                    raise KeyError(f"BPE piece {sub!r} is not in vocab.json")
                ids.append(self.vocab[sub])
        return ids


class CLIPTokenizer(PromptTokenizer):
    """The CLIP BPE tokenizer (SD1.x). Backed by ``instant-clip-tokenizer`` or by vocab.json + merges.txt."""

    def __init__(
        self,
        vocab_path=None,
        merges_path=None,
        chunk_length: int = CHUNK_LENGTH,
        bos_id: int = 49406,
        eos_id: int = 49407,
        pad_id: int = 49407,
    ):
        super().__init__(bos_id, eos_id, pad_id, chunk_length)
        self.vocab_path, self.merges_path = vocab_path, merges_path
        if vocab_path is not None or merges_path is not None:
            if vocab_path is None or merges_path is None:
                raise ValueError(f"{MISSING_VOCAB_HELP} Give both vocab.json and merges.txt.")
            bpe = BPEVocab.from_files(vocab_path, merges_path)
            self._encode = bpe.encode
            self.bos_id = bpe.vocab.get("<|startoftext|>", bos_id)
            self.eos_id = bpe.vocab.get("<|endoftext|>", eos_id)
            self.pad_id = self.eos_id if pad_id == eos_id else pad_id
        else:
            try:
                import instant_clip_tokenizer
            except ImportError as e:
                raise ImportError(MISSING_VOCAB_HELP) from e
            self._encode = instant_clip_tokenizer.Tokenizer().encode

    def text_to_ids(self, text: str) -> List[int]:
        """One word -> BPE ids."""
        return list(self._encode(clean_text(text)))

    def to_config(self) -> dict:
        """Checkpoint-metadata form."""
        cfg: Dict[str, Any] = {"type": "clip_bpe"}
        if self.pad_id != self.eos_id:
            cfg["pad_id"] = self.pad_id
        if self.vocab_path is not None:
            cfg.update(vocab=str(self.vocab_path), merges=str(self.merges_path))
        return cfg


# --------------------------------------------------------------------------- registry
_FACTORIES: Dict[str, Callable[[dict], PromptTokenizer]] = {}
_LAZY = {"word": (".word_tokenizer", "WordTokenizer")}


def register_tokenizer_type(name: str, factory: Callable[[dict], PromptTokenizer]) -> None:
    """Make ``build_tokenizer({"type": name, ...})`` call ``factory(cfg)``."""
    _FACTORIES[name] = factory


def build_tokenizer(cfg: dict) -> PromptTokenizer:
    """Tokenizer from its checkpoint-metadata config, e.g. ``{"type": "clip_bpe"}`` or ``{"type": "word", ...}``."""
    kind = (cfg or {}).get("type", "clip_bpe")
    if kind == "clip_bpe":
        extra = {k: v for k, v in cfg.items() if k != "type"}
        return CLIPTokenizer(vocab_path=extra.pop("vocab", None), merges_path=extra.pop("merges", None), **extra)
    if kind not in _FACTORIES and kind in _LAZY:
        module_name, cls_name = _LAZY[kind]
        module = importlib.import_module(module_name, __package__)
        register_tokenizer_type(kind, getattr(module, cls_name).from_config)
    if kind not in _FACTORIES:
        raise ValueError(
            f"unknown tokenizer type {kind!r}; known: {sorted(set(_FACTORIES) | set(_LAZY) | {'clip_bpe'})}"
        )
    return _FACTORIES[kind](cfg)
