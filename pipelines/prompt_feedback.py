"""What a prompt asks that the text encoder or model cannot give: warnings Text Encode shows.

- Tokenizers with a closed vocabulary (the default model's word tokenizer) drop unknown words: each prompt's
  dropped words are reported. CLIP's byte-level BPE has no unknown words, so SD prompts get no such warning.
- The embedded default model was trained on captions of one grammar (``pipelines.synthetic``): one colour, one
  shape, one motion and one background. A prompt missing one of them, naming two, or empty is reported with the
  grammar's words, because the model then picks (or mixes) them at random.
"""

from typing import Any, Dict, List, Sequence

from . import synthetic
from .models.word_tokenizer import WordTokenizer, normalize_word

ATTRIBUTE_WORDS: Dict[str, Sequence[str]] = {
    "colour": tuple(synthetic.GRAMMAR.colours),
    "shape": tuple(synthetic.GRAMMAR.shapes),
    "motion": tuple(synthetic.MOTIONS.values()),
    "background": tuple(synthetic.GRAMMAR.backgrounds),
}


def speaks_default_grammar(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is a word tokenizer holding every word of the default model's caption grammar."""
    if not isinstance(tokenizer, WordTokenizer):
        return False
    return all(normalize_word(word) in tokenizer.ids for word in synthetic.GRAMMAR.vocabulary())


def grammar_help() -> str:
    """The grammar's words, for a warning."""
    parts = [f"{name}s: {', '.join(words)}" for name, words in ATTRIBUTE_WORDS.items()]
    return "The default model knows captions like 'a red circle moving left on a black background'; " + "; ".join(parts)


def attribute_mentions(prompt: str) -> Dict[str, List[str]]:
    """Every grammar attribute value named in ``prompt`` (whole words; two-word motions as phrases)."""
    words = " " + " ".join("".join(c if c.isalnum() else " " for c in prompt.lower()).split()) + " "
    return {name: [v for v in values if f" {v} " in words] for name, values in ATTRIBUTE_WORDS.items()}


def grammar_problems(prompt: str) -> List[str]:
    """What keeps ``prompt`` from being one caption of the default grammar (empty list when it is one)."""
    if not prompt.strip():
        return [
            "empty prompt: right as the negative prompt; as the positive prompt the default model draws a random scene"
        ]
    problems = []
    for name, named in attribute_mentions(prompt).items():
        if not named:
            problems.append(f"no {name}")
        elif len(named) > 1:
            problems.append(f"{len(named)} {name}s ({', '.join(named)}): trained on one")
    return problems


def prompt_warnings(tokenizer: Any, prompt: str) -> List[str]:
    """Warnings for ``prompt`` encoded by ``tokenizer`` (empty when there is nothing to say)."""
    warnings = []
    unknown = tokenizer.unknown_words(prompt) if hasattr(tokenizer, "unknown_words") else []
    if unknown:
        warnings.append(f"words outside the model's vocabulary, ignored: {', '.join(unknown)}")
    if speaks_default_grammar(tokenizer):
        problems = grammar_problems(prompt)
        if problems and not prompt.strip():
            return problems
        if problems:
            warnings.append("prompt outside the default model's grammar: " + "; ".join(problems))
        if warnings:
            warnings.append(grammar_help())
    return warnings
