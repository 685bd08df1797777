"""A drop-in for ``aws_lambda_powertools.utilities.batch`` that runs on asyncbatch.

Change ``from aws_lambda_powertools.utilities.batch import ...`` to
``from asyncbatch.powertools import ...`` (and ``...batch.exceptions`` to
``asyncbatch.powertools.exceptions``): the same names and signatures, handlers get the same
Powertools data classes (or parser models of the whole record), and the batch runs on
asyncbatch's engine: a hard concurrency bound, stream keys and FIFO groups kept in order,
the Lambda deadline watched. The documentation's *Migrating from Powertools* page
(``docs/powertools.md``) lists every name and each deviation.

Powertools must be installed (``pip install aws-lambda-powertools``, or asyncbatch's
``powertools`` extra: ``pip install -e '.[powertools]'`` in a clone); ``import asyncbatch``
itself never imports it.
"""

try:
    import aws_lambda_powertools.utilities.batch  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "asyncbatch.powertools runs Powertools' batch API and needs it installed: "
        "pip install 'aws-lambda-powertools>=3' 'pydantic>=2.5'; or reinstall asyncbatch "
        "with its powertools extra (asyncbatch is not on PyPI): pip install -e "
        "'.[powertools]' in a clone of asyncbatch, or pip install "
        "'/path/to/asyncbatch-VERSION-py3-none-any.whl[powertools]'") from exc

from aws_lambda_powertools.utilities.batch import (
    BasePartialBatchProcessor,
    BasePartialProcessor,
    BatchTypeModels,
    EventType,
    ExceptionInfo,
    FailureResponse,
    SuccessResponse,
)

from . import exceptions
from ._functions import (
    async_batch_processor,
    async_process_partial_response,
    batch_processor,
    process_partial_response,
)
from ._processors import (
    DEFAULT_ASYNC_CONCURRENCY,
    AsyncBatchProcessor,
    BatchProcessor,
    SqsFifoPartialProcessor,
)

__all__ = [
    "DEFAULT_ASYNC_CONCURRENCY",
    "AsyncBatchProcessor",
    "BasePartialBatchProcessor",
    "BasePartialProcessor",
    "BatchProcessor",
    "BatchTypeModels",
    "EventType",
    "ExceptionInfo",
    "FailureResponse",
    "SqsFifoPartialProcessor",
    "SuccessResponse",
    "async_batch_processor",
    "async_process_partial_response",
    "batch_processor",
    "exceptions",
    "process_partial_response",
]

# Re-exported names report 'asyncbatch.powertools' as their module, not a private one.
from .._public import publish as _publish

_publish(globals(), __all__)
del _publish
