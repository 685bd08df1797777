"""Shared fixtures: the anyio backends and a real moto server over HTTP.

The Lambda context and event factories are asyncbatch.testing's (its pytest plugin gives
the ``lambda_context`` fixture)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

# A suite started in the background by a shell without job control (`cmd &` in a script)
# inherits SIGINT ignored, and passes that on to the commands the tests interrupt with
# Ctrl-C: take Python's default handler back (a child then starts with SIGINT's default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (free port), shared by the session; yields its URL.

    Tests talk to it over HTTP through aioboto3, exactly as they would to AWS."""
    from asyncbatch.aws._local import local_aws

    _moto_visible_at_once()
    with local_aws(set_environment=False) as endpoint:
        yield endpoint


def _moto_visible_at_once() -> None:
    """moto (5.x) makes a message whose visibility is changed to 0 s visible only once its
    clock, in microseconds, has moved past the change: a receive in the same microsecond
    finds it visible but still counted in flight. For a FIFO queue that reorders a group
    (the in-flight one is handed out first, its earlier messages after it), which SQS
    never does. Visible from the instant its visibility ends, as on SQS."""
    import moto.sqs.models as sqs

    def visible(message: sqs.Message) -> bool:
        return bool(sqs.unix_time_millis() >= message.visible_at)  # moto's clock

    sqs.Message.visible = property(visible)  # type: ignore[assignment,method-assign]


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint with a clean slate, fake credentials and ``AWS_ENDPOINT_URL`` set."""
    import urllib.request

    from asyncbatch.aws._local import LOCAL_ENV

    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    return moto_server


# The Lambda context is asyncbatch.testing's: its remaining time follows the running event
# loop's clock (trio's MockClock included); the ``lambda_context`` fixture comes from
# asyncbatch's pytest plugin (entry point ``pytest11``). The old name stays for the tests
# that import it from here.


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
