"""Video read/write: round trips, colour, metadata, errors, atomic writes, frame utilities."""

import json
import math

import av
import numpy as np
import pytest
import torch

from framefold.pipelines.video import (
    VideoReadError,
    build_provenance,
    colour,
    concat_videos,
    read_video,
    read_video_metadata,
    resize_frames,
    reverse_frames,
    select_frames,
    write_video,
)
from framefold.pipelines.video import io as vio
from framefold.pipelines.video import png as vpng
from framefold.pipelines.video.provenance import values_from_prompt

F, H, W = 8, 48, 64


def quantized_noise(seed=0, frames=F, height=H, width=W):
    """Random frames whose values are exact 8-bit levels (k / 255)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, height, width, 3), generator=g).float() / 255.0


def smooth_frames():
    """Low-frequency colour gradients that move a little each frame (fair content for 4:2:0)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    return torch.stack(
        [
            torch.stack([0.1 + 0.8 * xx, 0.2 + 0.7 * yy, 0.5 + 0.4 * torch.sin(3 * xx + 2 * yy + t / 4)], -1)
            for t in range(F)
        ]
    )


# Saturated primaries/secondaries, white/black, and skin tones (8-bit sRGB values).
PATCH_COLOURS = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (255, 255, 255),
    (0, 0, 0),
    (255, 219, 172),
    (224, 172, 105),
    (198, 134, 66),
    (141, 85, 36),
]


def patch_frames():
    """4x3 grid of 16x16 colour patches (aligned to chroma and macroblocks), 8 identical frames."""
    img = torch.zeros(H, W, 3)
    for i, rgb in enumerate(PATCH_COLOURS):
        r, c = divmod(i, 4)
        img[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = torch.tensor(rgb) / 255.0
    return img.expand(F, H, W, 3).clone()


def patch_interior_errors(decoded, reference):
    """Per-patch mean abs error in 8-bit levels over the 12x12 interior (2 px away from patch edges)."""
    errs = []
    for i in range(len(PATCH_COLOURS)):
        r, c = divmod(i, 4)
        sl = (slice(None), slice(r * 16 + 2, r * 16 + 14), slice(c * 16 + 2, c * 16 + 14))
        errs.append(float((decoded[sl] - reference[sl]).abs().mean() * 255))
    return errs


METADATA = {
    "prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": 123, "model": ["1", 0]}}},
    "workflow": {"last_node_id": 3, "nodes": [{"id": 3, "type": "KSampler"}], "links": []},
}


# ------------------------------------------------------------------------------------ round trips


def test_png_sequence_round_trip_is_bit_exact(tmp_path):
    frames = quantized_noise()
    path = write_video(frames, tmp_path / "seq", format="png", fps=12.5)
    assert path.is_dir() and sorted(p.name for p in path.iterdir())[:2] == ["frame_00000.png", "frame_00001.png"]
    back, fps, info = read_video(path)
    assert torch.equal(back, frames)
    assert fps == 12.5 and not info["fps_guessed"]


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_lossless_round_trip_error_is_within_yuv_quantisation(tmp_path, fmt):
    # lossless = qp 0 (H.264) / VP9 lossless, in 4:4:4: the only loss is rounding Y'CbCr to 8-bit
    # limited-range codes, bounded by 2 levels of 255 (measured 1.64).
    frames = quantized_noise(1)
    back, _, _ = read_video(write_video(frames, tmp_path / f"a.{fmt}", fps=8, lossless=True))
    err = (back - frames).abs() * 255
    assert err.max() <= 2.0
    assert err.mean() <= 0.6


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_crf0_420_round_trip_on_smooth_content(tmp_path, fmt):
    # crf 0 in yuv420p is lossless on the codes; chroma 2x2 sub-sampling of a smooth gradient costs
    # at most 6 levels (measured 4.9, at the frame border) and 0.6 on average (measured 0.43).
    frames = smooth_frames()
    back, _, _ = read_video(write_video(frames, tmp_path / f"a.{fmt}", fps=8, crf=0))
    err = (back - frames).abs() * 255
    assert err.max() <= 6.0
    assert err.mean() <= 0.6


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_colour_patches_survive_load_save_load(tmp_path, fmt):
    # Default quality. Bound: mean error per patch interior < 3 levels of 255 after save->load->save->load
    # (measured <= 2.2; a BT.601/BT.709 or range mix-up costs 10-40 levels on these colours). The whole
    # frame, including the 4:2:0 chroma bleed at saturated patch edges, stays < 8 (measured 6.4).
    frames = patch_frames()
    first, _, info = read_video(write_video(frames, tmp_path / f"a.{fmt}", fps=8))
    assert (info["matrix"], info["range"], info["matrix_source"]) == ("bt709", "limited", "tag")
    second, _, _ = read_video(write_video(first, tmp_path / f"b.{fmt}", fps=8))
    errors = patch_interior_errors(second, frames)
    assert max(errors) < 3.0, errors
    assert float((second - frames).abs().mean() * 255) < 8.0


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_stream_is_tagged_bt709_limited(tmp_path, fmt):
    path = write_video(quantized_noise(), tmp_path / f"a.{fmt}", fps=8)
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        assert cc.pix_fmt == "yuv420p"
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        frame = next(container.decode(video=0))
        assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == (1, 1, 1, 1)


def _encode_tagged_444(path, rgb, matrix, full_range, tag_space, tag_range):
    """Hand-made H.264 4:4:4 qp 0 file with codes computed for ``matrix``/``full_range`` and the given tags."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv444p"
        stream.codec_context.colorspace = tag_space
        stream.codec_context.color_range = tag_range
        stream.options = {"qp": "0"}
        for i, img in enumerate(rgb):
            codes = np.stack(
                [
                    np.clip(np.rint(p), 0, 255).astype(np.uint8)
                    for p in colour.rgb_to_ycbcr(img, matrix=matrix, full_range=full_range)
                ]
            )
            frame = av.VideoFrame.from_ndarray(codes, format="yuv444p")
            frame.colorspace, frame.color_range, frame.pts = tag_space, tag_range, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_reader_respects_bt601_full_range_tags(tmp_path):
    frames = patch_frames()[:2]
    _encode_tagged_444(tmp_path / "601full.mp4", frames.numpy(), "bt601", True, tag_space=5, tag_range=2)
    back, _, info = read_video(tmp_path / "601full.mp4")
    assert (info["matrix"], info["range"], info["matrix_source"]) == ("bt601", "full", "tag")
    assert float((back - frames).abs().max() * 255) <= 2.0


def test_untagged_small_video_defaults_to_bt601(tmp_path):
    frames = patch_frames()[:2]
    _encode_tagged_444(tmp_path / "untagged.mp4", frames.numpy(), "bt601", False, tag_space=2, tag_range=0)
    back, _, info = read_video(tmp_path / "untagged.mp4")
    assert (info["matrix"], info["range"], info["matrix_source"]) == ("bt601", "limited", "default")
    assert float((back - frames).abs().max() * 255) <= 2.0


def test_colour_matrix_round_trip_and_default():
    rgb = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    for matrix in colour.MATRIX_COEFFICIENTS:
        for full in (False, True):
            back = colour.ycbcr_to_rgb(
                *colour.rgb_to_ycbcr(rgb, matrix=matrix, full_range=full), matrix=matrix, full_range=full
            )
            np.testing.assert_allclose(back, rgb, atol=1e-5)
    # BT.709 limited: white -> (235, 128, 128), black -> (16, 128, 128), pure red Y = 16 + 219 * 0.2126.
    y, cb, cr = colour.rgb_to_ycbcr(np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]], np.float32))
    np.testing.assert_allclose(y, [235, 16, 16 + 219 * 0.2126], atol=1e-4)
    np.testing.assert_allclose(cb[:2], [128, 128], atol=1e-4)
    np.testing.assert_allclose(cr[2], 240, atol=1e-4)
    # the bound used by the colour-patch test is sensitive: a matrix mix-up moves saturated colours a lot
    wrong = colour.ycbcr_to_rgb(*colour.rgb_to_ycbcr(np.array([[1, 0, 0]], np.float32)), matrix="bt601")
    assert np.abs(wrong - [[1, 0, 0]]).max() * 255 > 10
    assert colour.default_matrix(1280, 720) == "bt709" and colour.default_matrix(640, 480) == "bt601"


@pytest.mark.parametrize("fmt,suffix", [("mp4", ".mp4"), ("webm", ".webm"), ("gif", ".gif"), ("png", "")])
def test_frame_count_size_and_fps_are_preserved(tmp_path, fmt, suffix):
    frames = quantized_noise(2)
    back, fps, _ = read_video(write_video(frames, tmp_path / f"clip{suffix}", format=fmt, fps=12))
    assert back.shape == frames.shape and back.dtype == torch.float32
    if fmt == "gif":  # GIF delays are whole 1/100 s: 8.33 cs per frame alternates 8 and 9
        assert abs(fps - 12) < 0.7
    else:
        assert fps == 12.0


def test_gif_palette_is_faithful_for_few_colours(tmp_path):
    frames = patch_frames()  # 12 colours < 256: the palette holds them exactly
    back, _, _ = read_video(write_video(frames, tmp_path / "a.gif", fps=8))
    assert torch.equal(back, frames)


@pytest.mark.parametrize("fmt,suffix", [("mp4", ".mp4"), ("webm", ".webm"), ("png", "")])
def test_workflow_and_provenance_read_back(tmp_path, fmt, suffix):
    provenance = build_provenance(METADATA["prompt"], dtype="float32", attention_backend="sdpa", extra={"fps": 8.0})
    path = write_video(
        quantized_noise(), tmp_path / f"c{suffix}", format=fmt, fps=8, metadata={**METADATA, "framefold": provenance}
    )
    meta = read_video_metadata(path)
    assert meta["prompt"] == METADATA["prompt"]
    assert meta["workflow"] == METADATA["workflow"]
    assert meta["framefold"] == json.loads(json.dumps(provenance))
    assert meta["framefold"]["seeds"] == [{"node": "3", "class_type": "KSampler", "input": "seed", "value": 123}]
    assert meta["framefold"]["torch_version"] == torch.__version__
    assert meta["framefold"]["dtype"] == "float32" and meta["framefold"]["attention_backend"] == "sdpa"
    if fmt == "png":  # every frame carries the graph, so any frame can be dropped on the canvas
        for frame in sorted(path.iterdir()):
            assert json.loads(vpng.read_png_text(frame.read_bytes())["workflow"]) == METADATA["workflow"]


def test_png_text_chunks_are_valid_and_unicode_safe(tmp_path):
    img = (quantized_noise()[0] * 255).to(torch.uint8).numpy()
    data = vpng.encode_png(img, {"prompt": '{"a": 1}', "note": "caf\u00e9 \u2603"})
    assert vpng.read_png_text(data) == {"prompt": '{"a": 1}', "note": "caf\u00e9 \u2603"}
    (tmp_path / "x.png").write_bytes(data)
    assert np.array_equal((vpng.decode_png(tmp_path / "x.png") * 255).round().astype(np.uint8), img)


def test_provenance_skips_linked_inputs():
    prompt = {
        "1": {"class_type": "A", "inputs": {"seed": ["2", 0]}},
        "2": {"class_type": "Seed", "inputs": {"noise_seed": 7, "dtype": "fp16"}},
    }
    found = values_from_prompt(prompt)
    assert found["seeds"] == [{"node": "2", "class_type": "Seed", "input": "noise_seed", "value": 7}]
    assert found["dtypes"][0]["value"] == "fp16"


# ------------------------------------------------------------------------------------ errors


def test_non_video_file_gives_clear_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(VideoReadError, match=r"notes\.mp4.*not a readable video.*expected a video file"):
        read_video(bad)
    with pytest.raises(VideoReadError, match="no such file"):
        read_video(tmp_path / "missing.webm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match="no PNG frames"):
        read_video(tmp_path / "empty")


def test_truncated_video_is_reported(tmp_path):
    path = write_video(quantized_noise(), tmp_path / "a.mp4", fps=8)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoReadError, match=r"cut\.mp4"):
        read_video(cut)


def test_bad_write_arguments_are_refused(tmp_path):
    frames = quantized_noise()
    with pytest.raises(ValueError, match="crf for mp4 must be in 0..51"):
        write_video(frames, tmp_path / "a.mp4", crf=60)
    with pytest.raises(ValueError, match="video format"):
        write_video(frames, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="crf/lossless do not apply to gif"):
        write_video(frames, tmp_path / "a.gif", crf=10)
    with pytest.raises(ValueError, match="IMAGE tensor"):
        write_video(frames[0], tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_odd_size_is_padded_or_refused(tmp_path):
    frames = quantized_noise(3, height=47, width=63)
    back, _, _ = read_video(write_video(frames, tmp_path / "pad.mp4", fps=8, lossless=False))
    assert back.shape == (F, 48, 64, 3)  # padded by one replicated row and column
    with pytest.raises(ValueError, match="even width and height, got 63x47"):
        write_video(frames, tmp_path / "err.mp4", fps=8, odd_size="error")
    back, _, _ = read_video(write_video(frames, tmp_path / "keep.webm", fps=8, lossless=True))
    assert back.shape == frames.shape  # 4:4:4 keeps odd sizes


@pytest.mark.parametrize("fmt,suffix", [("mp4", ".mp4"), ("webm", ".webm"), ("png", "")])
def test_failed_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, fmt, suffix):
    final = tmp_path / f"out{suffix}"
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    real = vio.encode_png if fmt == "png" else vio.yuv_video_frame
    monkeypatch.setattr(vio, "encode_png" if fmt == "png" else "yuv_video_frame", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_video(quantized_noise(), final, format=fmt, fps=8)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temp file


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    final = write_video(quantized_noise(), tmp_path / "out.mp4", fps=8)
    before = final.read_bytes()

    def failing(*args, **kwargs):
        raise RuntimeError("encoder died")

    monkeypatch.setattr(vio, "yuv_video_frame", failing)
    with pytest.raises(RuntimeError):
        write_video(quantized_noise(5), final, fps=8)
    assert final.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


# ------------------------------------------------------------------------------------ selection & utilities


def test_read_selection_matches_slicing(tmp_path):
    frames = quantized_noise(4, frames=10)
    path = write_video(frames, tmp_path / "seq", format="png", fps=10)
    full, _, _ = read_video(path)
    picked, _, _ = read_video(path, start=1, stride=3)
    assert torch.equal(picked, full[1::3])
    picked, _, _ = read_video(path, start=2, end=7, stride=2, max_frames=2)
    assert torch.equal(picked, full[2:7:2][:2])
    small, _, _ = read_video(path, size=(32, 0))
    assert small.shape == (10, 24, 32, 3)
    with pytest.raises(VideoReadError, match="no frames selected.*10 frames"):
        read_video(path, start=10)


def test_first_frame_only_still_reports_colour(tmp_path):
    _, _, info = read_video(write_video(quantized_noise(), tmp_path / "a.mp4", fps=8), max_frames=1)
    assert (info["matrix"], info["range"]) == ("bt709", "limited")


def test_frames_of_different_sizes_are_refused(tmp_path):
    write_video(quantized_noise(), tmp_path / "seq", format="png", fps=8)
    write_video(quantized_noise(frames=1, height=24, width=32), tmp_path / "other", format="png", fps=8)
    (tmp_path / "other" / "frame_00000.png").rename(tmp_path / "seq" / "frame_00099.png")
    with pytest.raises(VideoReadError, match="frame 8 is 32x24, expected every frame to be 64x48"):
        read_video(tmp_path / "seq")


def test_frame_collector_handles_short_and_missing_hints():
    frames = quantized_noise()
    for hint in (0, 3, 8, 100):
        collector = vio._FrameCollector(0, None, 1, None)
        for frame in frames:
            collector.add(frame, hint)
        assert torch.equal(collector.frames(), frames)


def test_resize_modes():
    frames = quantized_noise()  # 64x48
    assert resize_frames(frames, 32, 32, mode="stretch").shape == (F, 32, 32, 3)
    cropped = resize_frames(frames, 32, 32, mode="crop")
    assert cropped.shape == (F, 32, 32, 3)
    padded = resize_frames(frames, 32, 32, mode="pad")
    assert padded.shape == (F, 32, 32, 3)
    assert torch.all(padded[:, :4] == 0) and torch.all(padded[:, -4:] == 0)  # 32x24 content, 4 px bars
    assert resize_frames(frames, 0, 24).shape == (F, 24, 32, 3)
    assert torch.equal(resize_frames(frames, 0, 0), frames)
    # crop of a 2x upscale by nearest keeps the centre pixels exactly
    big = resize_frames(frames, 128, 96, interpolation="nearest")
    assert torch.equal(big[:, ::2, ::2], frames)


def test_select_concat_reverse():
    frames = quantized_noise()
    assert torch.equal(select_frames(frames, -3), frames[-3:])
    assert torch.equal(select_frames(frames, 1, 2, 2), frames[1:5:2])
    with pytest.raises(ValueError, match="outside"):
        select_frames(frames, 8)
    other = quantized_noise(9, frames=3, height=24, width=32)
    joined = concat_videos([frames, other])
    assert joined.shape == (11, H, W, 3) and torch.equal(joined[:8], frames)
    assert torch.equal(reverse_frames(frames)[0], frames[-1])
    assert not math.isnan(float(joined.mean()))
