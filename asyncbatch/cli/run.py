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

from .._errors import describe
from ._common import load_callable

if TYPE_CHECKING:
    from ..runner import BatchResult, Counters, Poller, Runner

__all__ = ["add_parser", "load_handler"]

_SQS_ONLY = ("max_concurrency", "wait_time", "visibility_timeout",
             "failure_visibility_timeout", "max_receive_count", "dlq")
_STREAM_ONLY = ("starting_position", "parallelization_factor", "bisect_on_error",
                "max_retry_attempts", "on_failure", "checkpoint_table", "poll_interval")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a Lambda handler against a real queue or stream, as Lambda would",
        # one line, not argparse's 20 of every option (an error prints the usage above it;
        # --help lists the options)
        usage="%(prog)s (--sqs URL | --kinesis STREAM | --dynamodb-stream ARN) "
              "--handler MODULE:FUNCTION [options]",
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
    parser.add_argument("--batching-window", "--batch-window", type=float, default=0.0,
                        metavar="SECONDS",
                        help="gather records this long before invoking, up to --batch-size "
                             "(default: 0); SQS needs one for batches above 10")
    parser.add_argument("--function-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="the function timeout the handler's context counts down (30)")
    parser.add_argument("--function-name", default="asyncbatch-local", metavar="NAME",
                        help="the function name the handler's context reports "
                             "(default: asyncbatch-local)")

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
    run.add_argument("--failures-shown", type=int, default=5, metavar="N",
                     help="failed record identifiers listed per batch with failures "
                          "(default: 5; 0: none)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print every batch (not only those with failures), and log at "
                          "INFO level")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only the final counters (and errors)")
    parser.set_defaults(func=_main)


def load_handler(spec: str) -> Any:
    """``module:function`` or ``path/to/file.py:function`` to the callable (the current
    directory is importable, as with ``python -m``)."""
    return load_callable(spec)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [FLAGS[name] for name in names if getattr(args, name) not in (None, False)]


def _options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _source(args: argparse.Namespace) -> Poller:
    from ..runner import (
        DynamoDBCheckpointStore,
        DynamoDBStreamPoller,
        KinesisPoller,
        SQSPoller,
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
        return SQSPoller(args.sqs, **common, **options)
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
        return KinesisPoller(args.kinesis, **common, **options)
    return DynamoDBStreamPoller(args.dynamodb_stream, **common, **options)


class FailureLog(logging.Filter):
    """On the ``asyncbatch`` logger: keeps why each record failed (the engine logs a
    WARNING per failed record, ``extra={"asyncbatch": {"identifier", "error_type",
    "error"}}``), for the batch lines; with ``swallow`` those records are not printed
    again by the logging handlers."""

    def __init__(self, swallow: bool, keep: int = 10_000) -> None:
        super().__init__()
        self.swallow = swallow
        self.keep = keep
        self.errors: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        info = getattr(record, "asyncbatch", None)
        if not isinstance(info, dict) or "error_type" not in info:
            return True
        identifier = info.get("identifier")
        if isinstance(identifier, (str, int)):
            if len(self.errors) >= self.keep:
                self.errors.pop(next(iter(self.errors)))
            self.errors[str(identifier)] = f"{info['error_type']}: {info.get('error', '')}"
        return not self.swallow

    def pop(self, identifier: str) -> Optional[str]:
        return self.errors.pop(identifier, None)


def _print_batch(result: BatchResult, shown: int,
                 failures: Optional[FailureLog] = None) -> None:
    where = result.shard_id or "queue"
    status = f"error {describe(result.error)}" \
        if result.error is not None else \
        f"{len(result.succeeded)} ok, {len(result.failed)} failed"
    extra = f", {len(result.dead_lettered)} dead-lettered" if result.dead_lettered else ""
    again = f", {result.redelivered} redelivered" if result.redelivered else ""
    print(f"batch of {len(result.identifiers)} from {where}: {status}{again}{extra} "
          f"in {result.duration * 1000:.0f} ms", flush=True)
    if result.failed and shown > 0:
        why = {i: failures.pop(i) for i in result.failed} if failures is not None else {}
        for identifier in result.failed[:shown]:
            error = why.get(identifier)
            reason = f": {error[:200]}" if error else ""
            print(f"  failed: {identifier}{reason}", flush=True)
        more = len(result.failed) - shown
        if more > 0:
            print(f"  ... and {more} more failed", flush=True)


# -- errors: one line naming the problem and the fix ------------------------------------

#: keyword of the runner's API -> the flag of this command
FLAGS = {
    "queue_url": "--sqs", "batch_size": "--batch-size", "batching_window": "--batching-window",
    "function_timeout": "--function-timeout", "function_name": "--function-name",
    "max_concurrency": "--concurrency", "wait_time": "--wait-time",
    "visibility_timeout": "--visibility-timeout",
    "failure_visibility_timeout": "--failure-visibility-timeout",
    "max_receive_count": "--max-receive-count", "dead_letter_queue_url": "--dlq",
    "dlq": "--dlq", "starting_position": "--starting-position",
    "parallelization_factor": "--parallelization-factor",
    "bisect_on_error": "--bisect-on-error", "max_retry_attempts": "--max-retry-attempts",
    "on_failure": "--on-failure", "checkpoint_store": "--checkpoint-table",
    "checkpoint_table": "--checkpoint-table", "poll_interval": "--poll-interval",
    "max_batches": "--max-batches", "endpoint_url": "--endpoint-url", "region_name": "--region",
}


def flags(message: str) -> str:
    """The runner's keywords in ``message`` as this command's flags: ``batch_size=20:``
    -> ``--batch-size 20:``, ``pass visibility_timeout=,`` -> ``pass --visibility-timeout,``,
    a bare ``function_timeout`` -> ``--function-timeout``."""
    import re

    def replace(match: re.Match[str]) -> str:
        flag = FLAGS[match.group(1)]
        if match.group(2) is None:
            return flag
        return flag + (" " if match.group(3) else "")

    names = "|".join(sorted(FLAGS, key=len, reverse=True))
    return re.sub(rf"(?<![\w.-])({names})\b(=(?=([^\s,;:)]))?)?", replace, message)


def _leaves(exc: BaseException) -> list[BaseException]:
    inner_exceptions = getattr(exc, "exceptions", None)  # a (Base)ExceptionGroup
    if isinstance(inner_exceptions, tuple):
        out: list[BaseException] = []
        for inner in inner_exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def _where(args: argparse.Namespace) -> str:
    import os

    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f" at {endpoint}"
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return f" in {region}" if region else ""


def _source_flag(args: argparse.Namespace) -> str:
    if args.sqs:
        return f"--sqs {args.sqs}"
    if args.kinesis:
        return f"--kinesis {args.kinesis}"
    return f"--dynamodb-stream {args.dynamodb_stream}"


def explain(exc: BaseException, args: argparse.Namespace) -> Optional[str]:
    """One line naming what is wrong and how to fix it, or ``None`` for an error that is
    not a configuration problem (a bug: its traceback is shown)."""
    from .._errors import ConfigurationError

    if isinstance(exc, ConfigurationError):
        return flags(str(exc))
    try:
        from botocore import exceptions as aws
    except ImportError:  # pragma: no cover - the runner needs botocore
        return None
    where = _where(args)
    if isinstance(exc, aws.NoRegionError):
        return ("no AWS region configured: pass --region (e.g. --region us-east-1) or set "
                "AWS_DEFAULT_REGION")
    if isinstance(exc, (aws.NoCredentialsError, aws.PartialCredentialsError)):
        return ("no AWS credentials found: configure them (aws configure, AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); a moto server accepts any, "
                "e.g. AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
    if isinstance(exc, (aws.EndpointConnectionError, aws.ConnectTimeoutError)):
        target = getattr(exc, "kwargs", {}).get("endpoint_url") or args.endpoint_url or "AWS"
        return (f"cannot connect to {target}: is the server running and the address "
                "right? check --endpoint-url (or AWS_ENDPOINT_URL) and your network")
    if isinstance(exc, aws.ClientError):
        from .._core.retry import aws_error_code

        error = exc.response.get("Error", {})
        code = aws_error_code(exc) or ""
        text = str(error.get("Message", "")).rstrip(".")
        operation = exc.operation_name
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            queue = args.sqs if operation == "GetQueueAttributes" else "a queue it names"
            return (f"queue {queue} does not exist{where}: check the URL given to --sqs, "
                    "--dlq or --on-failure (and --endpoint-url / --region)")
        if code == "ResourceNotFoundException":
            if args.checkpoint_table and operation in ("GetItem", "PutItem", "UpdateItem"):
                return (f"checkpoint table {args.checkpoint_table} not found{where}: "
                        f"check --checkpoint-table ({text})")
            return (f"{_source_flag(args)}: not found{where} ({text}); check the name or "
                    "ARN (and --endpoint-url / --region)")
        if code in ("UnrecognizedClientException", "InvalidClientTokenId",
                    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "ExpiredTokenException", "AuthFailure"):
            return (f"AWS rejected the credentials ({code}{where}): check AWS_PROFILE or "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or refresh the session")
        if code in ("AccessDenied", "AccessDeniedException", "AuthorizationError"):
            return (f"access denied to {operation}{where}: {text}; grant that permission "
                    "to your AWS identity")
        return f"{operation} failed{where}: {code}: {text}"
    if isinstance(exc, aws.BotoCoreError):
        return f"AWS SDK error{where}: {exc}"
    return None


def _async_handler_warning(spec: str) -> str:
    """Lambda's Python runtime calls the handler and serialises what it returns: an
    ``async def`` handler returns a coroutine nobody awaits, so every invocation fails
    (and no record is processed), although this runner awaits it."""
    return (f"asyncbatch run: warning: {spec} is an async function (async def). This "
            "runner awaits it, but Lambda's Python runtime does not: it gets an un-awaited "
            "coroutine back, no record is processed and every invocation fails. Make the "
            "Lambda handler a plain def: 'def handler(event, context): return "
            "asyncbatch.process_partial_response(event, record_handler, processor, "
            "context)' (the record handler stays async def)")


def _fail(message: str) -> int:
    print(f"asyncbatch run: error: {message}", file=sys.stderr, flush=True)
    return 2


# -- what --until-empty waits for -------------------------------------------------------


def _until_empty_rule(args: argparse.Namespace) -> str:
    if args.sqs:
        wait = 20 if args.wait_time is None else args.wait_time
        back = ("at once (--failure-visibility-timeout 0)"
                if args.failure_visibility_timeout == 0 else
                f"after {args.failure_visibility_timeout} s (--failure-visibility-timeout)"
                if args.failure_visibility_timeout is not None else
                "after their visibility timeout (--failure-visibility-timeout 0: at once)")
        return (f"--until-empty: stops once no message is visible, in flight or delayed, "
                f"checked after an empty long poll of up to {wait} s (--wait-time); failed "
                f"messages count until they come back, {back}")
    return ("--until-empty: stops once every shard is read to its end with no batch "
            "pending or being retried (a failing batch is retried until it succeeds, or "
            "--max-retry-attempts)")


class _QueueWatch:
    """With ``--until-empty`` on SQS: when no batch arrives, what the queue still holds
    (one ``GetQueueAttributes`` per report interval while idle)."""

    def __init__(self, runner: Runner, args: argparse.Namespace) -> None:
        self.runner = runner
        self.args = args
        self.client: Any = None
        self.last = ""

    async def describe(self) -> Optional[str]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed", "VisibilityTimeout"]
        try:
            found = await self.client.get_queue_attributes(QueueUrl=self.args.sqs,
                                                           AttributeNames=names)
        except Exception:  # a report, never a reason to stop: the runner sees AWS errors
            return None
        attributes = found.get("Attributes", {})
        visible, hidden, delayed = (int(attributes.get(name, 0)) for name in names[:3])
        visibility = attributes.get("VisibilityTimeout", "?")
        wait = 20 if self.args.wait_time is None else self.args.wait_time
        parts = []
        if hidden:
            parts.append(f"{hidden} message(s) in flight: a failed message comes back after "
                         f"its visibility timeout ({visibility} s on this queue; "
                         "--failure-visibility-timeout 0 redelivers at once)")
        if delayed:
            parts.append(f"{delayed} delayed message(s) (DelaySeconds)")
        if visible:
            parts.append(f"{visible} visible message(s) to receive")
        if not parts:
            return f"waiting: the queue looks empty; confirming with a last long poll " \
                   f"(up to {wait} s, --wait-time)"
        return "waiting: " + "; ".join(parts)


async def _report(runner: Runner, args: argparse.Namespace) -> None:
    started = time.monotonic()
    if not (args.until_empty and args.sqs):
        await _report_loop(runner, args, None, started)
        return
    import aioboto3

    watch = _QueueWatch(runner, args)
    async with aioboto3.Session().client(
            "sqs", endpoint_url=args.endpoint_url, region_name=args.region) as client:
        watch.client = client
        await _report_loop(runner, args, watch, started)


async def _report_loop(runner: Runner, args: argparse.Namespace,
                       watch: Optional[_QueueWatch], started: float) -> None:
    import anyio

    last: Optional[Counters] = None
    while True:
        await anyio.sleep(args.interval)
        counters = runner.counters
        if counters != last:
            elapsed = time.monotonic() - started
            rate = counters.records / elapsed if elapsed > 0 else 0.0
            print(f"[{elapsed:7.1f}s] {counters} ({rate:.0f} records/s)", flush=True)
            last = counters
        elif watch is not None:
            text = await watch.describe()
            if text is not None and text != watch.last:
                print(text, flush=True)
                watch.last = text


# -- the command -----------------------------------------------------------------------


def _main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nasyncbatch run: interrupted", file=sys.stderr, flush=True)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.failures_shown < 0:
        return _fail("--failures-shown must be >= 0")
    if args.interval <= 0:
        return _fail("--interval must be above 0")
    if args.max_batches is not None and args.max_batches < 1:
        return _fail("--max-batches must be >= 1 (leave it out to run until stopped)")

    failures = FailureLog(swallow=not args.quiet)
    engine_log = logging.getLogger("asyncbatch")
    engine_log.addFilter(failures)
    try:
        return _run_with(args, failures)
    finally:
        engine_log.removeFilter(failures)


def _run_with(args: argparse.Namespace, failures: FailureLog) -> int:
    import anyio

    from ..runner import Runner

    shown = args.failures_shown

    def on_batch(result: BatchResult) -> None:
        if args.verbose or result.failed or result.error is not None:
            _print_batch(result, shown, failures)

    try:
        handler = load_handler(args.handler)
        from .._core.handlers import is_async_callable

        if is_async_callable(handler):
            print(_async_handler_warning(args.handler), file=sys.stderr, flush=True)
        source = _source(args)
        runner = Runner(source, handler, function_timeout=args.function_timeout,
                        function_name=args.function_name, endpoint_url=args.endpoint_url,
                        region_name=args.region,
                        on_batch=None if args.quiet else on_batch)
    except ValueError as exc:  # ConfigurationError included
        return _fail(flags(str(exc)))
    except ImportError as exc:
        return _fail(str(exc))

    async def main() -> Counters:
        checkpoint = getattr(source, "checkpoint_store", None)
        create = getattr(checkpoint, "create_table", None)
        if create is not None:
            await create()
        async with anyio.create_task_group() as tg:
            if not args.quiet:
                tg.start_soon(_report, runner, args)
            counters = await runner.run(max_batches=args.max_batches,
                                        until_empty=args.until_empty, handle_signals=True)
            tg.cancel_scope.cancel()
        return counters

    if not args.quiet:
        print(f"asyncbatch run: {source.describe} -> {args.handler} (Ctrl-C to stop)",
              flush=True)
        if args.until_empty:
            print(_until_empty_rule(args), flush=True)
    try:
        counters = anyio.run(main)
    except Exception as exc:  # ExceptionGroup included
        leaves = _leaves(exc)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            raise KeyboardInterrupt from None
        messages = [explain(leaf, args) for leaf in leaves]
        if not leaves or any(message is None for message in messages):
            raise
        return _fail(next(message for message in messages if message is not None))
    print(f"stopped: {counters}", flush=True)
    return 0
