"""``EMFHooks``: one CloudWatch Embedded Metric Format line per batch.

In Lambda, a JSON line written to standard output that follows the `Embedded Metric
Format <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html>`_ becomes CloudWatch metrics with
no agent and no API call: the format Powertools' ``Metrics`` writes. No dependency.

::

    processor = AsyncBatchProcessor(hooks=EMFHooks(namespace="orders"))

writes, after every batch::

    {"_aws": {"Timestamp": 1764430000000, "CloudWatchMetrics": [{"Namespace": "orders",
      "Dimensions": [["EventSource", "FunctionName"]], "Metrics": [{"Name": "Records",
      "Unit": "Count"}, ...]}]}, "EventSource": "SQS", "FunctionName": "orders-consumer",
     "Records": 10, "Succeeded": 9, "Failed": 1, "Skipped": 0, "Retried": 2, "Sunk": 0,
     "Duration": 41.7, "DeadlineStops": 0}

The hook implements ``batch_finished`` only: the engine makes no per-record hook call
for it, and the line is built from the report's counters.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from .._core.hooks import Hooks
from .._errors import (
    ConfigurationError,
    DeadlineExceededError,
    RecordSkippedError,
    safe_repr,
)

if TYPE_CHECKING:
    from .._core.report import BatchReport

__all__ = ["METRICS", "EMFHooks"]

#: The metrics of every line: name -> CloudWatch unit.
METRICS: Mapping[str, str] = {
    "Records": "Count",
    "Succeeded": "Count",
    "Failed": "Count",
    "Skipped": "Count",
    "Retried": "Count",
    "Sunk": "Count",
    "Duration": "Milliseconds",
    "DeadlineStops": "Count",
}

_MAX_DIMENSIONS = 30  # per dimension set (EMF specification)
_MAX_NAME = 255  # a dimension name (CloudWatch Dimension.Name)
_MAX_VALUE = 1024  # a dimension value (CloudWatch Dimension.Value)
_MAX_NAMESPACE = 255  # CloudWatch PutMetricData's Namespace


class EMFHooks(Hooks):
    """Writes one CloudWatch Embedded Metric Format line per batch.

    - ``namespace``: the CloudWatch namespace (default ``"asyncbatch"``).
    - ``function_name``: the ``FunctionName`` dimension; default: the
      ``AWS_LAMBDA_FUNCTION_NAME`` environment variable Lambda sets. Without either, the
      metrics carry the ``EventSource`` dimension only.
    - ``dimensions``: more dimensions, name -> value, added to every line (at most 28).
    - ``stream``: where the lines go (default: ``sys.stdout`` at write time, which is
      what Lambda ships to CloudWatch Logs).

    CloudWatch drops a line whose namespace or dimensions it refuses, silently: the
    metrics vanish. So they are checked here, at construction (``ConfigurationError``
    saying the rule): the namespace and the dimension names are 1 to 255 printable ASCII
    characters (no control or non-ASCII character, not all blanks), not starting with
    ':'; the namespace does not start with ``AWS/`` (reserved for AWS services); a
    dimension value is 1 to 1024 such characters. The one dimension whose value comes
    at run time, ``EventSource``, is asyncbatch's own source name (always valid), so
    nothing is sanitised at run time.

    Metrics: ``Records``, ``Succeeded`` (including ``Sunk``), ``Failed``, ``Skipped``,
    ``Retried`` (handler calls beyond each record's first), ``Sunk`` (accepted by the
    failure sink), ``Duration`` (ms, the whole batch), ``DeadlineStops`` (1 when the
    Lambda deadline stopped the batch: records skipped or cancelled for it, else 0).
    """

    def __init__(
        self,
        namespace: str = "asyncbatch",
        *,
        function_name: Optional[str] = None,
        dimensions: Optional[Mapping[str, str]] = None,
        stream: Optional[IO[str]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        problem = _refused(namespace, _MAX_NAMESPACE, namespace=True)
        if problem is not None:
            raise ConfigurationError(
                f"namespace={safe_repr(namespace):.80}: CloudWatch refuses it ({problem}) "
                "and the metrics would vanish; give 1 to 255 printable ASCII characters, "
                "not starting with ':' or 'AWS/', e.g. namespace='orders'")
        from_environment = function_name is None
        if function_name is None:
            function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or None
        fixed: dict[str, str] = {}
        if function_name is not None:
            fixed["FunctionName"] = function_name
        for name, value in (dimensions or {}).items():
            if name in ("EventSource", "FunctionName") or name in METRICS:
                raise ConfigurationError(
                    f"dimensions: {name!r} is a name asyncbatch writes itself; choose "
                    "another")
            fixed[name] = value
        for name, value in fixed.items():
            problem = _refused(name, _MAX_NAME, name=True)
            if problem is None and name == "_aws":
                problem = "'_aws' holds the metadata of the line"
            if problem is not None:
                raise ConfigurationError(
                    f"dimension name {safe_repr(name):.80}: CloudWatch refuses it "
                    f"({problem}); give 1 to {_MAX_NAME} printable ASCII characters, not "
                    "starting with ':'")
            problem = _refused(value, _MAX_VALUE)
            if problem is not None:
                where = " (from AWS_LAMBDA_FUNCTION_NAME; give function_name=)" \
                    if name == "FunctionName" and from_environment else ""
                raise ConfigurationError(
                    f"dimension {name}={safe_repr(value):.80}{where}: CloudWatch refuses "
                    f"it ({problem}); give 1 to {_MAX_VALUE} printable ASCII characters, "
                    "at least one of them not a blank")
        if len(fixed) + 1 > _MAX_DIMENSIONS:
            raise ConfigurationError(
                f"dimensions: {len(fixed) + 1} dimensions with EventSource; CloudWatch "
                f"takes at most {_MAX_DIMENSIONS} per metric: give fewer")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise ConfigurationError(
                f"stream={safe_repr(stream):.80}: give a text stream (with .write)")
        if not callable(clock):
            raise ConfigurationError(
                f"clock={safe_repr(clock):.80}: give a function returning epoch seconds")
        self.namespace = namespace
        self.function_name = function_name
        self._stream = stream
        self._clock = clock
        self._dimensions = fixed

    def __repr__(self) -> str:
        return f"EMFHooks(namespace={self.namespace!r}, function_name={self.function_name!r})"

    def batch_finished(self, report: BatchReport) -> None:
        self.write(self.document(report))

    def document(self, report: BatchReport) -> dict[str, Any]:
        """The EMF document for ``report`` (as a dict; ``write`` serialises it)."""
        counts = report.counts
        return {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["EventSource", *self._dimensions]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in METRICS.items()],
                }],
            },
            "EventSource": report.event_type.value,
            **self._dimensions,
            "Records": len(report),
            "Succeeded": counts["succeeded"],
            "Failed": counts["failed"],
            "Skipped": counts["skipped"],
            "Retried": _retries(report),
            "Sunk": counts["sunk"],
            "Duration": round(report.elapsed * 1000.0, 3),
            "DeadlineStops": int(_stopped_by_deadline(report, counts)),
        }

    def write(self, document: dict[str, Any]) -> None:
        """One line, one ``write`` call (Lambda keeps a line whole as one log event)."""
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()


def _refused(text: Any, longest: int, *, name: bool = False,
             namespace: bool = False) -> Optional[str]:
    """Why CloudWatch would refuse ``text`` as a namespace, dimension name or dimension
    value (PutMetricData's and the EMF specification's rules), or ``None``: a string of 1
    to ``longest`` characters, printable ASCII only (no control or non-ASCII character),
    at least one of them not a blank; a name or namespace not starting with ':', a
    namespace not starting with 'AWS/' (reserved for AWS services)."""
    if not isinstance(text, str):
        return f"{type(text).__name__}, not a string"
    if not text.strip():
        return "empty or blank"
    if len(text) > longest:
        return f"{len(text)} characters, more than {longest}"
    for position, char in enumerate(text):
        if not " " <= char <= "~":
            kind = "a control" if char < " " or char == "\x7f" else "a non-ASCII"
            return f"{kind} character, {char!r}, at position {position}"
    if (name or namespace) and text.startswith(":"):
        return "it starts with ':'"
    if namespace and text.startswith("AWS/"):
        return "'AWS/' namespaces are reserved for AWS services"
    return None


def _stopped_by_deadline(report: BatchReport, counts: Mapping[str, int]) -> bool:
    """Whether the deadline stopped the batch (looks at failures and skips only)."""
    if counts["skipped"]:
        for outcome in report.skipped:
            exc = outcome.exception
            if isinstance(exc, RecordSkippedError) and exc.reason == "deadline":
                return True
    if counts["failed"]:
        for outcome in report.failed:
            if isinstance(outcome.exception, DeadlineExceededError):
                return True
    return False


def _retries(report: BatchReport) -> int:
    """Handler calls beyond each record's first, from the report's compact attempt counts
    at the end of the batch (no per-record hook)."""
    retries = getattr(report, "retries", None)
    if isinstance(retries, int):
        return retries
    attempts: Any = getattr(report, "_attempts", None)
    if attempts is None:  # pragma: no cover - a report without the compact array
        return sum(max(outcome.attempts - 1, 0) for outcome in report)
    if _at_most_one(attempts):  # the usual case, checked at C speed
        return 0
    # sum(max(a - 1, 0)): every record counts a - 1, and each 0 (never called) adds 1 back
    return int(sum(attempts) - len(attempts) + attempts.count(0))


def _at_most_one(attempts: Any) -> bool:
    """Whether every count is 0 or 1, on the raw bytes (``array.count`` makes an int per
    element: 20 ns a record; ``bytes.count`` is a memory scan)."""
    raw = attempts.tobytes()
    size, n = attempts.itemsize, len(attempts)
    low = 0 if sys.byteorder == "little" else size - 1
    if any(raw[i::size].count(0) != n for i in range(size) if i != low):
        return False
    low_bytes = raw[low::size]
    return bool(low_bytes.count(0) + low_bytes.count(1) == n)
