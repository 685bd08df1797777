"""Idempotent record handlers: a record whose key completed before succeeds without
running again.

::

    store = InMemoryIdempotencyStore()            # or aws.idempotency.DynamoDBIdempotencyStore
    processor = AsyncBatchProcessor(idempotency=Idempotency(store))

Per record, before its handler's first attempt (``BatchIdempotency.begin``):

- its key COMPLETED and has not expired: the record succeeds without running and its
  stored result is replayed;
- its key is claimed (IN PROGRESS) by an invocation still within its deadline: the
  record fails with ``IdempotencyInProgressError`` (transient: Lambda redelivers it);
- otherwise the key is claimed with a conditional write whose in-progress expiry is the
  Lambda deadline, the handler runs, and the key is marked COMPLETED with the result
  (``complete``) or the claim is deleted so a retry can run (``release``).

Cost: ``Idempotency.prepare`` looks every key of the batch up at once (the store's
``get_many``: BatchGetItem of 100 keys on DynamoDB) before anything runs, and keeps a
small LRU of keys completed in this process, so a redelivered batch of finished records
costs about one request per hundred records, or none.

The records stored are those of aws-lambda-powertools' idempotency utility (attributes
``id``, ``expiration`` (UNIX seconds), ``status`` (``INPROGRESS`` / ``COMPLETED``),
``data`` (the result as JSON text), ``validation`` (MD5 of the validated payload part),
``in_progress_expiration`` (UNIX milliseconds)); an ``id`` is
``"<key_prefix>#<md5 of the key as sorted JSON>"``, as Powertools builds it.
"""

from .._public import publish as _publish
from ._claims import BatchIdempotency, Idempotency, Replay
from ._errors import (
    IdempotencyError,
    IdempotencyInProgressError,
    IdempotencyKeyError,
    IdempotencyStoreError,
    IdempotencyValidationError,
)
from ._memory import InMemoryIdempotencyStore
from ._store import COMPLETED, IN_PROGRESS, IdempotencyItem, IdempotencyStore

__all__ = [
    "COMPLETED",
    "IN_PROGRESS",
    "BatchIdempotency",
    "Idempotency",
    "IdempotencyError",
    "IdempotencyInProgressError",
    "IdempotencyItem",
    "IdempotencyKeyError",
    "IdempotencyStore",
    "IdempotencyStoreError",
    "IdempotencyValidationError",
    "InMemoryIdempotencyStore",
    "Replay",
]

# These names are asyncbatch's (``asyncbatch.Idempotency``...): they report 'asyncbatch' as
# their module, in reprs, pickles and the error type a dead-letter message stores.
_publish(globals(), __all__, home="asyncbatch")
