"""DynamoDB JSON (``{"N": "1"}``, ``{"M": {...}}``) to plain Python values and back."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["canonical_key", "deserialize", "deserialize_item"]


class DynamoDBJSONError(ValueError):
    """A value is not valid DynamoDB JSON; the message gives its path."""


def _number(text: Any, path: str) -> Decimal:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise DynamoDBJSONError(f"{path}: {text!r} is not a DynamoDB number") from None


def _binary(text: Any, path: str) -> bytes:
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    import base64

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise DynamoDBJSONError(f"{path}: binary value is not valid base64") from None


def deserialize(value: Any, path: str = "$") -> Any:
    """One DynamoDB attribute value to Python: numbers as ``Decimal``, sets as ``set``,
    binary as ``bytes``, maps and lists nested."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise DynamoDBJSONError(f"{path}: expected a one-key type mapping, got {value!r:.80}")
    ((tag, inner),) = value.items()
    if tag == "S":
        return inner
    if tag == "N":
        return _number(inner, path)
    if tag == "BOOL":
        return bool(inner)
    if tag == "NULL":
        return None
    if tag == "M":
        if not isinstance(inner, Mapping):
            raise DynamoDBJSONError(f"{path}: M must hold a mapping")
        return {k: deserialize(v, f"{path}.{k}") for k, v in inner.items()}
    if tag == "L":
        if not isinstance(inner, list):
            raise DynamoDBJSONError(f"{path}: L must hold a list")
        return [deserialize(v, f"{path}[{i}]") for i, v in enumerate(inner)]
    if tag == "B":
        return _binary(inner, path)
    if tag == "SS":
        return set(inner)
    if tag == "NS":
        return {_number(v, path) for v in inner}
    if tag == "BS":
        return {_binary(v, path) for v in inner}
    raise DynamoDBJSONError(f"{path}: unknown DynamoDB type {tag!r}")


def deserialize_item(item: Any, path: str = "$") -> dict[str, Any]:
    """A whole item (``Keys``, ``NewImage``, ``OldImage``) to a plain ``dict``."""
    if not isinstance(item, Mapping):
        raise DynamoDBJSONError(f"{path}: expected a mapping of attributes")
    return {k: deserialize(v, f"{path}.{k}") for k, v in item.items()}


def canonical_key(keys: Mapping[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    """A hashable form of an item's primary key in which attribute order and number
    spelling (``"1"`` and ``"1.0"``) do not matter.

    Raises ``DynamoDBJSONError`` for values that are not key-shaped."""
    parts = []
    for name, value in keys.items():
        if not isinstance(value, Mapping) or len(value) != 1:
            raise DynamoDBJSONError(f"Keys.{name}: expected a one-key type mapping")
        ((tag, inner),) = value.items()
        if tag == "N":
            number = _number(inner, f"Keys.{name}")
            if not number.is_finite():
                raise DynamoDBJSONError(f"Keys.{name}: {inner!r} is not a DynamoDB number")
            inner = number.normalize()
        elif not isinstance(inner, str):
            raise DynamoDBJSONError(f"Keys.{name}: {tag} key value must be a string")
        parts.append((name, tag, inner))
    parts.sort()
    return tuple(parts)
