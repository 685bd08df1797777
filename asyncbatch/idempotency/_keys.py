"""Keys, payload hashes and stored results, as Powertools computes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from .._errors import ConfigurationError


def encode(value: Any) -> Any:
    """JSON for what ``json`` does not know: Decimal as text (as Powertools' encoder),
    bytes as base64, sets sorted, pydantic models and dataclasses as dicts."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda v: json.dumps(v, default=encode, sort_keys=True))
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    fields = getattr(value, "__dataclass_fields__", None)
    if isinstance(fields, dict) and not isinstance(value, type):
        return {name: getattr(value, name) for name in fields}
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: ``json.dumps(value, default=encode, sort_keys=True)``, without a new encoder per call.
dumps = json.JSONEncoder(default=encode, sort_keys=True).encode


def md5_of(value: Any) -> str:
    """MD5 hex of ``value`` as sorted JSON: Powertools' ``_generate_hash``."""
    text = dumps(value)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def dump_result(result: Any) -> Optional[str]:
    if result is None:
        return "null"
    try:
        return dumps(result)
    except (TypeError, ValueError):
        return None


def part(spec: Union[str, Callable[[Any], Any]], what: str) -> Callable[[Any], Any]:
    """A function of the record view: ``spec`` itself, or for a dotted name
    (``"order.id"``) that path into the record's JSON payload (``view.json()``)."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec and all(spec.split(".")):
        path = spec.split(".")

        from .._sources._base import Record as View

        def lookup(view: Any) -> Any:
            # a record view's JSON payload; an item of stream()/run() as it is
            value = view.json() if isinstance(view, View) else view  # type: ignore[attr-defined]
            for name in path:
                if not isinstance(value, Mapping) or name not in value:
                    return None
                value = value[name]
            return value

        return lookup
    raise ConfigurationError(
        f"Idempotency({what}={spec!r}): give a function of the record view (for example "
        "'lambda record: record.json()[\"order_id\"]') or a dotted name into its JSON "
        "payload (for example 'order.id')")
