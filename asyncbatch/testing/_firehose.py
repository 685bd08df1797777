"""Amazon Data Firehose's side of a transformation, in memory (``simulate`` on a Firehose
event).

As the Firehose developer guide ("Handle failure in data transformation") describes it:

- Firehose reads every ``recordId`` back: ``Ok`` records go on to the destination with
  their transformed data (and ``metadata.partitionKeys``), ``Dropped`` ones nowhere.
- A record answered ``ProcessingFailed`` is not sent again: Firehose writes it, with its
  original data, to the ``processing-failed`` prefix of the stream's S3 bucket (here:
  ``dead_letters``).
- When the invocation fails (the function raises, returns a response Firehose cannot read:
  a missing, repeated or unknown ``recordId``, an unknown ``result``, data that is not
  base64, or more than Lambda's 6 MB), Firehose invokes again with the same records, up
  to its ``NumberOfRetries`` (3 by default: ``max_attempts=4``); then every record goes to
  ``processing-failed``.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Hashable, Mapping
from typing import Any, Callable, Optional

from .._lambda.response import InvalidResponseError

__all__ = ["read_firehose_response", "run_firehose"]

_RESULTS = ("Ok", "Dropped", "ProcessingFailed")


def read_firehose_response(response: Any, ids: list[str], keys: list[str]
                           ) -> dict[str, tuple[str, Any]]:
    """Each ``recordId`` of ``ids`` -> ``(result, FirehoseResult or None)`` as Firehose
    reads ``response`` (``keys``: each record's payload field, ``data`` or
    ``kafkaRecordValue``); ``InvalidResponseError`` for a response Firehose refuses, which
    fails the whole invocation."""
    import base64
    import binascii

    from .._sources.firehose import FirehoseResult
    from .._sources.firehose_response import LIMIT, response_size

    if not isinstance(response, Mapping) or not isinstance(response.get("records"), list):
        raise InvalidResponseError(
            f"the function returned {type(response).__name__} {response!r:.80}; Firehose "
            "reads {'records': [{'recordId', 'result', 'data'}, ...]}")
    try:
        size = response_size(response)
    except (TypeError, ValueError) as exc:
        raise InvalidResponseError(f"the response is not JSON ({exc})") from exc
    if size > LIMIT:
        raise InvalidResponseError(
            f"the response is {size:,} bytes, more than Lambda's {LIMIT:,} "
            "(Function.ResponseSizeTooLarge): the invocation fails")
    key_of = dict(zip(ids, keys))
    answers: dict[str, tuple[str, Any]] = {}
    for index, entry in enumerate(response["records"]):
        ident = entry.get("recordId") if isinstance(entry, Mapping) else None
        if ident not in key_of:
            raise InvalidResponseError(
                f"records[{index}] has recordId {ident!r:.80}, not one of the invocation's")
        if ident in answers:
            raise InvalidResponseError(f"records[{index}] repeats recordId {ident!r}")
        result = entry.get("result")
        if result not in _RESULTS:
            raise InvalidResponseError(
                f"records[{index}] has result {result!r:.40}; Firehose takes "
                f"{', '.join(_RESULTS)}")
        output = None
        if result == "Ok":
            key = key_of[ident]
            try:
                data = base64.b64decode(entry.get(key), validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise InvalidResponseError(
                    f"records[{index}].{key} is not base64 ({exc})") from exc
            metadata = entry.get("metadata")
            partition_keys = (metadata.get("partitionKeys")
                              if isinstance(metadata, Mapping) else None)
            output = FirehoseResult(data, partition_keys or None)
        answers[ident] = (result, output)
    missing = [ident for ident in ids if ident not in answers]
    if missing:
        raise InvalidResponseError(
            f"the response has no answer for recordId {missing[0]!r} ({len(missing)} "
            "missing): Firehose fails the invocation")
    return answers


async def run_firehose(invoke: Callable[[Any, Any], Awaitable[Any]], event: Any,
                       new_context: Callable[[], Any], max_attempts: int,
                       whole_batch_failure: type[Exception]) -> Any:
    """Invoke until the response is read (or ``max_attempts`` invocations failed); the
    ``Simulation`` of what Firehose made of it."""
    from .._sources import read_event
    from .._sources.firehose import data_key
    from ._simulate import Invocation, Simulation

    _, records, plan = read_event(event, None)
    ids: list[str] = list(plan.identifiers or ())
    if len(set(ids)) != len(ids):
        raise ValueError("the event holds two records with one recordId; give every record "
                         "its own")
    pristine = [copy.deepcopy(raw) for raw in records]
    keys = [data_key(raw) for raw in pristine]
    invocations: list[Invocation] = []
    transformed: dict[Hashable, Any] = {}
    dropped: list[Hashable] = []
    dead: list[dict[str, Any]] = []
    attempts = 0
    while True:
        attempts += 1
        delivered = {**copy.deepcopy({k: v for k, v in event.items() if k != "records"}),
                     "records": [copy.deepcopy(raw) for raw in pristine]}
        response: Any = None
        error: Optional[BaseException] = None
        answers: dict[str, tuple[str, Any]] = {}
        try:
            response = await invoke(delivered, new_context())
            answers = read_firehose_response(response, ids, keys)
        except whole_batch_failure as exc:
            error = getattr(exc, "error", exc)
        except InvalidResponseError as exc:
            error = exc
        if error is not None:
            give_up = attempts >= max_attempts
            if give_up:
                dead.extend(copy.deepcopy(pristine))
            invocations.append(Invocation(
                event=delivered, response=response, error=error, delivered=tuple(ids),
                failed=tuple(ids), dead_lettered=tuple(ids) if give_up else ()))
            if give_up:
                break
            continue
        failed = tuple(i for i in ids if answers[i][0] == "ProcessingFailed")
        for index, ident in enumerate(ids):
            result, output = answers[ident]
            if result == "Ok":
                transformed[ident] = output
            elif result == "Dropped":
                dropped.append(ident)
            else:
                dead.append(copy.deepcopy(pristine[index]))
        invocations.append(Invocation(
            event=delivered, response=response, error=None, delivered=tuple(ids),
            failed=failed, dead_lettered=failed))
        break
    return Simulation(deliveries=dict.fromkeys(ids, attempts), dead_letters=tuple(dead),
                      invocations=tuple(invocations), transformed=transformed,
                      dropped=tuple(dropped))
