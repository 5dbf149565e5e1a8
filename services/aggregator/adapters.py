"""The aggregator's read model (SQLAlchemy): each fact once, by its id, and daily snapshots.

- A response is one row per response id. Which version is kept is the domain's rule
  (``ResponseFact.supersedes``: later ``(received_at, event_id)``), and it is the upsert's
  own WHERE, so a redelivered or an older version arriving late changes nothing, on any
  worker, even if two race.
- Daily snapshots (day in the reporting zone, survey kind, dimension, segment, counts)
  move in the same transaction as the response row, and only when the row changed: the
  earlier version's counts are taken off, the new one's added. So they count each
  response once as well, and hold history for as long as it is kept, beyond the windows.
- Segment buckets are admitted (first seen, kept for good) and stored with their
  position, so a restart or another worker sees the same buckets.
- Invitations (earliest "sent" wins), purchases and case events are kept once by id.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Integer,
    Numeric,
    String,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.aggregator.domain import Period
from services.aggregator.figures import ALL
from services.aggregator.loop_health import CaseStep
from services.aggregator.money import PurchaseFact
from services.aggregator.report import purchases_since, since
from services.aggregator.responses import InvitationFact, InvitationLedger, ResponseFact, Theme
from services.aggregator.segments import SegmentBuckets, SegmentPolicy
from shared.db import (
    Base,
    UtcDateTime,
    add_to,
    add_to_many,
    insert_ignore,
    insert_ignore_many,
    lock_until_commit,
    upsert,
    upsert_many,
)
from shared.events import CaseAction, SurveyKind
from shared.nps import Category, Counts


class ResponseRow(Base):
    __tablename__ = "aggregator_responses"

    response_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    survey_kind: Mapped[str] = mapped_column(String(10))
    score: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(10))
    responded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    invitation_id: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[dict[str, str]] = mapped_column(JSON)
    heard_from: Mapped[str | None] = mapped_column(String(120))
    themes: Mapped[list[list[str]]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revision: Mapped[int] = mapped_column(BigInteger)


class SegmentBucketRow(Base):
    __tablename__ = "aggregator_segment_buckets"

    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(120), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class InvitationRow(Base):
    __tablename__ = "aggregator_invitations"

    invitation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    survey_kind: Mapped[str] = mapped_column(String(10))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revision: Mapped[int] = mapped_column(BigInteger)


class CaseStepRow(Base):
    __tablename__ = "aggregator_case_steps"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(200))
    response_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    sla_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revision: Mapped[int] = mapped_column(BigInteger)


class PurchaseRow(Base):
    __tablename__ = "aggregator_purchases"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    revision: Mapped[int] = mapped_column(BigInteger)


class RevisionRow(Base):
    """The one counter the fact tables' revisions are taken from (migration 0011)."""

    __tablename__ = "aggregator_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)


class SnapshotRow(Base):
    __tablename__ = "aggregator_daily_snapshots"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    survey_kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    segment: Mapped[str] = mapped_column(String(120), primary_key=True)
    promoters: Mapped[int] = mapped_column(Integer)
    passives: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)


class DigestRow(Base):
    __tablename__ = "aggregator_digests"

    period_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(36))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReadModel(Protocol):
    """The aggregator's state: every fact once by its id, buckets, snapshots, digests sent."""

    def record_response(self, fact: ResponseFact) -> bool: ...

    def record_responses(self, facts: Sequence[ResponseFact]) -> list[bool]:
        """record_response of each fact in turn, in one transaction; which changed a row."""
        ...

    def record_invitation(self, fact: InvitationFact) -> bool: ...

    def record_invitations(self, facts: Sequence[InvitationFact]) -> None:
        """record_invitation of each fact, in one transaction."""
        ...

    def record_purchase(self, fact: PurchaseFact) -> bool: ...

    def record_purchases(self, facts: Sequence[PurchaseFact]) -> None:
        """record_purchase of each fact, in one transaction."""
        ...

    def record_case_step(self, step: CaseStep) -> bool: ...

    def record_case_steps(self, steps: Sequence[CaseStep]) -> None:
        """record_case_step of each step, in one transaction."""
        ...

    def buckets(self) -> SegmentBuckets: ...

    def responses(self, since: datetime) -> list[ResponseFact]: ...

    def latest_categories(self) -> dict[str, Category]: ...

    def invitations(self, since: datetime) -> list[InvitationFact]: ...

    def case_steps(self) -> list[CaseStep]: ...

    def purchases(self, since: datetime) -> list[PurchaseFact]: ...

    def snapshots(
        self, survey_kind: SurveyKind, dimension: str, since: date
    ) -> dict[str, dict[date, Counts]]:
        """Each segment's counts per day (in the reporting zone) since a day."""
        ...

    def digest_published(self, period: Period) -> bool: ...

    def mark_digest_published(self, period: Period, event_id: str, at: datetime) -> None: ...


# Any fixed number: the PostgreSQL advisory lock under which segment values are admitted.
_ADMISSION_LOCK_ID = 0x6E70736D

_COLUMN_OF = {
    Category.PROMOTER: "promoters",
    Category.PASSIVE: "passives",
    Category.DETRACTOR: "detractors",
}


class SqlReadModel:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: SegmentPolicy,
        zone: tzinfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._zone = zone
        self._admitted: SegmentBuckets | None = None
        # The facts the reports read again and again, kept here and brought up to date.
        self._responses = _Mirror(ResponseRow, "response_id", "responded_at", _fact_of, since)
        self._invitations = _Mirror(
            InvitationRow, "invitation_id", "sent_at", _invitation_of, since
        )
        self._purchases = _Mirror(PurchaseRow, "event_id", "at", _purchase_of, purchases_since)
        self._case_steps = _Mirror(CaseStepRow, "event_id", None, _case_step_of, None)
        self._clock = clock

    # --- writing ------------------------------------------------------------------------

    def record_response(self, fact: ResponseFact) -> bool:
        """Keep a version of a response unless a later one is kept; True if it changed."""
        with self._sessions.begin() as session:
            revision = _take_revision(session)
            buckets = self._admit(session, fact.segment)
            kept = session.execute(
                select(ResponseRow.__table__)
                .where(ResponseRow.response_id == fact.response_id)
                .with_for_update()
            ).one_or_none()
            written = upsert(
                session,
                ResponseRow.__table__,
                _row_of(fact, revision),
                keys=["response_id"],
                only_if=_supersedes_kept,
            )
            if written:
                if kept is not None:
                    self._count(session, _fact_of(kept._mapping), buckets, -1)
                self._count(session, fact, buckets, +1)
        self._admitted = buckets
        return written

    def record_responses(self, facts: Sequence[ResponseFact]) -> list[bool]:
        """record_response of each fact in turn, in one transaction and a few statements:
        what it keeps, counts and admits is the same; which of the facts changed a row.

        The kept rows are read and locked first, then the batch is folded over them here,
        by the same rule as the upsert's, and only each response's last winning version
        is written, with that rule in its WHERE as well.
        """
        if not facts:
            return []
        with self._sessions.begin() as session:
            revision = _take_revision(session)
            admitted = self._admit_in_turn(session, [fact.segment for fact in facts])
            ids = sorted({fact.response_id for fact in facts})
            stored = {
                row.response_id: _fact_of(row._mapping)
                for row in session.execute(
                    select(ResponseRow.__table__)
                    .where(ResponseRow.response_id.in_(ids))
                    # One order for every worker's locks, so that two batches cannot deadlock.
                    .order_by(ResponseRow.response_id)
                    .with_for_update()
                )
            }
            kept = dict(stored)
            moves: dict[tuple[date, str, str, str], dict[str, int]] = {}
            changed: list[bool] = []
            for fact, buckets in zip(facts, admitted, strict=True):
                before = kept.get(fact.response_id)
                if before is not None and not fact.supersedes(before):
                    changed.append(False)
                    continue
                if before is not None:
                    self._move(moves, before, buckets, -1)
                self._move(moves, fact, buckets, +1)
                kept[fact.response_id] = fact
                changed.append(True)
            winners = [kept[key] for key in ids if kept[key] is not stored.get(key)]
            written = upsert_many(
                session,
                ResponseRow.__table__,
                [_row_of(fact, revision) for fact in winners],
                keys=["response_id"],
                only_if=_supersedes_kept,
            )
            if written != len(winners):
                # The rows are locked: only a rule that differs from the upsert's gets here.
                raise RuntimeError(
                    f"{len(winners)} responses were to be written and {written} were"
                )
            add_to_many(
                session,
                SnapshotRow.__table__,
                ["day", "survey_kind", "dimension", "segment"],
                [
                    {
                        "day": day,
                        "survey_kind": kind,
                        "dimension": dimension,
                        "segment": segment,
                        **amounts,
                    }
                    for (day, kind, dimension, segment), amounts in sorted(moves.items())
                ],
            )
        self._admitted = admitted[-1]
        return changed

    def _move(
        self,
        moves: dict[tuple[date, str, str, str], dict[str, int]],
        fact: ResponseFact,
        buckets: SegmentBuckets,
        sign: int,
    ) -> None:
        """_count's additions, gathered in ``moves`` to be written at once."""
        day = fact.responded_at.astimezone(self._zone).date()
        for dimension, segment in _cuts(fact, buckets):
            amounts = moves.setdefault(
                (day, fact.survey_kind.value, dimension, segment),
                dict.fromkeys(_COLUMN_OF.values(), 0),
            )
            amounts[_COLUMN_OF[fact.category]] += sign

    def _admit_in_turn(
        self, session: Session, segments: Sequence[Mapping[str, str]]
    ) -> list[SegmentBuckets]:
        """The buckets after admitting each segment in turn, as _admit one after another."""
        known = self._admitted if self._admitted is not None else self._load_buckets(session)
        if all(known.admit(segment) is known for segment in segments):
            return [known] * len(segments)
        # Another worker may have admitted values since this one last looked: once a
        # dimension is full, which values have a bucket must be the same for every worker,
        # so a value is admitted only against the stored buckets, one worker at a time.
        lock_until_commit(session, _ADMISSION_LOCK_ID)
        stored = self._load_buckets(session)
        admitted: list[SegmentBuckets] = []
        grown = stored
        for segment in segments:
            grown = grown.admit(segment)
            admitted.append(grown)
        self._store_admitted(session, stored, grown)
        return admitted

    def _store_admitted(
        self, session: Session, stored: SegmentBuckets, grown: SegmentBuckets
    ) -> None:
        for dimension in grown.policy.dimensions:
            values = grown.admitted[dimension]
            for position in range(len(stored.admitted[dimension]), len(values)):
                insert_ignore(
                    session,
                    SegmentBucketRow.__table__,
                    {"dimension": dimension, "value": values[position], "position": position},
                    keys=["dimension", "value"],
                )

    def _admit(self, session: Session, segment: Mapping[str, str]) -> SegmentBuckets:
        return self._admit_in_turn(session, [segment])[0]

    def _count(
        self, session: Session, fact: ResponseFact, buckets: SegmentBuckets, sign: int
    ) -> None:
        day = fact.responded_at.astimezone(self._zone).date()
        amounts = dict.fromkeys(_COLUMN_OF.values(), 0)
        amounts[_COLUMN_OF[fact.category]] = sign
        for dimension, segment in _cuts(fact, buckets):
            add_to(
                session,
                SnapshotRow.__table__,
                {
                    "day": day,
                    "survey_kind": fact.survey_kind.value,
                    "dimension": dimension,
                    "segment": segment,
                },
                amounts,
            )

    def record_invitation(self, fact: InvitationFact) -> bool:
        with self._sessions.begin() as session:
            return bool(_write_invitations(session, [fact], _take_revision(session)))

    def record_invitations(self, facts: Sequence[InvitationFact]) -> None:
        # Of several in the batch, only the one the ledger keeps can win over the stored.
        ledger = InvitationLedger()
        for fact in facts:
            ledger.record(fact)
        with self._sessions.begin() as session:
            _write_invitations(
                session,
                sorted(ledger, key=lambda fact: fact.invitation_id),
                _take_revision(session),
            )

    def record_purchase(self, fact: PurchaseFact) -> bool:
        with self._sessions.begin() as session:
            return bool(_insert_purchases(session, [fact], _take_revision(session)))

    def record_purchases(self, facts: Sequence[PurchaseFact]) -> None:
        with self._sessions.begin() as session:
            _insert_purchases(session, facts, _take_revision(session))

    def record_case_step(self, step: CaseStep) -> bool:
        with self._sessions.begin() as session:
            return bool(_insert_case_steps(session, [step], _take_revision(session)))

    def record_case_steps(self, steps: Sequence[CaseStep]) -> None:
        with self._sessions.begin() as session:
            _insert_case_steps(session, steps, _take_revision(session))

    def mark_digest_published(self, period: Period, event_id: str, at: datetime) -> None:
        with self._sessions.begin() as session:
            insert_ignore(
                session,
                DigestRow.__table__,
                {
                    "period_start": period.start,
                    "period_end": period.end,
                    "event_id": event_id,
                    "published_at": at,
                },
                keys=["period_start"],
            )

    # --- reading ------------------------------------------------------------------------

    def buckets(self) -> SegmentBuckets:
        """The buckets as stored: those admitted here and by any other worker."""
        with self._sessions() as session:
            loaded = self._load_buckets(session)
        self._admitted = loaded
        return loaded

    def _load_buckets(self, session: Session) -> SegmentBuckets:
        rows = session.execute(
            select(SegmentBucketRow.dimension, SegmentBucketRow.value).order_by(
                SegmentBucketRow.dimension, SegmentBucketRow.position, SegmentBucketRow.value
            )
        ).all()
        admitted: dict[str, tuple[str, ...]] = {}
        for dimension, value in rows:
            admitted[dimension] = (*admitted.get(dimension, ()), value)
        return SegmentBuckets(self._policy, admitted)

    def responses(self, since: datetime) -> list[ResponseFact]:
        return self._responses.since(self._sessions, self._clock(), since)

    def latest_categories(self) -> dict[str, Category]:
        """ResponseLedger.latest_by_customer in SQL: latest (responded_at, response_id) wins."""
        rank = (
            func.row_number()
            .over(
                partition_by=ResponseRow.customer_id,
                order_by=(ResponseRow.responded_at.desc(), ResponseRow.response_id.desc()),
            )
            .label("rank")
        )
        ranked = (
            select(ResponseRow.customer_id, ResponseRow.category, rank)
            # Rows from before migration 0008 name no customer: they are nobody's latest.
            .where(ResponseRow.survey_kind == SurveyKind.NPS.value, ResponseRow.customer_id != "")
            .subquery()
        )
        with self._sessions() as session:
            rows = session.execute(
                select(ranked.c.customer_id, ranked.c.category).where(ranked.c.rank == 1)
            ).all()
        return {customer: Category(category) for customer, category in rows}

    def invitations(self, since: datetime) -> list[InvitationFact]:
        return self._invitations.since(self._sessions, self._clock(), since)

    def case_steps(self) -> list[CaseStep]:
        return self._case_steps.since(self._sessions, self._clock(), None)

    def purchases(self, since: datetime) -> list[PurchaseFact]:
        return self._purchases.since(self._sessions, self._clock(), since)

    def snapshots(
        self, survey_kind: SurveyKind, dimension: str, since: date
    ) -> dict[str, dict[date, Counts]]:
        with self._sessions() as session:
            rows = session.execute(
                select(
                    SnapshotRow.segment,
                    SnapshotRow.day,
                    SnapshotRow.promoters,
                    SnapshotRow.passives,
                    SnapshotRow.detractors,
                ).where(
                    SnapshotRow.survey_kind == survey_kind.value,
                    SnapshotRow.dimension == dimension,
                    SnapshotRow.day >= since,
                )
            ).all()
        by_segment: dict[str, dict[date, Counts]] = defaultdict(dict)
        for segment, day, promoters, passives, detractors in rows:
            by_segment[segment][day] = Counts(promoters, passives, detractors)
        return dict(by_segment)

    def digest_published(self, period: Period) -> bool:
        with self._sessions() as session:
            found = session.execute(
                select(DigestRow.event_id).where(DigestRow.period_start == period.start)
            ).first()
        return found is not None


Fact = TypeVar("Fact")

# How much further back than its horizon a mirror keeps facts: a query asks from its own
# ``now``, taken a moment before the mirror's, and rows are let go a day at a time.
_SLACK = timedelta(days=2)
_DAY = timedelta(days=1)


class _Mirror(Generic[Fact]):
    """One fact table's rows from a horizon on, kept in memory and brought up to date before
    each read by reading the rows of the revisions not seen yet (migration 0011), not every
    row again: a refresh read 60,000 rows for 20,000 responses, each turned into a fact.

    Exact as reading the table: every write of a fact row gives it a new revision, revisions
    become visible in the order taken (``_take_revision``) and fact rows are never deleted.
    A read from before the horizon (``horizon(now)``, less a slack) is asked of the table.
    Thread-safe: the worker's refresh and its web requests read it on their threads.
    """

    def __init__(
        self,
        table: type[Base],
        key: str,
        time: str | None,
        fact: Callable[[Any], Fact],
        horizon: Callable[[datetime], datetime] | None,
    ) -> None:
        self._table = table.__table__
        self._key = key
        self._time = time
        self._fact = fact
        self._horizon = horizon
        self._lock = threading.Lock()
        self._facts: dict[Any, tuple[datetime | None, Fact]] = {}
        self._seen: int | None = None  # the last revision read; None: nothing read yet
        self._floor: datetime | None = None  # rows from here on are kept

    def since(
        self, sessions: sessionmaker[Session], now: datetime, since: datetime | None
    ) -> list[Fact]:
        """The facts whose time is ``since`` or later (all of them for None)."""
        with self._lock:
            floor = None if self._horizon is None else self._horizon(now) - _SLACK
            with sessions() as session:
                if self._seen is None:
                    self._load(session, floor)
                else:
                    if (
                        floor is not None
                        and self._floor is not None
                        and floor >= self._floor + _DAY
                    ):
                        self._let_go(floor)
                    self._catch_up(session)
                if since is not None and self._floor is not None and since < self._floor:
                    assert self._time is not None  # a table without times has no floor
                    column = self._table.c[self._time]
                    rows = session.execute(select(self._table).where(column >= since))
                    return [self._fact(row._mapping) for row in rows]
            return [
                fact
                for at, fact in self._facts.values()
                if since is None or (at is not None and at >= since)
            ]

    def _load(self, session: Session, floor: datetime | None) -> None:
        # The last revision first: a row of a later one read below is read again later.
        seen = session.execute(select(func.max(self._table.c.revision))).scalar_one()
        statement = select(self._table)
        if floor is not None and self._time is not None:
            statement = statement.where(self._table.c[self._time] >= floor)
        self._floor = floor
        self._facts = {}
        self._keep(session.execute(statement))
        self._seen = seen or 0

    def _catch_up(self, session: Session) -> None:
        rows = session.execute(
            select(self._table)
            .where(self._table.c.revision > self._seen)
            .order_by(self._table.c.revision)
        ).all()
        self._keep(rows)
        if rows:
            self._seen = rows[-1].revision

    def _keep(self, rows: Iterable[Any]) -> None:
        for row in rows:
            at = None if self._time is None else getattr(row, self._time)
            key = getattr(row, self._key)
            if at is not None and self._floor is not None and at < self._floor:
                self._facts.pop(key, None)  # moved before the horizon by a later version
            else:
                self._facts[key] = (at, self._fact(row._mapping))

    def _let_go(self, floor: datetime) -> None:
        self._floor = floor
        self._facts = {
            key: kept for key, kept in self._facts.items() if kept[0] is None or kept[0] >= floor
        }


def _take_revision(session: Session) -> int:
    """The next revision, for the fact rows this transaction writes (migration 0011).

    Taken first in every transaction that writes facts: the counter's row stays locked until
    the transaction ends, so no two such transactions overlap, none can deadlock another,
    and a reader that sees a revision has seen every earlier one.
    """
    return int(session.execute(_NEXT_REVISION).scalar_one())


# Built once, as shared.db's writes are: building a statement costs more than running it.
_NEXT_REVISION = (
    update(RevisionRow)
    .where(RevisionRow.id == 1)
    .values(revision=RevisionRow.revision + 1)
    .returning(RevisionRow.revision)
)


def _write_invitations(session: Session, facts: Sequence[InvitationFact], revision: int) -> int:
    """Upsert sent invitations (one per id); how many rows were written."""
    return upsert_many(
        session,
        InvitationRow.__table__,
        [
            {
                "invitation_id": fact.invitation_id,
                "customer_id": fact.customer_id,
                "survey_kind": fact.survey_kind.value,
                "sent_at": fact.sent_at,
                "revision": revision,
            }
            for fact in facts
        ],
        keys=["invitation_id"],
        only_if=_sent_earlier,
    )


def _sent_earlier(proposed: Any) -> Any:
    """InvitationLedger's rule, in SQL: the earliest "sent" wins.

    A function of the module, not a lambda: the upsert's statement is built once for each
    ``only_if`` (shared.db), so a new lambda at each write built, and kept, a new one each
    time (the aggregator grew by a statement an invitation).
    """
    return tuple_(proposed.sent_at, proposed.customer_id) < tuple_(
        InvitationRow.sent_at, InvitationRow.customer_id
    )


def _insert_purchases(session: Session, facts: Sequence[PurchaseFact], revision: int) -> int:
    return insert_ignore_many(
        session,
        PurchaseRow.__table__,
        [
            {
                "event_id": fact.event_id,
                "customer_id": fact.customer_id,
                "order_id": fact.order_id,
                "amount": fact.amount,
                "currency": fact.currency,
                "at": fact.at,
                "revision": revision,
            }
            for fact in facts
        ],
        keys=["event_id"],
    )


def _insert_case_steps(session: Session, steps: Sequence[CaseStep], revision: int) -> int:
    return insert_ignore_many(
        session,
        CaseStepRow.__table__,
        [
            {
                "event_id": step.event_id,
                "case_id": step.case_id,
                "response_id": step.response_id,
                "action": step.action.value,
                "at": step.at,
                "sla_due_at": step.sla_due_at,
                "revision": revision,
            }
            for step in steps
        ],
        keys=["event_id"],
    )


def _cuts(fact: ResponseFact, buckets: SegmentBuckets) -> list[tuple[str, str]]:
    """The snapshots a response counts in: the whole, and its bucket of each dimension."""
    return [(ALL, ALL)] + [
        (dimension, buckets.bucket(dimension, fact.segment.get(dimension)))
        for dimension in buckets.policy.dimensions
    ]


def _supersedes_kept(proposed: Any) -> Any:
    """ResponseFact.supersedes, in SQL: strictly later (received_at, event_id)."""
    return tuple_(proposed.received_at, proposed.event_id) > tuple_(
        ResponseRow.received_at, ResponseRow.event_id
    )


def _row_of(fact: ResponseFact, revision: int) -> dict[str, Any]:
    return {
        "response_id": fact.response_id,
        "customer_id": fact.customer_id,
        "survey_kind": fact.survey_kind.value,
        "score": fact.score,
        "category": fact.category.value,
        "responded_at": fact.responded_at,
        "invitation_id": fact.invitation_id,
        "segment": dict(fact.segment),
        "heard_from": fact.heard_from,
        "themes": [[theme.id, theme.label] for theme in fact.themes],
        "received_at": fact.received_at,
        "event_id": fact.event_id,
        "updated_at": datetime.now(UTC),
        "revision": revision,
    }


def _fact_of(row: Mapping[Any, Any]) -> ResponseFact:
    return ResponseFact(
        response_id=row["response_id"],
        customer_id=row["customer_id"],
        survey_kind=SurveyKind(row["survey_kind"]),
        score=row["score"],
        category=Category(row["category"]),
        responded_at=row["responded_at"],
        segment=row["segment"] or {},
        invitation_id=row["invitation_id"],
        heard_from=row["heard_from"],
        themes=_themes(row["themes"] or []),
        received_at=row["received_at"],
        event_id=row["event_id"],
    )


def _invitation_of(row: Mapping[str, Any]) -> InvitationFact:
    return InvitationFact(
        row["invitation_id"], row["customer_id"], SurveyKind(row["survey_kind"]), row["sent_at"]
    )


def _purchase_of(row: Mapping[str, Any]) -> PurchaseFact:
    return PurchaseFact(
        row["event_id"],
        row["customer_id"],
        row["order_id"],
        Decimal(row["amount"]),
        row["currency"],
        row["at"],
    )


def _case_step_of(row: Mapping[str, Any]) -> CaseStep:
    return CaseStep(
        row["event_id"],
        row["case_id"],
        row["response_id"],
        CaseAction(row["action"]),
        row["at"],
        row["sla_due_at"],
    )


def _themes(stored: Iterable[list[str]]) -> tuple[Theme, ...]:
    return tuple(Theme(theme_id, label) for theme_id, label in stored)
