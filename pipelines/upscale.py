"""Per-frame spatial upscaling of IMAGE videos ``[F, H, W, C]``: SR models (tiled) and weight-free resampling.

Model upscaling runs one frame at a time, so memory is flat in the frame count (apart from the output video).
Large frames are cut into tiles that overlap by ``overlap`` pixels; each tile is run with ``overlap`` extra pixels
of real context on every inner side (so the net sees what lies beyond the tile) and the overlaps are blended with
linear (feathered) weights. The tile size is chosen to fit the memory there is (:func:`choose_tile`) and checked
before anything runs (:func:`preflight`). On CUDA the net runs in fp16; on the CPU in fp32.
"""

import os
from typing import Callable, List, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from . import progress
from .models.layers import feather
from .models.upscalers import UpscaleModel

RESIZE_METHODS = ("lanczos", "bicubic", "area", "bilinear", "nearest")
TILE_CANDIDATES = (1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)
MEMORY_FRACTION = 0.5  # share of the free memory one tile may use (the rest: weights, output, other work)


class UpscaleMemoryError(MemoryError):
    """The out-of-memory pre-flight: a tile would need more memory than is available."""


# --------------------------------------------------------------------------- memory pre-flight
def estimate_tile_bytes(model: UpscaleModel, tile_h: int, tile_w: int, dtype: torch.dtype = torch.float32) -> int:
    """Rough peak activation memory of one tile (input pixels, context margins included).

    The widest maps live at output resolution (``feature_channels`` wide, ``scale**2`` pixels per input pixel;
    an upsample, a conv output and an activation alive at once: 3 of them) plus dense-block concatenations at
    input resolution (up to ~6 maps of ``feature_channels``). An over-estimate for the compact net.
    """
    per_input_pixel = model.feature_channels * (3 * model.scale * model.scale + 6)
    element = torch.finfo(dtype).bits // 8
    return int(tile_h) * int(tile_w) * per_input_pixel * element


def available_bytes(device: Union[str, torch.device]) -> int:
    """Free memory on ``device``: CUDA's free VRAM, or the OS's available RAM on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def preflight(
    model: UpscaleModel,
    tile_h: int,
    tile_w: int,
    device: Union[str, torch.device],
    dtype: torch.dtype,
    budget: Optional[int] = None,
) -> int:
    """Raise :class:`UpscaleMemoryError` when a ``tile_h`` x ``tile_w`` tile would not fit; returns its estimate."""
    need = estimate_tile_bytes(model, tile_h, tile_w, dtype)
    have = int(available_bytes(device) * MEMORY_FRACTION) if budget is None else int(budget)
    if need > have:
        raise UpscaleMemoryError(
            f"upscaling a {tile_w}x{tile_h} tile with the {model.scale}x {model.architecture} model needs about "
            f"{need / 2**20:.0f} MiB of activations, but only {have / 2**20:.0f} MiB may be used on {device}; "
            f"use a smaller tile size (or 0 to choose one automatically)"
        )
    return need


def choose_tile(
    model: UpscaleModel,
    height: int,
    width: int,
    device: Union[str, torch.device],
    dtype: torch.dtype,
    overlap: int,
    budget: Optional[int] = None,
) -> int:
    """The largest tile (0 = the whole frame) whose activations, context margins included, fit the budget."""
    have = int(available_bytes(device) * MEMORY_FRACTION) if budget is None else int(budget)
    if estimate_tile_bytes(model, height, width, dtype) <= have:
        return 0
    for tile in TILE_CANDIDATES:
        side = tile + 2 * overlap
        if tile < max(height, width) and estimate_tile_bytes(model, side, side, dtype) <= have:
            return tile
    smallest = TILE_CANDIDATES[-1] + 2 * overlap
    preflight(model, smallest, smallest, device, dtype, have)  # raises with the figures
    return TILE_CANDIDATES[-1]


# --------------------------------------------------------------------------- tiling
def tile_starts(size: int, tile: int, overlap: int, multiple: int = 1) -> List[int]:
    """Start offsets of ``tile``-long tiles overlapping by at least ``overlap`` that cover ``size``.

    Starts are multiples of ``multiple`` (``size`` and ``tile`` must be too); the last tile ends at ``size``.
    """
    if tile >= size:
        return [0]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def tiled_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> torch.Tensor:
    """Apply a spatial map ``fn`` ([N,C,h,w] -> [N,C',h*scale,w*scale]) tile by tile with feathered overlaps.

    Each tile is run with up to ``overlap`` extra input pixels of context on its inner sides, which are cropped
    from the result before blending. ``tile <= 0`` or a tile covering the input: one call. H and W of ``x``, the
    tile and the overlap should be multiples of ``multiple`` (a pixel-unshuffle factor).
    """
    n, _, height, width = x.shape
    if tile <= 0 or (tile >= height and tile >= width):
        return fn(x)
    tile = max(multiple, tile // multiple * multiple)
    overlap = max(0, min(overlap, tile // 2)) // multiple * multiple
    out = None
    weight = torch.zeros(height * scale, width * scale, device=x.device, dtype=torch.float32)
    for y0 in tile_starts(height, tile, overlap, multiple):
        for x0 in tile_starts(width, tile, overlap, multiple):
            progress.check_interrupt()
            th, tw = min(tile, height - y0), min(tile, width - x0)
            # context margins: real pixels beyond the tile, cropped off again after the call
            my0, mx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            my1, mx1 = min(height, y0 + th + overlap), min(width, x0 + tw + overlap)
            piece = fn(x[:, :, my0:my1, mx0:mx1]).float()
            oy, ox = (y0 - my0) * scale, (x0 - mx0) * scale
            piece = piece[:, :, oy : oy + th * scale, ox : ox + tw * scale]
            if out is None:
                out = torch.zeros(n, piece.shape[1], height * scale, width * scale, device=x.device)
            wy = feather(th * scale, overlap * scale, y0 > 0, y0 + th < height).to(x.device)
            wx = feather(tw * scale, overlap * scale, x0 > 0, x0 + tw < width).to(x.device)
            w = wy[:, None] * wx[None, :]
            out[:, :, y0 * scale : (y0 + th) * scale, x0 * scale : (x0 + tw) * scale] += piece * w
            weight[y0 * scale : (y0 + th) * scale, x0 * scale : (x0 + tw) * scale] += w
    assert out is not None
    return out / weight


# --------------------------------------------------------------------------- model upscaling
def inference_dtype(device: Union[str, torch.device]) -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere (the house rule for precision)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def upscale_tensor(
    model: UpscaleModel, x: torch.Tensor, *, tile: int = 0, overlap: int = 16, budget: Optional[int] = None
) -> torch.Tensor:
    """``[N, 3, H, W]`` on the model's device and dtype -> ``[N, 3, H*s, W*s]`` float32 (tiled when tile > 0).

    H and W are padded (reflect) up to the model's size multiple and the result cropped back. A tile size is
    checked against the memory budget first (:func:`preflight`).
    """
    m = model.size_multiple
    height, width = x.shape[2], x.shape[3]
    pad_h, pad_w = (-height) % m, (-width) % m
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > max(pad_h, pad_w) else "replicate")
    side_h = min(x.shape[2], tile + 2 * overlap) if tile > 0 else x.shape[2]
    side_w = min(x.shape[3], tile + 2 * overlap) if tile > 0 else x.shape[3]
    preflight(model, side_h, side_w, x.device, x.dtype, budget)
    with torch.no_grad():
        out = tiled_map(model.net, x, model.scale, tile, overlap, m).float()
    return out[:, :, : height * model.scale, : width * model.scale]


def upscale_video(
    model: UpscaleModel,
    frames: torch.Tensor,
    *,
    tile: int = 0,
    overlap: int = 16,
    device: Optional[Union[str, torch.device]] = None,
    out_scale: Optional[float] = None,
    budget: Optional[int] = None,
) -> torch.Tensor:
    """IMAGE ``[F, H, W, 3]`` -> ``[F, H*s, W*s, 3]`` float32 on the CPU, one frame at a time.

    tile: input pixels per tile, 0 = choose automatically from the free memory. overlap: blend (and context)
    width in input pixels. device: where to run (default: the model's device); fp16 there if it is CUDA.
    out_scale: final scale relative to the input, at most the model's (a smaller one is resampled with area
    averaging after the model). Progress is reported per frame.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected an IMAGE video [frames, height, width, 3], got {tuple(frames.shape)}")
    scale = float(model.scale if out_scale is None else out_scale)
    if not 0 < scale <= model.scale:
        raise ValueError(f"output scale {scale:g} must be in (0, {model.scale}] for this {model.scale}x model")
    device = torch.device(device) if device is not None else model.device
    dtype = inference_dtype(device)
    count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    if tile <= 0:
        tile = choose_tile(model, height, width, device, dtype, overlap, budget)
    out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
    out = torch.empty(count, out_h, out_w, 3, dtype=torch.float32)
    original = (model.device, model.dtype)
    model.to(device, dtype)
    try:
        for i in range(count):
            x = rearrange(frames[i : i + 1], "f h w c -> f c h w").to(device=device, dtype=dtype)
            y = upscale_tensor(model, x, tile=tile, overlap=overlap, budget=budget)
            if (y.shape[2], y.shape[3]) != (out_h, out_w):
                y = F.interpolate(y, size=(out_h, out_w), mode="area")
            out[i] = rearrange(y.clamp(0.0, 1.0), "f c h w -> f h w c")[0].cpu()
            progress.report(i + 1, count)
    finally:
        model.to(*original)
    return out


# --------------------------------------------------------------------------- weight-free resampling
def _cv2_flag(method: str) -> int:
    """OpenCV interpolation flag of a method name."""
    import cv2

    flags = {
        "lanczos": cv2.INTER_LANCZOS4,
        "bicubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
        "bilinear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
    }
    if method not in flags:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {method!r}")
    return flags[method]


def resize_video(frames: torch.Tensor, width: int, height: int, method: str = "lanczos") -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` -> ``[F, height, width, C]`` with OpenCV, frame by frame, clamped to 0..1.

    lanczos / bicubic overshoot at edges (clamped); area is the right choice for shrinking.
    """
    import cv2

    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"expected an IMAGE video [frames, height, width, channels], got {tuple(frames.shape)}")
    if width < 1 or height < 1:
        raise ValueError(f"target size must be at least 1x1, got {width}x{height}")
    flag = _cv2_flag(method)
    count, channels = frames.shape[0], frames.shape[3]
    out = torch.empty(count, height, width, channels, dtype=torch.float32)
    for i in range(count):
        frame = np.ascontiguousarray(frames[i].detach().to("cpu", torch.float32).numpy())
        resized = cv2.resize(frame, (int(width), int(height)), interpolation=flag)
        out[i] = torch.from_numpy(resized.reshape(height, width, channels)).clamp_(0.0, 1.0)
        progress.report(i + 1, count)
    return out


def resize_video_by(frames: torch.Tensor, scale: float, method: str = "lanczos") -> torch.Tensor:
    """:func:`resize_video` to ``round(H*scale) x round(W*scale)``."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    height, width = frames.shape[1], frames.shape[2]
    return resize_video(frames, max(1, round(width * scale)), max(1, round(height * scale)), method)
