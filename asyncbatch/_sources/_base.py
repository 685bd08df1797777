"""What every event source shares: the event types, the plan handed to the scheduler,
the record view base class and the descriptor base class.

A source is described once, by one ``Source`` subclass in its own module (``sqs.py``,
``kinesis.py``, ``dynamodb.py``, ``kafka.py``): where its records are, how they are
validated, the identifier and how it goes into ``batchItemFailures``, the sequence and
ordering key, what ``model=`` parses, the view class and how to build a sample record.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from .._errors import ConfigurationError, InvalidEventError, RecordDecodeError, safe_repr

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .._core.report import BatchReport

__all__ = ["EventType", "FailureMode", "Plan", "Record", "Source"]

_EMPTY: Mapping[str, Any] = {}


class EventType(str, enum.Enum):
    """The event sources asyncbatch knows; the values are the names the docs use."""

    SQS = "SQS"
    KINESIS = "KinesisDataStreams"
    DYNAMODB_STREAMS = "DynamoDBStreams"
    KAFKA = "Kafka"
    #: Amazon Data Firehose's transformation invocation (its response is Firehose's own)
    FIREHOSE = "Firehose"
    #: the items of any iterable, through ``stream()`` and ``run()`` (not a Lambda event)
    ITERABLE = "Iterable"

    def __str__(self) -> str:
        return self.value


class FailureMode(enum.Enum):
    """What one failed record does to the records not yet started."""

    INDEPENDENT = "independent"  # nothing
    SKIP_LANE = "skip_lane"  # the rest of its lane (FIFO message group) is skipped
    STOP_ALL = "stop_all"  # everything not yet started is skipped
    CHECKPOINT = "checkpoint"  # rest of its lane, and every record above its sequence number


class Plan:
    """How one batch runs. The contract between a source and the scheduler:

    - ``size``: the number of records.
    - ``identifiers``: every record's ``itemIdentifier`` as the event held it when it
      arrived (validated before any handler runs); the response is built from these, so
      a handler that edits its record or the event cannot change what is reported.
    - ``lanes``: record indices that run one at a time, each lane in run order (sequence
      or offset order for streams, event order for FIFO groups); ``None`` when every
      record is independent.
    - ``mode``: what a failure skips.
    - ``sequence``: checkpoint mode: each record's sequence number (or offset) as an int.
    - ``partition``: checkpoint mode: the checkpoint group of each record (Kafka: its
      topic-partition); ``None`` when the whole batch is one group (one shard).
    - ``rank``: the scheduling priority of a record at the head of its lane (lower runs
      first); ``None``: its position in the event.
    - ``heads``, ``width``, ``order``: how the scheduler runs the lanes, off one cursor:
      each record's lane named by the position of its first record (``heads``), the
      number of lanes (``width``), and the order the cursor takes the records in
      (``order``; ``None``: event order). A source gives ``heads`` (and ``order``) for a
      batch in order, the usual one, and its ``lanes`` are made only if asked for; from
      ``lanes``, they are worked out here.

    The cursor order ranks each record by the lowest rank it can run at: its own, or its
    lane's predecessor's if that is higher; in it, each lane's records come in lane order.
    """

    __slots__ = ("_lanes", "heads", "identifiers", "mode", "order", "partition", "rank",
                 "sequence", "size", "width")

    def __init__(self, size: int, lanes: Optional[list[list[int]]], mode: FailureMode,
                 sequence: Optional[Callable[[int], int]] = None, *,
                 identifiers: list[Any],
                 partition: Optional[Callable[[int], Hashable]] = None,
                 rank: Optional[Callable[[int], Any]] = None,
                 heads: Optional[list[int]] = None, width: int = 0,
                 order: Optional[list[int]] = None) -> None:
        if lanes is not None and heads is None:
            heads, width, order = _cursor(lanes, size, rank)
        if heads is not None and (len(heads) != size
                                  or (order is not None and len(order) != size)):
            raise ValueError("a plan's heads and order name every record once")
        self.size = size
        self._lanes = lanes
        self.mode = mode
        self.sequence = sequence
        self.identifiers = identifiers
        self.partition = partition
        self.rank = rank
        self.heads = heads
        self.width = width if heads is not None else 0
        self.order = order if heads is not None else None

    @property
    def lanes(self) -> Optional[list[list[int]]]:
        """The lanes (see the class docstring); made from ``heads`` on first use."""
        heads = self.heads
        if self._lanes is None and heads is not None:
            order = self.order
            if order is None:
                self._lanes = group(heads)
            else:
                self._lanes = [[order[j] for j in lane]
                               for lane in group([heads[i] for i in order])]
        return self._lanes

    @property
    def keyed(self) -> bool:
        """Whether some records must run one at a time (there are lanes)."""
        return self.heads is not None or self._lanes is not None

    def __repr__(self) -> str:
        lanes = "independent" if self.lanes is None else f"{len(self.lanes)} lanes"
        return f"Plan({self.size} records, {lanes}, {self.mode.value})"


class Record:
    """Base of the record views. ``raw`` is the record exactly as the event holds it.

    A view holds nothing but ``raw`` until a property decodes something, so a view may be
    made without running any Python code: ``v = object.__new__(cls); v.raw = raw`` (the
    scheduler does that on its hot path)."""

    __slots__ = ("raw",)

    raw: dict[str, Any]

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def identifier(self) -> Any:
        """The ``itemIdentifier`` Lambda expects in ``batchItemFailures``."""
        raise NotImplementedError

    @property
    def ordering_key(self) -> Optional[Hashable]:
        """Records with equal keys run one at a time, in order; ``None``: independent."""
        return None

    @property
    def event_source_arn(self) -> Optional[str]:
        return self.raw.get("eventSourceARN")

    def _json(self, text: str | bytes, what: str) -> Any:
        import json

        try:
            return json.loads(text)
        except (ValueError, TypeError) as exc:
            raise RecordDecodeError(
                f"record {self.identifier}: {what} is not valid JSON ({exc})",
                identifier=self.identifier,
            ) from exc

    def _b64(self, text: Any, what: str) -> bytes:
        import base64
        import binascii

        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise RecordDecodeError(
                f"record {self.identifier}: {what} is not valid base64 ({exc})",
                identifier=self.identifier,
            ) from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identifier={self.identifier!r})"


def bad(index: int, message: str) -> InvalidEventError:
    """``InvalidEventError`` naming ``Records[index]``."""
    return InvalidEventError(f"Records[{index}] {message}", index=index)


_DIGITS_CHUNK = 1024

#: records per slice when a batch is read column by column (``slices``)
SLICE = 2048


def slices(records: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """The batch in slices of ``SLICE`` records, with each slice's first position.

    A plan reads several fields of every record in C-speed passes. Over a large batch,
    one pass per field reads every record from memory once per field; slice by slice,
    a slice's later passes find its records still in the CPU cache (a third less time
    at 100,000 records)."""
    for start in range(0, len(records), SLICE):
        yield start, records[start:start + SLICE]


def check_sequence_numbers(ids: Sequence[Any], path: str) -> set[int]:
    """Every id a decimal sequence number (ASCII digits only, within Python's int-digit
    limit); returns the set of their lengths. ``InvalidEventError`` names the first bad.

    The common case is checked at C speed: the ids joined (1,024 at a time), encoded to
    ASCII and checked with ``bytes.isdigit`` (ASCII digits only, unlike ``str.isdigit``,
    and faster); a bad batch is then walked to name the first bad record. A number
    longer than the int-digit limit (``sys.get_int_max_str_digits()``) is refused before
    ``int`` would raise."""
    if not ids:
        return set()
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    try:  # (by chunks: the joined text of a whole batch would be its largest object)
        ok = all("".join(ids[start:start + _DIGITS_CHUNK]).encode("ascii").isdigit()
                 for start in range(0, len(ids), _DIGITS_CHUNK))
    except (TypeError, UnicodeEncodeError):
        ok = False
    if ok:
        lengths = set(map(len, ids))  # (no empty id: one length check, not a pass)
        if 0 not in lengths and (not limit or max(lengths, default=0) <= limit):
            return lengths
    for index, ident in enumerate(ids):
        if not isinstance(ident, str) or not ident:
            raise bad(index, f"has no {path} (its itemIdentifier)")
        if not (ident.isascii() and ident.isdigit()):
            raise bad(index, f"has {path}={safe_repr(ident):.80}, not a decimal sequence "
                             "number")
        if limit and len(ident) > limit:
            raise bad(index, f"has a {path} of {len(ident)} digits, more than Python "
                             f"converts to int ({limit}, sys.get_int_max_str_digits())")
    raise AssertionError("unreachable: the loop above names the bad record")  # pragma: no cover


class _Ints:
    """``ids[i]`` as an int, the whole list converted on first use (a batch in sequence
    order needs its numbers only when a record fails, or for a window fold)."""

    __slots__ = ("ids", "ints")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.ints: Optional[list[int]] = None

    def __call__(self, index: int) -> int:
        ints = self.ints
        if ints is None:
            ints = self.ints = list(map(int, self.ids))
        return ints[index]


def group(keys: Sequence[Hashable]) -> list[list[int]]:
    """Record indices grouped by key, each lane in event order, lanes in order of their
    first record."""
    groups: dict[Hashable, list[int]] = {}
    get = groups.get
    for index, key in enumerate(keys):
        lane = get(key)
        if lane is None:
            groups[key] = [index]
        else:
            lane.append(index)
    return list(groups.values())


def _cursor(lanes: list[list[int]], size: int,
            rank: Optional[Callable[[int], Any]]) -> tuple[list[int], int, Optional[list[int]]]:
    """``Plan``'s ``heads``, ``width`` and ``order`` from its lanes (see ``Plan``): a
    record ranks at the highest rank of its lane up to it, then by its place in the
    lane; ``order`` is ``None`` when that is event order."""
    heads = [-1] * size
    keys: list[Any] = [None] * size
    for lane in lanes:
        head = lane[0]
        top = None
        for place, index in enumerate(lane):
            if heads[index] != -1:
                raise ValueError(f"record {index} is in two lanes")
            heads[index] = head
            mine = index if rank is None else rank(index)
            if top is None or mine > top:
                top = mine
            keys[index] = (top, place)
    if -1 in heads:
        raise ValueError(f"record {heads.index(-1)} is in no lane")
    order: Optional[list[int]] = sorted(range(size), key=keys.__getitem__)
    if order == list(range(size)):
        order = None
    return heads, len(lanes), order


def lane_heads(keys: Iterable[Hashable]) -> tuple[list[int], int]:
    """Each record's lane named by the position of the first record of its key, and the
    number of lanes: ``Plan(heads=, width=)``, in one C-speed pass (``group(heads)`` are
    the lanes ``group(keys)`` gives)."""
    first: dict[Hashable, int] = {}
    heads = list(heads_of(keys, first))
    return heads, len(first)


def heads_of(keys: Iterable[Hashable], first: dict[Hashable, int],
             start: int = 0) -> Iterator[int]:
    """The lane heads of records ``start, start + 1, ...`` with ``keys``; ``first`` maps a
    key to the position of its first record, and learns the keys first seen here (so a
    batch read slice by slice shares one)."""
    return map(first.setdefault, keys, count(start))


def sort_lanes(lanes: list[list[int]], seqs: list[int]) -> list[list[int]]:
    """Each lane in increasing sequence order, lanes by the sequence of their head.

    A batch already in sequence order (the usual case) is checked in one C-speed pass
    and left as it is."""
    from operator import lt

    if all(map(lt, seqs, seqs[1:])):
        return lanes
    key = seqs.__getitem__
    for lane in lanes:
        lane.sort(key=key)
    lanes.sort(key=lambda lane: seqs[lane[0]])
    return lanes


class Source:
    """One event source, described once. Subclasses fill in the class attributes and
    ``find``, ``plan``, ``identifier``, ``model_input`` and ``sample_record``.

    A source is stateless: one instance per source serves every batch."""

    event_type: ClassVar[EventType]
    #: the ``eventSource`` values that name this source
    event_sources: ClassVar[tuple[str, ...]]
    view: ClassVar[type[Record]]
    #: where a record's identifier is, for error messages
    identifier_path: ClassVar[str]
    #: the ``ordering=`` values this source accepts, the default first
    orderings: ClassVar[tuple[str, ...]] = ()
    #: whether ``envelope=`` applies: the payload may be an SNS notification or an
    #: EventBridge event wrapping the producer's own
    envelopes: ClassVar[bool] = False
    #: the record's own top-level fields: a ``model=`` declaring all of them (by name or
    #: alias) parses the whole record (``record.raw``); any other model parses the payload
    record_fields: ClassVar[frozenset[str]] = frozenset()
    #: Powertools' model of the whole record (in ``aws_lambda_powertools.utilities.parser
    #: .models``): a ``model=`` subclassing it parses the whole record too
    powertools_record_model: ClassVar[Optional[str]] = None

    @property
    def event_source(self) -> str:
        return self.event_sources[0]

    def check_ordering(self, ordering: Optional[str]) -> str:
        """The ordering to use: ``ordering`` or the source's default."""
        if ordering is None:
            return self.orderings[0] if self.orderings else ""
        if ordering not in self.orderings:
            if not self.orderings:
                raise ConfigurationError(
                    f"ordering={ordering!r}: {self.event_type.value} records have no ordering "
                    "to choose (SQS FIFO runs each message group in order); leave it None")
            choices = " or ".join(repr(o) for o in self.orderings)
            raise ConfigurationError(
                f"ordering={ordering!r}: {self.event_type.value} takes {choices} "
                f"(default {self.orderings[0]!r})")
        return ordering

    def find(self, event: Mapping[str, Any]) -> list[Any]:
        """A new list of the event's records (a handler that edits the event cannot
        change it); ``InvalidEventError`` when the event holds none."""
        records = event.get("Records")
        if records is None:
            raise InvalidEventError("the event has no 'Records' key")
        if not isinstance(records, list):
            raise InvalidEventError(
                f"the event's 'Records' is a {type(records).__name__}, not a list")
        return records[:]

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        """Validate every record (``InvalidEventError`` names the first bad one) and
        build the plan, identifiers included, in one pass."""
        raise NotImplementedError

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        """A record's ``itemIdentifier``."""
        raise NotImplementedError

    def failure_item(self, identifier: Any) -> dict[str, Any]:
        """One entry of ``batchItemFailures``."""
        return {"itemIdentifier": identifier}

    def response(self, report: BatchReport) -> dict[str, Any]:
        """What the function returns to the service that invoked it: Lambda's partial
        batch response, ``{"batchItemFailures": [...]}`` (failed and skipped records in
        event order, each once), plus ``"state"`` for a tumbling-window event."""
        failure_item = self.failure_item
        body: dict[str, Any] = {
            "batchItemFailures": [failure_item(dict(i) if isinstance(i, dict) else i)
                                  for i in report.failure_identifiers()]
        }
        if report.window is not None:
            body["state"] = report.state
        return body

    def checked(self, call: Callable[[Any], Awaitable[Any]]
                ) -> Callable[[Any], Awaitable[Any]]:
        """The handler call, checking what the source needs of its return value (a
        return value the response cannot hold fails its record); by default the call
        itself: a partial batch response holds no results."""
        return call

    def check_options(self, *, idempotency: Any = None, envelope: Any = None) -> None:
        """``ConfigurationError`` for a processor option this source cannot honour."""
        if envelope is not None and not self.envelopes:
            raise ConfigurationError(
                f"envelope={envelope!r} unwraps SQS message bodies (an SNS notification or "
                f"an EventBridge event delivered through SQS); a {self.event_type.value} "
                "record has no such envelope: remove envelope=, or give model= a model of "
                "the payload as it is")

    def pipes_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The record as an EventBridge pipe hands it to its target (a copy): by default
        shaped as Lambda's event source mapping shapes it."""
        import copy

        return copy.deepcopy(dict(raw))

    def ordering_key(self, raw: Mapping[str, Any]) -> Optional[Hashable]:
        """The key whose records run one at a time (``None``: independent)."""
        return None

    def model_input(self, view: Any) -> tuple[Any, bool]:
        """What ``model=`` validates: ``(value, is_json_text)``."""
        raise NotImplementedError

    def identifier_text(self, identifier: Any) -> str:
        """The identifier as one line of text (for logs and message ids)."""
        return identifier if isinstance(identifier, str) else repr(identifier)

    def key_text(self, raw: Mapping[str, Any]) -> Optional[str]:
        """The ordering key as text (for a FIFO dead-letter queue's ``MessageGroupId``);
        ``None`` when the record has none."""
        key = self.ordering_key(raw)
        return None if key is None or key == "" else str(key)

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      **options: Any) -> dict[str, Any]:
        """A record shaped as Lambda sends it: ``index`` makes its identifier unique and
        its sequence increasing; ``payload`` (dict/list JSON-encoded, str/bytes kept)
        is its body; ``key`` its ordering key where the source has one."""
        raise NotImplementedError

    def sample_event(self, records: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        """An event holding ``records`` (from ``sample_record``)."""
        return {"Records": records}

    def check_records(self, records: list[Any]) -> None:
        """Every record a mapping of this source: ``InvalidEventError`` names the first
        that is not (called only once the fast path of ``plan`` failed)."""
        sources = self.event_sources
        for index, raw in enumerate(records):
            if not isinstance(raw, Mapping):
                raise bad(index, f"is a {type(raw).__name__}, not a mapping")
            found = raw.get("eventSource", sources[0])
            if found not in sources:
                raise bad(index, f"comes from {safe_repr(found):.80} but the batch is "
                                 f"{sources[0]!r}: "
                                 "one batch holds records of one source")

    def __repr__(self) -> str:
        return f"<source {self.event_type.value}>"


def payload_text(payload: Any) -> str:
    """A sample payload as text: dict/list JSON-encoded, str kept, bytes decoded."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload).decode("utf-8", "surrogateescape")
    if isinstance(payload, str):
        return payload
    import json

    return json.dumps(payload)


def payload_bytes(payload: Any) -> bytes:
    """A sample payload as bytes: dict/list JSON-encoded, str UTF-8 encoded, bytes kept."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    import json

    return json.dumps(payload).encode()


class StreamPlanner:
    """``stream_plan`` fed slice by slice (see ``slices``): each slice's identifiers and
    keys are checked while its records are still in the CPU cache (ASCII digits, their
    lengths, increasing order, each key's lane). ``plan()`` gives the plan
    ``stream_plan`` gives for the whole batch; a batch the slices could not settle
    (out of order, mixed lengths, a bad id) is handed to ``stream_plan`` whole."""

    __slots__ = ("digits", "first", "heads", "ids", "keys", "lengths", "ordered", "path")

    def __init__(self, path: str, by_key: bool) -> None:
        self.path = path
        self.ids: list[Any] = []
        self.keys: Optional[list[Hashable]] = [] if by_key else None
        self.heads: list[int] = []
        self.first: dict[Hashable, int] = {}
        self.lengths: set[int] = set()
        self.digits = True
        self.ordered = True

    def feed(self, ids: list[Any], keys: Optional[list[Hashable]]) -> None:
        """The next slice: its identifiers and (by key) its ordering keys."""
        from operator import lt

        if not ids:
            return
        if self.digits:
            try:
                self.digits = "".join(ids).encode("ascii").isdigit()
            except (TypeError, UnicodeEncodeError):
                self.digits = False
            if self.digits:
                self.lengths.update(map(len, ids))
                if self.ordered:  # (as text: equal lengths are checked in plan())
                    last = self.ids[-1] if self.ids else None
                    self.ordered = (last is None or last < ids[0]) \
                        and all(map(lt, ids, ids[1:]))
        start = len(self.ids)
        self.ids += ids
        if self.keys is not None:
            assert keys is not None
            self.heads += heads_of(keys, self.first, start)
            self.keys += keys

    def plan(self) -> Plan:
        ids = self.ids
        n = len(ids)
        lengths = self.lengths
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
        if self.digits and self.ordered and len(lengths) <= 1 and 0 not in lengths \
                and (not limit or max(lengths, default=0) <= limit):
            if self.keys is None:
                heads, width = [0] * n, int(n > 0)
            else:
                heads, width = self.heads, len(self.first)
            return Plan(n, None, FailureMode.CHECKPOINT, _Ints(ids), identifiers=ids,
                        heads=heads, width=width)
        return stream_plan(ids, self.path, self.keys)


def stream_plan(ids: list[Any], path: str, keys: Optional[Sequence[Hashable]]) -> Plan:
    """The plan of a stream batch (one shard): checkpoint mode, lanes by ``keys`` (or the
    whole batch as one lane when ``keys`` is ``None``), each lane in increasing sequence
    order, lanes by their head's sequence, a lane head ranked by its sequence number.

    A batch already in sequence order (Lambda sends them so) is recognised by comparing
    the ids as text when all have the same length (then text order is integer order):
    its lanes are in order as grouped, a record's position ranks it as its sequence
    number would (``rank=None``), and the ids are converted to ints only if asked."""
    from operator import lt

    lengths = check_sequence_numbers(ids, path)
    n = len(ids)
    if len(lengths) <= 1 and all(map(lt, ids, ids[1:])):
        heads, width = ([0] * n, int(n > 0)) if keys is None else lane_heads(keys)
        return Plan(n, None, FailureMode.CHECKPOINT, _Ints(ids), identifiers=ids,
                    heads=heads, width=width)
    lanes = ([list(range(n))] if n else []) if keys is None else group(keys)
    seqs = list(map(int, ids))
    lanes = sort_lanes(lanes, seqs)
    get = seqs.__getitem__
    return Plan(n, lanes, FailureMode.CHECKPOINT, get, identifiers=ids, rank=get)
