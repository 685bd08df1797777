"""CSV files dropped into S3, validated row by row and written to DynamoDB.

A CSV object put into a bucket triggers a Lambda function; for every object of the S3
event, ``S3CsvImporter`` takes these steps, each in its own module:

1. CSV reading (``_csv``): streams the object (``GetObject``) in chunks, decodes UTF-8
   incrementally (a BOM is dropped) and cuts it into records itself, in linear time,
   before ``csv`` parses each: quoted fields with commas and newlines work, the file is
   never held in memory, and a row over ``max_row_size`` (or a cell over ``csv``'s
   128 KiB limit) is rejected alone;
2. row validation (``_rows``): the header has every required column of the model, none
   twice; each row is validated against the pydantic model (empty cells count as
   missing values); an invalid row is rejected with its line number and the fields at
   fault;
3. writing (``_write``): the valid rows go out with ``BatchWriteItem`` in requests of
   25 items, ``concurrency`` requests in flight, on the engine's worker pool
   (``asyncbatch._core.pool.pool``); a bounded queue between the reader and the writers
   keeps memory flat. ``UnprocessedItems``, throttling and 5xx errors are retried with
   the engine's ``asyncbatch.Retry`` until written, the budget is spent, or the
   deadline (``asyncbatch._core.deadline``) refuses the wait. Two rows with the same key in
   one request are merged (the later wins, counted in ``rows_duplicate``); two requests
   holding one key are never in flight together, so a re-run writes the same items;
4. the errors report (``_report``): rejected rows with their line and reason, as CSV,
   cells neutralised against formula injection, at ``reports/<key>.errors.csv``;
5. file moves (``_moves``) and the summary (``_summary``): the object is copied to
   ``archive/<key>`` (every row written) or ``error/<key>``, one SNS message (under
   200 KiB) summarises the run, and only then is the source deleted. No write replaces
   an existing object. A step that fails leaves the source in place, says so on the
   result (``unfinished``), and makes ``lambda_handler`` raise so that S3's retry
   finishes the job.

Errors raised here (the ``AsyncBatchError`` tree continues)::

    AsyncBatchError
    └── S3ImportError                       one object could not be imported (fatal);
        │                                   found on ``ObjectResult.exception``
        ├── CsvHeaderError (ValueError)     no header, a column twice, a required one missing
        ├── CsvDecodeError (ValueError)     the object is not UTF-8 text
        ├── ImportDeadlineError (TimeoutError) the Lambda deadline came before the end
        ├── S3MoveError                     a step after the writes did not finish (``step``)
        └── ImportIncompleteError           raised by ``lambda_handler``: a retry must finish

A rejected row is not an exception: it is a ``RowError`` on the result. AWS errors
(``botocore.exceptions.ClientError``) that stop an import are kept as they are.

aioboto3 is imported only when clients are opened; pydantic only when a run starts.
"""

from __future__ import annotations

from ..._public import publish as _publish
from ._errors import (
    CsvDecodeError,
    CsvHeaderError,
    ImportDeadlineError,
    ImportIncompleteError,
    S3ImportError,
    S3MoveError,
)
from ._event import S3Object, s3_objects
from ._importer import Clients, S3CsvImporter, import_csv_objects
from ._report import neutralise
from ._results import ImportProgress, ImportResult, ObjectResult, RowError
from ._rows import BATCH_SIZE
from ._summary import MESSAGE_LIMIT

__all__ = [
    "BATCH_SIZE",
    "MESSAGE_LIMIT",
    "Clients",
    "CsvDecodeError",
    "CsvHeaderError",
    "ImportDeadlineError",
    "ImportIncompleteError",
    "ImportProgress",
    "ImportResult",
    "ObjectResult",
    "RowError",
    "S3CsvImporter",
    "S3ImportError",
    "S3MoveError",
    "S3Object",
    "import_csv_objects",
    "neutralise",
    "s3_objects",
]

_publish(globals(), __all__)
