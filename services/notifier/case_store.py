"""Cases and posted alerts in the notifier's database."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import JSON, String, Table, bindparam, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.notifier.cases import Case, CaseError, CaseState
from shared.db import Base, UtcDateTime, insert_ignore, inserted_keys, upsert, upsert_many
from shared.events import CaseAction, CaseEvent
from shared.ids import case_id_for

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
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)
    channel: Mapped[str | None] = mapped_column(String(200))
    ts: Mapped[str | None] = mapped_column(String(40))
    classified: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(When)


class CaseStepRow(Base):
    __tablename__ = "notifier_case_steps"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(When)
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(2000))


# The statements of a response's intake, built once (see shared.db on why).
_CASES = cast(Table, CaseRow.__table__)
_ALERTS = cast(Table, AlertRow.__table__)
_CASE = select(_CASES).where(_CASES.c.case_id == bindparam("case_id"))
_CASE_FOR_UPDATE = _CASE.with_for_update()
_STEPS = cast(Table, CaseStepRow.__table__)
# Opened and escalated: history only, applied where they happened (the notifier, on open
# and on escalation); the case steps topic brings them back to be recorded.
HISTORY_ONLY = frozenset({CaseAction.OPENED, CaseAction.ESCALATED})
_STEP = select(CaseStepRow.__table__.c.event_id).where(
    CaseStepRow.__table__.c.event_id == bindparam("event_id")
)
_KEPT_VERSION = select(_ALERTS.c.classified).where(
    _ALERTS.c.response_id == bindparam("response_id")
)
# A batch's intake (take_in_many): what is known of all its responses, a statement each.
_KEPT_EVENT_IDS = select(_ALERTS.c.response_id, _ALERTS.c.classified["event_id"].as_string()).where(
    _ALERTS.c.response_id.in_(bindparam("response_ids", expanding=True))
)
_CASES_AMONG = select(_CASES).where(_CASES.c.case_id.in_(bindparam("case_ids", expanding=True)))
_CASES_FOR_UPDATE_AMONG = (
    select(_CASES)
    .where(_CASES.c.case_id.in_(bindparam("case_ids", expanding=True)))
    .order_by(_CASES.c.case_id)
    .with_for_update()
)
_OPENED_AMONG = select(CaseStepRow.__table__.c.case_id).where(
    CaseStepRow.__table__.c.case_id.in_(bindparam("case_ids", expanding=True)),
    CaseStepRow.__table__.c.action == CaseAction.OPENED.value,
)
_ALERT_POSTED = (
    update(_ALERTS)
    # Not the columns' own names: those are SQLAlchemy's for an UPDATE's values.
    .where(_ALERTS.c.response_id == bindparam("posted_response"))
    .values(
        channel=bindparam("posted_channel"),
        ts=bindparam("posted_ts"),
        updated_at=bindparam("now"),
    )
)


class UnknownCase(LookupError):
    """A case event about a case this notifier never opened: a dead letter, not a guess."""

    @classmethod
    def of(cls, event: CaseEvent) -> UnknownCase:
        return cls(f"case {event.case_id} (response {event.response_id}) does not exist here")


class StepOutcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class StepResult:
    outcome: StepOutcome
    before: Case
    after: Case
    reason: str | None = None


@dataclass(frozen=True)
class CaseStep:
    """One line of a case's history."""

    action: str
    actor: str | None
    at: datetime
    outcome: str
    note: str | None


@dataclass(frozen=True)
class Intake:
    """A response's version as the case store took it in."""

    # Not a redelivery of the version kept for the response's alert.
    new_version: bool
    # The response's case, as stored now (None: it has none).
    case: Case | None
    # The case whose opened event is to be published: opened now, or opened before by a
    # worker that died before its event came back (the same event again: harmless).
    to_announce: Case | None


@dataclass(frozen=True, order=True)
class Version:
    """A response's version to take in (take_in_many): its id, the classified response, and
    the case it opens (with its segment) when it asks for one."""

    response_id: str
    classified: dict[str, Any] = field(compare=False)
    opening: tuple[Case, dict[str, Any]] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Posted:
    """Where a response's alert was posted (a Slack channel and message ts), and when."""

    response_id: str
    channel: str
    ts: str
    at: datetime


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


def _case(row: Any) -> Case:
    """From a CaseRow, or a row of its table's columns."""
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


ERASED_COMMENT = "[erased at the customer's request]"


def erased(classified: dict[str, Any]) -> dict[str, Any]:
    """A stored classified response without what the customer wrote or who they are."""
    scrubbed = copy.deepcopy(classified)
    response = scrubbed.get("response") or {}
    if response.get("comment"):
        response["comment"] = ERASED_COMMENT
    response["answers"] = {}
    response["contact"] = {}
    response["customer_id"] = "erased"
    for hits in ("themes", "urgent"):
        for hit in scrubbed.get(hits) or []:
            hit["words"] = []
    return scrubbed


def _write(session: Session, case: Case, now: datetime) -> None:
    session.execute(
        update(CaseRow)
        .where(CaseRow.case_id == case.case_id)
        .values(
            state=case.state.value,
            updated_at=now,
            **{name: getattr(case, name) for name in _CASE_FIELDS},
        )
    )


def _open(session: Session, case: Case, segment: dict[str, Any], now: datetime) -> bool:
    return insert_ignore(session, _CASES, _case_row(case, segment, now), keys=["case_id"])


def _case_row(case: Case, segment: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "response_id": case.response_id,
        "customer_id": case.customer_id,
        "state": case.state.value,
        "opened_at": case.opened_at,
        "sla_due_at": case.sla_due_at,
        "segment": segment,
        "updated_at": now,
        **{name: getattr(case, name) for name in _CASE_FIELDS},
    }


def _stored_case(session: Session, case_id: str) -> Case | None:
    row = session.execute(_CASE, {"case_id": case_id}).first()
    return None if row is None else _case(row)


def _remember_alert(
    session: Session, response_id: str, classified: dict[str, Any], now: datetime
) -> bool:
    kept = session.execute(_KEPT_VERSION, {"response_id": response_id}).scalar_one_or_none()
    changed = kept is None or kept.get("event_id") != classified.get("event_id")
    upsert(session, _ALERTS, _alert_row(response_id, classified, now), keys=["response_id"])
    return changed


def _alert_row(response_id: str, classified: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "response_id": response_id,
        "customer_id": (classified.get("response") or {}).get("customer_id"),
        "classified": classified,
        "updated_at": now,
    }


def _apply(session: Session, event: CaseEvent, now: datetime) -> StepResult:
    # FOR UPDATE: two workers applying two clicks on one case take turns.
    row = session.execute(_CASE_FOR_UPDATE, {"case_id": event.case_id}).first()
    if row is None:
        raise UnknownCase.of(event)
    before = _case(row)
    if session.execute(_STEP, {"event_id": str(event.event_id)}).first() is not None:
        return StepResult(StepOutcome.DUPLICATE, before, before)
    after, outcome, reason = before, StepOutcome.APPLIED, None
    if event.action not in HISTORY_ONLY:
        try:
            after = before.apply(event.action, event.actor, event.occurred_at)
        except CaseError as exc:
            outcome, reason = StepOutcome.REFUSED, str(exc)
    inserted = insert_ignore(session, _STEPS, _step_row(event, outcome, reason), keys=["event_id"])
    if not inserted:
        return StepResult(StepOutcome.DUPLICATE, before, before)
    if after is not before:
        _write(session, after, now)
    return StepResult(outcome, before, after, reason)


def _record_history(session: Session, events: Sequence[CaseEvent]) -> list[StepResult]:
    """``_apply`` of each of a run of history-only events: their cases read (and locked, in
    the order of their ids) with one statement, their steps written with another; of two
    with one event id, the first is applied and the second a duplicate, as in turn."""
    case_ids = sorted({event.case_id for event in events})
    cases = {
        row.case_id: _case(row)
        for row in session.execute(_CASES_FOR_UPDATE_AMONG, {"case_ids": case_ids})
    }
    for event in events:
        if event.case_id not in cases:
            raise UnknownCase.of(event)
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        rows.setdefault(str(event.event_id), _step_row(event, StepOutcome.APPLIED, None))
    inserted = inserted_keys(session, _STEPS, [rows[key] for key in sorted(rows)], ["event_id"])
    results = []
    for event in events:
        before = cases[event.case_id]
        key = (str(event.event_id),)
        outcome = StepOutcome.APPLIED if key in inserted else StepOutcome.DUPLICATE
        inserted.discard(key)
        results.append(StepResult(outcome, before, before))
    return results


def _step_row(event: CaseEvent, outcome: StepOutcome, reason: str | None) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "case_id": event.case_id,
        "action": event.action.value,
        "actor": event.actor,
        "at": event.occurred_at,
        "outcome": outcome.value,
        "note": (reason or event.note or None),
    }


class SqlCases:
    """The notifier's cases; the unique response id keeps it to one case per response."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def open(self, case: Case, segment: dict[str, Any], now: datetime) -> bool:
        """Store a new case; False when the response has one already."""
        with self._sessions.begin() as session:
            return _open(session, case, segment, now)

    def take_in(
        self,
        response_id: str,
        classified: dict[str, Any],
        now: datetime,
        opening: tuple[Case, dict[str, Any]] | None = None,
    ) -> Intake:
        """A response's version in one transaction: remembered for its alert
        (``remember_alert``), its case opened when ``opening`` asks (``open``, with its
        segment), and the case read back: ``take_in_many`` of one."""
        return self.take_in_many([Version(response_id, classified, opening)], now)[0]

    def take_in_many(self, versions: Sequence[Version], now: datetime) -> list[Intake]:
        """``take_in`` of each version, in one transaction and a few statements for them all
        (not a few each); what each takes in and returns is the same. Their response ids
        differ: a later version of a response sees the earlier's writes, so it is taken in
        by a later call."""
        response_ids = [version.response_id for version in versions]
        if len(set(response_ids)) != len(response_ids):
            raise ValueError("take_in_many takes one version of a response at a time")
        case_ids = {version.response_id: case_id_for(version.response_id) for version in versions}
        opening = [version.opening for version in versions if version.opening is not None]
        with self._sessions.begin() as session:
            kept: dict[str, str | None] = {
                response_id: event_id
                for response_id, event_id in session.execute(
                    _KEPT_EVENT_IDS, {"response_ids": response_ids}
                )
            }
            # Rows in the order of their keys: two workers' intakes lock rows in the same order.
            upsert_many(
                session,
                _ALERTS,
                [_alert_row(v.response_id, v.classified, now) for v in sorted(versions)],
                keys=["response_id"],
            )
            opened = inserted_keys(
                session,
                _CASES,
                sorted(
                    (_case_row(case, segment, now) for case, segment in opening),
                    key=lambda row: row["case_id"],
                ),
                keys=["case_id"],
            )
            # Opened before: announced then too, unless the worker died before it came back.
            again = [case.case_id for case, _ in opening if (case.case_id,) not in opened]
            announced = set()
            if again:
                announced = set(session.execute(_OPENED_AMONG, {"case_ids": again}).scalars())
            stored = {
                row.case_id: _case(row)
                for row in session.execute(_CASES_AMONG, {"case_ids": list(case_ids.values())})
            }
        intakes = []
        for version in versions:
            event_id = version.classified.get("event_id")
            new_version = version.response_id not in kept or kept[version.response_id] != event_id
            to_announce = None
            if version.opening is not None:
                case = version.opening[0]
                if (case.case_id,) in opened:
                    to_announce = case
                elif case.case_id not in announced:
                    to_announce = stored.get(case.case_id)
            intakes.append(
                Intake(new_version, stored.get(case_ids[version.response_id]), to_announce)
            )
        return intakes

    def get(self, case_id: str) -> Case | None:
        with self._sessions() as session:
            return _stored_case(session, case_id)

    def save(self, case: Case, now: datetime) -> None:
        with self._sessions.begin() as session:
            _write(session, case, now)

    def apply_step(self, event: CaseEvent, now: datetime) -> StepResult:
        """Apply a case event once: a step already seen is a duplicate, a step that does not
        fit the case's state is refused (and kept in the history with why); UnknownCase when
        the case does not exist. Opened and escalated are history only: they were applied
        where they happened."""
        with self._sessions.begin() as session:
            return _apply(session, event, now)

    def apply_steps(self, events: Sequence[CaseEvent], now: datetime) -> list[StepResult]:
        """``apply_step`` of each event in turn, in one transaction. Every alert's case comes
        back opened: a run of history-only events (opened, escalated), which change no case,
        is written with two statements for the run rather than three an event."""
        results: list[StepResult] = []
        with self._sessions.begin() as session:
            for history_only, run in itertools.groupby(
                events, key=lambda event: event.action in HISTORY_ONLY
            ):
                if history_only:
                    results.extend(_record_history(session, list(run)))
                else:
                    results.extend(_apply(session, event, now) for event in run)
        return results

    def steps(self, case_id: str) -> list[CaseStep]:
        """The case's history, oldest first."""
        with self._sessions() as session:
            rows = session.execute(
                select(CaseStepRow)
                .where(CaseStepRow.case_id == case_id)
                .order_by(CaseStepRow.at, CaseStepRow.event_id)
            ).scalars()
            return [CaseStep(r.action, r.actor, r.at, r.outcome, r.note) for r in rows]

    def open_by_segment(self) -> list[tuple[str, dict[str, Any]]]:
        """State and segment of every case not resolved, for the cases-open gauge."""
        with self._sessions() as session:
            rows = session.execute(
                select(CaseRow.state, CaseRow.segment).where(
                    CaseRow.state != CaseState.RESOLVED.value
                )
            ).all()
            return [(state, dict(segment or {})) for state, segment in rows]

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

    def forget_customer(self, customer_id: str) -> list[str]:
        """Erasure: cases keep what staff did, not who the customer was; the alerts' copies
        of their responses lose the comment, the answers and the contact. Returns the
        response ids whose alerts were scrubbed (to redraw them in Slack)."""
        with self._sessions.begin() as session:
            session.execute(
                update(CaseRow).where(CaseRow.customer_id == customer_id).values(customer_id=None)
            )
            alerts = session.execute(
                select(AlertRow).where(AlertRow.customer_id == customer_id)
            ).scalars()
            scrubbed = []
            for alert in alerts:
                alert.classified = erased(alert.classified)
                alert.customer_id = None
                scrubbed.append(alert.response_id)
            return scrubbed

    def remember_alert(self, response_id: str, classified: dict[str, Any], now: datetime) -> bool:
        """Keep the latest version of a response for its alert; True when it is a new version
        (not a redelivery of the one kept)."""
        with self._sessions.begin() as session:
            return _remember_alert(session, response_id, classified, now)

    def alert_posted(self, response_id: str, channel: str, ts: str, now: datetime) -> None:
        self.alerts_posted([Posted(response_id, channel, ts, now)])

    def alerts_posted(self, posted: Sequence[Posted]) -> None:
        """Remember where alerts were posted: one statement, executed with many rows."""
        with self._sessions.begin() as session:
            session.execute(
                _ALERT_POSTED,
                [
                    {
                        "posted_response": p.response_id,
                        "posted_channel": p.channel,
                        "posted_ts": p.ts,
                        "now": p.at,
                    }
                    for p in posted
                ],
            )

    def alert(self, response_id: str) -> PostedAlert | None:
        with self._sessions() as session:
            row = session.get(AlertRow, response_id)
            if row is None:
                return None
            return PostedAlert(row.response_id, row.channel, row.ts, dict(row.classified))
