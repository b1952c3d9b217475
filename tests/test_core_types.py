"""nodes/_core_types.py: core CONDITIONING (what ComfyUI's CLIP Text Encode returns) feeds FrameFold's samplers."""

import pytest
import torch
from test_sampling_nodes import _run, tiny_cond

from framefold.nodes._core_types import conditioning_from_core
from framefold.nodes._errors import NodeInputError
from framefold.nodes.image_to_video import FrameFoldImageToVideo
from framefold.nodes.longvideo import FrameFoldLongVideoSampler
from framefold.nodes.sampling import FrameFoldVideoSampler


def _core(cond, **extras):
    """A core CONDITIONING as CLIP Text Encode makes it: [[cross_attention, {"pooled_output": ...}]]."""
    return [[cond.embeds.clone(), {"pooled_output": torch.zeros(1, cond.embeds.shape[-1]), **extras}]]


def test_prompt_sockets_accept_both_types():
    for cls in (FrameFoldVideoSampler, FrameFoldImageToVideo, FrameFoldLongVideoSampler):
        required = cls.INPUT_TYPES()["required"]
        assert required["positive"][0] == required["negative"][0] == "FF_CONDITIONING,CONDITIONING"


def test_core_conditioning_gives_the_same_video_as_framefold_conditioning():
    ff = _run(seed=3, frames=2)
    core = _run(seed=3, frames=2, positive=_core(tiny_cond(1)), negative=_core(tiny_cond(2)))
    assert torch.equal(ff, core)


@pytest.mark.parametrize(
    "value, message",
    [
        ("text", "got str"),
        ([], "got 0 entries"),
        ([[torch.zeros(1, 77, 8), {}], [torch.zeros(1, 77, 8), {}]], "got 2 entries"),
        ([[torch.zeros(77, 8), {}]], r"the tensor is \(77, 8\)"),
        ([[torch.zeros(1, 77, 8), {"area": (8, 8, 0, 0), "strength": 1.0}]], r"do not apply \['area', 'strength'\]"),
        ([[torch.zeros(1, 77, 8), {"control": object()}]], r"\['control'\]"),
    ],
)
def test_unsupported_core_conditioning_is_refused_by_name(value, message):
    with pytest.raises(NodeInputError, match=f"FrameFoldVideoSampler: input 'positive'.*{message}"):
        conditioning_from_core("FrameFoldVideoSampler", "positive", value)
