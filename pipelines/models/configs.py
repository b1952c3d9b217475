"""The one way a model config (a frozen dataclass) becomes JSON and comes back.

Configs are stored in the ``framefold`` metadata entry of the files FrameFold writes. JSON has no tuples:
:func:`config_to_dict` writes lists, :func:`config_from_dict` turns them back into tuples and refuses
field names the config does not have, so a typo or a file from a newer version never passes silently.
"""

import dataclasses
from typing import Any, Mapping, Type, TypeVar

C = TypeVar("C")


def config_to_dict(config: Any) -> dict:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a config dataclass instance, got {type(config).__name__}")
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(cls: Type[C], data: Mapping[str, Any]) -> C:
    """A ``cls`` from :func:`config_to_dict` output; lists become tuples, unknown fields are an error."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
