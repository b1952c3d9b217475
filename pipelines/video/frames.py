"""Frame-batch utilities on IMAGE tensors ``[F, H, W, C]`` float32 in 0..1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

RESIZE_MODES = ("stretch", "crop", "pad")
INTERPOLATIONS = ("auto", "area", "bilinear", "bicubic", "nearest")


def check_frames(frames: torch.Tensor, what: str = "frames") -> torch.Tensor:
    """Raise a clear error unless ``frames`` is a float tensor [F, H, W, C] with at least one frame."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"{what}: expected an IMAGE tensor [frames, height, width, channels], got {shape}")
    if frames.shape[0] == 0:
        raise ValueError(f"{what}: expected at least one frame, got an empty batch")
    return frames


def target_size(width: int, height: int, new_width: int, new_height: int) -> tuple[int, int]:
    """(w, h) for a resize where 0 keeps the source value, or keeps the aspect ratio if the other is set."""
    if new_width < 0 or new_height < 0:
        raise ValueError(f"resize size must be >= 0 (0 = keep), got {new_width}x{new_height}")
    if new_width == 0 and new_height == 0:
        return width, height
    if new_width == 0:
        return max(1, round(width * new_height / height)), new_height
    if new_height == 0:
        return new_width, max(1, round(height * new_width / width))
    return new_width, new_height


def _interpolate(frames, width, height, interpolation):
    """Resize [F,H,W,C] to exactly width x height (antialiased when shrinking with bilinear/bicubic)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if (frames.shape[2], frames.shape[1]) == (width, height):
        return frames
    if interpolation == "auto":  # area averaging when shrinking, bilinear when enlarging
        interpolation = "area" if width <= frames.shape[2] and height <= frames.shape[1] else "bilinear"
    x = rearrange(frames, "f h w c -> f c h w")
    kwargs = {}
    if interpolation in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": True}
    x = F.interpolate(x, size=(height, width), mode=interpolation, **kwargs)
    return rearrange(x, "f c h w -> f h w c").clamp(0.0, 1.0)


def resize_frames(
    frames: torch.Tensor, width: int = 0, height: int = 0, *, mode: str = "stretch", interpolation: str = "auto"
) -> torch.Tensor:
    """Resize frames to ``width`` x ``height`` (0 = keep / follow aspect).

    Modes when both sizes are given: ``stretch`` scales to the exact size (aspect may change);
    ``crop`` scales to cover the target keeping aspect, then centre-crops; ``pad`` scales to fit
    inside the target keeping aspect, then pads with black, centred.
    """
    check_frames(frames)
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    src_h, src_w = frames.shape[1], frames.shape[2]
    w, h = target_size(src_w, src_h, width, height)
    if mode == "stretch" or (w, h) == (src_w, src_h) or w * src_h == h * src_w:
        return _interpolate(frames, w, h, interpolation)
    cover = mode == "crop"
    scale = max(w / src_w, h / src_h) if cover else min(w / src_w, h / src_h)
    sw, sh = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    scaled = _interpolate(frames, sw, sh, interpolation)
    if cover:
        top, left = (sh - h) // 2, (sw - w) // 2
        return scaled[:, top : top + h, left : left + w, :].contiguous()
    out = frames.new_zeros((frames.shape[0], h, w, frames.shape[3]))
    top, left = (h - sh) // 2, (w - sw) // 2
    out[:, top : top + sh, left : left + sw, :] = scaled
    return out


def select_frames(frames: torch.Tensor, start: int = 0, count: int = 0, stride: int = 1) -> torch.Tensor:
    """Every ``stride``-th frame from index ``start`` (negative counts from the end), at most ``count`` (0 = all)."""
    check_frames(frames)
    n = frames.shape[0]
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if count < 0:
        raise ValueError(f"count must be >= 0 (0 = all), got {count}")
    first = start + n if start < 0 else start
    if not 0 <= first < n:
        raise ValueError(f"start {start} is outside the video's {n} frames")
    picked = frames[first::stride]
    return picked[:count] if count else picked


def concat_videos(videos: list, *, mode: str = "stretch", interpolation: str = "auto") -> torch.Tensor:
    """Frames of all ``videos`` one after another; later clips are resized to the first clip's size."""
    if not videos:
        raise ValueError("concat_videos needs at least one video")
    first = check_frames(videos[0], "video 1")
    h, w, c = first.shape[1:]
    parts = [first]
    for i, video in enumerate(videos[1:], start=2):
        check_frames(video, f"video {i}")
        if video.shape[3] != c:
            raise ValueError(f"video {i} has {video.shape[3]} channels, video 1 has {c}")
        parts.append(resize_frames(video, w, h, mode=mode, interpolation=interpolation))
    return torch.cat(parts, dim=0)


def reverse_frames(frames: torch.Tensor) -> torch.Tensor:
    """The frames in reverse order."""
    return check_frames(frames).flip(0)


def pad_to_even(frames: torch.Tensor) -> torch.Tensor:
    """Pad the last row and/or column by edge replication so height and width are even."""
    h, w = frames.shape[1], frames.shape[2]
    pad_h, pad_w = h % 2, w % 2
    if not (pad_h or pad_w):
        return frames
    x = rearrange(frames, "f h w c -> f c h w")
    x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return rearrange(x, "f c h w -> f h w c")


def video_info(frames: torch.Tensor, fps: float | None = None) -> dict:
    """{"frames", "width", "height", "channels"} (+ "fps", "seconds" when fps is given) of a frame batch."""
    check_frames(frames)
    info: dict = {
        "frames": frames.shape[0],
        "width": frames.shape[2],
        "height": frames.shape[1],
        "channels": frames.shape[3],
    }
    if fps:
        info["fps"] = float(fps)
        info["seconds"] = frames.shape[0] / float(fps)
    return info
