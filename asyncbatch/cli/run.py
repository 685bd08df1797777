"""``asyncbatch run``: play Lambda's event source mapping against a real queue or stream
(or moto), invoking your handler as Lambda would, with live counters.

    asyncbatch run --sqs URL --handler app:lambda_handler --failure-visibility-timeout 0
    asyncbatch run --kinesis orders --handler app:lambda_handler --checkpoint-table ckpt

aioboto3 is imported only when the command runs, not when the CLI starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Optional

from ._common import load_callable

if TYPE_CHECKING:
    from ..runner import BatchResult, Counters, Runner, Source

__all__ = ["add_parser", "load_handler"]

_SQS_ONLY = ("max_concurrency", "wait_time", "visibility_timeout",
             "failure_visibility_timeout", "max_receive_count", "dlq")
_STREAM_ONLY = ("starting_position", "parallelization_factor", "bisect_on_error",
                "max_retry_attempts", "on_failure", "checkpoint_table", "poll_interval")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a Lambda handler against a real queue or stream, as Lambda would",
        description=(
            "Poll an SQS queue, a Kinesis stream or a DynamoDB stream and invoke a Lambda "
            "handler with batches shaped as Lambda shapes them; apply its partial batch "
            "response as the event source mapping does (delete / change visibility / "
            "dead-letter; checkpoint / retry / bisect). Ctrl-C stops gracefully, a second "
            "Ctrl-C aborts the in-flight batches (nothing is lost)."),
    )
    source = parser.add_argument_group("source (one of)")
    which = source.add_mutually_exclusive_group(required=True)
    which.add_argument("--sqs", metavar="QUEUE_URL", help="an SQS queue URL (standard or FIFO)")
    which.add_argument("--kinesis", metavar="STREAM", help="a Kinesis stream name or ARN")
    which.add_argument("--dynamodb-stream", metavar="ARN_OR_TABLE",
                       help="a DynamoDB stream ARN, or the name of a table with a stream")
    parser.add_argument("--handler", required=True, metavar="MODULE:FUNCTION",
                        help="the Lambda handler, e.g. app:lambda_handler or path/app.py:handler")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server's URL")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--batch-size", type=int,
                        help="records per invocation (default: 10 for SQS, 100 for streams)")
    parser.add_argument("--batching-window", type=float, default=0.0, metavar="SECONDS",
                        help="gather records this long before invoking (default: 0)")
    parser.add_argument("--function-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="the function timeout the handler's context counts down (30)")
    parser.add_argument("--function-name", default="asyncbatch-local")

    sqs = parser.add_argument_group("SQS")
    sqs.add_argument("--concurrency", dest="max_concurrency", type=int, default=None,
                     help="batches in flight at once (default: 1)")
    sqs.add_argument("--wait-time", type=int, default=None, metavar="SECONDS",
                     help="long-poll seconds per receive, 0..20 (default: 20)")
    sqs.add_argument("--visibility-timeout", type=int, default=None, metavar="SECONDS",
                     help="visibility timeout for received messages (default: the queue's)")
    sqs.add_argument("--failure-visibility-timeout", type=int, default=None,
                     metavar="SECONDS",
                     help="make failed messages visible again after this long; 0 redelivers "
                          "at once (default: wait for their visibility timeout, as Lambda)")
    sqs.add_argument("--max-receive-count", type=int, default=None,
                     help="move a message that fails at this receive count to the "
                          "dead-letter queue (default: leave it to the queue's RedrivePolicy)")
    sqs.add_argument("--dlq", metavar="QUEUE_URL", default=None,
                     help="dead-letter queue for --max-receive-count (default: the "
                          "RedrivePolicy's target)")

    streams = parser.add_argument_group("Kinesis and DynamoDB Streams")
    streams.add_argument("--starting-position", choices=("TRIM_HORIZON", "LATEST"),
                         default=None, help="where a shard without a checkpoint starts "
                                            "(default: TRIM_HORIZON)")
    streams.add_argument("--parallelization-factor", type=int, default=None,
                         help="batches per shard in flight, 1..10 (default: 1)")
    streams.add_argument("--bisect-on-error", action="store_true", default=None,
                         help="split a failed batch in two before retrying it")
    streams.add_argument("--max-retry-attempts", type=int, default=None,
                         help="retries before a failed batch is discarded (default: -1, "
                              "until it succeeds)")
    streams.add_argument("--on-failure", metavar="QUEUE_URL", default=None,
                         help="SQS queue receiving discarded batches' metadata")
    streams.add_argument("--checkpoint-table", metavar="TABLE", default=None,
                         help="keep checkpoints in this DynamoDB table (created if missing) "
                              "so that a restart resumes; default: in memory")
    streams.add_argument("--consumer-name", default="asyncbatch",
                         help="checkpoint namespace in --checkpoint-table")
    streams.add_argument("--poll-interval", type=float, default=None, metavar="SECONDS",
                         help="pause between reads of a caught-up shard")

    run = parser.add_argument_group("running")
    run.add_argument("--max-batches", type=int, default=None,
                     help="stop after this many invocations")
    run.add_argument("--until-empty", action="store_true",
                     help="stop once the queue or every shard has nothing left")
    run.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                     help="print the counters at most this often (default: 1)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print every batch, and log at INFO level")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only the final counters")
    parser.set_defaults(func=_main)


def load_handler(spec: str) -> Any:
    """``module:function`` or ``path/to/file.py:function`` to the callable (the current
    directory is importable, as with ``python -m``)."""
    return load_callable(spec)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return ["--" + name.replace("_", "-") for name in names
            if getattr(args, name) not in (None, False)]


def _options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _source(args: argparse.Namespace) -> Source:
    from ..runner import (
        DynamoDBCheckpointStore,
        DynamoDBStreamSource,
        KinesisSource,
        SQSSource,
    )

    common: dict[str, Any] = {"batching_window": args.batching_window}
    if args.batch_size is not None:
        common["batch_size"] = args.batch_size
    if args.sqs:
        wrong = _given(args, _STREAM_ONLY)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: for Kinesis and DynamoDB streams only")
        options = _options(args, ("max_concurrency", "wait_time", "visibility_timeout",
                                  "failure_visibility_timeout", "max_receive_count"))
        if args.dlq is not None:
            options["dead_letter_queue_url"] = args.dlq
        return SQSSource(args.sqs, **common, **options)
    wrong = _given(args, _SQS_ONLY)
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: for SQS only")
    options = _options(args, ("starting_position", "parallelization_factor",
                              "bisect_on_error", "max_retry_attempts", "on_failure",
                              "poll_interval"))
    if args.checkpoint_table:
        options["checkpoint_store"] = DynamoDBCheckpointStore(
            args.checkpoint_table, consumer=args.consumer_name,
            endpoint_url=args.endpoint_url, region_name=args.region)
    if args.kinesis:
        return KinesisSource(args.kinesis, **common, **options)
    return DynamoDBStreamSource(args.dynamodb_stream, **common, **options)


def _print_batch(result: BatchResult) -> None:
    where = result.shard_id or "queue"
    status = f"error {result.error!r}" if result.error is not None else \
        f"{len(result.succeeded)} ok, {len(result.failed)} failed"
    extra = f", {len(result.dead_lettered)} dead-lettered" if result.dead_lettered else ""
    again = f", {result.redelivered} redelivered" if result.redelivered else ""
    print(f"batch of {len(result.identifiers)} from {where}: {status}{again}{extra} "
          f"in {result.duration * 1000:.0f} ms", flush=True)


async def _report(runner: Runner, interval: float) -> None:
    import anyio

    last: Optional[Counters] = None
    started = time.monotonic()
    while True:
        await anyio.sleep(interval)
        counters = runner.counters
        if counters != last:
            elapsed = time.monotonic() - started
            rate = counters.records / elapsed if elapsed > 0 else 0.0
            print(f"[{elapsed:7.1f}s] {counters} ({rate:.0f} records/s)", flush=True)
            last = counters


def _main(args: argparse.Namespace) -> int:
    import anyio

    from .._errors import ConfigurationError
    from ..runner import Runner

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        handler = load_handler(args.handler)
        source = _source(args)
        runner = Runner(source, handler, function_timeout=args.function_timeout,
                        function_name=args.function_name, endpoint_url=args.endpoint_url,
                        region_name=args.region,
                        on_batch=_print_batch if args.verbose and not args.quiet else None)
    except (ValueError, ImportError) as exc:
        print(f"asyncbatch run: {exc}", file=sys.stderr)
        return 2

    async def main() -> Counters:
        checkpoint = getattr(source, "checkpoint_store", None)
        create = getattr(checkpoint, "create_table", None)
        if create is not None:
            await create()
        async with anyio.create_task_group() as tg:
            if not args.quiet:
                tg.start_soon(_report, runner, args.interval)
            counters = await runner.run(max_batches=args.max_batches,
                                        until_empty=args.until_empty, handle_signals=True)
            tg.cancel_scope.cancel()
        return counters

    if not args.quiet:
        print(f"asyncbatch run: {source.describe} -> {args.handler} (Ctrl-C to stop)",
              flush=True)
    try:
        counters = anyio.run(main)
    except ConfigurationError as exc:
        print(f"asyncbatch run: {exc}", file=sys.stderr)
        return 2
    print(f"stopped: {counters}", flush=True)
    return 0
