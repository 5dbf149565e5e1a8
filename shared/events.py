"""The v1 events of every topic, defined once.

Each event carries an ``event_id`` (deterministic where it comes from an
upstream source, so a redelivered webhook yields the same id) and an aware
``occurred_at``. Changes are additive only: a new optional field is fine, a
rename or a new meaning is a new topic version. Decoding ignores unknown fields
so that older workers read newer producers' events.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)

from shared.nps import Category

__all__ = [
    "CaseAction",
    "CaseEvent",
    "ClassifiedResponse",
    "Contact",
    "ContactPreference",
    "DeadLetter",
    "DecodeError",
    "Digest",
    "Event",
    "Experience",
    "FollowUpAnswers",
    "Invitation",
    "InvitationStatus",
    "Purchase",
    "PurchaseKind",
    "Response",
    "ResponseSource",
    "Segment",
    "SurveyKind",
    "decode",
    "encode",
]

# Control characters, and lone surrogates (text that cannot be stored or sent as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Every line break str.splitlines() knows that _CONTROL lets through: NEL (U+0085) too.
_LINE_BREAK = re.compile(r"[\r\n\x85\u2028\u2029]")
# The same rules as JSON Schema patterns, so that clients and fuzzers know them (lone
# surrogates cannot be written in an ECMA-262 pattern; JSON text cannot carry them anyway
# but as escapes, which the validators refuse).
_FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f\x85\u2028\u2029]*$"
# Spelled out rather than \s, which means different things in Python and in JSON Schema.
_SPACES = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_EMAIL_PART = rf"[^@<>\"',;{_SPACES}]+"
_EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
_EMAIL = re.compile(_EMAIL_PATTERN)


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


def _single_line(value: str) -> str:
    # A line break in a name or address is how a mail header gets injected.
    if _LINE_BREAK.search(value):
        raise ValueError("must be a single line")
    return _no_control_characters(value)


def _email_address(value: str) -> str:
    value = _single_line(value.strip())
    if not _EMAIL.match(value):
        raise ValueError("is not an email address")
    return value


_ONE_LINE = {"pattern": _ONE_LINE_PATTERN}
Label = Annotated[
    str,
    Field(min_length=1, max_length=120, json_schema_extra=_ONE_LINE),
    AfterValidator(_single_line),
]
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra=_ONE_LINE),
    AfterValidator(_single_line),
]
EmailAddress = Annotated[
    str,
    Field(
        max_length=254,
        json_schema_extra={"pattern": _EMAIL_PATTERN},
    ),
    AfterValidator(_email_address),
]
FreeText = Annotated[
    str,
    Field(max_length=10_000, json_schema_extra={"pattern": _FREE_TEXT_PATTERN}),
    AfterValidator(_no_control_characters),
]
# A comment as other producers may put it on a topic: kept whole, analysed truncated.
LongText = Annotated[
    str,
    Field(max_length=100_000, json_schema_extra={"pattern": _FREE_TEXT_PATTERN}),
    AfterValidator(_no_control_characters),
]
Locale = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


def _whole_number(value: object) -> object:
    # JSON has one number type: 7.0 is the whole number 7 (as JSON Schema's "integer" says),
    # but "7", true and 7.5 are not scores.
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number from 0 to 10, not text or true/false")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number from 0 to 10")
        return int(value)
    return value


Score = Annotated[int, Field(ge=0, le=10, strict=True), BeforeValidator(_whole_number)]

_AMOUNT_TEXT = re.compile(r"^[0-9]{1,10}(\.[0-9]+)?$")
MAX_AMOUNT = Decimal("9999999999.9999")


def _amount(value: object) -> Decimal:
    # Money arrives as a JSON number or a decimal string ("499.00"); more than four
    # decimals carry no meaning for NPS economics, so they are rounded, not refused.
    if isinstance(value, bool):
        raise ValueError("must be an amount such as 499.00, not true/false")
    if isinstance(value, str):
        if not _AMOUNT_TEXT.match(value):
            raise ValueError("must be an amount such as 499.00 (digits, optional decimals)")
        amount = Decimal(value)
    elif isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
        if not amount.is_finite():
            raise ValueError("must be a finite amount")
    else:
        raise ValueError("must be an amount such as 499.00")
    if amount < 0 or amount > MAX_AMOUNT:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        return amount.quantize(Decimal("0.0001"))
    return amount


Amount = Annotated[
    Decimal,
    PlainValidator(_amount),
    # As pydantic writes a Decimal in JSON (a string), said explicitly: with a plain
    # validator it would otherwise warn on every event.
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 9999999999},
                {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]+)?$"},
            ],
            "description": "Non-negative amount; a JSON number or a decimal string.",
        }
    ),
]


class Record(BaseModel):
    """A value inside an event: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Record):
    """What every event on every topic has."""

    schema_version: Literal[1] = 1
    event_id: UUID
    occurred_at: AwareDatetime


class SurveyKind(StrEnum):
    NPS = "nps"
    ENPS = "enps"


class Experience(StrEnum):
    PRODUCT = "product"
    SERVICE = "service"


class Segment(Record):
    """Where in the business an experience happened; the dimensions NPS is cut by."""

    region: Label | None = None
    business_unit: Label | None = None
    department: Label | None = None
    product: Label | None = None
    store: Label | None = None
    channel: Label | None = None


class Contact(Record):
    """How to reach a customer. Personal data: never logged, never a metric label."""

    email: EmailAddress | None = None
    name: Label | None = None


class PurchaseKind(StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"
    CANCELLATION = "cancellation"


class Purchase(Event):
    """An order event from an upstream system (purchases topic, key customer)."""

    kind: PurchaseKind = PurchaseKind.PURCHASE
    order_id: Identifier
    customer_id: Identifier
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    products: Annotated[list[Label], Field(max_length=200)] = []
    segment: Segment = Segment()
    experience: Experience = Experience.PRODUCT
    contact: Contact = Contact()
    locale: Locale | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    purchased_at: AwareDatetime | None = None


class InvitationStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"


class Invitation(Event):
    """A decision about surveying a customer (invitations topic, key customer)."""

    invitation_id: Identifier
    customer_id: Identifier
    status: InvitationStatus
    reason: Label | None = None
    send_at: AwareDatetime | None = None
    survey_kind: SurveyKind = SurveyKind.NPS
    order_id: Identifier | None = None
    amount: Decimal | None = None
    currency: str | None = None
    products: list[Label] = []
    segment: Segment = Segment()
    locale: Locale | None = None
    contact: Contact = Contact()
    experience: Experience | None = None
    purchased_at: AwareDatetime | None = None


class ResponseSource(StrEnum):
    WEB = "web"
    EMAIL_CLICK = "email_click"
    WEBHOOK = "webhook"


class FollowUpAnswers(Record):
    """The answers to the questions after the score."""

    reason: FreeText | None = None
    improve: FreeText | None = None
    heard_from: Label | None = None


class Response(Event):
    """A customer's answer (responses topic, key customer).

    One response per invitation: a later comment on the same invitation is a
    new event with the same ``response_id``.
    """

    response_id: Identifier
    invitation_id: Identifier | None = None
    customer_id: Identifier
    survey_kind: SurveyKind = SurveyKind.NPS
    score: Score
    comment: LongText | None = None
    answers: FollowUpAnswers = FollowUpAnswers()
    source: ResponseSource = ResponseSource.WEBHOOK
    locale: Locale | None = None
    contact: Contact = Contact()
    segment: Segment = Segment()
    responded_at: AwareDatetime


class ResponseContext(Record):
    """The order a response is about, as frozen into its invitation."""

    order_id: Identifier | None = None
    amount: Decimal | None = None
    currency: str | None = None
    products: list[Label] = []
    segment: Segment = Segment()
    locale: Locale | None = None
    experience: Experience | None = None
    purchased_at: AwareDatetime | None = None


class KeywordHit(Record):
    """A theme or urgent category found in a comment, with the words that showed it."""

    id: Label
    label: Label
    words: list[str] = []


class SentimentReading(Record):
    """How the comment feels: a label and a score from -1 (negative) to 1 (positive)."""

    label: Literal["negative", "neutral", "positive"]
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    words: list[str] = []


class ClassifiedResponse(Event):
    """A response with what the classifier understood of it (responses-classified, key customer).

    ``is_update`` marks a later version of a response already classified (a comment
    added after a one-click score): the same response, never a second one.
    """

    response: Response
    category: Category
    is_update: bool = False
    language: Literal["da", "sv", "no", "en", "de"] | None = None
    language_method: Literal["detected", "locale", "unknown"] = "unknown"
    sentiment: SentimentReading | None = None
    themes: list[KeywordHit] = []
    urgent: list[KeywordHit] = []
    flags: list[Literal["score_comment_mismatch", "urgent"]] = []
    priority: Literal["normal", "high"] = "normal"
    comment_truncated: bool = False
    context: ResponseContext | None = None


class CaseAction(StrEnum):
    OPENED = "opened"
    CLAIMED = "claimed"
    CONTACTED = "contacted"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ESCALATED = "escalated"


class CaseEvent(Event):
    """A step in following up a response (cases topic, key response id).

    ``sla_due_at`` is on the opened event: when the case must be claimed by. Older
    opened events lack it.
    """

    case_id: Identifier
    response_id: Identifier
    action: CaseAction
    actor: Label | None = None
    note: FreeText | None = None
    sla_due_at: AwareDatetime | None = None


class ContactPreference(Event):
    """A customer's choice about being contacted (contact-preferences, key customer)."""

    customer_id: Identifier
    action: Literal["unsubscribed", "resubscribed", "erased"]


class Digest(Event):
    """A periodic results summary for the notifier to post."""

    period_start: AwareDatetime
    period_end: AwareDatetime
    title: Label
    text: FreeText


class DeadLetter(Event):
    """An event a service could not process, kept with its original bytes and why.

    A key or value too big to travel in a letter is kept cut to its beginning, with its
    whole size in ``key_size`` or ``value_size`` (None when kept whole); the whole message
    is still on its topic, at the partition and offset named.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", ser_json_bytes="base64", val_json_bytes="base64"
    )

    service: Label
    topic: Label
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error_type: Label
    error: Annotated[str, Field(max_length=4000)]
    failed_at: datetime
    key_size: int | None = None
    value_size: int | None = None


class DecodeError(ValueError):
    """The bytes on a topic are not a valid event of the expected type."""


E = TypeVar("E", bound=Event)


def decode(event_type: type[E], data: bytes | None) -> E:
    """Parse a topic value into its event, or raise DecodeError with the reason."""
    if data is None:
        raise DecodeError("the message has no value")
    try:
        return event_type.model_validate_json(data)
    except ValidationError as exc:
        raise DecodeError(describe_validation_error(exc)) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"not a {event_type.__name__} event: {exc}") from exc


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


# The JSON parser's words for text that is no text, said in the terms of whoever wrote it.
_JSON_TEXT_FAULTS = {
    "hex escape": "a \\u escape that is an unpaired surrogate",
    "invalid unicode code point": "bytes that are not UTF-8, such as an encoded surrogate",
}


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each field that failed and why."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "value"
        message = error["msg"]
        if error["type"] == "json_invalid":
            message += "".join(
                f" ({fault})" for words, fault in _JSON_TEXT_FAULTS.items() if words in message
            )
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
