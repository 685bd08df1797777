"""DynamoDB JSON (``{"N": "1"}``, ``{"M": {...}}``) to plain Python values and back."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import safe_repr

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["canonical_key", "deserialize", "deserialize_item", "serialize", "serialize_item"]

# The type tags a primary key attribute may have (DynamoDB keys are strings, numbers or
# binary); an image may hold every tag of ``deserialize``.
_KEY_TAGS = ("S", "N", "B")


class DynamoDBJSONError(ValueError):
    """A value is not valid DynamoDB JSON; the message gives its path."""


def _number(text: Any, path: str) -> Decimal:
    from decimal import Decimal, InvalidOperation

    if not isinstance(text, str):
        raise DynamoDBJSONError(
            f"{path}: {safe_repr(text):.80} is not a DynamoDB number (a string)")
    try:
        number = Decimal(text)
    except (InvalidOperation, TypeError, ValueError, ArithmeticError):
        raise DynamoDBJSONError(
            f"{path}: {safe_repr(text):.80} is not a DynamoDB number") from None
    if not number.is_finite():
        raise DynamoDBJSONError(f"{path}: {safe_repr(text):.80} is not a DynamoDB number")
    return number


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
        raise DynamoDBJSONError(
            f"{path}: expected a one-key type mapping, got {safe_repr(value):.80}")
    ((tag, inner),) = value.items()
    if tag == "S":
        if not isinstance(inner, str):
            raise DynamoDBJSONError(f"{path}: S must hold a string")
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
    if tag in ("SS", "NS", "BS"):
        if not isinstance(inner, list):
            raise DynamoDBJSONError(f"{path}: {tag} must hold a list")
        if tag == "SS":
            if not all(isinstance(v, str) for v in inner):
                raise DynamoDBJSONError(f"{path}: SS must hold strings")
            return set(inner)
        if tag == "NS":
            return {_number(v, path) for v in inner}
        return {_binary(v, path) for v in inner}
    raise DynamoDBJSONError(f"{path}: unknown DynamoDB type {safe_repr(tag)}")


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
        if tag not in _KEY_TAGS:
            raise DynamoDBJSONError(
                f"Keys.{name}: type {safe_repr(tag):.40} is not a key type (S, N or B)")
        if tag == "N":
            number = _number(inner, f"Keys.{name}")
            # DynamoDB numbers lie within 1E-130 .. 9.99E+125 in magnitude; outside it,
            # normalize() could also overflow the decimal context (decimal.Overflow).
            if number and not -130 <= number.adjusted() <= 125:
                raise DynamoDBJSONError(
                    f"Keys.{name}: {safe_repr(inner):.80} is out of DynamoDB's number range")
            inner = number.normalize()
        elif not isinstance(inner, str):
            raise DynamoDBJSONError(f"Keys.{name}: {tag} key value must be a string")
        parts.append((name, tag, inner))
    parts.sort()
    return tuple(parts)


def serialize(value: Any) -> dict[str, Any]:
    """One plain Python value to DynamoDB JSON (the inverse of ``deserialize``)."""
    import base64
    from decimal import Decimal

    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": serialize_item(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = sorted(value, key=repr)
        if all(isinstance(v, str) for v in items):
            return {"SS": items}
        if all(isinstance(v, (bytes, bytearray)) for v in items):
            return {"BS": [serialize(v)["B"] for v in items]}
        return {"NS": [str(v) for v in items]}
    raise TypeError(f"{type(value).__name__} has no DynamoDB type")


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A whole item of plain values to DynamoDB JSON."""
    return {name: serialize(value) for name, value in item.items()}
