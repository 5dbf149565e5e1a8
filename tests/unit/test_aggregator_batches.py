"""SqlReadModel.record_responses: a batch in one transaction leaves the read model exactly as
record_response of each fact in turn would, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import (
    SqlReadModel,
)
from services.aggregator.loop_health import CaseStep
from services.aggregator.money import PurchaseFact
from services.aggregator.responses import InvitationFact, ResponseFact
from services.aggregator.segments import SegmentPolicy
from shared import db
from shared.db import make_engine, migrate, session_factory
from shared.events import CaseAction, SurveyKind
from shared.nps import Counts, classify
from tests.conftest import two_migrated_databases
from tests.unit.builders import READ_MODEL_TABLES, emptied

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Copenhagen")
# Two values a dimension: enough for values to be admitted, and for others to go to "other".
POLICY = SegmentPolicy(dimensions=("store", "region"), max_values=2)
NARROWER = SegmentPolicy(dimensions=("store", "region"), max_values=1)
EVENT_IDS = [str(uuid.UUID(int=n * 0x1234567890ABCDEF)) for n in range(1, 4)]


@st.composite
def versions(draw: st.DrawFn) -> ResponseFact:
    """A version of one of a few responses: a few received times and event ids, so that
    repeats, ties and versions out of order come often; answered on one of a few days."""
    score = draw(st.integers(0, 10))
    segment = {
        dimension: value
        for dimension in POLICY.dimensions
        if (value := draw(st.sampled_from([None, "A", "B", "C", "D"]))) is not None
    }
    return ResponseFact(
        response_id=f"r-{draw(st.integers(0, 5))}",
        customer_id=f"c-{draw(st.integers(0, 3))}",
        survey_kind=draw(st.sampled_from(list(SurveyKind))),
        score=score,
        category=classify(score),
        # 23:30 UTC and an hour later fall on two days in Copenhagen.
        responded_at=NOW.replace(hour=22, minute=30) - timedelta(days=draw(st.integers(0, 2))),
        segment=segment,
        received_at=NOW + timedelta(minutes=draw(st.integers(0, 3))),
        event_id=draw(st.sampled_from(EVENT_IDS)),
    )


def contents(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Every row the facts leave behind (but when a row was written, and in which of the
    transactions: its revision)."""
    with sessions() as session:
        return {
            table.__tablename__: sorted(
                tuple(
                    value
                    for name, value in row._mapping.items()
                    if name not in ("updated_at", "revision")
                )
                for row in session.execute(select(table.__table__))
            )
            for table in READ_MODEL_TABLES
        }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def two_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    """Two migrated databases: one written a fact at a time, the other a batch at a time."""
    with two_migrated_databases(request, tmp_path_factory, request.param) as databases:
        yield databases


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    earlier=st.lists(versions(), max_size=6),
    facts=st.lists(versions(), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 30), max_size=6),
)
def test_a_batch_leaves_what_recording_each_fact_in_turn_leaves(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
    earlier: list[ResponseFact],
    facts: list[ResponseFact],
    cuts: list[int],
) -> None:
    for sessions in two_databases:
        # What was kept before, when the policy gave a dimension room for one value only.
        before = SqlReadModel(emptied(sessions), NARROWER, ZONE)
        for fact in earlier:
            before.record_response(fact)
    one_by_one = SqlReadModel(two_databases[0], POLICY, ZONE)
    batched = SqlReadModel(two_databases[1], POLICY, ZONE)

    expected = [one_by_one.record_response(fact) for fact in facts]
    changed: list[bool] = []
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(facts)], strict=True):
        changed += batched.record_responses(facts[start:end])

    assert changed == expected
    assert contents(two_databases[1]) == contents(two_databases[0])
    assert batched.buckets() == one_by_one.buckets()


def test_the_latest_version_in_a_batch_wins_whatever_their_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'batch.sqlite3'}"
    migrate(url)
    model = SqlReadModel(session_factory(make_engine(url)), POLICY, ZONE)
    first, second, third = (
        ResponseFact(
            response_id="r-1",
            customer_id="c-1",
            survey_kind=SurveyKind.NPS,
            score=score,
            category=classify(score),
            responded_at=NOW - timedelta(hours=1),
            segment={"store": "A"},
            received_at=NOW + timedelta(minutes=minute),
            event_id=EVENT_IDS[0],
        )
        for minute, score in enumerate([2, 8, 10])
    )
    assert model.record_responses([second, third, first, third]) == [True, True, False, False]
    [kept] = model.responses(NOW - timedelta(days=1))
    assert kept.score == 10
    day = (NOW - timedelta(hours=1)).astimezone(ZONE).date()
    whole = model.snapshots(SurveyKind.NPS, "all", day)["all"][day]
    assert whole == Counts(promoters=1)


def test_batches_of_invitations_purchases_and_case_steps_keep_what_one_at_a_time_keeps(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    def sent(invitation: int, customer: str, minutes: int) -> InvitationFact:
        at = NOW + timedelta(minutes=minutes)
        return InvitationFact(f"i-{invitation}", customer, SurveyKind.NPS, at)

    def bought(event: int, amount: str) -> PurchaseFact:
        return PurchaseFact(f"p-{event}", "c-1", f"o-{event}", Decimal(amount), "DKK", NOW)

    def step(event: int, action: CaseAction) -> CaseStep:
        return CaseStep(f"e-{event}", "case-1", "r-1", action, NOW + timedelta(minutes=event))

    # Repeats, and an earlier "sent" after a later one, inside a batch and across them.
    invitations = [sent(1, "c-2", 5), sent(1, "c-1", 5), sent(2, "c-1", 9), sent(1, "c-1", 2)]
    purchases = [bought(1, "10.5"), bought(2, "-3"), bought(1, "99")]
    steps = [step(1, CaseAction.OPENED), step(2, CaseAction.CLAIMED), step(1, CaseAction.CLAIMED)]
    for sessions in two_databases:
        earlier = SqlReadModel(emptied(sessions), POLICY, ZONE)
        earlier.record_invitation(sent(2, "c-1", 7))
        earlier.record_purchase(bought(2, "7"))
        earlier.record_case_step(step(2, CaseAction.OPENED))
    one_by_one = SqlReadModel(two_databases[0], POLICY, ZONE)
    for invitation in invitations:
        one_by_one.record_invitation(invitation)
    for purchase in purchases:
        one_by_one.record_purchase(purchase)
    for case_step in steps:
        one_by_one.record_case_step(case_step)
    batched = SqlReadModel(two_databases[1], POLICY, ZONE)
    batched.record_invitations(invitations)
    batched.record_purchases(purchases)
    batched.record_case_steps(steps)

    kept = contents(two_databases[1])
    assert kept == contents(two_databases[0])
    assert [(row[0], row[1], row[3].minute) for row in kept["aggregator_invitations"]] == [
        ("i-1", "c-1", 2),
        ("i-2", "c-1", 7),
    ]
    assert sorted(row[3] for row in kept["aggregator_purchases"]) == [Decimal(7), Decimal("10.5")]
    assert len(kept["aggregator_case_steps"]) == 2


def statements_built() -> int:
    """How many write statements shared.db has built (and keeps) so far."""
    return sum(
        cached.cache_info().currsize
        for cached in (
            db._insert_ignore_statement,
            db._upsert_statement,
            db._insert_ignore_returning,
            db._upsert_returning,
            db._add_to_statement,
        )
    )


def test_writing_more_facts_builds_no_more_statements(tmp_path: Path) -> None:
    """Every write of the read model reuses the statements it built the first time: a
    statement built anew at each write is kept for good by the cache and grows the worker
    (an invitation's condition, once a lambda, did so at every invitation)."""
    url = f"sqlite:///{tmp_path / 'read-model.sqlite3'}"
    migrate(url)
    model = SqlReadModel(session_factory(make_engine(url)), POLICY, ZONE)

    def write(round_: int) -> None:
        for n in range(3):
            key = f"{round_}-{n}"
            at = NOW + timedelta(minutes=n)
            fact = ResponseFact(
                f"r-{key}", "c-1", SurveyKind.NPS, 3, classify(3), at, {}, received_at=at
            )
            model.record_response(fact)
            model.record_responses([fact])
            invitation = InvitationFact(f"i-{key}", "c-1", SurveyKind.NPS, at)
            model.record_invitation(invitation)
            model.record_invitations([invitation])
            purchase = PurchaseFact(f"p-{key}", "c-1", f"o-{key}", Decimal(9), "DKK", at)
            model.record_purchase(purchase)
            model.record_purchases([purchase])
            opened = CaseStep(f"e-{key}", f"k-{key}", f"r-{key}", CaseAction.OPENED, at)
            model.record_case_step(opened)
            model.record_case_steps([opened])

    write(0)
    built = statements_built()
    write(1)
    assert statements_built() == built
