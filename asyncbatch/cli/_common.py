"""What the subcommands share: loading ``module:function`` specs."""

from __future__ import annotations

import sys
from typing import Any

from .._errors import describe, exception_text

__all__ = ["load_callable"]


def load_callable(spec: str, *, option: str = "--handler", want_callable: bool = True) -> Any:
    """``module:function`` or ``path/to/file.py:function`` (dotted attributes allowed) to
    the callable (``want_callable=False``: to whatever object it names). The current
    directory is importable, as with ``python -m``. ``ValueError`` says what is wrong,
    naming the option."""
    import importlib.util
    import os
    from pathlib import Path

    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{option} {spec!r}: give MODULE:FUNCTION, e.g. app:handle")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"{option} {spec!r}: no such file {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise ValueError(f"{option} {spec!r}: cannot load {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ValueError:
        raise
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name != missing and not module_name.startswith(missing + "."):
            raise ValueError(f"{option} {spec!r}: importing {module_name} failed: "
                             f"{exception_text(exc)}") from None
        raise ValueError(f"{option} {spec!r}: no module named {missing!r} "
                         "(is it on the path? run from its directory)") from None
    except Exception as exc:
        raise ValueError(f"{option} {spec!r}: importing {module_name} failed: "
                         f"{describe(exc)}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{option} {spec!r}: {module_name} has no {attribute!r}") from None
    if want_callable and not callable(target):
        raise ValueError(f"{option} {spec!r}: {attribute} is not callable")
    return target
