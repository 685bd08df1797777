"""Griffe extension for the API reference: read the package's reST-flavoured docstrings as
Markdown.

The docstrings are written for ``help()`` and editors: a literal block is introduced by
``::`` and indented, as in reStructuredText. Markdown renders the indented block as code
already; this extension writes ``text::`` as ``text:`` (and drops a ``::`` alone on its
line), so that the reference does not show the reST marker. Nothing else changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_MARKER = re.compile(r"(?m)^(\s*)::[ \t]*$\n?|(?<=\S)::[ \t]*$")


class ReSTLiteralBlocks(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and "::" in docstring.value:
            docstring.value = _MARKER.sub(lambda m: "" if m.group(1) is not None else ":",
                                          docstring.value)
