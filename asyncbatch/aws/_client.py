"""What the AWS integrations share: the asyncio check, the one way an aioboto3 client is
opened and closed, the AWS error code (the engine's reader, ``aws_error_code``) and a
queue URL's region. Nothing here imports aioboto3 or botocore until a client is opened."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, Optional

from .._core.retry import aws_error_code as error_code

__all__ = ["error_code", "open_client", "region_in_url", "require_asyncio"]

_REGION_IN_URL = re.compile(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def require_asyncio(what: str, error: type[Exception],
                    fix: str = "run process() on the asyncio backend") -> None:
    """``error`` unless an asyncio event loop runs this task: aioboto3 runs on asyncio only."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise error(f"{what} needs asyncio (aioboto3 runs on asyncio only); {fix}") from None


async def open_client(session: Any, service: str,
                      options: Mapping[str, Any]) -> tuple[AsyncExitStack, Any]:
    """An aioboto3 client of ``service`` made from ``session`` (default: a new
    ``aioboto3.Session()``, the standard AWS configuration) with the ``options`` that are
    not ``None``, and the stack that closes it."""
    import aioboto3

    if session is None:
        session = aioboto3.Session()
    given = {k: v for k, v in options.items() if v is not None}
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(session.client(service, **given))
    except BaseException:
        await stack.aclose()
        raise
    return stack, client


def region_in_url(url: str) -> Optional[str]:
    """The region an SQS queue URL names (``https://sqs.REGION.amazonaws.com/...``)."""
    found = _REGION_IN_URL.match(url)
    return found.group(1) if found else None
