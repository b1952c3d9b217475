"""The synthetic-video and caption-check nodes."""

import json

import pytest
import torch

from framefold.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from framefold.nodes._errors import NodeInputError
from framefold.pipelines import synthetic


def test_nodes_are_registered_with_tooltips():
    for name in ("FrameFoldSyntheticVideo", "FrameFoldCaptionCheck"):
        cls = NODE_CLASS_MAPPINGS[name]
        assert NODE_DISPLAY_NAME_MAPPINGS[name].startswith("FrameFold ")
        assert cls.CATEGORY.startswith("FrameFold/")
        for spec in cls.INPUT_TYPES()["required"].values():
            assert spec[1]["tooltip"]


def test_render_matches_the_pipeline_and_checks_out():
    video, caption = NODE_CLASS_MAPPINGS["FrameFoldSyntheticVideo"]().render(
        "a cyan triangle moving down on a gray background", 5, 16, 64
    )
    scene = synthetic.scene_from_caption(caption, 5)
    assert isinstance(video, torch.Tensor) and video.shape == (16, 64, 64, 3)
    assert torch.equal(video, torch.from_numpy(synthetic.render_scene(scene)))
    out = NODE_CLASS_MAPPINGS["FrameFoldCaptionCheck"]().check(video, caption)
    report, passed = out["result"]
    assert passed is True and json.loads(report)["motion_ok"] is True
    _, failed = NODE_CLASS_MAPPINGS["FrameFoldCaptionCheck"]().check(
        video, "a cyan triangle moving up on a gray background"
    )["result"]
    assert failed is False


def test_bad_inputs_name_the_node_and_input():
    with pytest.raises(NodeInputError) as e:
        NODE_CLASS_MAPPINGS["FrameFoldSyntheticVideo"]().render("a circle on a black background", 0)
    assert "FrameFoldSyntheticVideo" in str(e.value) and "caption" in str(e.value)
    with pytest.raises(NodeInputError, match="caption"):
        NODE_CLASS_MAPPINGS["FrameFoldCaptionCheck"]().check(torch.zeros(4, 8, 8, 3), "hello world")
    with pytest.raises(NodeInputError, match="images"):
        NODE_CLASS_MAPPINGS["FrameFoldCaptionCheck"]().check(torch.zeros(8, 8, 3), "red")
