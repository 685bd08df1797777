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


class QuietAttributes(griffe.Extension):
    """No low-information entries in the API reference.

    - An attribute documented the way the package documents its constants and type
      aliases, with ``#:`` comment lines right above it (as Sphinx reads them), gets that
      comment as its docstring: ``Handler = Callable[..., Any]`` is shown with what a
      handler is, not alone.
    - An attribute left without a docstring whose entry would only show how it is
      assigned (``backoff = backoff``, ``minimum = min``: a constructor argument kept on
      the instance, which the class's signature and docstring already describe) is left
      out; so is a module attribute with neither. Properties, annotated fields without a
      value (``status: str``) and class attributes (an enum's members) stay: their entry
      shows a type or a value.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            for name, member in list(obj.members.items()):
                if member.is_alias or not member.is_attribute:
                    continue
                if member.docstring is None:
                    comment = _comment_above(member)
                    if comment:
                        member.docstring = griffe.Docstring(
                            comment, parent=member, lineno=member.lineno)
                if member.docstring is None and member.value is not None and (
                        "instance-attribute" in member.labels or obj.is_module):
                    obj.del_member(name)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            yield from _walk(member)


def _comment_above(attr: Any) -> str:
    """The ``#:`` lines right above ``attr``'s assignment, as text ("" when none)."""
    if attr.lineno is None:
        return ""
    try:
        lines = attr.lines_collection[attr.filepath]
    except (KeyError, TypeError):
        return ""
    found: list[str] = []
    index = attr.lineno - 2  # the line above, 0-based
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        found.append(lines[index].lstrip()[2:].strip())
        index -= 1
    return " ".join(reversed(found))
