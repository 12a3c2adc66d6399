"""What a spec or meta value may be: the bencode data model, checked and frozen.

bencode has byte strings, integers, lists and dictionaries with string keys. Anything
else (float, None, set, objects, non-string keys) has no encoding; ``bool`` is refused
too, because bencode.py writes True as 1 and the two would share an output ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from a_la_mode.errors import SpecValueError

RESERVED_KEYS = frozenset({"inputs", "output"})
#: bencode.py refuses to decode lists and dictionaries nested more than 100 deep; a
#: spec stays well inside that so every file we write can be read back.
MAX_DEPTH = 64

_SCALARS = (str, bytes)


def check_value(value: Any, path: str, task: str | None = None) -> None:
    """Raise SpecValueError naming ``path`` if ``value`` has no bencode form.

    >>> check_value({"env": {"RETRIES": 3}}, "tasks.blur")
    >>> check_value({"env": {"RETRIES": 0.5}}, "tasks.blur")
    Traceback (most recent call last):
    ...
    a_la_mode.errors.SpecValueError: key 'tasks.blur.env.RETRIES': float has no bencode form
    """
    # An explicit stack instead of recursion: a deeply nested spec must not hit
    # Python's recursion limit before the user gets a proper error.
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecValueError(
                f"nested deeper than {MAX_DEPTH} levels", task=task, key=where.split("[")[0]
            )
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, bool):
            raise SpecValueError(
                "bool has no bencode form distinct from int (True would equal 1); use 0 or 1",
                task=task,
                key=where,
            )
        if isinstance(item, int):
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, Mapping):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise SpecValueError(
                        f"dictionary key {k!r} is a {type(k).__name__}; keys must be str",
                        task=task,
                        key=where,
                    )
                stack.append((v, f"{where}.{k}", depth + 1))
        else:
            raise SpecValueError(f"{type(item).__name__} has no bencode form", task=task, key=where)


def check_spec(spec: Any, task: str) -> None:
    """Check a task's spec: a dictionary of bencode values without reserved keys."""
    if not isinstance(spec, Mapping):
        raise SpecValueError(f"spec must be a dictionary, not {type(spec).__name__}", task=task)
    for key in sorted(RESERVED_KEYS.intersection(spec)):
        raise SpecValueError(
            f"{key!r} is reserved: the encoder writes it", task=task, key=f"tasks.{task}.{key}"
        )
    check_value(spec, f"tasks.{task}", task)


def freeze(value: Any) -> Any:
    """A read-only deep copy: dicts become mappingproxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def freeze_owned(value: dict[str, Any]) -> Mapping[str, Any]:
    """``freeze`` for a dictionary nobody else holds: wrapped, not copied, at the top.

    The loader owns the dictionaries it decoded, so only nested containers need frozen
    copies; flat specs (the common case) cost one proxy object."""
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            value[key] = freeze(item)
    return MappingProxyType(value)


def thaw(value: Any) -> Any:
    """The plain (dict, list) form of a frozen value, as bencode.py writes it."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
