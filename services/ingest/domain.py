"""The edge's contracts: what upstream systems and survey pages submit, and the events made of it.

Submissions are strict (an unknown field is a 422, it is probably a typo); the
events they become are defined in shared.events. Event ids are derived from the
source and its id, so the same submission sent twice publishes the same event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from shared.events import (
    Amount,
    Contact,
    EmailAddress,
    Experience,
    FollowUpAnswers,
    FreeText,
    Identifier,
    Invitation,
    InvitationStatus,
    Label,
    Locale,
    Purchase,
    PurchaseKind,
    Response,
    ResponseSource,
    Score,
    Segment,
    SurveyKind,
)
from shared.ids import event_id


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Copenhagen") from exc
    return name


TimeZoneName = Annotated[
    str,
    AfterValidator(_time_zone),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(available_timezones()),
            "description": "IANA time zone, e.g. Europe/Oslo.",
        }
    ),
]


class Submission(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactSubmission(Submission):
    email: EmailAddress | None = None
    name: Label | None = None


class ResponseSubmission(Submission):
    """A survey answer. Send it again with a comment to update the same response."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # What _identified() checks, said in the schema too, so clients and fuzzers know it.
        json_schema_extra={
            "anyOf": [
                {"required": ["response_id"], "properties": {"response_id": {"type": "string"}}},
                {
                    "required": ["invitation_id"],
                    "properties": {"invitation_id": {"type": "string"}},
                },
            ]
        },
    )

    response_id: Identifier | None = Field(
        None, description="Stable id of the response; defaults to the invitation id."
    )
    invitation_id: Identifier | None = None
    customer_id: Identifier
    survey_kind: SurveyKind = SurveyKind.NPS
    score: Score = Field(description="How likely to recommend us, 0-10.")
    comment: FreeText | None = None
    answers: FollowUpAnswers = FollowUpAnswers()
    source: ResponseSource = ResponseSource.WEBHOOK
    locale: Locale | None = None
    contact: ContactSubmission = ContactSubmission()
    segment: Segment = Segment()
    responded_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _identified(self) -> ResponseSubmission:
        if self.response_id is None and self.invitation_id is None:
            raise ValueError("give response_id or invitation_id, so updates find their response")
        return self

    def to_event(self, received_at: datetime) -> Response:
        response_id = self.response_id or self.invitation_id
        assert response_id is not None
        content = {
            "score": self.score,
            "comment": self.comment,
            "answers": self.answers.model_dump(),
        }
        return Response(
            event_id=event_id(f"response:{self.source}", response_id, content),
            occurred_at=received_at,
            response_id=response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            survey_kind=self.survey_kind,
            score=self.score,
            comment=self.comment,
            answers=self.answers,
            source=self.source,
            locale=self.locale,
            contact=Contact(**self.contact.model_dump()),
            segment=self.segment,
            responded_at=self.responded_at or received_at,
        )


class PurchaseSubmission(Submission):
    """An order event from an upstream system."""

    kind: PurchaseKind = PurchaseKind.PURCHASE
    order_id: Identifier
    customer_id: Identifier
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. DKK")]
    products: Annotated[list[Label], Field(max_length=200)] = []
    segment: Segment = Segment()
    experience: Experience = Experience.PRODUCT
    contact: ContactSubmission = ContactSubmission()
    locale: Locale | None = None
    timezone: TimeZoneName | None = Field(
        None, description="IANA time zone of the customer, e.g. Europe/Oslo (else from locale)."
    )
    purchased_at: AwareDatetime | None = None

    def to_event(self, received_at: datetime) -> Purchase:
        return Purchase(
            event_id=event_id(f"purchase:{self.kind}", self.order_id),
            occurred_at=received_at,
            kind=self.kind,
            order_id=self.order_id,
            customer_id=self.customer_id,
            amount=self.amount,
            currency=self.currency,
            products=self.products,
            segment=self.segment,
            experience=self.experience,
            contact=Contact(**self.contact.model_dump()),
            locale=self.locale,
            timezone=self.timezone,
            purchased_at=self.purchased_at or received_at,
        )


class PurchaseBatch(Submission):
    """Several order events in one request; all are accepted or none."""

    purchases: Annotated[list[PurchaseSubmission], Field(min_length=1, max_length=1000)]


def now() -> datetime:
    return datetime.now(UTC)


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as the API reports them: where, what, and the kind of problem."""
    return [
        {
            "loc": ["body", *error["loc"]],
            "field": ".".join(str(part) for part in error["loc"]) or "body",
            "msg": error["msg"],
            "type": error["type"],
        }
        for error in errors
    ]


def response_from_link(
    link: dict[str, Any],
    score: int,
    answers: FollowUpAnswers,
    source: ResponseSource,
    received_at: datetime,
) -> Response:
    """The response a survey link records: one per invitation, updated by each later answer.

    An eNPS response carries no personal data: the employee is replaced by a pseudonym of
    the invitation, and the only segment kept is the department.
    """
    invitation_id = str(link["i"])
    kind = SurveyKind(link.get("k", SurveyKind.NPS))
    customer_id = str(link["c"])
    segment = Segment()
    if kind == SurveyKind.ENPS:
        customer_id = "enps-" + event_id("enps-respondent", invitation_id).hex[:16]
        segment = Segment(department=link.get("d"))
    content = {"score": score, "comment": answers.reason, "answers": answers.model_dump()}
    return Response(
        event_id=event_id(f"response:{source}", invitation_id, content),
        occurred_at=received_at,
        response_id=invitation_id,
        invitation_id=invitation_id,
        customer_id=customer_id,
        survey_kind=kind,
        score=score,
        comment=answers.reason,
        answers=answers,
        source=source,
        locale=link.get("l") or None,
        segment=segment,
        responded_at=received_at,
    )


class Employee(Submission):
    """One employee to invite; their address is used to send, never kept with the answer."""

    employee_id: Identifier
    email: EmailAddress
    name: Label | None = None
    department: Label
    locale: Locale | None = None


class EnpsCampaign(Submission):
    """An employee NPS round: everyone listed is invited once, now (inside the send window)."""

    campaign_id: Identifier
    employees: Annotated[list[Employee], Field(min_length=1, max_length=10_000)]
    timezone: TimeZoneName | None = None

    def invitations(self, send_at: datetime, received_at: datetime) -> list[Invitation]:
        return [
            Invitation(
                event_id=event_id("enps-invitation", f"{self.campaign_id}:{employee.employee_id}"),
                occurred_at=received_at,
                invitation_id=str(event_id("enps", f"{self.campaign_id}:{employee.employee_id}")),
                customer_id=employee.employee_id,
                status=InvitationStatus.SCHEDULED,
                send_at=send_at,
                survey_kind=SurveyKind.ENPS,
                segment=Segment(department=employee.department),
                locale=employee.locale,
                contact=Contact(email=employee.email, name=employee.name),
            )
            for employee in self.employees
        ]
