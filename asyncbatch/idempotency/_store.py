"""What an idempotency store holds (``IdempotencyItem``, as Powertools stores it) and
the ``IdempotencyStore`` protocol a store implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional, Protocol

from .._frozen import Frozen

#: The ``status`` values, spelled as Powertools spells them.
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"


class IdempotencyItem(Frozen):
    """One stored record, attribute for attribute as Powertools stores it.

    ``key`` the ``id``; ``status`` ``"INPROGRESS"`` or ``"COMPLETED"``; ``expiration``
    UNIX seconds after which the record no longer counts; ``in_progress_expiration``
    UNIX milliseconds after which an INPROGRESS claim no longer counts (``None``: until
    ``expiration``); ``data`` the handler's result as JSON text (``None``: not stored);
    ``validation`` the MD5 hex of the validated payload part (``None``: none)."""

    __slots__ = ("data", "expiration", "in_progress_expiration", "key", "status", "validation")

    key: str
    status: str
    expiration: int
    in_progress_expiration: Optional[int]
    data: Optional[str]
    validation: Optional[str]

    def __init__(self, key: str, status: str, expiration: int,
                 in_progress_expiration: Optional[int] = None, data: Optional[str] = None,
                 validation: Optional[str] = None) -> None:
        set_ = object.__setattr__  # Frozen's _set, spelled out: one per record and step
        set_(self, "key", key)
        set_(self, "status", status)
        set_(self, "expiration", expiration)
        set_(self, "in_progress_expiration", in_progress_expiration)
        set_(self, "data", data)
        set_(self, "validation", validation)

    def claimable(self, now: float) -> bool:
        """Whether a claim may replace this record at UNIX time ``now``: it expired, or it
        is an INPROGRESS claim past its in-progress expiry (Powertools' put condition)."""
        if self.expiration < int(now):
            return True
        return (self.status == IN_PROGRESS and self.in_progress_expiration is not None
                and self.in_progress_expiration < int(now * 1000))


class IdempotencyStore(Protocol):
    """Where idempotency records live. Every method may raise; the ``Idempotency``
    retries what its retry policy calls transient."""

    def now(self) -> float:
        """The current UNIX time in seconds: the clock expiries are judged by."""
        ...

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, IdempotencyItem]:
        """The stored records of ``keys`` (distinct); absent keys are left out."""
        ...

    async def claim(self, item: IdempotencyItem) -> Optional[IdempotencyItem]:
        """Write ``item`` (INPROGRESS) if its key has no record, or the record is
        ``claimable(now())``; return ``None`` then. Otherwise write nothing and return
        the record in the way."""
        ...

    async def complete(self, item: IdempotencyItem) -> None:
        """Mark the claimed key COMPLETED: set ``status``, ``expiration``, ``data``
        (when not ``None``) and ``validation``."""
        ...

    async def release(self, claim: IdempotencyItem) -> None:
        """Delete the record of ``claim.key`` if it is still exactly this claim
        (INPROGRESS with the same expiries); otherwise leave it."""
        ...


def same_claim(current: IdempotencyItem, claim: IdempotencyItem) -> bool:
    return (current.status == IN_PROGRESS and current.expiration == claim.expiration
            and current.in_progress_expiration == claim.in_progress_expiration)
