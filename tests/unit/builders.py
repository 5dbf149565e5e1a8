"""Builders and small helpers shared by the unit tests (no broker, no network)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, event
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import (
    CaseStepRow,
    InvitationRow,
    PurchaseRow,
    ResponseRow,
    SegmentBucketRow,
    SnapshotRow,
)
from services.classifier.domain import classify_response
from services.notifier.adapters import OutboxEntry
from shared.events import (
    ClassifiedResponse,
    Contact,
    FollowUpAnswers,
    KeywordHit,
    Response,
    Segment,
    SurveyKind,
)
from shared.nps import classify

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion on a fresh event loop (pytest-asyncio is not installed)."""
    return asyncio.run(coroutine)


def a_response(
    score: int = 3,
    *,
    response_id: str = "resp-1",
    customer_id: str = "cust-1",
    comment: str | None = "It broke twice.",
    email: str | None = None,
    name: str | None = None,
    survey_kind: SurveyKind = SurveyKind.NPS,
    responded_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Response:
    now = datetime.now(UTC)
    return Response(
        event_id=event_id or uuid.uuid4(),
        occurred_at=now,
        response_id=response_id,
        customer_id=customer_id,
        survey_kind=survey_kind,
        score=score,
        comment=comment,
        contact=Contact(email=email, name=name),
        responded_at=responded_at or now,
    )


def a_classified_response(score: int = 3, **fields: Any) -> ClassifiedResponse:
    return classify_response(a_response(score, **fields))


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def a_fast_classified_response(
    score: int,
    *,
    response_id: str = "resp-1",
    customer_id: str = "cust-1",
    survey_kind: SurveyKind = SurveyKind.NPS,
    responded_at: datetime | None = None,
    received_at: datetime | None = None,
    segment: dict[str, str] | None = None,
    heard_from: str | None = None,
    themes: tuple[str, ...] = (),
    invitation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> ClassifiedResponse:
    """A classified response built directly, without running the text analysis (fast)."""
    responded_at = responded_at or datetime.now(UTC)
    response = Response(
        event_id=uuid.uuid4(),
        occurred_at=received_at or responded_at,
        response_id=response_id,
        invitation_id=invitation_id,
        customer_id=customer_id,
        survey_kind=survey_kind,
        score=score,
        answers=FollowUpAnswers(heard_from=heard_from),
        segment=Segment(**(segment or {})),
        responded_at=responded_at,
    )
    return ClassifiedResponse(
        event_id=event_id or uuid.uuid4(),
        occurred_at=response.occurred_at,
        response=response,
        category=classify(score),
        themes=[KeywordHit(id=theme, label=theme.title()) for theme in themes],
    )


class InstantSlack:
    """A Slack sender that posts at once, answering where each message went, as Slack does."""

    def __init__(self) -> None:
        self.sent: list[OutboxEntry] = []

    async def send(self, entry: OutboxEntry) -> str:
        self.sent.append(entry)
        return f"C0ALERTS:1700000000.{len(self.sent):06d}"

    async def find(self, entry: OutboxEntry) -> str | None:
        return None


@contextlib.contextmanager
def counted(sessions: sessionmaker[Session]) -> Iterator[Counter[str]]:
    """The statements and commits the database is sent while the block runs."""
    engine = sessions.kw["bind"]
    counts: Counter[str] = Counter()

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def commit(*_args: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


# The aggregator's read model: every table its facts leave rows in.
READ_MODEL_TABLES = (
    ResponseRow,
    SegmentBucketRow,
    SnapshotRow,
    InvitationRow,
    PurchaseRow,
    CaseStepRow,
)


def emptied(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The aggregator's read model with no facts in it, for a test to start afresh."""
    with sessions.begin() as session:
        for table in READ_MODEL_TABLES:
            session.execute(delete(table))
    return sessions
