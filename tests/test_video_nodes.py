"""Video and frame nodes: loading, saving (naming, previews, metadata), frame utilities, node metadata."""

import json
import time

import pytest
import torch

from framefold.nodes import _folders, frame_resize
from framefold.nodes import frames as frame_nodes
from framefold.nodes import video as video_nodes
from framefold.nodes import video_save as save_nodes
from framefold.nodes._errors import NodeInputError
from framefold.pipelines.video import read_video, read_video_metadata, write_video

PROMPT = {
    "1": {"class_type": "FrameFoldCheckpointLoader", "inputs": {"ckpt_name": "x.safetensors", "dtype": "fp16"}},
    "3": {"class_type": "FrameFoldSampler", "inputs": {"seed": 4242, "model": ["1", 0], "attention_backend": "triton"}},
    "9": {"class_type": "FrameFoldSaveVideo", "inputs": {"images": ["3", 0]}},
}
EXTRA = {"workflow": {"last_node_id": 9, "nodes": [{"id": 9, "type": "FrameFoldSaveVideo"}], "links": []}}


@pytest.fixture
def io_dirs(tmp_path):
    """Point the input/output folders at temporary ones, restoring the previous setting afterwards."""
    saved = dict(_folders._dirs)
    _folders.set_io_dirs(input=tmp_path / "input", output=tmp_path / "output")
    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    yield tmp_path / "input", tmp_path / "output"
    _folders._dirs.update(saved)


def frames(n=8, seed=0, h=48, w=64):
    """Random 8-bit-level frames."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255.0


def save(images=None, fmt="mp4", prefix="sub/clip", **kwargs):
    """Run the save node with the test graph as hidden inputs."""
    node = save_nodes.FrameFoldSaveVideo()
    return node.save(
        frames() if images is None else images,
        12.0,
        prefix,
        fmt,
        19,
        False,
        prompt=PROMPT,
        extra_pnginfo=EXTRA,
        unique_id="9",
        **kwargs,
    )


# ------------------------------------------------------------------------------------------ save


def test_save_mp4_names_preview_and_metadata(io_dirs):
    _, out = io_dirs
    first = save()
    assert first == {
        "ui": {
            "images": [{"filename": "clip_00001_.mp4", "subfolder": "sub", "type": "output", "format": "video/mp4"}],
            "animated": [True],
        }
    }
    second = save()
    assert second["ui"]["images"][0]["filename"] == "clip_00002_.mp4"
    meta = read_video_metadata(out / "sub" / "clip_00001_.mp4")
    assert meta["prompt"] == PROMPT and meta["workflow"] == EXTRA["workflow"]
    prov = meta["framefold"]
    assert prov["seeds"] == [{"node": "3", "class_type": "FrameFoldSampler", "input": "seed", "value": 4242}]
    assert prov["dtypes"][0]["value"] == "fp16" and prov["attention_backends"][0]["value"] == "triton"
    assert prov["torch_version"] == torch.__version__ and prov["device"] == "cpu"
    assert (prov["save_node"], prov["fps"], prov["frames"], prov["format"], prov["crf"]) == ("9", 12.0, 8, "mp4", 19)
    back, fps, _ = read_video(out / "sub" / "clip_00001_.mp4")
    assert back.shape == (8, 48, 64, 3) and fps == 12.0


@pytest.mark.parametrize("fmt,mime", [("webm", "video/webm"), ("gif", "image/gif")])
def test_save_animated_formats(io_dirs, fmt, mime):
    _, out = io_dirs
    result = save(fmt=fmt, prefix="anim")
    assert result["ui"]["images"] == [
        {"filename": f"anim_00001_.{fmt}", "subfolder": "", "type": "output", "format": mime}
    ]
    assert result["ui"]["animated"] == [True]
    assert (out / f"anim_00001_.{fmt}").is_file()


def test_save_png_sequence_lists_frames(io_dirs):
    _, out = io_dirs
    images = frames(4)
    result = save(images, fmt="png", prefix="seq/shot")
    assert "animated" not in result["ui"]
    assert result["ui"]["images"] == [
        {"filename": f"frame_{i:05d}.png", "subfolder": "seq/shot_00001_", "type": "output"} for i in range(4)
    ]
    back, fps, _ = read_video(out / "seq" / "shot_00001_")
    assert torch.equal(back, images) and fps == 12.0
    assert read_video_metadata(out / "seq" / "shot_00001_")["framefold"]["seeds"][0]["value"] == 4242


def test_counter_continues_after_other_formats_and_ignores_temp_files(io_dirs):
    _, out = io_dirs
    (out / "clip_00007_.png").write_bytes(b"x")
    (out / ".clip_00099_.mp4.abcd.tmp.mp4").write_bytes(b"x")  # hidden temp: not a saved file
    (out / "clipper_00050_.mp4").write_bytes(b"x")  # another prefix
    assert save(prefix="clip")["ui"]["images"][0]["filename"] == "clip_00008_.mp4"


def test_date_tokens_in_prefix(io_dirs):
    result = save(prefix="%date:yyyy-MM-dd%/v")
    assert result["ui"]["images"][0]["subfolder"] == time.strftime("%Y-%m-%d")


@pytest.mark.parametrize("prefix", ["../escape", "/abs/clip", "a/../../escape", "sub/"])
def test_prefix_must_stay_inside_output(io_dirs, prefix):
    root = io_dirs[1].parent
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(NodeInputError, match="FrameFoldSaveVideo: input 'filename_prefix'"):
        save(prefix=prefix)
    assert sorted(p.name for p in root.iterdir()) == before


def test_save_rejects_bad_crf_and_empty_batch(io_dirs):
    node = save_nodes.FrameFoldSaveVideo()
    with pytest.raises(NodeInputError, match="input 'crf': 0..51 for mp4"):
        node.save(frames(), 8.0, "x", "mp4", 60, False)
    with pytest.raises(NodeInputError, match="input 'images'"):
        node.save(torch.zeros(0, 8, 8, 3), 8.0, "x", "mp4", 19, False)


# ------------------------------------------------------------------------------------------ load


def test_load_lists_input_videos_freshly(io_dirs):
    inp, _ = io_dirs
    assert video_nodes.FrameFoldLoadVideo.INPUT_TYPES()["required"]["video"][0] == []
    write_video(frames(), inp / "b.mp4", fps=8)
    write_video(frames(), inp / "clips" / "a.webm", fps=8)
    (inp / "notes.txt").write_text("x")
    (inp / ".hidden.mp4").write_bytes(b"x")
    names, options = video_nodes.FrameFoldLoadVideo.INPUT_TYPES()["required"]["video"]
    assert names == ["b.mp4", "clips/a.webm"]
    assert options["video_upload"] is True


def test_load_selects_resizes_and_reports_fps(io_dirs):
    inp, _ = io_dirs
    source = frames(10)
    write_video(source, inp / "v.mp4", fps=12, lossless=True)
    node = video_nodes.FrameFoldLoadVideo()
    images, count, fps = node.load("v.mp4", start_frame=1, select_every_nth=2, max_frames=3)
    assert count == 3 and images.shape == (3, 48, 64, 3) and fps == 6.0
    assert float((images - source[1:7:2]).abs().max() * 255) <= 2.0  # lossless 4:4:4 bound
    images, _, _ = node.load("v.mp4", width=32, height=32, resize_mode="crop")
    assert images.shape == (10, 32, 32, 3)


def test_load_errors_name_node_and_input(io_dirs):
    inp, _ = io_dirs
    (inp / "broken.mp4").write_text("not a video")
    node = video_nodes.FrameFoldLoadVideo()
    with pytest.raises(NodeInputError, match=r"FrameFoldLoadVideo: input 'video': a readable video: .*broken\.mp4"):
        node.load("broken.mp4")
    assert "existing video file" in video_nodes.FrameFoldLoadVideo.VALIDATE_INPUTS("missing.mp4")
    assert "inside the input folder" in video_nodes.FrameFoldLoadVideo.VALIDATE_INPUTS("../x.mp4")
    assert video_nodes.FrameFoldLoadVideo.VALIDATE_INPUTS("broken.mp4") is True


def test_is_changed_follows_the_file(io_dirs):
    inp, _ = io_dirs
    write_video(frames(), inp / "v.mp4", fps=8)
    first = video_nodes.FrameFoldLoadVideo.IS_CHANGED("v.mp4")
    assert first == video_nodes.FrameFoldLoadVideo.IS_CHANGED("v.mp4")
    write_video(frames(4, seed=1), inp / "v.mp4", fps=8)
    assert video_nodes.FrameFoldLoadVideo.IS_CHANGED("v.mp4") != first


# ------------------------------------------------------------------------------------------ frame nodes


def test_frame_nodes():
    video = frames(8)
    selected, count = frame_nodes.FrameFoldSelectFrames().select(video, start=-4, count=2, stride=2)
    assert count == 2 and torch.equal(selected, video[4:8:2])
    joined, join_index = frame_nodes.FrameFoldConcatVideos().concat(video, frames(3, seed=2, h=24, w=32))
    assert joined.shape == (11, 48, 64, 3) and join_index == 8
    (resized,) = frame_resize.FrameFoldResizeFrames().resize(video, 32, 0)
    assert resized.shape == (8, 24, 32, 3)
    (reversed_,) = frame_nodes.FrameFoldReverseFrames().reverse(video)
    assert torch.equal(reversed_, video.flip(0))
    info = frame_nodes.FrameFoldVideoInfo().info(video, 4.0)
    assert info["result"][:3] == (8, 64, 48)
    assert json.loads(info["ui"]["text"][0]) == {
        "frames": 8,
        "width": 64,
        "height": 48,
        "channels": 3,
        "fps": 4.0,
        "seconds": 2.0,
    }
    with pytest.raises(NodeInputError, match="FrameFoldSelectFrames: input 'start'"):
        frame_nodes.FrameFoldSelectFrames().select(video, start=8)


@pytest.mark.parametrize("module", [video_nodes, frame_nodes])
def test_node_declarations_follow_the_house_rules(module):
    for name, cls in module.NODE_CLASS_MAPPINGS.items():
        assert name.startswith("FrameFold") and name == cls.__name__
        assert module.NODE_DISPLAY_NAME_MAPPINGS[name].startswith("FrameFold ")
        assert cls.CATEGORY.startswith("FrameFold/") and cls.DESCRIPTION and cls.__doc__
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, entry in spec.get(section, {}).items():
                assert "tooltip" in entry[1], f"{name}.{input_name} has no tooltip"
        assert callable(getattr(cls, cls.FUNCTION))
