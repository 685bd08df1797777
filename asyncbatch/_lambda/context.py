"""A Lambda context for tests: the attributes of the Python runtime's context object, and
a remaining time that counts down on the clock of the event loop it is read in.

Nothing here imports aioboto3, anyio's backends or pytest.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable, Optional

__all__ = ["Client", "ClientContext", "CognitoIdentity", "LambdaContext"]

#: The longest a Lambda function may run (seconds): the default remaining time, so that
#: a test on a slow machine never meets a deadline it did not ask for.
MAX_TIMEOUT = 900.0


class CognitoIdentity:
    """``context.identity``: always present, both ids ``None`` unless the function was
    invoked through the AWS Mobile SDK (as in Lambda's Python runtime)."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, cognito_identity_id: Optional[str] = None,
                 cognito_identity_pool_id: Optional[str] = None) -> None:
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id

    def __repr__(self) -> str:
        return (f"CognitoIdentity(cognito_identity_id={self.cognito_identity_id!r}, "
                f"cognito_identity_pool_id={self.cognito_identity_pool_id!r})")


class Client:
    """``context.client_context.client``."""

    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name",
                 "installation_id")

    def __init__(self, installation_id: Optional[str] = None, app_title: Optional[str] = None,
                 app_version_name: Optional[str] = None,
                 app_version_code: Optional[str] = None,
                 app_package_name: Optional[str] = None) -> None:
        self.installation_id = installation_id
        self.app_title = app_title
        self.app_version_name = app_version_name
        self.app_version_code = app_version_code
        self.app_package_name = app_package_name

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Client({fields})"


class ClientContext:
    """``context.client_context``: ``client``, ``custom`` and ``env``."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, client: Optional[Client] = None, custom: Any = None,
                 env: Any = None) -> None:
        self.client = client
        self.custom = custom
        self.env = env

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientContext:
        """As the runtime builds it from the ``Lambda-Runtime-Client-Context`` header."""
        client = data.get("client")
        return cls(
            Client(**{k: client.get(k) for k in Client.__slots__})
            if isinstance(client, Mapping) else client,
            data.get("custom"), data.get("env"))

    def __repr__(self) -> str:
        return f"ClientContext(client={self.client!r}, custom={self.custom!r}, env={self.env!r})"


# -- clocks ------------------------------------------------------------------------------


def _running_clock() -> tuple[Any, Callable[[], float]]:
    """The clock of the event loop running in this thread, and an object naming it:
    ``(loop, loop.time)`` on asyncio, ``(clock, clock.current_time)`` on trio (so that
    ``trio.testing.MockClock`` drives it), ``(None, time.monotonic)`` outside a loop."""
    import sniffio

    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:  # no loop in this thread
        return None, time.monotonic
    if library == "trio":
        import trio

        clock = trio.lowlevel.current_clock()
        return clock, clock.current_time
    if library == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        return loop, loop.time
    return None, time.monotonic  # pragma: no cover - another library: the process clock


class LambdaContext:
    """The context Lambda's Python runtime passes to a handler, for tests.

    ``LambdaContext(remaining=2.0)`` has 2 seconds left when it is made, and
    ``get_remaining_time_in_millis()`` counts down from there (never below 0).

    The clock: ``clock=`` (a function returning seconds) if given; otherwise the clock of
    the event loop the context is read in (asyncio's ``loop.time()``, trio's current
    clock, so ``trio.testing.MockClock`` and other virtual clocks drive it), or
    ``time.monotonic()`` outside a loop. A context made outside a loop (a pytest fixture)
    and read inside one carries its remaining time over to the loop's clock at the first
    read.

    The attributes are those of ``awslambdaric``'s context: ``function_name``,
    ``function_version``, ``invoked_function_arn``, ``memory_limit_in_mb`` (a string, as
    the runtime reads it from the environment), ``aws_request_id`` (a fresh UUID unless
    given), ``log_group_name``, ``log_stream_name``, ``identity`` (a ``CognitoIdentity``,
    always present), ``client_context`` (``None``, or a ``ClientContext``; a dict is
    converted), ``tenant_id``, and the methods ``w3c()`` and ``log()``.
    """

    def __init__(
        self,
        remaining: float = MAX_TIMEOUT,
        *,
        function_name: str = "test-function",
        function_version: str = "$LATEST",
        memory_limit_in_mb: int = 128,
        aws_request_id: Optional[str] = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        invoked_function_arn: Optional[str] = None,
        log_group_name: Optional[str] = None,
        log_stream_name: Optional[str] = None,
        identity: Optional[CognitoIdentity] = None,
        client_context: Optional[Any] = None,
        tenant_id: Optional[str] = None,
        w3c: Optional[Mapping[str, str]] = None,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        if isinstance(remaining, bool) or not isinstance(remaining, (int, float)) \
                or remaining != remaining or remaining < 0:
            raise ValueError(
                f"remaining={remaining!r}: give the seconds the invocation has left, a "
                "number >= 0 (e.g. LambdaContext(remaining=3.0))")
        if clock is not None and not callable(clock):
            raise ValueError(f"clock={clock!r}: give a function returning seconds, or None")
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = aws_request_id if aws_request_id is not None \
            else str(uuid.uuid4())
        self.invoked_function_arn = invoked_function_arn if invoked_function_arn is not None \
            else f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.log_group_name = log_group_name if log_group_name is not None \
            else f"/aws/lambda/{function_name}"
        if log_stream_name is None:
            day = _dt.datetime.now(_dt.timezone.utc).strftime("%Y/%m/%d")
            log_stream_name = f"{day}/[{function_version}]{uuid.uuid4().hex}"
        self.log_stream_name = log_stream_name
        self.identity = identity if identity is not None else CognitoIdentity()
        if isinstance(client_context, Mapping):
            client_context = ClientContext.from_dict(client_context)
        self.client_context = client_context
        self.tenant_id = tenant_id
        self._w3c = dict(w3c or {})
        self._fixed_clock = clock
        if clock is not None:
            self._source: Any = None
            self._now: Callable[[], float] = clock
        else:
            self._source, self._now = _running_clock()
        self._deadline = self._now() + float(remaining)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation would time out (0 once past)."""
        if self._fixed_clock is None:
            source, now = _running_clock()
            if source is not self._source:
                # Read on another clock than last time: carry the remaining time over.
                left = self._deadline - self._now()
                self._source, self._now = source, now
                self._deadline = now() + left
        return max(0, int((self._deadline - self._now()) * 1000))

    def w3c(self) -> dict[str, str]:
        """The W3C trace context of the invocation (``traceparent``, ...), as given."""
        return dict(self._w3c)

    def log(self, msg: Any) -> None:
        """Write to the function's log (here: standard output), as ``context.log`` does."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (f"LambdaContext(function_name={self.function_name!r}, "
                f"aws_request_id={self.aws_request_id!r}, "
                f"remaining_ms={self.get_remaining_time_in_millis()})")
