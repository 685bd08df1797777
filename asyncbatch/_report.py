"""The outcome of a batch: compact while it runs, materialised when asked for."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from ._frozen import Frozen

if TYPE_CHECKING:
    from ._records import Record
    from ._sources import EventType
    from ._windows import Window

__all__ = ["BatchReport", "Outcome"]

# Per-record status codes, one byte each.
PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, SUNK = range(6)
_NAMES = {SUCCEEDED: "succeeded", SUNK: "succeeded", FAILED: "failed", SKIPPED: "skipped"}


class Outcome(Frozen):
    """What happened to one record.

    ``status`` is ``"succeeded"``, ``"failed"`` or ``"skipped"``. ``exception`` is the
    handler's exception (failed), the reason it never ran (skipped, a
    ``RecordSkippedError``), or for a record the failure sink accepted (``sunk``), the
    failure it was sunk for. ``attempts`` counts handler calls, ``duration`` their total
    seconds (``None`` unless the processor measures time: ``timings=True``, or any of
    retry, timeout, hooks or model), ``index`` the record's position in the event.
    """

    __slots__ = (
        "attempts",
        "duration",
        "exception",
        "identifier",
        "index",
        "record",
        "status",
        "sunk",
    )

    status: str
    record: Record
    identifier: str
    exception: Optional[BaseException]
    attempts: int
    duration: Optional[float]
    index: int
    sunk: bool

    def __init__(self, status: str, record: Record, identifier: str,
                 exception: Optional[BaseException], attempts: int,
                 duration: Optional[float], index: int, sunk: bool) -> None:
        self._set(status=status, record=record, identifier=identifier, exception=exception,
                  attempts=attempts, duration=duration, index=index, sunk=sunk)


class BatchReport:
    """Per-record outcomes of one ``process()`` call.

    ``succeeded``, ``failed`` and ``skipped`` are lists of ``Outcome`` in event order;
    every record is in exactly one of them. ``response()`` is what Lambda expects back.
    """

    __slots__ = ("_attempts", "_cache", "_durations", "_errors", "_records", "_status",
                 "_view", "elapsed", "event_type", "state", "window")

    def __init__(
        self,
        *,
        event_type: EventType,
        records: list[dict[str, Any]],
        view: type[Record],
        status: bytearray,
        errors: dict[int, BaseException],
        attempts: array[int],
        durations: Optional[array[float]],
        elapsed: float,
        window: Optional[Window] = None,
        state: Any = None,
    ) -> None:
        self.event_type = event_type
        self._records = records
        self._view = view
        self._status = status
        self._errors = errors
        self._attempts = attempts
        self._durations = durations
        self._cache: dict[str, list[Outcome]] = {}
        self.elapsed = elapsed
        self.window = window
        self.state = state

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        c = self.counts
        return (f"<BatchReport {self.event_type.value}: {c['succeeded']} succeeded, "
                f"{c['failed']} failed, {c['skipped']} skipped in {self.elapsed:.3f}s>")

    def _outcome(self, index: int) -> Outcome:
        code = self._status[index]
        record = self._view(self._records[index])
        attempts = 0 if code == SKIPPED else self._attempts[index]
        return Outcome(_NAMES[code], record, record.identifier, self._errors.get(index),
                       attempts, None if self._durations is None else self._durations[index],
                       index, code == SUNK)

    def _select(self, name: str, codes: tuple[int, ...]) -> list[Outcome]:
        found = self._cache.get(name)
        if found is None:
            status = self._status
            found = [self._outcome(i) for i in range(len(status)) if status[i] in codes]
            self._cache[name] = found
        return found

    @property
    def succeeded(self) -> list[Outcome]:
        return self._select("succeeded", (SUCCEEDED, SUNK))

    @property
    def failed(self) -> list[Outcome]:
        return self._select("failed", (FAILED,))

    @property
    def skipped(self) -> list[Outcome]:
        return self._select("skipped", (SKIPPED,))

    @property
    def sunk(self) -> list[Outcome]:
        """The succeeded records that got there by being accepted by the failure sink."""
        return [o for o in self.succeeded if o.sunk]

    def __iter__(self) -> Iterator[Outcome]:
        """Every outcome, in event order."""
        return (self._outcome(i) for i in range(len(self._status)))

    @property
    def counts(self) -> dict[str, int]:
        status = self._status
        ok = status.count(SUCCEEDED) + status.count(SUNK)
        return {"succeeded": ok, "failed": status.count(FAILED),
                "skipped": status.count(SKIPPED), "sunk": status.count(SUNK)}

    @property
    def all_failed(self) -> bool:
        """True when the batch is not empty and no record succeeded."""
        status = self._status
        return bool(status) and status.count(SUCCEEDED) + status.count(SUNK) == 0

    def failure_identifiers(self) -> list[str]:
        """Identifiers of failed and skipped records, in event order, each once."""
        out: list[str] = []
        status = self._status
        if FAILED not in status and SKIPPED not in status:
            return out
        seen: set[str] = set()
        view = self._view
        records = self._records
        for index in range(len(status)):
            if status[index] in (FAILED, SKIPPED):
                ident = view(records[index]).identifier
                if ident not in seen:
                    seen.add(ident)
                    out.append(ident)
        return out

    def response(self) -> dict[str, Any]:
        """``{"batchItemFailures": [{"itemIdentifier": ...}, ...]}``, plus ``"state"`` for
        a tumbling-window event."""
        body: dict[str, Any] = {
            "batchItemFailures": [{"itemIdentifier": i} for i in self.failure_identifiers()]
        }
        if self.window is not None:
            body["state"] = self.state
        return body

    def exceptions(self) -> list[Exception]:
        """Every failed record's exception, then each distinct skip cause once."""
        out: list[Exception] = []
        seen: set[int] = set()
        for code in (FAILED, SKIPPED):
            for index in sorted(self._errors):
                exc = self._errors[index]
                if self._status[index] == code and isinstance(exc, Exception) \
                        and id(exc) not in seen:
                    seen.add(id(exc))
                    out.append(exc)
        return out
