"""The exceptions the fuzzer's code raises. Each carries ``fuzz``: who raised it, for
which record, so that the checks can tell a record's own failure from one it caught
from somewhere else."""

from __future__ import annotations

from typing import Any

import asyncbatch

__all__ = ["FuzzError", "FuzzTransient", "bad_exception", "make", "origins"]


class FuzzError(ValueError):
    """A permanent failure of the fuzzer's code."""


class FuzzTransient(asyncbatch.TransientError):
    """A failure the default retry predicate retries."""


class _BadStr(FuzzError):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of this exception raises")


class _BadRepr(FuzzError):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of this exception raises")


class _BadBoth(_BadStr, _BadRepr):
    pass


class _BadTransient(FuzzTransient):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of this exception raises")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of this exception raises")


_KINDS: dict[str, type[BaseException]] = {
    "fail": FuzzError, "transient": FuzzTransient, "bad_str": _BadStr, "bad_repr": _BadRepr,
    "bad_both": _BadBoth, "bad_transient": _BadTransient,
}


def make(kind: str, origin: Any) -> BaseException:
    """An exception of ``kind`` (a fault name) tagged with ``origin``."""
    exc = _KINDS[kind](f"fuzz {kind} from {origin}")
    exc.fuzz = origin  # type: ignore[attr-defined]
    return exc


def bad_exception(origin: Any, bad: bool) -> BaseException:
    """What a raising callback raises: plain, or one whose ``__str__``/``__repr__`` raise."""
    return make("bad_both" if bad else "fail", origin)


def origins(exc: BaseException) -> list[Any]:
    """The tags of the fuzzer's exceptions in ``exc`` and what it wraps (``__cause__``,
    ``original``, ``cause``): who raised what this record failed with."""
    seen = set()
    tags = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tag = getattr(current, "fuzz", None)
        if tag is not None:
            tags.append(tag)
        todo.extend([current.__cause__, getattr(current, "original", None),
                     getattr(current, "cause", None)])
    return tags
