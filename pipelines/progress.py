"""One progress hook for every long loop in the library.

Library loops call :func:`report` (step i of n, optionally a preview latent) and
:func:`check_interrupt`. The host (CLI, server, or ComfyUI) installs a sink with :func:`use_sink`
and maps it to a terminal bar, the websocket, or ComfyUI's progress bar.
"""

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Optional


class Interrupted(Exception):
    """Raised inside a loop when the user asked to stop."""


class ProgressSink:
    """Receives progress. Subclass or pass callables; the default does nothing."""

    def __init__(
        self,
        on_progress: Optional[Callable[[int, int, Any], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
    ):
        self._on_progress = on_progress
        self._should_stop = should_stop

    def progress(self, step: int, total: int, preview: Any = None) -> None:
        """Step ``step`` of ``total`` finished; ``preview`` is an optional latent ``[F,C,h,w]``."""
        if self._on_progress is not None:
            self._on_progress(step, total, preview)

    def should_stop(self) -> bool:
        """True when the running work must stop."""
        return bool(self._should_stop and self._should_stop())


_SINK = contextvars.ContextVar("framefold_progress_sink", default=ProgressSink())  # noqa: B039 (stateless sink)


@contextlib.contextmanager
def use_sink(sink: ProgressSink) -> Iterator[ProgressSink]:
    """Route progress and interrupt checks of the code inside the ``with`` block to ``sink``."""
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def current_sink() -> ProgressSink:
    """The sink progress goes to right now (to wrap it, e.g. to merge several passes into one bar)."""
    return _SINK.get()


def report(step: int, total: int, preview: Any = None) -> None:
    """Report that ``step`` of ``total`` is done, then stop if an interrupt was asked for."""
    sink = _SINK.get()
    sink.progress(step, total, preview)
    if sink.should_stop():
        raise Interrupted("interrupted by the user")


def check_interrupt() -> None:
    """Raise :class:`Interrupted` if the user asked to stop."""
    if _SINK.get().should_stop():
        raise Interrupted("interrupted by the user")
