"""Options objects of the pipeline entry points validate themselves once and name the offending field.

Every entry point (``pipelines/generate.py``, ``pipelines/latents.py``) takes a small frozen dataclass whose
``__post_init__`` checks its fields with the helpers below. A bad value raises :class:`OptionError`, a
``ValueError`` carrying the field name, so a caller (a node, ``nodes/_errors.py``) can point at its own input.
"""

from typing import Any, Collection, Optional


class OptionError(ValueError):
    """A bad option value: ``field`` names the option, the message says what was expected."""

    def __init__(self, field: str, expected: str):
        self.field = field
        self.expected = expected
        super().__init__(f"{field}: {expected}")


def check_choice(field: str, value: Any, choices: Collection[Any]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise OptionError(field, f"one of {list(choices)}, got {value!r}")


def _interval(low: Optional[float], high: Optional[float], low_open: bool) -> str:
    """``[a, b]``, ``(a, b]``, ``>= a``, ``> a`` or ``<= b`` for a message."""
    if low is None:
        return f"<= {high}"
    if high is None:
        return f"> {low}" if low_open else f">= {low}"
    return f"in {'(' if low_open else '['}{low}, {high}]"


def check_range(
    field: str,
    value: float,
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    low_open: bool = False,
) -> None:
    """``low <= value <= high`` (``low < value`` with ``low_open``); a missing bound is not checked."""
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise OptionError(field, f"a value {_interval(low, high, low_open)}, got {value}")


def check_whole(field: str, value: float, low: int) -> None:
    """``value`` must be a whole number ``>= low``."""
    if int(value) != value or value < low:
        raise OptionError(field, f"a whole number >= {low}, got {value}")


def check_type(field: str, value: Any, kind: type, what: str) -> None:
    """``value`` must be an instance of ``kind`` (``what`` describes it for the message)."""
    if not isinstance(value, kind):
        raise OptionError(field, f"{what}, got {type(value).__name__}")
