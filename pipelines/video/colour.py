"""Explicit R'G'B' <-> Y'CbCr conversion (no reliance on swscale's defaults).

Values are gamma-encoded R'G'B' in 0..1; no transfer function is applied (video pipelines and
ComfyUI's IMAGE both work on encoded values). The matrix and range follow ITU-T H.273:

    Y' = Kr R' + Kg G' + Kb B'      Pb = (B' - Y') / (2 (1 - Kb))      Pr = (R' - Y') / (2 (1 - Kr))
    limited range, n bits:  Y = (16 + 219 Y') 2^(n-8),  Cb/Cr = (128 + 224 Pb/Pr) 2^(n-8)
    full range, n bits:     Y = (2^n - 1) Y',           Cb/Cr = (2^n - 1) Pb/Pr + 2^(n-1)

FFmpeg enum codes (AVColorSpace / AVColorRange / AVColorPrimaries / AVColorTransferCharacteristic)
are used for tagging and for reading the tags of decoded frames.
"""

from __future__ import annotations

import numpy as np

# (Kr, Kb) per matrix name.
MATRIX_COEFFICIENTS = {
    "bt709": (0.2126, 0.0722),
    "bt601": (0.299, 0.114),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}

# AVColorSpace code -> matrix name (codes absent here, e.g. 2 = unspecified, mean "untagged").
COLORSPACE_CODES = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
RANGE_LIMITED, RANGE_FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG
BT709_CODE = 1  # AVCOL_PRI_BT709 = AVCOL_TRC_BT709 = AVCOL_SPC_BT709 = 1


def default_matrix(width: int, height: int) -> str:
    """Matrix assumed for an untagged stream: BT.709 for HD and larger (>= 1280x720), BT.601 below."""
    return "bt709" if width >= 1280 or height >= 720 else "bt601"


def _coefficients(matrix):
    """(Kr, Kg, Kb) of a matrix name, with a clear error for unknown names."""
    if matrix not in MATRIX_COEFFICIENTS:
        raise ValueError(f"unknown colour matrix {matrix!r}; known: {', '.join(MATRIX_COEFFICIENTS)}")
    kr, kb = MATRIX_COEFFICIENTS[matrix]
    return kr, 1.0 - kr - kb, kb


def _range_scales(bits, full_range):
    """(luma scale, luma offset, chroma scale, chroma offset) in code values for the given range."""
    if full_range:
        top = float(2**bits - 1)
        return top, 0.0, top, float(2 ** (bits - 1))
    s = float(2 ** (bits - 8))
    return 219.0 * s, 16.0 * s, 224.0 * s, 128.0 * s


def rgb_to_ycbcr(
    rgb: np.ndarray, *, matrix: str = "bt709", full_range: bool = False, bits: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R'G'B' float [...,3] in 0..1 -> (Y, Cb, Cr) float code values (not yet rounded or subsampled)."""
    kr, kg, kb = _coefficients(matrix)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + kg * g + kb * b
    pb = (b - y) / (2.0 * (1.0 - kb))
    pr = (r - y) / (2.0 * (1.0 - kr))
    ys, yo, cs, co = _range_scales(bits, full_range)
    return y * ys + yo, pb * cs + co, pr * cs + co


def ycbcr_to_rgb(
    y: np.ndarray, cb: np.ndarray, cr: np.ndarray, *, matrix: str = "bt709", full_range: bool = False, bits: int = 8
) -> np.ndarray:
    """Code values (Y, Cb, Cr) of equal shape -> R'G'B' float32 [...,3] clipped to 0..1."""
    kr, kg, kb = _coefficients(matrix)
    ys, yo, cs, co = _range_scales(bits, full_range)
    yn = (np.asarray(y, np.float32) - yo) / ys
    pb = (np.asarray(cb, np.float32) - co) / cs
    pr = (np.asarray(cr, np.float32) - co) / cs
    r = yn + 2.0 * (1.0 - kr) * pr
    b = yn + 2.0 * (1.0 - kb) * pb
    g = (yn - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(np.float32)
