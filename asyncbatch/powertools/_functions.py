"""Powertools' batch entry points: ``process_partial_response``,
``async_process_partial_response`` (sync, as there) and the deprecated decorators."""

from __future__ import annotations

import warnings
from typing import Any, Callable

from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError
from aws_lambda_powertools.warnings import PowertoolsDeprecationWarning
from typing_extensions import deprecated

__all__ = [
    "async_batch_processor",
    "async_process_partial_response",
    "batch_processor",
    "process_partial_response",
]

_DOCS = "https://docs.powertools.aws.dev/lambda/python/latest/utilities/batch/#processing-messages-from-sqs"


def _records(event: Any, processor: Any, *, allow_empty: bool = False) -> list[Any]:
    """The records of ``event`` for ``processor``'s event type (Kafka: flattened from
    ``records["<topic>-<partition>"]``). ``ValueError`` when the event is not a mapping,
    ``UnexpectedBatchTypeError`` when it holds no records of that shape."""
    event_type = getattr(processor, "event_type", None)
    if not hasattr(event, "get"):
        kinds = ", ".join(EventType.__members__)
        kind = getattr(event_type, "value", "batch")
        raise ValueError(
            f"Invalid event format. Please ensure batch event is a valid {kind} event. \n"
            f"See sample events in our documentation for either {kinds}: \n {_DOCS}")
    if getattr(event_type, "value", None) == "Kafka":
        grouped = event.get("records", {})
        if not isinstance(grouped, dict) or not (grouped or allow_empty):
            raise UnexpectedBatchTypeError(
                "Invalid Kafka event structure. Expected 'records' to be a non-empty dict "
                "with topic-partition keys.")
        flat: list[Any] = []
        for group in grouped.values():
            if not isinstance(group, list):
                raise UnexpectedBatchTypeError(
                    "Invalid Kafka event structure: each topic-partition must hold a list")
            flat.extend(group)
        return flat
    records = event.get("Records", [])
    if not isinstance(records, list) or not (records or allow_empty):
        raise UnexpectedBatchTypeError(
            "Unexpected batch event type. Possible values are: "
            f"{', '.join(EventType.__members__)}")
    return records


def process_partial_response(
    event: dict[str, Any],
    record_handler: Callable[..., Any],
    processor: Any,
    context: Any = None,
) -> dict[str, Any]:
    """Process ``event`` with ``processor`` and return Lambda's partial batch response.

    ``record_handler`` may be sync or async; it gets Powertools' data class of each record
    (or, with ``model=``, the parsed model), and the Lambda context in a parameter named
    ``lambda_context``. Raises ``BatchProcessingError`` when every record failed (unless
    ``raise_on_entire_batch_failure=False``)."""
    records = _records(event, processor)
    with processor(records, record_handler, context):
        processor.process()
    return processor.response()  # type: ignore[no-any-return]


def async_process_partial_response(
    event: dict[str, Any],
    record_handler: Callable[..., Any],
    processor: Any,
    context: Any = None,
) -> dict[str, Any]:
    """Powertools' ``async_process_partial_response``: a *sync* function (call it from your
    sync Lambda handler) that runs an async ``record_handler`` on the bounded pool."""
    records = _records(event, processor)
    with processor(records, record_handler, context):
        processor.async_process()
    return processor.response()  # type: ignore[no-any-return]


@lambda_handler_decorator
@deprecated(
    "`batch_processor` decorator is deprecated; use `process_partial_response` function instead.",
    category=None,
)
def batch_processor(
    handler: Callable[..., Any],
    event: dict[str, Any],
    context: Any,
    record_handler: Callable[..., Any],
    processor: Any,
) -> Any:
    """Deprecated in Powertools v3 (warns as there): process the batch, then call the
    decorated handler, which usually returns ``processor.response()``."""
    warnings.warn(
        "The `batch_processor` decorator is deprecated in V3 "
        "and will be removed in the next major version. Use `process_partial_response` "
        "function instead.",
        category=PowertoolsDeprecationWarning,
        stacklevel=2,
    )
    with processor(_records(event, processor, allow_empty=True), record_handler,
                   lambda_context=context):
        processor.process()
    return handler(event, context)


@lambda_handler_decorator
@deprecated(
    "`async_batch_processor` decorator is deprecated; use `async_process_partial_response` "
    "function instead.",
    category=None,
)
def async_batch_processor(
    handler: Callable[..., Any],
    event: dict[str, Any],
    context: Any,
    record_handler: Callable[..., Any],
    processor: Any,
) -> Any:
    """Deprecated in Powertools v3 (warns as there): the async form of
    ``batch_processor``."""
    warnings.warn(
        "The `async_batch_processor` decorator is deprecated in V3 "
        "and will be removed in the next major version. Use `async_process_partial_response` "
        "function instead.",
        category=PowertoolsDeprecationWarning,
        stacklevel=2,
    )
    with processor(_records(event, processor, allow_empty=True), record_handler,
                   lambda_context=context):
        processor.async_process()
    return handler(event, context)
