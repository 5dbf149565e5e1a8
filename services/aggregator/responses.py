"""The responses and invitations the aggregator counts: each once, by its id. Pure: no I/O.

A fact is what one row of the aggregator's read model holds, so the database can load
the same rows back into these ledgers. Redelivery and updates are settled per id by
a version that does not depend on arrival order: the response's ``occurred_at`` (a
later comment on the same response is a later event), then the classified event's id
(a reclassification of the same event; arbitrary but the same on every worker). The
latest version replaces the earlier one's figures; it never adds to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.events import ClassifiedResponse, Invitation, InvitationStatus, SurveyKind
from shared.nps import Category


@dataclass(frozen=True)
class Theme:
    """A theme of a comment, by the taxonomy's id and its label."""

    id: str
    label: str


@dataclass(frozen=True)
class ResponseFact:
    """One response as the aggregator counts it: a row of the read model."""

    response_id: str
    customer_id: str
    survey_kind: SurveyKind
    score: int
    category: Category
    responded_at: datetime
    segment: Mapping[str, str]
    invitation_id: str | None = None
    heard_from: str | None = None
    themes: tuple[Theme, ...] = ()
    received_at: datetime | None = None
    event_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "responded_at", self.responded_at.astimezone(UTC))
        received = self.received_at or self.responded_at
        object.__setattr__(self, "received_at", received.astimezone(UTC))

    @classmethod
    def of(cls, classified: ClassifiedResponse) -> ResponseFact:
        response = classified.response
        # The order's segment as frozen into the invitation, else what the response says:
        # the same choice as the notifier's routing, so both cut by the same segment.
        segment = classified.context.segment if classified.context else response.segment
        themes: dict[str, Theme] = {}
        for hit in classified.themes:
            themes.setdefault(hit.id, Theme(hit.id, hit.label))
        return cls(
            response_id=response.response_id,
            customer_id=response.customer_id,
            survey_kind=response.survey_kind,
            score=response.score,
            category=classified.category,
            responded_at=response.responded_at,
            segment=segment.model_dump(exclude_none=True),
            invitation_id=response.invitation_id,
            heard_from=response.answers.heard_from,
            themes=tuple(themes.values()),
            received_at=classified.occurred_at,
            event_id=str(classified.event_id),
        )

    @property
    def version(self) -> tuple[datetime, str]:
        assert self.received_at is not None
        return (self.received_at, self.event_id)

    def supersedes(self, other: ResponseFact) -> bool:
        """Whether this version of a response replaces ``other`` (strictly later)."""
        return self.version > other.version


class ResponseLedger:
    """Every response once, by response id; an update replaces, it never adds.

    The one mutable thing here: the state of the stream's fold. The facts are frozen.
    """

    def __init__(self, facts: Iterable[ResponseFact] = ()) -> None:
        self._facts: dict[str, ResponseFact] = {}
        for fact in facts:
            self.record(fact)

    def record(self, fact: ResponseFact) -> bool:
        """Keep a response unless a later version of it is kept already; True if it changed."""
        kept = self._facts.get(fact.response_id)
        if kept is not None and not fact.supersedes(kept):
            return False
        self._facts[fact.response_id] = fact
        return True

    def __iter__(self) -> Iterator[ResponseFact]:
        return iter(self._facts.values())

    def __len__(self) -> int:
        return len(self._facts)

    def get(self, response_id: str) -> ResponseFact | None:
        return self._facts.get(response_id)

    def latest_by_customer(self, survey_kind: SurveyKind = SurveyKind.NPS) -> dict[str, Category]:
        """Each customer's category as of their latest response of a survey kind."""
        latest: dict[str, ResponseFact] = {}
        for fact in self._facts.values():
            if fact.survey_kind != survey_kind:
                continue
            kept = latest.get(fact.customer_id)
            if kept is None or _later(fact, kept):
                latest[fact.customer_id] = fact
        return {customer: fact.category for customer, fact in latest.items()}


def _later(fact: ResponseFact, other: ResponseFact) -> bool:
    return (fact.responded_at, fact.response_id) > (other.responded_at, other.response_id)


@dataclass(frozen=True)
class InvitationFact:
    """An invitation that was sent: the denominator of the response rate."""

    invitation_id: str
    customer_id: str
    survey_kind: SurveyKind
    sent_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "sent_at", self.sent_at.astimezone(UTC))

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationFact | None:
        """The sent invitation; None for the other decisions (scheduled, cancelled...)."""
        if invitation.status != InvitationStatus.SENT:
            return None
        return cls(
            invitation.invitation_id,
            invitation.customer_id,
            invitation.survey_kind,
            invitation.occurred_at,
        )


class InvitationLedger:
    """Every sent invitation once, by invitation id, at the first time it was said sent."""

    def __init__(self) -> None:
        self._facts: dict[str, InvitationFact] = {}

    def record(self, fact: InvitationFact) -> bool:
        kept = self._facts.get(fact.invitation_id)
        # The earliest "sent" wins: a retried send event neither moves nor repeats it.
        if kept is not None and (kept.sent_at, kept.customer_id) <= (
            fact.sent_at,
            fact.customer_id,
        ):
            return False
        self._facts[fact.invitation_id] = fact
        return True

    def __iter__(self) -> Iterator[InvitationFact]:
        return iter(self._facts.values())

    def __len__(self) -> int:
        return len(self._facts)
