"""Prompt feedback (pipelines/prompt_feedback.py): words outside the vocabulary, prompts outside the default model's
grammar and empty prompts are reported by Text Encode on the node (ui text) and by ``framefold run`` on stderr; a
long prompt keeps its caption (unknown words give no tokens, so no chunk of ``<unk>`` drowns it)."""

from pathlib import Path

import pytest
import torch

from framefold.host.cli import main
from framefold.nodes._folders import resolve_model
from framefold.nodes.conditioning import FrameFoldTextEncode
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.prompt_feedback import prompt_warnings

CAPTION = "a red circle moving right on a black background"
WORKFLOW = Path(__file__).resolve().parents[1] / "example_workflows" / "text_to_video.json"


@pytest.fixture(scope="module")
def text_encoder():
    torch.set_num_threads(1)
    _, text_encoder, _ = load_checkpoint(resolve_model("checkpoints", "framefold-tiny.safetensors"))
    return text_encoder


def test_a_caption_of_the_grammar_gets_no_warning(text_encoder):
    assert prompt_warnings(text_encoder.tokenizer, CAPTION) == []
    assert "ui" not in FrameFoldTextEncode().encode(CAPTION, text_encoder)


def test_words_outside_the_vocabulary_are_named_with_the_grammar(text_encoder):
    out = FrameFoldTextEncode().encode("a red circle moving right on a zebra background, please", text_encoder)
    warnings = out["ui"]["warnings"]
    assert warnings[0] == "words outside the model's vocabulary, ignored: zebra, please"
    assert "circle, square, triangle" in warnings[-1] and "moving left" in warnings[-1]
    assert out["ui"]["text"] == ["\n".join(warnings)]  # what the canvas extension shows on the node


@pytest.mark.parametrize(
    "prompt, problem",
    [
        ("a red blue circle moving right on a black background", "2 colours (red, blue): trained on one"),
        ("a red circle on a black background", "no motion"),
        ("a red moving right on a black background", "no shape"),
        ("red circle growing", "no background"),
    ],
)
def test_prompts_outside_the_default_grammar_are_reported(text_encoder, prompt, problem):
    warnings = prompt_warnings(text_encoder.tokenizer, prompt)
    assert warnings[0].startswith("prompt outside the default model's grammar:") and problem in warnings[0]


def test_an_empty_prompt_warns_once(text_encoder):
    assert prompt_warnings(text_encoder.tokenizer, "  ") == [
        "empty prompt: right as the negative prompt; as the positive prompt the default model draws a random scene"
    ]


def test_a_long_prompt_keeps_its_caption(text_encoder):
    tail = " ".join(f"and then something else happens number {i}." for i in range(40))  # ~280 unknown words
    long_prompt = f"{CAPTION}. {tail}"
    assert len(long_prompt.split()) > 75 * 3
    (caption_only,) = FrameFoldTextEncode().encode(CAPTION, text_encoder)["result"]
    (long,) = FrameFoldTextEncode().encode(long_prompt, text_encoder)["result"]
    assert long.embeds.shape == caption_only.embeds.shape == (1, 77, caption_only.embeds.shape[-1])
    assert torch.equal(long.embeds, caption_only.embeds)


def test_framefold_run_prints_the_warnings_on_stderr(tmp_path, capsys):
    argv = ["run", str(WORKFLOW), "--set", "4.text=a red circle moving right on a zebra background"]
    argv += ["--set", "7.steps=1", "--set", "6.frames=2", "--set", "9.format=gif", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "#4 FrameFold Text Encode: warning: words outside the model's vocabulary, ignored: zebra" in err
    assert "#5 FrameFold Text Encode: warning: empty prompt" in err  # the example's negative prompt
