"""Items of any iterable, through ``stream()`` and ``run()``: not a Lambda event.

- Records: the items as the iterable gives them (a handler gets each as it is; hooks,
  sinks and outcomes too).
- Identifier: the item's 0-based position in the input.
- Order: none, or with ``key=`` one item at a time per key, in input order (as a FIFO
  message group).
- ``model=`` validates the item: text or bytes as JSON, a record view (an SQS message a
  worker received, say) as its source's ``model=`` does (an SQS body as JSON), anything
  else as Python data.
"""

from __future__ import annotations

from typing import Any

from ._base import EventType, Record, Source

__all__ = ["ITEMS", "ItemsSource"]


class ItemsSource(Source):
    event_type = EventType.ITERABLE
    event_sources = ()
    view = Record  # unused: an item is shown as it is
    identifier_path = "position"

    def model_input(self, view: Any) -> tuple[Any, bool]:
        if isinstance(view, Record):
            from . import SOURCES

            for source in SOURCES.values():
                if isinstance(view, source.view):
                    return source.model_input(view)
        return view, isinstance(view, (str, bytes, bytearray))

    def identifier_text(self, identifier: Any) -> str:
        return str(identifier)

    def __repr__(self) -> str:
        return "<source Iterable>"


ITEMS = ItemsSource()
