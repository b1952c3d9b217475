"""Control-image preprocessors with no weights (OpenCV): IMAGE ``[F, H, W, C]`` in 0..1 -> IMAGE ``[F, H, W, 3]``.

Every function works frame by frame on a video (batch = frames) and returns float32 in 0..1 with white
structure on black, the convention of the ControlNet 1.1 edge / line / scribble models. Soft edges and
optical-flow magnitude are normalised by the maximum over the whole video (not per frame), so a still
region does not flicker in brightness between frames.
"""

from typing import Optional

import numpy as np
import torch

EDGE_METHODS = ("sobel", "scharr")


def _gray_u8(images: torch.Tensor) -> np.ndarray:
    """IMAGE ``[F, H, W, C]`` -> uint8 grey ``[F, H, W]`` (Rec. 601 luma; alpha ignored)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected an IMAGE [F, H, W, 1|3|4] in 0..1, got {shape}")
    rgb = images.detach().float().cpu().clamp(0, 1).numpy()
    grey = rgb[..., 0] if rgb.shape[-1] == 1 else rgb[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.round(grey * 255.0).astype(np.uint8)


def _to_image(maps: np.ndarray) -> torch.Tensor:
    """float ``[F, H, W]`` in 0..1 -> IMAGE ``[F, H, W, 3]`` float32."""
    out = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    return out[..., None].expand(*out.shape, 3).contiguous()


def canny(images: torch.Tensor, low: int = 100, high: int = 200) -> torch.Tensor:
    """Canny edges (hysteresis thresholds ``low`` < ``high`` on 0..255 grey): 1 on edges, 0 elsewhere."""
    import cv2

    if not 0 <= low <= high:
        raise ValueError(f"canny thresholds must satisfy 0 <= low <= high, got low={low}, high={high}")
    grey = _gray_u8(images)
    edges = np.stack([cv2.Canny(frame, int(low), int(high)) for frame in grey])
    return _to_image(edges.astype(np.float32) / 255.0)


def _gradient_magnitude(grey: np.ndarray, method: str) -> np.ndarray:
    """Per-frame gradient magnitude ``[F, H, W]`` (float32, unnormalised)."""
    import cv2

    if method not in EDGE_METHODS:
        raise ValueError(f"soft-edge method must be one of {EDGE_METHODS}, got {method!r}")
    out = np.empty(grey.shape, np.float32)
    for i, frame in enumerate(grey.astype(np.float32) / 255.0):
        if method == "sobel":
            gx, gy = cv2.Sobel(frame, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(frame, cv2.CV_32F, 0, 1, ksize=3)
        else:
            gx, gy = cv2.Scharr(frame, cv2.CV_32F, 1, 0), cv2.Scharr(frame, cv2.CV_32F, 0, 1)
        out[i] = cv2.magnitude(gx, gy)
    return out


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Divide by the maximum over the whole video (all zero stays zero)."""
    peak = float(maps.max()) if maps.size else 0.0
    return maps / peak if peak > 0 else np.zeros_like(maps)


def soft_edges(images: torch.Tensor, method: str = "sobel", blur: float = 0.0) -> torch.Tensor:
    """Soft edges: Sobel or Scharr gradient magnitude (after an optional Gaussian blur of ``blur`` px sigma)."""
    import cv2

    grey = _gray_u8(images)
    if blur > 0:
        grey = np.stack([cv2.GaussianBlur(f, (0, 0), float(blur)) for f in grey])
    return _to_image(_normalise(_gradient_magnitude(grey, method)))


def thin(binary: np.ndarray) -> np.ndarray:
    """Morphological skeleton of a uint8 0/255 image (Lantuejoul: union of erosions minus their openings)."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    skeleton = np.zeros_like(binary)
    current = binary.copy()
    while cv2.countNonZero(current):
        eroded = cv2.erode(current, kernel)
        opened = cv2.dilate(eroded, kernel)
        skeleton = cv2.bitwise_or(skeleton, cv2.subtract(current, opened))
        current = eroded
    return skeleton


def scribble(images: torch.Tensor, threshold: float = 0.25, line_width: int = 2) -> torch.Tensor:
    """Scribble lines: soft edges thresholded at ``threshold`` (0..1), thinned to a skeleton, drawn
    ``line_width`` px wide."""
    import cv2

    if not 0.0 < threshold < 1.0 or line_width < 1:
        raise ValueError(f"scribble needs 0 < threshold < 1 and line_width >= 1, got {threshold}, {line_width}")
    edges = _normalise(_gradient_magnitude(_gray_u8(images), "sobel"))
    out = np.empty(edges.shape, np.float32)
    kernel = np.ones((line_width, line_width), np.uint8)
    for i, frame in enumerate(edges):
        binary = np.where(frame >= threshold, 255, 0).astype(np.uint8)
        lines = thin(binary)
        if line_width > 1:
            lines = cv2.dilate(lines, kernel)
        out[i] = lines.astype(np.float32) / 255.0
    return _to_image(out)


def lineart(images: torch.Tensor, block_size: int = 11, offset: float = 4.0) -> torch.Tensor:
    """Line art: adaptive (local mean) threshold of the grey image; pixels darker than their neighbourhood
    mean minus ``offset`` (0..255) become white lines on black. ``block_size`` is odd, >= 3."""
    import cv2

    if block_size < 3 or block_size % 2 == 0:
        raise ValueError(f"lineart block_size must be odd and >= 3, got {block_size}")
    grey = _gray_u8(images)
    lines = [
        cv2.adaptiveThreshold(f, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, int(block_size), float(offset))
        for f in grey
    ]
    return _to_image(np.stack(lines).astype(np.float32) / 255.0)


def tile(images: torch.Tensor, downscale: float = 4.0, blur: float = 0.0) -> torch.Tensor:
    """Tile-ControlNet input: the frames downscaled by ``downscale`` (area) and back up (cubic), optionally
    blurred (``blur`` px sigma); colour is kept."""
    import cv2

    if downscale < 1.0:
        raise ValueError(f"tile downscale must be >= 1, got {downscale}")
    rgb = images[..., :3].detach().float().cpu().clamp(0, 1).numpy()
    frames, h, w = rgb.shape[:3]
    small = (max(1, round(w / downscale)), max(1, round(h / downscale)))
    out = np.empty_like(rgb)
    for i in range(frames):
        frame = cv2.resize(
            cv2.resize(rgb[i], small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_CUBIC
        )
        if blur > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), float(blur))
        out[i] = frame
    return torch.from_numpy(np.clip(out, 0.0, 1.0))


def inpaint_mask(images: torch.Tensor, mask: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Inpaint-ControlNet input: the frames with masked pixels (mask > 0.5) set to ``fill``.

    The ControlNet 1.1 inpaint model reads masked pixels as -1 (the default), outside the usual 0..1.
    ``mask`` is a MASK ``[F or 1, H, W]``.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3 or mask.shape[1:] != images.shape[1:3]:
        raise ValueError(f"inpaint mask must be a MASK [F or 1, {images.shape[1]}, {images.shape[2]}]")
    if mask.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"inpaint mask has {mask.shape[0]} frames; expected 1 or {images.shape[0]}")
    rgb = images[..., :3].detach().float().cpu().clone()
    rgb[(mask.float().cpu() > 0.5).expand(rgb.shape[:3])] = float(fill)
    return rgb


def flow_magnitude(images: torch.Tensor, levels: int = 3, window: int = 9) -> torch.Tensor:
    """Optical-flow magnitude (Farneback) between each frame and the next (the last frame repeats the one
    before it; a single frame gives zeros), normalised over the video."""
    import cv2

    grey = _gray_u8(images)
    frames = grey.shape[0]
    out = np.zeros(grey.shape, np.float32)
    for i in range(frames - 1):
        flow = cv2.calcOpticalFlowFarneback(grey[i], grey[i + 1], None, 0.5, int(levels), int(window), 3, 5, 1.1, 0)
        out[i] = cv2.magnitude(flow[..., 0], flow[..., 1])
    if frames > 1:
        out[-1] = out[-2]
    return _to_image(_normalise(out))


def silhouette(images: torch.Tensor, threshold: Optional[float] = None) -> torch.Tensor:
    """Foreground silhouette: saturated pixels (max - min of RGB above ``threshold``, default 0.35), white on
    black. Matches the procedural videos' convention (saturated object, achromatic background)."""
    rgb = images[..., :3].detach().float().cpu()
    chroma = rgb.amax(-1) - rgb.amin(-1)
    return _to_image((chroma > (0.35 if threshold is None else threshold)).float().numpy())
