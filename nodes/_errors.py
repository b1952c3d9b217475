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
def node_inputs(
    node: object, widgets: Optional[Mapping[str, str]] = None, *, other_errors: Optional[str] = None
) -> Iterator[None]:
    """Inside the block a pipeline's ValueError becomes a NodeInputError of ``node`` (a node instance or class).

    An :class:`~..pipelines.options.OptionError` names its field: ``widgets`` maps field names to widget names where
    they differ. Any other ValueError is charged to the input ``other_errors`` when given (else it propagates).
    """
    try:
        yield
    except NodeInputError:
        raise
    except OptionError as e:
        raise NodeInputError(_class_name(node), (widgets or {}).get(e.field, e.field), e.expected) from e
    except ValueError as e:
        if other_errors is None:
            raise
        raise NodeInputError(_class_name(node), other_errors, str(e)) from e


def _class_name(node: object) -> str:
    """The node class's name from the class or an instance."""
    return node.__name__ if isinstance(node, type) else type(node).__name__
