"""Envelopes for ``model=``: the producer's payload inside an SQS message body.

- ``envelope="sns"``: an SNS topic delivering to an SQS queue (without raw message
  delivery) wraps each message in a notification, ``{"Type": "Notification",
  "MessageId", "TopicArn", "Message", ...}``; the model parses ``Message`` (text: JSON for
  a model).
- ``envelope="eventbridge"``: an EventBridge rule targeting an SQS queue sends the whole
  event, ``{"version", "id", "detail-type", "source", ..., "detail": {...}}``; the model
  parses ``detail``.

A body that is not such an envelope, or a payload the model refuses, fails its record
alone with a ``RecordValidationError`` whose ``fields`` are paths from the body
(``Message.order_id``, ``detail.order_id``, ``Type``). Powertools' parser envelopes
``SnsSqsEnvelope`` and ``EventBridgeEnvelope`` (class or instance) name the same
envelopes; its ``SqsEnvelope`` (the body itself) is no envelope.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .._errors import ConfigurationError, RecordValidationError

__all__ = ["ENVELOPES", "coerce_envelope", "payload_parser", "sample_body"]

#: the envelope names, and what the model then parses
ENVELOPES = {"sns": "Message", "eventbridge": "detail"}

_POWERTOOLS = "aws_lambda_powertools.utilities.parser.envelopes"
_POWERTOOLS_NAMES = {"SnsSqsEnvelope": "sns", "EventBridgeEnvelope": "eventbridge",
                     "SqsEnvelope": None}


def coerce_envelope(value: Any) -> Optional[str]:
    """``"sns"``, ``"eventbridge"`` or ``None``, from the name (any case) or Powertools'
    envelope of the same meaning; ``ConfigurationError`` saying what to give otherwise."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ENVELOPES:
        return value.lower()
    powertools = _powertools_name(value)
    if powertools is not None:
        if powertools in _POWERTOOLS_NAMES:
            return _POWERTOOLS_NAMES[powertools]
        raise ConfigurationError(
            f"envelope={value!r}: asyncbatch takes Powertools' SnsSqsEnvelope and "
            "EventBridgeEnvelope (the payload inside an SQS body), not " + powertools)
    raise ConfigurationError(
        f"envelope={value!r}: give 'sns' (an SNS notification delivered through SQS: the "
        "model parses its Message), 'eventbridge' (an EventBridge event delivered through "
        "SQS: the model parses its detail), or None (the body is the producer's own, as "
        "with SNS raw message delivery)")


def _powertools_name(value: Any) -> Optional[str]:
    """The class name of a Powertools parser envelope (class or instance), else None."""
    module = sys.modules.get(_POWERTOOLS)  # never imported from here
    base = getattr(module, "BaseEnvelope", None) if module is not None else None
    if base is None:
        return None
    cls = value if isinstance(value, type) else type(value)
    if isinstance(cls, type) and issubclass(cls, base):
        for name in _POWERTOOLS_NAMES:
            if issubclass(cls, getattr(module, name, ())):
                return name
        return cls.__name__
    return None


def payload_parser(envelope: str, model: Any) -> Callable[[Any, Any], Any]:
    """``parse(body, identifier)``: the payload inside the envelope of an SQS ``body``,
    validated by ``model``; ``RecordValidationError`` naming the field otherwise."""
    from pydantic import ValidationError

    validate_json = model.model_validate_json
    validate = model.model_validate
    unwrap = _sns if envelope == "sns" else _eventbridge
    where = ENVELOPES[envelope]

    def parse(body: Any, identifier: Any) -> Any:
        value, is_json = unwrap(body, identifier)
        try:
            return validate_json(value) if is_json else validate(value)
        except ValidationError as exc:
            raise _inside(identifier, exc, where) from exc

    return parse


def _document(body: Any, identifier: Any, what: str) -> Mapping[str, Any]:
    import json

    try:
        document = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise _bad(identifier, "body", f"the body is not JSON, so not {what} ({exc})") from exc
    if not isinstance(document, Mapping):
        raise _bad(identifier, "body", f"the body is a JSON {type(document).__name__}, not {what}")
    return document


def _sns(body: Any, identifier: Any) -> tuple[Any, bool]:
    """An SNS notification's ``Message`` (JSON text for the model)."""
    what = "an SNS notification"
    document = _document(body, identifier, what)
    kind = document.get("Type")
    if kind != "Notification":
        raise _bad(identifier, "Type",
                   f"the body is not {what}: Type={kind!r:.60} (want 'Notification'); with "
                   "raw message delivery the body is the message itself: leave envelope= "
                   "unset")
    message = document.get("Message")
    if not isinstance(message, str):
        raise _bad(identifier, "Message",
                   f"the notification's Message is {type(message).__name__}, not text")
    return message, True


def _eventbridge(body: Any, identifier: Any) -> tuple[Any, bool]:
    """An EventBridge event's ``detail`` (a JSON object)."""
    what = "an EventBridge event"
    document = _document(body, identifier, what)
    if "detail" not in document or "detail-type" not in document:
        missing = "detail" if "detail" not in document else "detail-type"
        raise _bad(identifier, missing,
                   f"the body is not {what}: it has no {missing!r} (an input transformer "
                   "on the rule's target may have replaced the event: then leave envelope= "
                   "unset)")
    return document["detail"], False


def _bad(identifier: Any, field: str, message: str) -> RecordValidationError:
    return RecordValidationError(f"record {identifier}: {message}", identifier=identifier,
                                 fields=(field,))


def _inside(identifier: Any, exc: Any, where: str) -> RecordValidationError:
    """A pydantic ``ValidationError`` of the payload at ``where``, the fields named from
    the body (``Message.order_id``)."""
    errors = exc.errors(include_url=False) if hasattr(exc, "errors") else []
    fields = [".".join([where, *(str(part) for part in err.get("loc", ()))]) for err in errors]
    details = "; ".join(f"{f}: {err.get('msg', '')}" for f, err in zip(fields, errors))
    return RecordValidationError(
        f"record {identifier}: invalid {', '.join(fields) or where} ({details})",
        identifier=identifier, fields=fields or [where], errors=errors)


# -- sample bodies, for asyncbatch.testing --------------------------------------------------

SNS_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:orders"


def sample_body(envelope: str, payload: Any, index: int, *, fifo: bool = False,
                detail_type: str = "Order Placed", source: str = "com.example.orders") -> str:
    """An SQS body wrapping ``payload`` (dict/list JSON-encoded, str/bytes kept for SNS;
    any JSON value for an EventBridge ``detail``) as the envelope's service writes it:
    SNS's notification (``fifo``: from a FIFO topic, with a ``SequenceNumber`` and no
    signature) or EventBridge's event."""
    import json

    from ._base import payload_text

    moment = f"2024-01-01T00:00:{index % 60:02d}.000Z"
    if envelope == "eventbridge":
        return json.dumps({
            "version": "0", "id": f"6a7e8feb-b491-4cf7-a9f1-{index:012d}",
            "detail-type": detail_type, "source": source, "account": "123456789012",
            "time": moment[:19] + "Z", "region": "us-east-1", "resources": [],
            "detail": payload,
        })
    topic = SNS_TOPIC_ARN + (".fifo" if fifo else "")
    notification: dict[str, Any] = {
        "Type": "Notification", "MessageId": f"d88d4479-6ec0-54fe-b63f-{index:012d}"}
    if fifo:
        notification["SequenceNumber"] = str(10000000000000004000 + index)
    notification.update(TopicArn=topic, Message=payload_text(payload), Timestamp=moment)
    if not fifo:
        notification.update(SignatureVersion="1", Signature="EXAMPLEpH+2Yq0...==",
                            SigningCertURL="https://sns.us-east-1.amazonaws.com/"
                                           "SimpleNotificationService-example.pem")
    notification["UnsubscribeURL"] = (
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        f"{topic}:15189ad7-870e-40e5-a7dd-a48898cd9f86")
    # SNS writes the notification pretty-printed, with " : " after each name
    return json.dumps(notification, indent=2, separators=(",", " : "))
