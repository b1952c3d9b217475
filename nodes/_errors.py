"""The error a node raises for bad input, and the one place where a pipeline's option error becomes it.

The executor adds the node id when it reports a NodeInputError.
"""

import contextlib
from typing import Iterator, Mapping, Optional

from ..pipelines.options import OptionError


class NodeInputError(ValueError):
    """Bad value for one input of one node: names the node class, the input and what was expected."""

    def __init__(self, node_class: str, input_name: str, expected: str):
        self.node_class = node_class
        self.input_name = input_name
        self.expected = expected
        super().__init__(f"{node_class}: input '{input_name}': {expected}")


@contextlib.contextmanager
def node_inputs(node: object, widgets: Optional[Mapping[str, str]] = None) -> Iterator[None]:
    """Inside the block an :class:`~..pipelines.options.OptionError` becomes a NodeInputError of ``node`` (a node
    instance or class) naming the widget: ``widgets`` maps option field names to widget names where they differ."""
    try:
        yield
    except OptionError as e:
        node_class = node.__name__ if isinstance(node, type) else type(node).__name__
        raise NodeInputError(node_class, (widgets or {}).get(e.field, e.field), e.expected) from e
