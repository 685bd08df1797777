"""A partial batch response read as Lambda's event source mapping reads it. The local
runner and ``asyncbatch.testing.simulate`` both answer a handler's response with this."""

from __future__ import annotations

from collections.abc import Container, Hashable, Mapping
from typing import Any

from .._errors import AsyncBatchError, safe_repr
from .._sources import identity_key

__all__ = ["InvalidResponseError", "reported_identifiers"]


class InvalidResponseError(AsyncBatchError, ValueError):
    """A response Lambda would refuse: it then fails the whole batch."""


def reported_identifiers(response: Any, known: Container[Hashable], *,
                         error: type[InvalidResponseError] = InvalidResponseError,
                         ) -> list[Hashable]:
    """The identifiers ``response`` reports (Kafka's mappings as hashable keys, see
    ``identity_key``). ``None``, ``{}`` or an empty or null ``batchItemFailures`` is a
    complete success; anything Lambda rejects (a response that is not a mapping or not
    JSON, an item without ``itemIdentifier``, an empty, null or unknown identifier) raises
    ``error``."""
    if response is None:
        return []
    if not isinstance(response, Mapping):
        raise error(
            f"the function returned a {type(response).__name__}; return None or "
            "{'batchItemFailures': [{'itemIdentifier': ...}, ...]}")
    import json

    try:
        json.dumps(response)
    except (TypeError, ValueError) as exc:
        raise error(
            f"the response is not JSON-serialisable ({exc}): Lambda fails the invocation "
            "(Runtime.MarshalError)") from exc
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        raise error(f"batchItemFailures is a {type(failures).__name__}, not a list")
    reported: list[Hashable] = []
    for index, item in enumerate(failures):
        if not isinstance(item, Mapping) or "itemIdentifier" not in item:
            raise error(
                f"batchItemFailures[{index}] has no 'itemIdentifier': {safe_repr(item):.80}")
        ident = item["itemIdentifier"]
        if ident is None or ident == "":
            raise error(
                f"batchItemFailures[{index}].itemIdentifier is {safe_repr(ident)}: an empty or "
                "null identifier fails the whole batch")
        key = identity_key(ident)
        if key not in known:
            raise error(
                f"batchItemFailures[{index}].itemIdentifier {safe_repr(ident)} is not in the "
                "batch: Lambda fails the whole batch")
        reported.append(key)
    return reported


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["InvalidResponseError"], home="asyncbatch")
del _publish
