"""What a handler is and how it is called: async or sync, with or without the context.

A record handler may be

- an ``async def`` (or an object whose ``__call__`` is one): awaited on the event loop;
- a plain ``def`` (or any other callable): run on a worker thread through
  ``anyio.to_thread.run_sync``, under a ``CapacityLimiter`` of its own, one per
  ``process()`` call (anyio's default limiter would cap it at 40): sized to the
  concurrency when the caller gives it, else unbounded, the scheduler running at most
  ``concurrency`` calls anyway. So a boto3 handler gets concurrency without a rewrite. If
  it returns an awaitable (a ``lambda`` around an async function), that is awaited on the
  loop.

The Lambda context reaches a parameter named ``lambda_context`` (as Powertools does), or
else a second positional parameter. With ``model=``, the first parameter gets the parsed
model and a later parameter named ``record`` gets the record's view (its metadata): the
processor's parser leaves the view of the record it parsed in a context variable of the
worker's task (``parsed``), and the call reads it back.

A thread cannot be interrupted: a sync handler that runs past its timeout or the Lambda
deadline has its record reported (timeout / deadline error) and the call returns on time;
the thread finishes in the background and its result is dropped. The call leaves a
``ThreadCall`` behind (``abandoned_thread``) that says when the thread returns and how,
so that an idempotency claim is kept exactly as long as the thread can have effects.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from typing import Any, Callable, Optional

from .._errors import ConfigurationError

__all__ = ["Handler", "ThreadCall", "abandoned_thread", "bind_handler", "context_style",
           "is_async_callable", "is_record_model", "parsed", "record_model_sources"]

#: A record handler: ``async def handle(record)`` or a plain ``def`` (run on a worker
#: thread); it may also take the Lambda context, as a second positional parameter or one
#: named ``lambda_context``. Its return value is the record's ``Outcome.result``.
Handler = Callable[..., Any]

# (parsed model, record view) of the record the parser last parsed in this task.
_PARSED: ContextVar[Optional[tuple[Any, Any]]] = ContextVar("asyncbatch_parsed", default=None)


def parsed(model: Any, view: Any) -> Any:
    """Return ``model``, remembering ``view`` as the record it was parsed from (for a
    handler that also takes the view, in a parameter named ``record``)."""
    _PARSED.set((model, view))
    return model


def _view_of(arg: Any) -> Any:
    """The record view ``arg`` was parsed from; ``arg`` itself when it is the view."""
    pair = _PARSED.get()
    return pair[1] if pair is not None and pair[0] is arg else arg


Call = Callable[[Any], Awaitable[Any]]


def _unwrap(obj: Any) -> Any:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return obj


def is_async_callable(obj: Any) -> bool:
    """``async def`` functions, partials of them, and objects with ``async def __call__``."""
    import inspect

    obj = _unwrap(obj)
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None))  # noqa: B004


def _is_generator(obj: Any) -> Optional[str]:
    import inspect

    obj = _unwrap(obj)
    call = getattr(obj, "__call__", None)  # noqa: B004
    for target in (obj, call):
        if inspect.isasyncgenfunction(target):
            return "an async generator function"
        if inspect.isgeneratorfunction(target):
            return "a generator function"
    return None


def context_style(handler: Any) -> str:
    """How the handler takes the Lambda context: ``"keyword"`` (a ``lambda_context``
    parameter), ``"positional"`` (a second positional parameter) or ``"none"``."""
    import inspect

    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return "none"
    param = signature.parameters.get("lambda_context")
    if param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return "keyword"
    positional = 0
    for index, param in enumerate(signature.parameters.values()):
        if param.kind is param.VAR_POSITIONAL:
            return "positional"
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) \
                and not (index and param.name == "record"):  # the view's, not the context's
            positional += 1
    return "positional" if positional >= 2 else "none"


def takes_view(handler: Any) -> bool:
    """Whether a parameter after the first is named ``record`` (it gets the view)."""
    import inspect

    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.name == "record" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in params[1:])


def _name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def check_handler(handler: Any) -> None:
    """``ConfigurationError`` for what cannot be a record handler."""
    if not callable(handler):
        raise ConfigurationError(
            f"handler {handler!r} is not callable; give an async function "
            "('async def handle(record): ...') or a plain function ('def handle(record): ...')")
    kind = _is_generator(handler)
    if kind is not None:
        name = _name(handler)
        raise ConfigurationError(
            f"handler {name} is not an async function: it is {kind} (it yields, so calling "
            f"it would run nothing); define it with 'async def "
            f"{getattr(handler, '__name__', 'handle')}(record): ...' and return instead")


def bind_handler(handler: Any, context: Any, concurrency: Optional[int] = None) -> Call:
    """The handler as a one-argument coroutine function: the context bound the way the
    handler takes it; a sync handler run on worker threads, at most ``concurrency`` at
    once (unbounded by the limiter when ``None``: the caller bounds the calls)."""
    check_handler(handler)
    style = context_style(handler)
    if takes_view(handler):
        return _bind_with_view(handler, context, style, concurrency)
    if is_async_callable(handler):
        if style == "keyword":
            return functools.partial(handler, lambda_context=context)
        if style == "positional":
            return _with_context(handler, context)
        return handler  # type: ignore[no-any-return]
    if style == "keyword":
        fn: Callable[[Any], Any] = functools.partial(handler, lambda_context=context)
    elif style == "positional":
        fn = functools.partial(_call_with, handler, context)
    else:
        fn = handler
    return in_thread(fn, concurrency)


def _bind_with_view(handler: Any, context: Any, style: str,
                    concurrency: Optional[int]) -> Call:
    """``handler(model, ..., record=view)``, the context in its place as the handler
    takes it (the parameter after the first that is not ``record``, or by name)."""
    slots = _slots(handler, style)

    def arguments(arg: Any, view: Any) -> tuple[list[Any], dict[str, Any]]:
        values = {"arg": arg, "view": view, "context": context}
        args = [values[slot] for slot in slots]
        kwargs: dict[str, Any] = {} if "view" in slots else {"record": view}
        if style == "keyword":
            kwargs["lambda_context"] = context
        return args, kwargs

    if is_async_callable(handler):
        def call(arg: Any) -> Awaitable[Any]:
            args, kwargs = arguments(arg, _view_of(arg))
            return handler(*args, **kwargs)  # type: ignore[no-any-return]

        return call

    def run(job: tuple[list[Any], dict[str, Any]]) -> Any:
        return handler(*job[0], **job[1])

    threaded = in_thread(run, concurrency)

    def call_sync(arg: Any) -> Awaitable[Any]:
        return threaded(arguments(arg, _view_of(arg)))

    return call_sync


def _slots(handler: Any, style: str) -> list[str]:
    """What each leading positional parameter gets: ``arg`` (the first), ``view`` (one
    named ``record``, when it comes before the context), ``context`` (positional style)."""
    import inspect

    slots = ["arg"]
    if style != "positional":
        return slots
    params = list(inspect.signature(handler).parameters.values())[1:]
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            slots.append("context")
            break
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            break
        slots.append("view" if param.name == "record" else "context")
        if slots[-1] == "context":
            break
    return slots


def _with_context(handler: Callable[..., Awaitable[Any]], context: Any) -> Call:
    def call(record: Any) -> Awaitable[Any]:
        return handler(record, context)

    return call


def _call_with(handler: Callable[..., Any], context: Any, record: Any) -> Any:
    return handler(record, context)


class ThreadCall:
    """One sync handler call on a worker thread, as the thread ends it: ``done`` once it
    returned or raised, ``ok`` and ``result`` (returned) or ``error`` (raised). Read
    from the event loop's thread; written once, by the worker thread, ``done`` last.

    A call cancelled before its thread started is ``dropped``: the thread then never
    calls the handler (``lock`` decides which came first)."""

    __slots__ = ("done", "dropped", "error", "lock", "ok", "result", "started")

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.started = False
        self.dropped = False
        self.done = False
        self.ok = False
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def abandon(self) -> bool:
        """The call was cancelled: drop it if its thread has not started (``False``), or
        say whether the thread still runs (``True``: abandoned while running)."""
        with self.lock:
            if not self.started:
                self.dropped = True
                return False
            return not self.done

    def __repr__(self) -> str:
        state = ("dropped" if self.dropped else "running" if not self.done
                 else "returned" if self.ok else "raised")
        return f"<ThreadCall {state}>"


# The call a cancellation (timeout, deadline, caller) abandoned while its thread still ran.
_ABANDONED: ContextVar[Optional[ThreadCall]] = ContextVar("asyncbatch_abandoned",
                                                          default=None)


def abandoned_thread() -> Optional[ThreadCall]:
    """The ``ThreadCall`` the last sync handler call of this task abandoned (cancelled)
    while its thread still ran, or before its thread started (``dropped``: the handler
    never ran); ``None``: none. Forgotten once read."""
    call = _ABANDONED.get()
    if call is not None:
        _ABANDONED.set(None)
    return call


def in_thread(fn: Callable[[Any], Any], concurrency: Optional[int] = None) -> Call:
    """``fn`` (sync) as a coroutine function running it on a worker thread. The limiter is
    made on first use, inside the running loop (one per call of this function, so one per
    ``process()`` call)."""
    import inspect
    import math

    tokens: float = math.inf if concurrency is None else concurrency
    limiter: Any = None

    def run(record: Any, job: ThreadCall) -> Any:
        with job.lock:
            if job.dropped:  # cancelled before it could start: never call the handler
                return None
            job.started = True
        try:
            result = fn(record)
        except BaseException as exc:
            job.error = exc
            job.done = True
            raise
        job.result = result
        job.ok = True
        job.done = True
        # An awaitable goes back boxed: trio refuses a thread function returning one.
        return _Awaitable(result) if inspect.isawaitable(result) else result

    async def call(record: Any) -> Any:
        nonlocal limiter
        import anyio.to_thread

        if limiter is None:
            limiter = anyio.CapacityLimiter(tokens)
        job = ThreadCall()
        try:
            result = await anyio.to_thread.run_sync(run, record, job, limiter=limiter,
                                                    abandon_on_cancel=True)
        except BaseException:
            job.abandon()
            if job.dropped or not job.done:  # never ran, or runs on: the caller is told
                _ABANDONED.set(job)
            raise
        if type(result) is _Awaitable:
            result = await result.awaitable
        return result

    return call


class _Awaitable:
    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


# -- models of the whole record -----------------------------------------------------

_POWERTOOLS_MODELS = "aws_lambda_powertools.utilities.parser.models"


def is_record_model(model: Any, event_type: str) -> bool:
    """Whether ``model`` describes the whole record (Powertools' ``SqsRecordModel``,
    ``KinesisDataStreamRecord``, ``DynamoDBStreamRecordModel``, ``KafkaRecordModel``,
    ``KinesisFirehoseRecord`` and their subclasses, or any model with the record's own
    top-level fields, e.g. ``messageId`` and ``body`` for SQS) rather than its payload."""
    return event_type in record_model_sources(model)


def record_model_sources(model: Any) -> frozenset[str]:
    """The sources (``EventType`` values) whose whole record ``model`` describes: by
    Powertools' record model it subclasses, or by the record's own top-level fields it
    declares (names or aliases). Empty for a model of a payload."""
    from .._sources import SOURCES

    found: set[str] = set()
    models = sys.modules.get(_POWERTOOLS_MODELS)  # never imported from here
    if models is not None and isinstance(model, type):
        for source in SOURCES.values():
            base = getattr(models, source.powertools_record_model or "", None)
            if isinstance(base, type) and issubclass(model, base):
                found.add(source.event_type.value)
    fields = getattr(model, "model_fields", None)
    if isinstance(fields, Mapping):
        names = set(fields)
        for field in fields.values():
            for alias in (getattr(field, "alias", None),
                          getattr(field, "validation_alias", None)):
                if isinstance(alias, str):
                    names.add(alias)
        found.update(source.event_type.value for source in SOURCES.values()
                     if source.record_fields and source.record_fields <= names)
    return frozenset(found)
