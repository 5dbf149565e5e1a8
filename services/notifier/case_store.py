"""Cases and posted alerts in the notifier's database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.notifier.cases import Case, CaseState
from shared.db import Base, UtcDateTime, insert_ignore, upsert

When = UtcDateTime


class CaseRow(Base):
    __tablename__ = "notifier_cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    response_id: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    question: Mapped[str | None] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(When)
    sla_due_at: Mapped[datetime] = mapped_column(When)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(When)
    contacted_by: Mapped[str | None] = mapped_column(String(120))
    contacted_at: Mapped[datetime | None] = mapped_column(When)
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    resolved_at: Mapped[datetime | None] = mapped_column(When)
    escalated_at: Mapped[datetime | None] = mapped_column(When)
    segment: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(When)


class AlertRow(Base):
    __tablename__ = "notifier_alerts"

    response_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str | None] = mapped_column(String(200))
    ts: Mapped[str | None] = mapped_column(String(40))
    classified: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(When)


@dataclass(frozen=True)
class PostedAlert:
    response_id: str
    channel: str | None
    ts: str | None
    classified: dict[str, Any]


_CASE_FIELDS = (
    "question",
    "claimed_by",
    "claimed_at",
    "contacted_by",
    "contacted_at",
    "resolved_by",
    "resolved_at",
    "escalated_at",
)


def _case(row: CaseRow) -> Case:
    return Case(
        case_id=row.case_id,
        response_id=row.response_id,
        customer_id=row.customer_id,
        state=CaseState(row.state),
        opened_at=row.opened_at,
        sla_due_at=row.sla_due_at,
        question=row.question,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        contacted_by=row.contacted_by,
        contacted_at=row.contacted_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        escalated_at=row.escalated_at,
    )


class SqlCases:
    """The notifier's cases; the unique response id keeps it to one case per response."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def open(self, case: Case, segment: dict[str, Any], now: datetime) -> bool:
        """Store a new case; False when the response has one already."""
        with self._sessions.begin() as session:
            return insert_ignore(
                session,
                CaseRow.__table__,
                {
                    "case_id": case.case_id,
                    "response_id": case.response_id,
                    "customer_id": case.customer_id,
                    "state": case.state.value,
                    "opened_at": case.opened_at,
                    "sla_due_at": case.sla_due_at,
                    "segment": segment,
                    "updated_at": now,
                    **{name: getattr(case, name) for name in _CASE_FIELDS},
                },
                keys=["case_id"],
            )

    def get(self, case_id: str) -> Case | None:
        with self._sessions() as session:
            row = session.get(CaseRow, case_id)
            return None if row is None else _case(row)

    def save(self, case: Case, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(CaseRow)
                .where(CaseRow.case_id == case.case_id)
                .values(
                    state=case.state.value,
                    updated_at=now,
                    **{name: getattr(case, name) for name in _CASE_FIELDS},
                )
            )

    def due_for_escalation(self, now: datetime, limit: int = 100) -> list[Case]:
        with self._sessions() as session:
            rows = session.execute(
                select(CaseRow)
                .where(
                    CaseRow.state == CaseState.OPEN.value,
                    CaseRow.escalated_at.is_(None),
                    CaseRow.sla_due_at <= now,
                )
                .order_by(CaseRow.sla_due_at)
                .limit(limit)
            ).scalars()
            return [_case(row) for row in rows]

    def forget_customer(self, customer_id: str) -> None:
        """Erasure: cases keep what staff did, not who the customer was."""
        with self._sessions.begin() as session:
            session.execute(
                update(CaseRow).where(CaseRow.customer_id == customer_id).values(customer_id=None)
            )

    def remember_alert(self, response_id: str, classified: dict[str, Any], now: datetime) -> None:
        with self._sessions.begin() as session:
            upsert(
                session,
                AlertRow.__table__,
                {"response_id": response_id, "classified": classified, "updated_at": now},
                keys=["response_id"],
            )

    def alert_posted(self, response_id: str, channel: str, ts: str, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(AlertRow)
                .where(AlertRow.response_id == response_id)
                .values(channel=channel, ts=ts, updated_at=now)
            )

    def alert(self, response_id: str) -> PostedAlert | None:
        with self._sessions() as session:
            row = session.get(AlertRow, response_id)
            if row is None:
                return None
            return PostedAlert(row.response_id, row.channel, row.ts, dict(row.classified))
