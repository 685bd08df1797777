"""``aws_lambda_powertools.utilities.batch.exceptions``, for ``asyncbatch.powertools``.

These are Powertools' own classes, re-exported: code that catches
``BatchProcessingError`` keeps working whichever module raised it.
"""

from aws_lambda_powertools.utilities.batch.exceptions import (
    BaseBatchProcessingError,
    BatchProcessingError,
    ExceptionInfo,
    SQSFifoCircuitBreakerError,
    SQSFifoMessageGroupCircuitBreakerError,
    UnexpectedBatchTypeError,
)

__all__ = [
    "BaseBatchProcessingError",
    "BatchProcessingError",
    "ExceptionInfo",
    "SQSFifoCircuitBreakerError",
    "SQSFifoMessageGroupCircuitBreakerError",
    "UnexpectedBatchTypeError",
]
