"""In-process retries of transient failures: exponential backoff with full jitter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .._errors import ConfigurationError
from .._frozen import Frozen

if TYPE_CHECKING:
    import random

__all__ = ["Retry", "TransientError", "aws_error_code", "is_transient"]

# Error codes AWS services use for throttling and transient server trouble.
THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "SlowDown",
    "RequestThrottled", "RequestThrottledException", "LimitExceededException",
    "TransactionInProgressException", "InternalServerError", "InternalFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "KMSThrottlingException",
})
_NETWORK_ERRORS = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
    "ConnectTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
})


class TransientError(Exception):
    """Raise it (or a subclass) from a handler to ask for a retry; the default retry
    predicate treats it as transient."""


def aws_error_code(exc: BaseException) -> Optional[str]:
    """The AWS error code of a botocore ``ClientError`` (``None`` for anything else), read
    from its ``response`` without importing botocore: the one reader of it."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            code = error.get("Code")
            return code if isinstance(code, str) else None
    return None


def is_transient(exc: BaseException) -> bool:
    """The default retry predicate: ``TransientError``, timeouts, connection errors, and
    AWS throttling or 5xx errors as botocore raises them (recognised by their
    ``response``; botocore is never imported here)."""
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError)):
        return True
    if type(exc).__name__ in _NETWORK_ERRORS:
        return True
    if aws_error_code(exc) in THROTTLING_CODES:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        meta = response.get("ResponseMetadata")
        status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
    return False


Predicate = Callable[[BaseException], bool]


def _exception_types(value: Any) -> bool:
    if isinstance(value, type):
        return issubclass(value, BaseException)
    return isinstance(value, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value)


class Retry(Frozen):
    """How transient failures are retried.

    ``attempts`` counts every call, the first included (``attempts=1``: no retry).
    ``on`` says what is transient: exception types, a predicate, or ``None`` for
    ``is_transient``. The wait before retry ``n`` (1-based) is uniform in
    ``[0, min(cap, base * 2 ** (n - 1))]`` (full jitter); a retry whose wait would pass the
    Lambda deadline is not made. ``seed`` makes the jitter repeatable.
    """

    __slots__ = ("_predicate", "_rng", "attempts", "base", "cap", "on", "seed")

    attempts: int
    on: Union[type[BaseException], tuple[type[BaseException], ...], Predicate, None]
    base: float
    cap: float
    seed: Union[int, None]
    _predicate: Predicate
    _rng: random.Random

    def __init__(
        self,
        attempts: int = 3,
        on: Union[type[BaseException], tuple[type[BaseException], ...], Predicate, None] = None,
        base: float = 0.05,
        cap: float = 2.0,
        seed: Union[int, None] = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(
                f"Retry(attempts={attempts!r}): attempts must be a whole number >= 1"
            )
        for name, value in (("base", base), ("cap", cap)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"Retry({name}={value!r}): give seconds >= 0")
        spec: Any = on
        if spec is None:
            predicate: Predicate = is_transient
        elif _exception_types(spec):
            predicate = lambda exc: isinstance(exc, spec)  # noqa: E731
        elif callable(spec):
            predicate = spec
        else:
            raise ConfigurationError(
                f"Retry(on={spec!r}): give exception types, a predicate or None"
            )
        import random

        self._set(attempts=attempts, on=on, base=base, cap=cap, seed=seed,
                  _predicate=predicate, _rng=random.Random(seed))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether a failure on call number ``attempt`` (1-based) is retried."""
        return attempt < self.attempts and bool(self._predicate(exc))

    def delay(self, attempt: int) -> float:
        """The wait after call number ``attempt`` failed."""
        return self._rng.uniform(0.0, min(self.cap, self.base * (2 ** (attempt - 1))))


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["Retry", "TransientError", "is_transient"], home="asyncbatch")
del _publish
