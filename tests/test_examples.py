"""Every file in example_workflows/ runs with `framefold run` and writes videos that PyAV can read."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
from example_frames import capture_example_frames, fixture_path, float_digest, to_uint8

from framefold.host.cli import main as framefold_main
from framefold.host.registry import default_registry
from framefold.host.workflow import ui_to_api

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_workflows"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))


def _expected_videos(ui_graph):
    """(filename_prefix, frames expected or None) for each Save Video node of a UI graph."""
    prompt = ui_to_api(ui_graph, default_registry())
    return [node["inputs"]["filename_prefix"] for node in prompt.values() if node["class_type"] == "FrameFoldSaveVideo"]


def test_the_examples_exist():
    """The README's main job and the seeds' methods each have an example."""
    names = {p.stem for p in EXAMPLES}
    assert {"text_to_video", "long_video_vidrd", "noise_prior_comparison", "image_to_video"} <= names


def _assert_frames_match_fixture(example, captured):
    """The frames handed to each Save Video node are bit-identical to those saved in the fixture."""
    fixture = np.load(fixture_path(example))
    digests = json.loads(str(fixture["digests"]))
    assert sorted(name for name, _ in captured) == sorted(digests)
    for name, images in captured:
        if float_digest(images) != digests[name]:
            diff = np.abs(to_uint8(images).astype(int) - fixture[name].astype(int))
            pytest.fail(f"{example}/{name}: frames changed (float32 bytes differ; max uint8 difference {diff.max()})")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_readable_video(path, tmp_path, capsys):
    """`framefold run` exits 0, and every Save Video node's file decodes with PyAV to frames of the saved size."""
    ui = json.loads(path.read_text())
    prefixes = _expected_videos(ui)
    assert prefixes, f"{path.name} has no Save Video node"
    captured = capture_example_frames(path, tmp_path)
    _assert_frames_match_fixture(path.stem, captured)
    for prefix in prefixes:
        files = sorted(tmp_path.glob(prefix + "_*_.mp4"))
        assert len(files) == 1, f"{prefix}: expected one mp4, found {files}"
        with av.open(str(files[0])) as container:
            stream = container.streams.video[0]
            frames = [f for f in container.decode(stream)]
            assert stream.codec_context.name == "h264"
            images = dict(captured)[Path(prefix).name]
            assert (frames[0].width, frames[0].height) == (images.shape[2], images.shape[1])
            assert len(frames) >= 16
            assert json.loads(container.metadata["workflow"])["nodes"], "workflow not embedded"
