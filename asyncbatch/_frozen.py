"""``Frozen``: immutable, slotted value objects without importing ``dataclasses``
(which pulls in ``inspect``: milliseconds on every Lambda cold start)."""

from __future__ import annotations

from typing import Any

__all__ = ["Frozen"]


class Frozen:
    """Subclasses declare ``__slots__`` (the fields) and set them in ``__init__`` through
    ``_set``; afterwards the instance cannot change. Equality, hashing and ``repr``
    follow the public fields (names without a leading underscore), as a frozen
    dataclass's do."""

    __slots__ = ()

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple(name for name in names if not name.startswith("_"))

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({parts})"
