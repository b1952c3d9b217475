"""Structured attention patterns understood by ``kernels.attention(..., pattern=...)``.

Two families, each with a string form (what workflows and node widgets carry) and an object form:

``"window:<r>"`` / ``Window(radius=r)``
    Banded self-attention along the sequence axis: query position ``i`` sees key position ``j`` only when
    ``|i - j| <= r`` (at most ``2r + 1`` keys). Meant for temporal attention over long videos, where the
    sequence axis is the frame axis. Needs ``q_len == k_len``.

``"cross_frame:<sources>[:<num_frames>]"`` / ``CrossFrame(sources, num_frames)``
    Spatial self-attention in which the queries of frame ``f`` attend to the keys/values of other frames of
    the same video instead of their own (Text2Video-Zero, sparse-causal attention). ``sources`` joins with
    ``+`` any of ``first`` (frame 0), ``previous`` (frame ``max(f-1, 0)``) and ``self`` (frame ``f``); the
    keys of the listed frames are concatenated in that order. Layout: q, k, v are ``[B*F, heads, tokens,
    head_dim]`` with the F frames of one video contiguous in the batch (batch index ``b*F + f``), which is
    the ``(b f)`` layout the UNet already uses. The frame count comes from the string suffix or from
    ``parse_pattern(pattern, num_frames=F)``.
"""

from dataclasses import dataclass

CROSS_FRAME_SOURCES = ("first", "previous", "self")


@dataclass(frozen=True)
class Window:
    """Banded attention: query ``i`` sees key ``j`` iff ``|i - j| <= radius``."""

    radius: int

    def __post_init__(self):
        if not isinstance(self.radius, int) or isinstance(self.radius, bool) or self.radius < 0:
            raise ValueError(f"attention pattern window: radius must be an int >= 0, got {self.radius!r}")


@dataclass(frozen=True)
class CrossFrame:
    """Queries of frame f attend to the keys/values of the listed source frames of the same video."""

    sources: tuple
    num_frames: int

    def __post_init__(self):
        if not self.sources:
            raise ValueError("attention pattern cross_frame: needs at least one source frame")
        for source in self.sources:
            if source not in CROSS_FRAME_SOURCES:
                raise ValueError(
                    f"attention pattern cross_frame: unknown source {source!r}; expected a '+'-joined list of "
                    f"{CROSS_FRAME_SOURCES}"
                )
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"attention pattern cross_frame: repeated source in {self.sources!r}")
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"attention pattern cross_frame: num_frames must be an int >= 1, got {self.num_frames!r}")

    def source_frames(self, frame):
        """The frame indices (within one video) whose keys the queries of ``frame`` read, in order."""
        table = {"first": 0, "previous": max(frame - 1, 0), "self": frame}
        return [table[source] for source in self.sources]


def _parse_int(text, what, pattern):
    """Parse a non-negative integer field of a pattern string, with an error naming the pattern."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"attention pattern {pattern!r}: {what} must be an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"attention pattern {pattern!r}: {what} must be >= 0, got {value}")
    return value


def parse_pattern(pattern, num_frames=None):
    """Turn a pattern string or object into ``None``, a ``Window`` or a ``CrossFrame``.

    ``num_frames`` completes a cross-frame string that carries no frame count (the UNet knows F at call
    time: ``parse_pattern(temporal_pattern, num_frames=F)``); it must agree with a count in the string.
    Strings ``""`` and ``"none"`` mean no pattern.
    """
    if pattern is None or isinstance(pattern, Window):
        return pattern
    if isinstance(pattern, CrossFrame):
        if num_frames is not None and num_frames != pattern.num_frames:
            raise ValueError(f"attention pattern {pattern!r}: num_frames={num_frames} disagrees with the pattern")
        return pattern
    if not isinstance(pattern, str):
        raise ValueError(
            f"attention pattern must be None, a string or a Window/CrossFrame, got {type(pattern).__name__}"
        )
    text = pattern.strip()
    if text in ("", "none"):
        return None
    kind, _, rest = text.partition(":")
    if kind == "window":
        return Window(_parse_int(rest, "window radius", pattern))
    if kind == "cross_frame":
        sources_text, _, frames_text = rest.partition(":")
        sources = tuple(part.strip() for part in sources_text.split("+"))
        frames = _parse_int(frames_text, "num_frames", pattern) if frames_text else None
        if frames is not None and num_frames is not None and frames != num_frames:
            raise ValueError(f"attention pattern {pattern!r}: num_frames={num_frames} disagrees with the string")
        frames = frames if frames is not None else num_frames
        if frames is None:
            raise ValueError(
                f"attention pattern {pattern!r}: cross-frame attention needs the frame count; write "
                f"'{text}:<num_frames>' or call kernels.parse_pattern(pattern, num_frames=F)"
            )
        return CrossFrame(sources, frames)
    raise ValueError(
        f"attention pattern {pattern!r} not understood; expected None, 'window:<radius>' or "
        f"'cross_frame:<first|previous|self joined by +>[:<num_frames>]'"
    )
