"""The Lambda function under test: an SQS handler written with asyncbatch.

Order 13 is malformed: it fails on every delivery (a poison pill). Every order whose id
ends in 1 meets a flaky payments API on its first delivery and succeeds when redelivered.
Nothing here knows about the runner: this is the file you would deploy.
"""

from __future__ import annotations

from typing import Any

import asyncbatch

processor = asyncbatch.AsyncBatchProcessor(concurrency=8, log_summary=False)

# What the function did, for the example to print (a real function would write to a DB).
charged: list[int] = []


async def charge(record: asyncbatch.SQSRecord) -> None:
    order = record.json()
    if order["id"] == 13:
        raise ValueError(f"order {order['id']} has no amount")
    if order["id"] % 10 == 1 and record.receive_count == 1:
        raise ConnectionError("payments API timed out")
    charged.append(order["id"])


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return asyncbatch.process_partial_response(event, charge, processor, context)
