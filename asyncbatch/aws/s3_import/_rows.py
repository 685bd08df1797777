"""Row validation: the header, one row into one DynamoDB item, rows into requests."""

from __future__ import annotations

import datetime
import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Callable, Optional

import anyio

from ..._errors import exception_text
from ._errors import CsvHeaderError

__all__ = ["BATCH_SIZE", "Chunk", "Entry", "KeyProblem", "Rows", "attribute", "item_key"]

#: DynamoDB's limit of requests in one ``BatchWriteItem``.
BATCH_SIZE = 25
# How many column names an error message lists.
_NAMES_SHOWN = 20

Reject = Callable[[int, Sequence[str], Sequence[str], str], None]


# -- DynamoDB values -----------------------------------------------------------------


def attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (client-level JSON)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, enum.Enum):
        return attribute(value.value)
    if isinstance(value, (Decimal, float)):
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"DynamoDB cannot store the number {value!r}")
            return {"N": repr(value)}
        if not value.is_finite():
            raise ValueError(f"DynamoDB cannot store the number {value!r}")
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": str(value)}
    if isinstance(value, int):  # an int subclass that is not bool
        return {"N": str(int(value))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": bytes(value)}
    if isinstance(value, (datetime.date, datetime.time)):
        return {"S": value.isoformat()}
    if isinstance(value, (uuid.UUID, datetime.timedelta)):
        return {"S": str(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): attribute(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [attribute(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        if not value:
            raise ValueError("DynamoDB cannot store an empty set")
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in value):
            return {"NS": sorted(attribute(v)["N"] for v in value)}
        if all(isinstance(v, bytes) for v in value):
            return {"BS": sorted(value)}
        raise ValueError("DynamoDB sets hold only strings, only numbers or only bytes")
    raise ValueError(f"DynamoDB cannot store a {kind.__name__}")


class KeyProblem(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def item_key(item: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """An item's primary key as a hashable value; numbers compare by value (``1`` and
    ``1.0`` are one key, as in DynamoDB). Raises ``KeyProblem`` for a key attribute
    that is missing, empty, or not a string, number or binary."""
    parts: list[Any] = []
    for name in names:
        value = item.get(name)
        if value is None:
            raise KeyProblem(name, f"{name}: the key attribute is missing or empty")
        text = value.get("S")
        if text is not None:
            if not text:
                raise KeyProblem(name, f"{name}: the key attribute is missing or empty")
            parts.append(text)
        elif "N" in value:
            parts.append(Decimal(value["N"]).normalize())
        elif "B" in value:
            if not value["B"]:
                raise KeyProblem(name, f"{name}: the key attribute is missing or empty")
            parts.append(bytes(value["B"]))
        else:
            raise KeyProblem(name, f"{name}: a key attribute must be a string, a number "
                                   f"or bytes, not {next(iter(value), '?')}")
    return tuple(parts)


# -- requests ------------------------------------------------------------------------


class Entry:
    """One valid row on its way to DynamoDB."""

    __slots__ = ("fields", "item", "line")

    def __init__(self, line: int, fields: list[str], item: dict[str, Any]) -> None:
        self.line = line
        self.fields = fields
        self.item = item


class Chunk:
    """Up to 25 rows with distinct keys: one ``BatchWriteItem`` request. ``waits``: the
    chunks in flight holding one of its keys, which must be written first."""

    __slots__ = ("done", "entries", "finished", "waits")

    def __init__(self) -> None:
        self.entries: dict[Any, Entry] = {}
        self.waits: list[Chunk] = []
        self.finished = False
        self.done: Optional[anyio.Event] = None

    async def wait(self) -> None:
        if not self.finished:
            if self.done is None:
                self.done = anyio.Event()
            await self.done.wait()

    def close(self, inflight: dict[Any, Chunk]) -> None:
        """Mark it written (or given up) and wake the chunks waiting for it."""
        self.finished = True
        if self.done is not None:
            self.done.set()
        for key in self.entries:
            if inflight.get(key) is self:
                del inflight[key]


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(map(repr, names[:_NAMES_SHOWN])) or "nothing"
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more"
    return shown


class Rows:
    """Checks the header, validates each row with the model and groups the valid rows
    into chunks of distinct keys. Invalid rows go to ``reject``."""

    def __init__(self, importer: Any, key_attributes: tuple[str, ...], reject: Reject) -> None:
        from pydantic import ValidationError

        self.model = importer.model
        self.to_item = importer.item
        self.required = importer.required_columns
        self.strip = importer.strip
        self.empty = importer.empty_values
        self.blank_is_empty = importer.empty_values == {""}
        self.key_attributes = key_attributes
        self.reject = reject
        self.validation_error = ValidationError
        self.header: Optional[list[str]] = None
        self.columns: list[str] = []
        self.present: frozenset[str] = frozenset()
        self.read = 0
        self.duplicate = 0
        self.chunk = Chunk()
        self.inflight: dict[Any, Chunk] = {}

    def open_header(self, line: int, row: list[str]) -> None:
        names = [name.strip() for name in row]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        twice = sorted(n for n, c in counts.items() if c > 1 and n)
        if twice:
            raise CsvHeaderError(
                f"line {line}: column {_names(twice)} appears more than once "
                "in the header", found=names, line=line)
        present = frozenset(n for n in names if n)
        missing = [c for c in self.required if c not in present]
        if missing:
            raise CsvHeaderError(
                f"line {line}: the header lacks the required column"
                f"{'s' if len(missing) > 1 else ''} {_names(missing)} "
                f"(found: {_names(names)}); the model needs {_names(self.required)}",
                missing=missing, found=names, line=line)
        self.header = list(row)
        self.columns = names
        self.present = present

    def row(self, line: int, row: list[str]) -> Optional[Chunk]:
        """Validate one row; return a chunk when one is full."""
        if self.header is None:
            if not row or not any(cell.strip() for cell in row):
                return None  # blank lines before the header
            self.open_header(line, row)
            return None
        if not row:
            return None  # a blank line
        cells = [cell.strip() for cell in row] if self.strip else row
        empty = self.empty
        if not "".join(cells) if self.blank_is_empty else \
                all(cell in empty for cell in cells):
            return None  # a line of empty cells, as spreadsheets write them
        self.read += 1
        columns = self.columns
        if len(cells) > len(columns):
            self.reject(line, row, [],
                        f"the row has {len(cells)} values but the header has "
                        f"{len(columns)} columns")
            return None
        data = {name: cell for name, cell in zip(columns, cells)
                if name and cell not in empty}
        try:
            model = self.model.model_validate(data)
        except self.validation_error as exc:
            self.reject(line, row, *self._explain(exc, data, len(cells)))
            return None
        try:
            item = {name: attribute(value) for name, value in self.to_item(model).items()}
        except (ValueError, TypeError) as exc:
            self.reject(line, row, [], f"cannot be stored in DynamoDB: {exception_text(exc)}")
            return None
        try:
            key = item_key(item, self.key_attributes)
        except KeyProblem as exc:
            self.reject(line, row, [exc.name], exception_text(exc))
            return None
        chunk = self.chunk
        if key in chunk.entries:
            self.duplicate += 1  # the later row wins
        chunk.entries[key] = Entry(line, row, item)
        if len(chunk.entries) >= BATCH_SIZE:
            return self.flush()
        return None

    def unreadable(self, line: int, message: str) -> None:
        """A record csv could not read (or too large to keep): a rejected row."""
        self.read += 1
        self.reject(line, [], [], message)

    def _explain(self, exc: Any, data: Mapping[str, str],
                 width: int) -> tuple[list[str], str]:
        fields: list[str] = []
        parts: list[str] = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err.get("loc", ())) or "<row>"
            fields.append(loc)
            if err.get("type") == "missing" and loc in self.present:
                index = self.columns.index(loc)
                msg = "empty value" if index < width else \
                    f"missing value (the row has {width} of {len(self.columns)} columns)"
            else:
                msg = str(err.get("msg", "invalid"))
                if loc in data:
                    msg += f" (got {data[loc][:60]!r})"
            parts.append(f"{loc}: {msg}")
        return fields, "; ".join(parts) or exception_text(exc)

    def flush(self) -> Optional[Chunk]:
        """Close the current chunk; make it wait for in-flight chunks sharing a key."""
        chunk = self.chunk
        if not chunk.entries:
            return None
        self.chunk = Chunk()
        inflight = self.inflight
        waits: dict[int, Chunk] = {}
        for key in chunk.entries:
            earlier = inflight.get(key)
            if earlier is not None and not earlier.finished:
                waits[id(earlier)] = earlier
            inflight[key] = chunk
        chunk.waits = list(waits.values())
        return chunk
