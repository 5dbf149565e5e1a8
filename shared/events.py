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

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

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

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
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


Label = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_single_line)]
Identifier = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_email_address)]
FreeText = Annotated[str, Field(max_length=10_000), AfterValidator(_no_control_characters)]
Locale = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]
Score = Annotated[int, Field(ge=0, le=10, strict=True)]


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
    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
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
    comment: FreeText | None = None
    answers: FollowUpAnswers = FollowUpAnswers()
    source: ResponseSource = ResponseSource.WEBHOOK
    locale: Locale | None = None
    contact: Contact = Contact()
    segment: Segment = Segment()
    responded_at: AwareDatetime


class ClassifiedResponse(Event):
    """A response with what the classifier understood of it (responses-classified, key customer)."""

    response: Response
    category: Category
    is_update: bool = False


class CaseAction(StrEnum):
    OPENED = "opened"
    CLAIMED = "claimed"
    CONTACTED = "contacted"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ESCALATED = "escalated"


class CaseEvent(Event):
    """A step in following up a response (cases topic, key response id)."""

    case_id: Identifier
    response_id: Identifier
    action: CaseAction
    actor: Label | None = None
    note: FreeText | None = None


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
    """An event a service could not process, kept with its original bytes and why."""

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


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each field that failed and why."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "value"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
