"""``asyncbatch consume``: run a record handler on an SQS queue as a long-running worker
(``asyncbatch.aws.sqs.consume``), with a live line of progress and a summary at exit.

    asyncbatch consume app:handle --queue-url URL --concurrency 32

SIGTERM or Ctrl-C stops gracefully (no more receives, the running handlers get
``--grace`` seconds, what did not start is made visible again at once); a second one
aborts (the running handlers are cancelled, their messages made visible again at once).
aioboto3 is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, Optional, TextIO

from ._common import load_callable

if TYPE_CHECKING:
    from ..aws.sqs import ConsumeSummary

__all__ = ["Progress", "add_parser"]


_DESCRIPTION = """\
Run a record handler on an SQS queue as a long-running worker, with a live line of
progress and a summary at exit:

    asyncbatch consume app:handle --queue-url URL --concurrency 32

SIGTERM or Ctrl-C stops gracefully: no more receives, the running handlers get --grace
seconds, what did not start is made visible again at once. A second one aborts: the
running handlers are cancelled and their messages made visible again at once."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume", help="run a record handler on an SQS queue, as a long-running worker",
        usage="%(prog)s --queue-url URL [options] MODULE:FUNCTION",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("handler", metavar="MODULE:FUNCTION",
                        help="the record handler, e.g. app:handle or path/app.py:handle "
                             "(async def handle(record): ..., an asyncbatch.SQSRecord)")
    parser.add_argument("--queue-url", required=True, metavar="URL",
                        help="the queue's URL (standard or FIFO)")
    parser.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help="handlers running at once (default 32)")
    parser.add_argument("--processor", metavar="MODULE:NAME",
                        help="an asyncbatch.AsyncBatchProcessor to run the handler with "
                             "(its retries, timeout, sink, idempotency...), instead of "
                             "one made from --concurrency")
    parser.add_argument("--prefetch", type=int, default=10, metavar="N",
                        help="messages received ahead of the free handlers (default 10)")
    parser.add_argument("--grace", type=float, default=20.0, metavar="SECONDS",
                        help="after SIGTERM / Ctrl-C, how long running handlers may finish "
                             "before they are cancelled (default 20)")
    parser.add_argument("--wait-time", type=int, default=20, metavar="SECONDS",
                        help="long-poll seconds of a receive, 0..20 (default 20)")
    parser.add_argument("--visibility-timeout", type=int, default=None, metavar="SECONDS",
                        help="visibility timeout of received messages, renewed while they "
                             "are held (default: the queue's)")
    parser.add_argument("--failure-visibility-timeout", type=int, default=None,
                        metavar="SECONDS",
                        help="make a failed message visible again after this long; 0 at "
                             "once (default: when its visibility runs out)")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server's URL "
                                               "(default: AWS_ENDPOINT_URL, or AWS)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                        help="refresh the progress line this often (default 1)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress line: only the summary at exit (and errors)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.set_defaults(func=_main)


class Progress:
    """The live line: rewritten in place on a terminal, one line per change otherwise."""

    def __init__(self, out: TextIO, tty: Optional[bool] = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.last: Optional[ConsumeSummary] = None
        self.width = 0

    def line(self, summary: ConsumeSummary) -> str:
        last = self.last
        done = summary.received - summary.in_flight
        rate = 0.0
        if last is not None and summary.elapsed > last.elapsed:
            rate = (done - (last.received - last.in_flight)) / (summary.elapsed - last.elapsed)
        return (f"[{summary.elapsed:7.1f}s] {rate:7.1f} msg/s  {summary.in_flight} in flight, "
                f"{summary.succeeded} ok, {summary.failed} failed, {summary.released} "
                f"released, {summary.received} received")

    def __call__(self, summary: ConsumeSummary) -> None:
        if self.last is not None and summary.received == self.last.received \
                and summary.in_flight == self.last.in_flight and not self.tty:
            self.last = summary
            return  # nothing new: no line
        text = self.line(summary)
        self.last = summary
        if self.tty:
            self.out.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.out.write("\n")
            self.out.flush()


def _fail(message: str) -> int:
    print(f"asyncbatch consume: error: {message}", file=sys.stderr, flush=True)
    return 2


def _main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.interval <= 0:
        return _fail("--interval must be above 0")
    try:
        handler = load_callable(args.handler, option="MODULE:FUNCTION")
        processor = _processor(args)
    except ValueError as exc:  # ConfigurationError included
        return _fail(str(exc))
    progress = None if args.quiet else Progress(sys.stdout)
    import asyncio

    try:
        summary, aborted = asyncio.run(_consume(args, handler, processor, progress))
    except KeyboardInterrupt:  # before the worker's own handlers were installed
        print("\nasyncbatch consume: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:
        from .run import explain

        message = explain(exc, _as_run_args(args))
        if message is None:
            raise
        return _fail(message)
    finally:
        if progress is not None:
            progress.end()
    if aborted:
        print("aborted: the running handlers were cancelled and their messages made "
              f"visible again; before that: {summary}", flush=True)
        return 130
    print(f"stopped: {summary}", flush=True)
    return 0


def _processor(args: argparse.Namespace) -> Any:
    import asyncbatch

    if args.processor is None:
        return asyncbatch.AsyncBatchProcessor(
            concurrency=32 if args.concurrency is None else args.concurrency)
    if args.concurrency is not None:
        raise ValueError("--concurrency with --processor: the processor has its own "
                         "concurrency; give one of them")
    found = load_callable(args.processor, option="--processor", want_callable=False)
    if not isinstance(found, asyncbatch.AsyncBatchProcessor):
        raise ValueError(f"--processor {args.processor}: that is a {type(found).__name__}, "
                         "not an asyncbatch.AsyncBatchProcessor")
    return found


def _as_run_args(args: argparse.Namespace) -> argparse.Namespace:
    """What ``asyncbatch run``'s error explanations read, for this command's errors."""
    return argparse.Namespace(sqs=args.queue_url, kinesis=None, dynamodb_stream=None,
                              checkpoint_table=None, endpoint_url=args.endpoint_url,
                              region=args.region)


async def _consume(args: argparse.Namespace, handler: Any, processor: Any,
                   progress: Optional[Progress]) -> tuple[ConsumeSummary, bool]:
    """Run the worker until SIGTERM/SIGINT (a second one aborts); the summary, and
    whether it was aborted."""
    import asyncio
    import signal

    from ..aws.sqs import consume

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    signals = 0
    last: list[ConsumeSummary] = []

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            print(f"\nasyncbatch consume: {signal.Signals(signum).name}: stopping (the "
                  f"running handlers get {args.grace:g} s; again to abort)", file=sys.stderr,
                  flush=True)
            stop.set()
        else:
            print(f"\nasyncbatch consume: {signal.Signals(signum).name}: aborting",
                  file=sys.stderr, flush=True)
            task.cancel()

    def on_progress(summary: ConsumeSummary) -> None:
        last[:] = [summary]
        if progress is not None:
            progress(summary)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        summary = await consume(
            args.queue_url, handler, processor, stop=stop, endpoint_url=args.endpoint_url,
            region_name=args.region, wait_time=args.wait_time,
            visibility_timeout=args.visibility_timeout,
            failure_visibility_timeout=args.failure_visibility_timeout, grace=args.grace,
            prefetch=args.prefetch, on_progress=on_progress, progress_every=args.interval)
    except asyncio.CancelledError:
        if signals < 2:
            raise
        from ..aws.sqs import ConsumeSummary

        return (last[0] if last else ConsumeSummary()), True
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return summary, False
