"""Read and write videos with PyAV, with explicit colour handling and embedded workflow metadata.

Formats written:

* ``mp4``  - H.264 (libx264), yuv420p; ``lossless=True`` gives qp 0 in yuv444p (High 4:4:4).
* ``webm`` - VP9 (libvpx-vp9), yuv420p, constant quality (crf, b:v 0); ``lossless=True`` gives
  VP9 lossless in yuv444p.
* ``gif``  - one global 256-colour palette (median cut over the whole clip), no dithering.
  GIF stores no metadata and frame delays in 1/100 s, so fps is rounded to that grid.
* ``png``  - a PNG sequence: ``path`` is a FOLDER holding ``frame_00000.png``, ``frame_00001.png``...
  (8-bit RGB, bit-exact). Every frame carries the metadata as text chunks (so any frame can be
  dropped onto the ComfyUI canvas) plus an ``fps`` chunk.

Colour: RGB -> Y'CbCr is done here (not by swscale) with the BT.709 matrix in limited range, and the
stream is TAGGED BT.709 primaries / transfer / matrix, limited range. Reading converts with the
stream's tagged matrix and range; an untagged stream is taken as BT.709 at >= 1280x720 and BT.601
below (what players do). Chroma is sub-sampled by 2x2 averaging (centre siting) and up-sampled
bilinearly on read.

Odd sizes: 4:2:0 needs even width and height. ``odd_size="pad"`` (default) replicates the last
row/column, so the saved video is up to one pixel larger; ``odd_size="error"`` refuses instead.
4:4:4 (lossless), GIF and PNG keep any size.

Metadata: ``metadata`` {key: value} is stored as container tags (MP4 with
``movflags=use_metadata_tags``, WebM/Matroska tags) or PNG text chunks; non-string values are
JSON-encoded. ComfyUI's keys are ``prompt`` (API graph) and ``workflow`` (UI graph); FrameFold adds
``framefold`` (provenance). ``read_video_metadata`` returns them with JSON values parsed.

Every write goes to a hidden temporary name in the destination folder and is renamed into place
only once complete, so a failed write never leaves a file (or folder) under the final name.
:func:`write_video_numbered` gives the finished file the next free ``<prefix>_<n>_`` name atomically
(``naming.claim_numbered_name``), so parallel runs never overwrite each other.

Deterministic encoding (``deterministic=True``, or :func:`set_deterministic_encoding` for the
process): single-threaded encoders and bit-exact muxing (no encoder version string, no random
Matroska UIDs), so the same frames give byte-identical files in any process. Multi-threaded x264
and VP9 otherwise produce slightly different bytes (and pixels) run to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import colour
from .frames import check_frames, pad_to_even, resize_frames
from .naming import claim_numbered_name, temp_name
from .png import decode_png, encode_png, read_png_text

FORMATS = ("mp4", "webm", "gif", "png")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".m4v", ".avi", ".gif")
FORMAT_EXTENSIONS = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif", "png": ""}
DEFAULT_CRF = {"mp4": 19, "webm": 32}
MAX_CRF = {"mp4": 51, "webm": 63}
JSON_METADATA_KEYS = ("prompt", "workflow", "framefold")
PNG_FRAME_PATTERN = "frame_{:05d}.png"
DEFAULT_FPS = 24.0

_deterministic_default = False


def set_deterministic_encoding(enabled: bool) -> None:
    """Make ``write_video`` encode deterministically by default in this process (``framefold run`` does)."""
    global _deterministic_default
    _deterministic_default = bool(enabled)


def deterministic_encoding() -> bool:
    """Whether ``write_video`` encodes deterministically when not told otherwise."""
    return _deterministic_default


_PLANAR_YUV = re.compile(r"^yuv(j?)(420|422|440|444|411|410)p(\d+)?(le|be)?$")


class VideoReadError(ValueError):
    """A file that is not a readable video (or frame folder); the message names the file."""


def _expected_kinds():
    """What read_video accepts, for error messages."""
    return f"a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder of PNG frames"


# ----------------------------------------------------------------------------------------- reading


def _plane_array(plane, bits, big_endian):
    """A decoded plane as a 2-D numpy array without line padding."""
    dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(">u2" if big_endian else "<u2")
    row = plane.line_size // dtype.itemsize
    data = np.frombuffer(plane, dtype, count=plane.height * row)
    return data.reshape(plane.height, row)[:, : plane.width]


def _yuv_frame_to_rgb(frame, match, colour_info):
    """RGB float32 [H,W,3] of a planar Y'CbCr frame, using its tagged (or default) matrix and range."""
    import cv2

    bits = int(match.group(3) or 8)
    tagged_range = frame.color_range
    full_range = tagged_range == colour.RANGE_FULL or (tagged_range != colour.RANGE_LIMITED and match.group(1) == "j")
    matrix = colour.COLORSPACE_CODES.get(frame.colorspace)
    source = "tag" if matrix else "default"
    matrix = matrix or colour.default_matrix(frame.width, frame.height)
    big_endian = match.group(4) == "be"
    y, cb, cr = (_plane_array(p, bits, big_endian).astype(np.float32) for p in frame.planes[:3])
    if cb.shape != y.shape:
        size = (y.shape[1], y.shape[0])
        cb = cv2.resize(cb, size, interpolation=cv2.INTER_LINEAR)
        cr = cv2.resize(cr, size, interpolation=cv2.INTER_LINEAR)
    colour_info.setdefault("matrix", matrix)
    colour_info.setdefault("matrix_source", source)
    colour_info.setdefault("range", "full" if full_range else "limited")
    return colour.ycbcr_to_rgb(y, cb, cr, matrix=matrix, full_range=full_range, bits=bits)


def _frame_to_rgb(frame, colour_info):
    """RGB float32 [H,W,3] in 0..1 of any decoded PyAV frame."""
    fmt = frame.format
    match = _PLANAR_YUV.match(fmt.name)
    high_depth = max(c.bits for c in fmt.components) > 8
    is_yuv = any(c.is_chroma for c in fmt.components) and not fmt.is_rgb
    if match is None and is_yuv:
        # Packed/semi-planar Y'CbCr (nv12, p010, yuyv422...): re-lay as planar 4:4:4; no colour change.
        frame = frame.reformat(format="yuv444p16le" if high_depth else "yuv444p")
        match = _PLANAR_YUV.match(frame.format.name)
    if match is not None:
        return _yuv_frame_to_rgb(frame, match, colour_info)
    colour_info.setdefault("matrix", "rgb")
    colour_info.setdefault("matrix_source", "format")
    if high_depth:
        return frame.to_ndarray(format="rgb48le").astype(np.float32) / 65535.0
    return frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0


def _png_files(folder):
    """Sorted PNG files of a frame folder (hidden files skipped)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def _iter_png_sequence(folder, info):
    """Frames of a PNG folder; fills ``info`` (fps from the ``fps`` text chunk, else DEFAULT_FPS)."""
    files = _png_files(folder)
    if not files:
        raise VideoReadError(f"{folder}: folder holds no PNG frames; expected {_expected_kinds()}")
    text = read_png_text(files[0].read_bytes())
    info.update(codec="png", pix_fmt="rgb24", matrix="rgb", matrix_source="format", fps_guessed="fps" not in text)
    info["frame_count_hint"] = len(files)
    info["fps"] = float(text.get("fps", DEFAULT_FPS))
    for file in files:
        try:
            yield decode_png(file)
        except ValueError as err:
            raise VideoReadError(f"{folder}: frame {file.name} is not a readable PNG: {err}") from err


def _iter_container(path, info):
    """Frames of a video file; fills ``info`` from the stream."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(f"{path}: not a readable video; expected {_expected_kinds()} ({err})") from err
    with container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file has no video stream; expected {_expected_kinds()}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        info.update(codec=stream.codec_context.name, pix_fmt=stream.codec_context.pix_fmt)
        info["frame_count_hint"] = stream.frames  # from the container index; 0 when unknown (e.g. WebM)
        info["fps"] = float(rate) if rate else DEFAULT_FPS
        info["fps_guessed"] = not rate
        colour_info = {}
        try:
            for frame in container.decode(stream):
                rgb = _frame_to_rgb(frame, colour_info)
                info.update(colour_info)
                yield rgb
        except av.FFmpegError as err:
            raise VideoReadError(f"{path}: decoding failed ({err}); the video file may be corrupt") from err


def read_video(
    path: str | Path,
    *,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    resize_mode: str = "crop",
) -> tuple[torch.Tensor, float, dict]:
    """Decode frames ``start, start+stride, ...`` (before ``end``, at most ``max_frames``) of a video.

    ``path`` is a video file or a folder of PNG frames. ``size`` = (width, height) resizes each
    frame (0 = keep / follow aspect; ``resize_mode`` as in ``frames.resize_frames``). Decoding is
    sequential from the first frame, so frame indices are exact.

    Returns (frames float32 [F,H,W,3] in 0..1, fps float, info dict with codec, pix_fmt, width,
    height, matrix, matrix_source, range, fps_guessed and source_frames_read).
    """
    path = Path(path)
    if start < 0 or stride < 1 or (end is not None and end <= start) or (max_frames is not None and max_frames < 0):
        raise ValueError(f"bad frame selection start={start} end={end} stride={stride} max_frames={max_frames}")
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or folder; expected {_expected_kinds()}")
    info: dict[str, Any] = {"path": str(path)}
    frames_iter = _iter_png_sequence(path, info) if path.is_dir() else _iter_container(path, info)
    collected = _FrameCollector(start, end, stride, max_frames)
    index = -1
    for index, rgb in enumerate(frames_iter):
        if end is not None and index >= end:
            break
        if index < start or (index - start) % stride:
            continue
        frame = torch.from_numpy(np.ascontiguousarray(rgb))
        info.setdefault("height", frame.shape[0])
        info.setdefault("width", frame.shape[1])
        if (frame.shape[0], frame.shape[1]) != (info["height"], info["width"]):
            raise VideoReadError(
                f"{path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, expected every frame to be "
                f"{info['width']}x{info['height']} like the first"
            )
        if size is not None:
            frame = resize_frames(frame[None], size[0], size[1], mode=resize_mode)[0]
        collected.add(frame, info.get("frame_count_hint", 0))
        if max_frames and collected.count >= max_frames:
            break
    if hasattr(frames_iter, "close"):
        frames_iter.close()
    info.pop("frame_count_hint", None)
    info["source_frames_read"] = index + 1
    if not collected.count:
        raise VideoReadError(
            f"{path}: no frames selected (start={start}, end={end}, stride={stride}); the video has {index + 1} frames"
            if index >= 0
            else f"{path}: the video holds no frames"
        )
    return collected.frames(), float(info["fps"]), info


class _FrameCollector:
    """Gathers decoded frames into one tensor without a second full copy when the frame count is known.

    With a container frame-count hint the output is allocated once at the largest possible
    selection and filled in place; otherwise frames are listed and stacked at the end.
    """

    def __init__(self, start, end, stride, max_frames):
        self.start, self.end, self.stride, self.max_frames = start, end, stride, max_frames
        self.buffer, self.items, self.count = None, [], 0

    def _capacity(self, total):
        """Most frames the selection can yield from a video of ``total`` frames."""
        stop = min(total, self.end) if self.end is not None else total
        n = max(0, -(-(stop - self.start) // self.stride))
        return min(n, self.max_frames) if self.max_frames else n

    def add(self, frame, total_hint):
        """Store one selected frame."""
        if self.count == 0 and total_hint > 0:
            self.buffer = torch.empty((self._capacity(total_hint),) + tuple(frame.shape), dtype=frame.dtype)
        if self.buffer is not None and self.count < self.buffer.shape[0]:
            self.buffer[self.count] = frame
        else:  # no hint, or the hint was short: keep the rest in a list
            self.items.append(frame)
        self.count += 1

    def frames(self):
        """All stored frames as one [F,H,W,C] tensor."""
        if self.buffer is None:
            return torch.stack(self.items)
        filled = self.buffer[: min(self.count, self.buffer.shape[0])]
        return torch.cat([filled, torch.stack(self.items)]) if self.items else filled


def read_video_metadata(path: str | Path) -> dict:
    """The metadata of a saved video (container tags) or PNG frame/folder (text chunks).

    Keys are lower-cased (Matroska upper-cases tag names); values of ``prompt``, ``workflow`` and
    ``framefold`` are JSON-decoded, other values stay strings.
    """
    path = Path(path)
    if path.is_dir():
        files = _png_files(path)
        if not files:
            raise VideoReadError(f"{path}: folder holds no PNG frames")
        raw = read_png_text(files[0].read_bytes())
    elif path.suffix.lower() == ".png":
        raw = read_png_text(path.read_bytes())
    else:
        import av

        try:
            with av.open(str(path)) as container:
                raw = dict(container.metadata)
        except (av.FFmpegError, OSError) as err:
            raise VideoReadError(f"{path}: not a readable video; expected {_expected_kinds()} ({err})") from err
    out = {}
    for key, value in raw.items():
        key = key.lower()
        if key in JSON_METADATA_KEYS:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------- writing


def _metadata_strings(metadata):
    """{str: str} of the metadata, JSON-encoding non-string values (ASCII, like ComfyUI)."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}


def _to_uint8(frame):
    """float [H,W,3] tensor in 0..1 -> uint8 numpy (rounded)."""
    return (frame.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()


def _quantize_codes(x, bits=8):
    """Round code values into the n-bit integer range."""
    return np.clip(np.rint(x), 0, 2**bits - 1).astype(np.uint8)


def yuv_video_frame(rgb: np.ndarray, pix_fmt: str) -> Any:
    """A PyAV frame (yuv420p or yuv444p, BT.709 limited range, tagged) of an RGB float [H,W,3] array."""
    import av

    y, cb, cr = colour.rgb_to_ycbcr(rgb, matrix="bt709", full_range=False)
    h, w = y.shape
    if pix_fmt == "yuv420p":
        cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        flat = np.concatenate([_quantize_codes(p).ravel() for p in (y, cb, cr)])
        frame = av.VideoFrame.from_ndarray(flat.reshape(h * 3 // 2, w), format="yuv420p")
    else:
        frame = av.VideoFrame.from_ndarray(np.stack([_quantize_codes(p) for p in (y, cb, cr)]), format="yuv444p")
    frame.colorspace = frame.color_primaries = frame.color_trc = colour.BT709_CODE
    frame.color_range = colour.RANGE_LIMITED
    return frame


def _median_cut_palette(pixels, colours=256):
    """Up to ``colours`` RGB uint8 entries: repeatedly split the box with the widest channel at its median."""
    boxes = [pixels]
    spans = [int((pixels.max(0).astype(int) - pixels.min(0)).max())]
    while len(boxes) < colours and max(spans) > 0:
        box = boxes.pop(int(np.argmax(spans)))
        spans.pop(int(np.argmax(spans)))
        channel = int(np.argmax(box.max(0).astype(int) - box.min(0)))
        order = np.argsort(box[:, channel], kind="stable")
        for half in (box[order[: len(box) // 2]], box[order[len(box) // 2 :]]):
            boxes.append(half)
            spans.append(int((half.max(0).astype(int) - half.min(0)).max()))
    return np.array([b.mean(0) for b in boxes]).round().astype(np.uint8)


def _nearest_entries(colours, palette):
    """Index of the nearest palette entry (squared RGB distance) for each float colour row."""
    pal = palette.astype(np.float32)
    weights, bias = -2.0 * pal.T, (pal**2).sum(1)
    out = np.empty(len(colours), np.uint8)
    for i in range(0, len(colours), 65536):
        out[i : i + 65536] = (colours[i : i + 65536] @ weights + bias).argmin(1)
    return out


def gif_palette_indices(frames_uint8: np.ndarray, max_samples: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(indices uint8 [F,H,W], palette uint8 [256,3]) - one median-cut palette for the whole clip.

    Pixels map to the nearest entry through a 6-bit-per-channel lookup table (fast for any clip);
    pixels whose colour IS a palette entry map to it exactly, so clips of <= 256 colours are lossless.
    """
    flat = frames_uint8.reshape(-1, 3)
    step = max(1, len(flat) // max_samples)
    palette = _median_cut_palette(flat[::step])
    q = (flat >> 2).astype(np.int32)
    bin_keys = (q[:, 0] << 12) | (q[:, 1] << 6) | q[:, 2]
    occupied = np.flatnonzero(np.bincount(bin_keys, minlength=1 << 18))
    centres = np.stack([occupied >> 12, (occupied >> 6) & 63, occupied & 63], axis=1).astype(np.float32) * 4 + 1.5
    lut = np.zeros(1 << 18, np.uint8)
    lut[occupied] = _nearest_entries(centres, palette)  # only the 6-bit bins the clip uses
    indices = lut[bin_keys]
    keys = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    pal_keys = (palette[:, 0].astype(np.int32) << 16) | (palette[:, 1].astype(np.int32) << 8) | palette[:, 2]
    order = np.argsort(pal_keys)
    pos = np.minimum(np.searchsorted(pal_keys[order], keys), len(order) - 1)
    exact = pal_keys[order][pos] == keys
    indices[exact] = order[pos[exact]]
    full = np.zeros((256, 3), np.uint8)
    full[: len(palette)] = palette
    return indices.reshape(frames_uint8.shape[:-1]), full


def _codec_options(fmt, crf, lossless, deterministic=False):
    """(codec name, pixel format, encoder options) for mp4/webm/gif."""
    exact = {"threads": "1", "flags": "+bitexact"} if deterministic else {}
    if fmt == "gif":
        return "gif", "pal8", exact
    if crf is None:
        crf = DEFAULT_CRF[fmt]
    if not 0 <= int(crf) <= MAX_CRF[fmt]:
        raise ValueError(f"crf for {fmt} must be in 0..{MAX_CRF[fmt]}, got {crf}")
    if fmt == "mp4":
        opts = {"qp": "0"} if lossless else {"crf": str(int(crf))}
        return "libx264", "yuv444p" if lossless else "yuv420p", {"preset": "medium", **opts, **exact}
    opts = {"lossless": "1"} if lossless else {"crf": str(int(crf)), "b": "0"}
    threading = {"threads": "1", "row-mt": "0", "flags": "+bitexact"} if deterministic else {"row-mt": "1"}
    return (
        "libvpx-vp9",
        "yuv444p" if lossless else "yuv420p",
        {"deadline": "good", "cpu-used": "4", **threading, **opts},
    )


def encode_frames(
    stream: Any, container: Any, frames: torch.Tensor, pix_fmt: str, palette: np.ndarray | None = None
) -> None:
    """Encode and mux every frame (indices for GIF, float RGB otherwise), then flush the encoder."""
    import av

    for i in range(frames.shape[0]):
        if palette is not None:
            argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette], axis=1)
            indexed: Any = (np.ascontiguousarray(frames[i]), argb)  # PyAV takes (indices, palette) for pal8
            frame = av.VideoFrame.from_ndarray(indexed, format="pal8")
        else:
            frame = yuv_video_frame(frames[i].numpy(), pix_fmt)
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _write_container(frames, tmp, fmt, fps, crf, lossless, text, odd_size, deterministic=False):
    """Encode ``frames`` into the container file ``tmp``."""
    import av

    codec, pix_fmt, options = _codec_options(fmt, crf, lossless, deterministic)
    palette = None
    if pix_fmt == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        if odd_size != "pad":
            raise ValueError(
                f"{fmt} (yuv420p) needs even width and height, got {frames.shape[2]}x{frames.shape[1]}; "
                "use odd_size='pad' or resize the frames"
            )
        frames = pad_to_even(frames)
    if pix_fmt == "pal8":
        frames, palette = gif_palette_indices(np.stack([_to_uint8(f) for f in frames]))
    muxer = {"movflags": "use_metadata_tags"} if fmt == "mp4" else {}
    if deterministic:
        muxer["fflags"] = "+bitexact"
    container = av.open(str(tmp), "w", format=fmt, options=muxer)
    try:
        if fmt != "gif":
            for key, value in text.items():
                container.metadata[key] = value
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = pix_fmt
        if palette is None:
            cc = stream.codec_context
            cc.color_primaries = cc.color_trc = cc.colorspace = colour.BT709_CODE
            cc.color_range = colour.RANGE_LIMITED
        stream.options = options
        encode_frames(stream, container, frames, pix_fmt, palette)
    except BaseException:
        try:
            container.close()
        except Exception:  # the original error is the one worth reporting
            pass
        raise
    container.close()


def _write_png_sequence(frames, folder, fps, text):
    """Write ``frames`` as numbered PNGs (with text chunks and an fps chunk) into a new ``folder``."""
    folder.mkdir()
    chunks = {**text, "fps": repr(float(fps))}
    for i in range(frames.shape[0]):
        (folder / PNG_FRAME_PATTERN.format(i)).write_bytes(encode_png(_to_uint8(frames[i]), chunks))


def _remove(path):
    """Delete a file or folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _move_into_place(tmp, path):
    """Rename the finished ``tmp`` to ``path`` (a folder replaces an existing folder)."""
    if tmp.is_dir() and path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path}: exists and is not a folder; cannot replace it with a PNG sequence")
        old = path.with_name(temp_name(path.name)[: -len(".tmp")] + ".old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _prepare_write(frames, path, format, fps, crf, lossless, odd_size):
    """Check the arguments of a write; returns (format, frames as float RGB on the CPU)."""
    check_frames(frames)
    fmt = format or {ext: f for f, ext in FORMAT_EXTENSIONS.items() if ext}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ValueError(f"video format must be one of {FORMATS}, got {format!r} for {path}")
    if fps is None or not 0 < float(fps) <= 1000:
        raise ValueError(f"fps must be in (0, 1000], got {fps}")
    if fmt in ("gif", "png") and (crf is not None or lossless):
        raise ValueError(f"crf/lossless do not apply to {fmt} ({'always lossless' if fmt == 'png' else 'palette'})")
    if odd_size not in ("pad", "error"):
        raise ValueError(f"odd_size must be 'pad' or 'error', got {odd_size!r}")
    frames = frames.detach().to("cpu", torch.float32)
    if frames.shape[3] not in (1, 3, 4):
        raise ValueError(f"frames must have 1, 3 or 4 channels, got {frames.shape[3]}")
    if frames.shape[3] == 1:
        frames = frames.expand(-1, -1, -1, 3)
    return fmt, frames[..., :3]  # alpha is not stored


def _encode_to_temp(frames, directory, name, fmt, fps, crf, lossless, metadata, odd_size, deterministic):
    """Encode into a hidden temp file/folder in ``directory``; returns its path (removed again on failure)."""
    if deterministic is None:
        deterministic = _deterministic_default
    text = _metadata_strings(metadata)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / temp_name(name, FORMAT_EXTENSIONS[fmt])
    try:
        if fmt == "png":
            _write_png_sequence(frames, tmp, fps, text)
        else:
            _write_container(frames, tmp, fmt, float(fps), crf, lossless, text, odd_size, deterministic)
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def write_video(
    frames: torch.Tensor,
    path: "str | Path",
    *,
    format: "str | None" = None,
    fps: float = 8.0,
    crf: "int | None" = None,
    lossless: bool = False,
    metadata: "dict | None" = None,
    odd_size: str = "pad",
    overwrite: bool = True,
    deterministic: "bool | None" = None,
) -> Path:
    """Save frames [F,H,W,C] float 0..1 as mp4 / webm / gif / png sequence; returns the final Path.

    ``format`` defaults from the suffix of ``path`` (a path without a known suffix needs it). ``crf``
    (mp4 0..51, default 19; webm 0..63, default 32) is the constant-quality level; it must be None
    for gif/png. ``deterministic`` (None: the process default) asks for byte-reproducible encoding.
    See the module docstring for colour, metadata, odd sizes and the atomic write.
    """
    path = Path(path)
    fmt, frames = _prepare_write(frames, path, format, fps, crf, lossless, odd_size)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (overwrite=False)")
    tmp = _encode_to_temp(frames, path.parent, path.name, fmt, fps, crf, lossless, metadata, odd_size, deterministic)
    try:
        _move_into_place(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return path


def write_video_numbered(
    frames: torch.Tensor,
    directory: "str | Path",
    base_name: str,
    *,
    format: str,
    fps: float = 8.0,
    crf: "int | None" = None,
    lossless: bool = False,
    metadata: "dict | None" = None,
    odd_size: str = "pad",
    deterministic: "bool | None" = None,
) -> Path:
    """Like :func:`write_video`, named ``<base_name>_<n>_.<ext>`` in ``directory`` with the next free ``n``,
    claimed atomically once the file is complete (parallel writers never share or overwrite a name)."""
    directory = Path(directory)
    fmt, frames = _prepare_write(frames, directory / base_name, format, fps, crf, lossless, odd_size)
    tmp = _encode_to_temp(frames, directory, base_name, fmt, fps, crf, lossless, metadata, odd_size, deterministic)
    try:
        return claim_numbered_name(tmp, directory, base_name, FORMAT_EXTENSIONS[fmt])
    except BaseException:
        _remove(tmp)
        raise
