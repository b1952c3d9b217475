"""FrameFoldVideoMetrics node: JSON output, ui text, join parsing, reference checks."""

import json

import pytest
import torch
import torch.nn.functional as F

from framefold.nodes import metrics as metric_nodes
from framefold.nodes._errors import NodeInputError


def pan_with_cut():
    """Two 6-frame 1 px/frame pans over unrelated smooth textures, cut at frame 6."""
    clips = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        big = F.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(120, 160), mode="bicubic", align_corners=False)
        big = big.clamp(0, 1)[0].permute(1, 2, 0)
        clips.append(torch.stack([big[20:68, 20 + t : 84 + t] for t in range(6)]))
    return torch.cat(clips)


def test_metrics_node_reports_json_and_ui_text():
    video = pan_with_cut()
    out = metric_nodes.FrameFoldVideoMetrics().measure(video, True, reference=video, join_indices=" 6, 3 ")
    text = out["result"][0]
    assert out["ui"]["text"] == [text]
    data = json.loads(text)  # strict JSON: inf is written as a string
    assert data["frames"] == 12
    assert set(data["seam_ratio"]) == {"3", "6"}
    assert data["seam_ratio"]["6"] > 10 and abs(data["seam_ratio"]["3"] - 1) < 0.2
    assert data["psnr_db"] == "inf" and data["ssim_luma"] == 1.0
    assert data["flicker"] > 0 and data["warp_error"] >= 0


def test_metrics_node_without_optional_inputs():
    video = pan_with_cut()[:4]
    data = json.loads(metric_nodes.FrameFoldVideoMetrics().measure(video, False)["result"][0])
    assert set(data) == {"frames", "flicker"}


@pytest.mark.parametrize("joins,match", [("a,3", "whole numbers"), ("12", r"1\.\.11"), ("0", r"1\.\.11")])
def test_metrics_node_rejects_bad_joins(joins, match):
    with pytest.raises(NodeInputError, match=f"FrameFoldVideoMetrics: input 'join_indices': .*{match}"):
        metric_nodes.FrameFoldVideoMetrics().measure(pan_with_cut(), False, join_indices=joins)


def test_metrics_node_rejects_reference_of_other_shape():
    video = pan_with_cut()
    with pytest.raises(NodeInputError, match="input 'reference'"):
        metric_nodes.FrameFoldVideoMetrics().measure(video, False, reference=video[:3])


def test_metrics_node_declaration():
    cls = metric_nodes.FrameFoldVideoMetrics
    assert metric_nodes.NODE_DISPLAY_NAME_MAPPINGS["FrameFoldVideoMetrics"] == "FrameFold Video Metrics"
    assert cls.OUTPUT_NODE and cls.CATEGORY.startswith("FrameFold/")
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec[section].items():
            assert "tooltip" in entry[1], name


@pytest.mark.parametrize(
    "joins,verdict", [("", True), (" 6; 3 ", True), ("a,3", "whole numbers"), ("0, 4", ">= 1"), ("-2", ">= 1")]
)
def test_metrics_validate_inputs_checks_joins_without_the_video(joins, verdict):
    result = metric_nodes.FrameFoldVideoMetrics.VALIDATE_INPUTS(join_indices=joins)
    if verdict is True:
        assert result is True
    else:
        assert isinstance(result, str) and "input 'join_indices'" in result and verdict in result


def test_host_refuses_bad_joins_before_measuring():
    from framefold.host.registry import NodeRegistry
    from framefold.host.validate import validate_prompt

    class TFrames:
        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "make"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def make(self):
            raise AssertionError("validation must refuse the prompt before anything runs")

    registry = NodeRegistry({"TFrames": TFrames, "FrameFoldVideoMetrics": metric_nodes.FrameFoldVideoMetrics})
    prompt = {
        "1": {"class_type": "TFrames", "inputs": {}},
        "2": {
            "class_type": "FrameFoldVideoMetrics",
            "inputs": {"images": ["1", 0], "warp_error": False, "join_indices": "4, x"},
        },
    }
    result = validate_prompt(prompt, registry)
    assert not result.ok
    (error,) = result.node_errors["2"]["errors"]
    assert error["type"] == "custom_validation_failed" and "input 'join_indices'" in error["message"]
    prompt["2"]["inputs"]["join_indices"] = "4"
    assert validate_prompt(prompt, registry).ok
