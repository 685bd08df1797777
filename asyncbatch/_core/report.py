"""The outcome of a batch: compact while it runs, materialised when asked for."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._sources import identity_key

if TYPE_CHECKING:
    from .._sources import EventType, Source
    from .._sources.windows import Window

__all__ = ["BatchReport", "Outcome"]

# Per-record status codes, one byte each. REPLAYED: succeeded without running, from an
# idempotency record of an earlier delivery.
PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, SUNK, REPLAYED = range(7)
_NAMES = {SUCCEEDED: "succeeded", SUNK: "succeeded", REPLAYED: "succeeded", FAILED: "failed",
          SKIPPED: "skipped"}
_OK = (SUCCEEDED, SUNK, REPLAYED)
_ROW_NAMES = {**_NAMES, SUNK: "sunk", PENDING: "skipped", RUNNING: "skipped"}


_OUTCOME_FIELDS = ("status", "record", "identifier", "exception", "attempts", "duration",
                   "index", "sunk", "result", "replayed")


class Outcome(tuple):  # type: ignore[type-arg]
    """What happened to one record.

    ``status`` is ``"succeeded"``, ``"failed"`` or ``"skipped"``. ``exception`` is the
    handler's exception (failed), the reason it never ran (skipped, a
    ``RecordSkippedError``), or for a record the failure sink accepted (``sunk``), the
    failure it was sunk for. ``attempts`` counts handler calls, ``duration`` their total
    seconds (``None`` unless the processor measures time: ``timings=True``, or any of
    retry, timeout, hooks or model), ``index`` the record's position in the event (or in
    the input of ``stream()``/``run()``). ``identifier`` is the record's itemIdentifier as
    the event held it when it arrived (an item's position for ``stream()``/``run()``).
    ``result`` is what the handler returned (``None`` otherwise); ``replayed`` is true for a
    record that succeeded without running because its idempotency key had completed
    before (``result`` is then the stored result).

    Immutable; equal to another ``Outcome`` with the same fields. (Built as a tuple, so
    that a stream of a million items pays a tenth of a microsecond per outcome.)
    """

    __slots__ = ()

    def __new__(cls, status: str, record: Any, identifier: Any,
                exception: Optional[BaseException], attempts: int, duration: Optional[float],
                index: int, sunk: bool, result: Any = None, replayed: bool = False
                ) -> Outcome:
        return tuple.__new__(cls, (status, record, identifier, exception, attempts, duration,
                                   index, sunk, result, replayed))

    status: str = property(itemgetter(0))  # type: ignore[assignment]
    record: Any = property(itemgetter(1))
    identifier: Any = property(itemgetter(2))
    exception: Optional[BaseException] = property(itemgetter(3))  # type: ignore[assignment]
    attempts: int = property(itemgetter(4))  # type: ignore[assignment]
    duration: Optional[float] = property(itemgetter(5))  # type: ignore[assignment]
    index: int = property(itemgetter(6))  # type: ignore[assignment]
    sunk: bool = property(itemgetter(7))  # type: ignore[assignment]
    result: Any = property(itemgetter(8))
    replayed: bool = property(itemgetter(9))  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False if isinstance(other, tuple) else NotImplemented
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={value!r}" for name, value in zip(_OUTCOME_FIELDS, self))
        return f"Outcome({parts})"


def _index(outcome: Outcome) -> int:
    return outcome.index


def _same(record: Any) -> Any:
    return record


#: An ``Outcome`` without going through ``__new__``'s arguments: ``make((fields...))``.
make_outcome: Any = partial(tuple.__new__, Outcome)


class BatchReport:
    """Per-record outcomes of one ``process()`` call.

    ``succeeded``, ``failed`` and ``skipped`` are lists of ``Outcome`` in event order;
    every record is in exactly one of them. ``response()`` is what Lambda expects back.
    """

    __slots__ = ("_attempts", "_cache", "_durations", "_errors", "_identifiers", "_records",
                 "_results", "_source", "_status", "_view", "elapsed", "event_type", "state",
                 "window")

    def __init__(
        self,
        *,
        event_type: EventType,
        records: list[dict[str, Any]],
        view: Callable[[Any], Any],
        status: bytearray,
        errors: dict[int, BaseException],
        attempts: dict[int, int],
        durations: Optional[array[float]],
        elapsed: float,
        window: Optional[Window] = None,
        state: Any = None,
        identifiers: Optional[list[Any]] = None,
        results: Optional[dict[int, Any]] = None,
        source: Optional[Source] = None,
    ) -> None:
        self.event_type = event_type
        self._source = source
        self._records = records
        if identifiers is None:
            identifiers = [view(raw).identifier for raw in records]
        self._identifiers = identifiers
        self._results = results if results is not None else {}
        self._view = view
        self._status = status
        self._errors = errors
        self._attempts = attempts
        self._durations = durations
        self._cache: dict[str, list[Outcome]] = {}
        self.elapsed = elapsed
        self.window = window
        self.state = state

    @classmethod
    def of_outcomes(cls, event_type: EventType, outcomes: list[Outcome],
                    elapsed: float) -> BatchReport:
        """The report of a run whose outcomes were handed back one by one (``run()``):
        one per position ``0..n-1``, in any order."""
        outcomes = sorted(outcomes, key=_index)
        n = len(outcomes)
        status = bytearray(n)
        errors: dict[int, BaseException] = {}
        attempts: dict[int, int] = {}
        results: dict[int, Any] = {}
        timed = any(o.duration is not None for o in outcomes)
        durations = array("d", bytes(8 * n)) if timed else None
        for index, outcome in enumerate(outcomes):
            name = outcome.status
            status[index] = (FAILED if name == "failed" else SKIPPED if name == "skipped"
                             else SUNK if outcome.sunk else REPLAYED if outcome.replayed
                             else SUCCEEDED)
            if outcome.exception is not None:
                errors[index] = outcome.exception
            if outcome.attempts != 1 and status[index] not in (SKIPPED, REPLAYED):
                attempts[index] = outcome.attempts
            if outcome.result is not None:
                results[index] = outcome.result
            if durations is not None and outcome.duration is not None:
                durations[index] = outcome.duration
        return cls(event_type=event_type, records=[o.record for o in outcomes],
                   view=_same, status=status, errors=errors, attempts=attempts,
                   durations=durations, elapsed=elapsed, identifiers=list(range(n)),
                   results=results)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        c = self.counts
        return (f"<BatchReport {self.event_type.value}: {c['succeeded']} succeeded, "
                f"{c['failed']} failed, {c['skipped']} skipped in {self.elapsed:.3f}s>")

    def _outcome(self, index: int) -> Outcome:
        code = self._status[index]
        record = self._view(self._records[index])
        attempts = 0 if code in (SKIPPED, REPLAYED) else self._attempts.get(index, 1)
        return Outcome(_NAMES[code], record, self._identifiers[index], self._errors.get(index),
                       attempts, None if self._durations is None else self._durations[index],
                       index, code == SUNK, self._results.get(index), code == REPLAYED)

    def _select(self, name: str, codes: tuple[int, ...]) -> list[Outcome]:
        found = self._cache.get(name)
        if found is None:
            status = self._status
            found = [self._outcome(i) for i in range(len(status)) if status[i] in codes]
            self._cache[name] = found
        return found

    @property
    def succeeded(self) -> list[Outcome]:
        return self._select("succeeded", _OK)

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

    @property
    def retries(self) -> int:
        """Handler calls beyond each record's first, over the batch."""
        return sum(calls - 1 for calls in self._attempts.values() if calls > 1)

    @property
    def replayed(self) -> list[Outcome]:
        """The succeeded records that did not run: their idempotency key completed before."""
        return [o for o in self.succeeded if o.replayed]

    def results(self) -> list[Any]:
        """Every record's handler result in event order (``None`` where it returned
        nothing, failed or never ran; a replayed record's stored result)."""
        get = self._results.get
        return [get(index) for index in range(len(self._status))]

    def __iter__(self) -> Iterator[Outcome]:
        """Every outcome, in event order."""
        return (self._outcome(i) for i in range(len(self._status)))

    @property
    def counts(self) -> dict[str, int]:
        status = self._status
        ok = status.count(SUCCEEDED) + status.count(SUNK) + status.count(REPLAYED)
        return {"succeeded": ok, "failed": status.count(FAILED),
                "skipped": status.count(SKIPPED), "sunk": status.count(SUNK),
                "replayed": status.count(REPLAYED)}

    @property
    def all_failed(self) -> bool:
        """True when the batch is not empty and no record succeeded."""
        status = self._status
        return bool(status) and (
            status.count(SUCCEEDED) + status.count(SUNK) + status.count(REPLAYED)) == 0

    def failure_identifiers(self) -> list[Any]:
        """Identifiers of failed and skipped records, in event order, each once, as the
        event held them when it arrived (whatever a handler did to its record since)."""
        out: list[Any] = []
        status = self._status
        if FAILED not in status and SKIPPED not in status:
            return out
        seen: set[Any] = set()
        identifiers = self._identifiers
        for index in range(len(status)):
            if status[index] in (FAILED, SKIPPED):
                ident = identifiers[index]
                key = identity_key(ident)
                if key not in seen:
                    seen.add(key)
                    out.append(ident)
        return out

    def response(self) -> dict[str, Any]:
        """What the function returns, as the event's source decides it: Lambda's partial
        batch response ``{"batchItemFailures": [{"itemIdentifier": ...}, ...]}`` (plus
        ``"state"`` for a tumbling-window event), or for a Firehose transformation
        Firehose's ``{"records": [...]}``."""
        source = self._source
        if source is None:
            from .._sources import ITEMS, SOURCES

            source = self._source = SOURCES.get(self.event_type, ITEMS)
        return source.response(self)

    def rows(self) -> Iterator[tuple[str, Any, Any, Any]]:
        """``(status, identifier, raw record, result)`` of every record, in event order,
        without making outcomes (what a response is built from). ``status`` is
        ``"succeeded"``, ``"sunk"`` (succeeded by being accepted by the failure sink),
        ``"failed"`` or ``"skipped"``; ``raw`` is the record as the event held it."""
        names = _ROW_NAMES
        get = self._results.get
        records = self._records
        identifiers = self._identifiers
        for index, code in enumerate(self._status):
            yield names[code], identifiers[index], records[index], get(index)

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
