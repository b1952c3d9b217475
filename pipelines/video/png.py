"""PNG frames with text chunks (how ComfyUI embeds ``prompt``/``workflow`` in images).

Pixels are encoded/decoded by OpenCV; the text chunks are spliced in and read out here, directly
on the chunk stream: ``tEXt`` when the value is Latin-1, ``iTXt`` (UTF-8) otherwise.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind, data):
    """One PNG chunk: length, type, data, CRC over type+data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _text_chunk(key, value):
    """A tEXt chunk if ``value`` is Latin-1, else an uncompressed iTXt chunk."""
    key_bytes = key.encode("latin-1")
    try:
        return _chunk(b"tEXt", key_bytes + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key_bytes + b"\0\0\0\0\0" + value.encode("utf-8"))


def encode_png(rgb_uint8: np.ndarray, text: dict | None = None, *, compression: int = 4) -> bytes:
    """PNG bytes of an RGB uint8 [H,W,3] image, with ``text`` {key: str} as chunks after IHDR."""
    import cv2

    ok, buf = cv2.imencode(
        ".png", np.ascontiguousarray(rgb_uint8[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, compression]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG frame")
    data = buf.tobytes()
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature + IHDR (length, type, 13 bytes, CRC)
    extra = b"".join(_text_chunk(k, v) for k, v in (text or {}).items())
    return data[:ihdr_end] + extra + data[ihdr_end:]


MAX_TEXT_BYTES = 64 * 1024 * 1024  # one decompressed text chunk (a workflow is far smaller)


def _inflate(data: bytes) -> bytes:
    """zlib-decompress a text chunk, refusing one that expands past MAX_TEXT_BYTES (a decompression bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"a compressed text chunk expands to more than {MAX_TEXT_BYTES} bytes")
    return out


def read_png_text(data: bytes) -> dict[str, str]:
    """{key: str} of the tEXt, zTXt and iTXt chunks of PNG bytes."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    out, pos = {}, len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = _inflate(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed = rest[0] == 1
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            out[key.decode("latin-1")] = (_inflate(text) if compressed else text).decode("utf-8")
        elif kind == b"IEND":
            break
    return out


def decode_png(path: str | Path) -> np.ndarray:
    """RGB float32 [H,W,3] in 0..1 of a PNG file (8- or 16-bit; alpha dropped, gray expanded)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable PNG image")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    else:
        image = image[..., 2::-1]  # BGR(A) -> RGB
    return image.astype(np.float32) / scale
