"""``publish``: public names report their public module.

A class or function re-exported by a public package but defined in one of its private
modules reports the package as its ``__module__``: ``asyncbatch.InvalidEventError``, not
``asyncbatch._errors.InvalidEventError``, in reprs, tracebacks, pickles, documentation and
the error type a dead-letter message stores. Each public package calls it last::

    publish(globals(), __all__)
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from types import FunctionType
from typing import Any, Optional

__all__ = ["publish"]


def publish(namespace: MutableMapping[str, Any], names: Iterable[str], *,
            home: Optional[str] = None) -> None:
    """Set ``__module__`` to the package's name on each class or function of ``names``
    defined in a private module below the package (``<package>._x`` or deeper) or in a
    private package of the library (``asyncbatch._lambda.context``, shared by two public
    packages: the first to publish a name is its home). ``home``: report that module
    instead of the package (a package whose names the root re-exports as its own)."""
    package = namespace["__name__"]
    private = (package + "._", package.split(".")[0] + "._")
    for name in names:
        value: Any = namespace.get(name)  # a lazily loaded name is published on load
        if isinstance(value, (type, FunctionType)) \
                and str(getattr(value, "__module__", "")).startswith(private):
            value.__module__ = home or package
