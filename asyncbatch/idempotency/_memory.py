"""``InMemoryIdempotencyStore``: an ``IdempotencyStore`` in a dict."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Callable, Optional

from .._errors import ConfigurationError
from ._store import IdempotencyItem, same_claim


class InMemoryIdempotencyStore:
    """An ``IdempotencyStore`` in a dict: for tests and local runs (one process only).

    ``clock`` gives the UNIX time in seconds (default ``time.time``): inject one to
    make expiry testable. ``items`` is the dict, readable in tests; ``calls`` counts the
    calls per method."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        if not callable(clock):
            raise ConfigurationError(
                f"InMemoryIdempotencyStore(clock={clock!r}): give a function returning "
                "UNIX seconds, such as time.time")
        self._clock = clock
        self.items: dict[str, IdempotencyItem] = {}
        self.calls: dict[str, int] = {"get_many": 0, "claim": 0, "complete": 0, "release": 0}

    def now(self) -> float:
        return float(self._clock())

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, IdempotencyItem]:
        self.calls["get_many"] += 1
        items = self.items
        return {key: items[key] for key in keys if key in items}

    async def claim(self, item: IdempotencyItem) -> Optional[IdempotencyItem]:
        self.calls["claim"] += 1
        current = self.items.get(item.key)
        if current is not None and not current.claimable(self.now()):
            return current
        self.items[item.key] = item
        return None

    async def complete(self, item: IdempotencyItem) -> None:
        self.calls["complete"] += 1
        self.items[item.key] = item  # the claim's in-progress expiry and validation included

    async def release(self, claim: IdempotencyItem) -> None:
        self.calls["release"] += 1
        current = self.items.get(claim.key)
        if current is not None and same_claim(current, claim):
            del self.items[claim.key]

    def __repr__(self) -> str:
        return f"InMemoryIdempotencyStore({len(self.items)} items)"


