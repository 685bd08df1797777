"""Try a Lambda handler against redelivery, locally.

Starts moto on 127.0.0.1, creates an ``orders`` queue whose redrive policy sends a
message to ``orders-dlq`` after 3 receives, sends 30 orders, and runs ``handler.py``'s
``lambda_handler`` under ``asyncbatch.runner.Runner``, which plays Lambda's event source
mapping: it deletes what the handler reported as done, makes what it reported as failed
visible again, and lets the queue's redrive policy take the poison pill.

    python examples/redelivery/run.py

Needs ``pip install 'asyncbatch[demo]'`` (aioboto3 and moto).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio
import handler  # the Lambda function under test, beside this file (on sys.path[0])

from asyncbatch.aws.local import local_aws
from asyncbatch.runner import BatchResult, Runner, SQSPoller

ORDERS = 30


async def main() -> int:
    import aioboto3

    session = aioboto3.Session()
    async with session.client("sqs") as sqs:
        dlq_url = (await sqs.create_queue(QueueName="orders-dlq"))["QueueUrl"]
        dlq_arn = (await sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        url = (await sqs.create_queue(QueueName="orders",
                                      Attributes={"RedrivePolicy": redrive}))["QueueUrl"]
        order_of: dict[str, int] = {}
        for start in range(0, ORDERS, 10):
            sent = await sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"id": i, "amount": 10 * i})}
                for i in range(start, min(start + 10, ORDERS))])
            order_of.update({e["MessageId"]: int(e["Id"]) for e in sent["Successful"]})

    batch_number = 0

    def show(result: BatchResult) -> None:
        nonlocal batch_number
        batch_number += 1
        ids = [order_of[i] for i in result.identifiers]
        failed = [order_of[i] for i in result.failed]
        line = f"invocation {batch_number}: orders {ids}"
        if result.redelivered:
            line += f" ({result.redelivered} redelivered)"
        if result.error is not None:
            line += f"\n    -> the whole batch failed: {type(result.error).__name__}"
        else:
            line += f"\n    -> {len(ids) - len(failed)} deleted, reported failed: {failed}"
        if result.dead_lettered:
            line += (f"; {[order_of[i] for i in result.dead_lettered]} reached the "
                     "maximum receive count: SQS moves them to the DLQ")
        print(line)

    runner = Runner(
        # failure_visibility_timeout=0: failed messages come back at once (Lambda would
        # leave them invisible for the queue's visibility timeout, 30 s here).
        SQSPoller(url, batch_size=10, wait_time=1, failure_visibility_timeout=0),
        handler.lambda_handler, function_timeout=10, session=session, on_batch=show)
    with anyio.fail_after(120):
        counters = await runner.run(until_empty=True)

    async with session.client("sqs") as sqs:
        dead = (await sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)
                ).get("Messages", [])
        left = (await sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"]))
    print()
    print(f"counters: {counters}")
    twice = sorted(i for i in set(handler.charged) if handler.charged.count(i) > 1)
    print(f"charged {len(handler.charged)} times for {len(set(handler.charged))} orders; "
          f"charged twice: {twice or 'none'}")
    print(f"in the dead-letter queue: {[json.loads(m['Body'])['id'] for m in dead]}")
    print(f"left in the queue: {left['Attributes']}")
    ok = sorted(handler.charged) == [i for i in range(ORDERS) if i != 13] and len(dead) == 1
    print("every order but 13 charged exactly once, 13 dead-lettered" if ok
          else "UNEXPECTED: see above")
    return 0 if ok else 1


def run() -> Any:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    with local_aws():
        return anyio.run(main)


if __name__ == "__main__":
    sys.exit(run())
