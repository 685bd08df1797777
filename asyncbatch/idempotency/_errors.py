"""The idempotency errors: ``IdempotencyError`` and its kinds (under ``RecordError``,
see ``asyncbatch/_errors.py``)."""

from __future__ import annotations

from typing import Optional

from .._core.retry import TransientError
from .._errors import RecordError


class IdempotencyError(RecordError):
    """Why idempotency kept one record from succeeding. ``key`` is its idempotency id
    (``None`` when it could not be computed)."""

    def __init__(self, message: str, *, identifier: Optional[str] = None,
                 key: Optional[str] = None) -> None:
        super().__init__(message, identifier=identifier)
        self.key = key


class IdempotencyInProgressError(IdempotencyError, TransientError):
    """Another invocation holds a live claim on the record's key; the record is
    reported failed so that Lambda redelivers it later (transient)."""


class IdempotencyValidationError(IdempotencyError, ValueError):
    """The record's key was seen before with a different payload (the hash of the
    ``validate`` part differs from the stored one). Not retried."""


class IdempotencyKeyError(IdempotencyError, ValueError):
    """The record's idempotency key (or validated part) could not be computed: the
    ``key`` / ``validate`` function raised, returned ``None`` or a value JSON cannot
    hold. ``__cause__`` is the original error, when there is one."""


class IdempotencyStoreError(IdempotencyError):
    """The store failed to claim the record's key (after the retry policy's attempts);
    the handler did not run. ``__cause__`` is the store's error."""
