"""The error a node raises for bad input. The executor adds the node id when it reports it."""


class NodeInputError(ValueError):
    """Bad value for one input of one node: names the node class, the input and what was expected."""

    def __init__(self, node_class: str, input_name: str, expected: str):
        self.node_class = node_class
        self.input_name = input_name
        self.expected = expected
        super().__init__(f"{node_class}: input '{input_name}': {expected}")
