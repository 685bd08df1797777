"""Shared fixtures: the anyio backends, a real moto server over HTTP, a Lambda context."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (free port), shared by the session; yields its URL.

    Tests talk to it over HTTP through aioboto3, exactly as they would to AWS."""
    from asyncbatch.aws._local import local_aws

    with local_aws(set_environment=False) as endpoint:
        yield endpoint


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


class FakeLambdaContext:
    """A Lambda context whose remaining time follows the running event loop's clock
    (``anyio.current_time()``), so that trio's MockClock controls it in tests."""

    function_name = "test-function"
    aws_request_id = "test-request"

    def __init__(self, remaining_seconds: float) -> None:
        import anyio

        self._deadline = anyio.current_time() + remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        import anyio

        return max(0, int((self._deadline - anyio.current_time()) * 1000))


@pytest.fixture
def lambda_context() -> Any:
    """A factory: ``lambda_context(2.0)`` must be called inside the running loop."""
    return FakeLambdaContext


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
