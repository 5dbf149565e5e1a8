"""The read model keeps the facts in memory and reads only the rows written since it last
looked (migration 0011): what it answers is what reading the tables answers, whichever
worker wrote the facts, in whatever order, and as its horizon moves on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import RevisionRow, SqlReadModel
from services.aggregator.loop_health import CaseStep
from services.aggregator.money import PurchaseFact
from services.aggregator.responses import InvitationFact, ResponseFact
from services.aggregator.segments import SegmentPolicy
from shared.events import CaseAction, SurveyKind
from shared.nps import classify
from tests.conftest import two_migrated_databases
from tests.unit.builders import emptied

START = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Copenhagen")
POLICY = SegmentPolicy(dimensions=("store",), max_values=2)
EVENT_IDS = [str(uuid.UUID(int=n * 0x1234567890ABCDEF)) for n in range(1, 4)]
# Far enough ahead that every fact is before its horizon: a read model that asks the
# tables each time, the answer to compare with.
FAR_AHEAD = datetime(2100, 1, 1, tzinfo=UTC)

# A fact's time: days before the start, across the horizons (180 days for responses and
# invitations, a year for purchases), so facts fall on either side of them as time moves.
days_back = st.integers(0, 400).map(lambda days: START - timedelta(days=days))


@st.composite
def a_response(draw: st.DrawFn) -> ResponseFact:
    score = draw(st.integers(0, 10))
    at = draw(days_back)
    return ResponseFact(
        response_id=f"r-{draw(st.integers(0, 5))}",
        customer_id=f"c-{draw(st.integers(0, 3))}",
        survey_kind=SurveyKind.NPS,
        score=score,
        category=classify(score),
        responded_at=at,
        segment={"store": draw(st.sampled_from(["A", "B", "C"]))},
        received_at=START + timedelta(minutes=draw(st.integers(0, 3))),
        event_id=draw(st.sampled_from(EVENT_IDS)),
    )


invitations = st.builds(
    lambda n, customer, at: InvitationFact(f"i-{n}", f"c-{customer}", SurveyKind.NPS, at),
    st.integers(0, 4),
    st.integers(0, 2),
    days_back,
)
purchases = st.builds(
    lambda n, at: PurchaseFact(f"p-{n}", "c-1", f"o-{n}", Decimal(n + 1), "DKK", at),
    st.integers(0, 5),
    days_back,
)
case_steps = st.builds(
    lambda n, at: CaseStep(f"e-{n}", f"k-{n % 2}", "r-1", CaseAction.OPENED, at),
    st.integers(0, 5),
    days_back,
)

# What a worker does: writes a fact or a batch, reads from some day on, or time moves on.
steps = st.one_of(
    st.tuples(st.just("responses"), st.integers(0, 1), st.lists(a_response(), max_size=4)),
    st.tuples(st.just("invitations"), st.integers(0, 1), st.lists(invitations, max_size=3)),
    st.tuples(st.just("purchases"), st.integers(0, 1), st.lists(purchases, max_size=3)),
    st.tuples(st.just("case_steps"), st.integers(0, 1), st.lists(case_steps, max_size=3)),
    st.tuples(st.just("read"), st.integers(0, 1), days_back),
    st.tuples(st.just("wait"), st.integers(0, 1), st.integers(0, 40)),
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    with two_migrated_databases(request, tmp_path_factory, request.param) as (sessions, _):
        yield sessions


def read(model: SqlReadModel, since: datetime) -> dict[str, list[Any]]:
    return {
        "responses": sorted(model.responses(since), key=lambda f: f.response_id),
        "invitations": sorted(model.invitations(since), key=lambda f: f.invitation_id),
        "purchases": sorted(model.purchases(since), key=lambda f: f.event_id),
        "case_steps": sorted(model.case_steps(), key=lambda f: f.event_id),
    }


def write(model: SqlReadModel, kind: str, facts: list[Any]) -> None:
    """A batch, or each fact by itself when the batch is of one."""
    one, many = {
        "responses": (model.record_response, model.record_responses),
        "invitations": (model.record_invitation, model.record_invitations),
        "purchases": (model.record_purchase, model.record_purchases),
        "case_steps": (model.record_case_step, model.record_case_steps),
    }[kind]
    if len(facts) == 1:
        one(facts[0])
    else:
        many(facts)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=st.lists(steps, min_size=1, max_size=25))
def test_what_a_worker_reads_is_what_the_tables_hold(
    database: sessionmaker[Session], script: list[tuple[str, int, Any]]
) -> None:
    sessions = emptied(database)
    clocks = [START, START]
    # Two workers sharing the database, each with its own clock and its own facts in memory.
    workers = [
        SqlReadModel(sessions, POLICY, ZONE, clock=lambda i=i: clocks[i])  # type: ignore[misc]
        for i in range(2)
    ]
    tables = SqlReadModel(sessions, POLICY, ZONE, clock=lambda: FAR_AHEAD)
    for kind, worker, what in script:
        if kind == "wait":
            clocks[worker] += timedelta(days=what)
        elif kind == "read":
            since = what + (clocks[worker] - START)
            assert read(workers[worker], since) == read(tables, since)
        else:
            write(workers[worker], kind, what)
    for worker, clock in zip(workers, clocks, strict=True):
        since = clock - timedelta(days=180)
        assert read(worker, since) == read(tables, since)


def test_a_read_costs_the_rows_written_since_the_last(tmp_path: Any) -> None:
    """After the first read, a read fetches the rows of new revisions only, not the table."""
    from shared.db import make_engine, migrate, session_factory

    url = f"sqlite:///{tmp_path / 'read-model.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    model = SqlReadModel(session_factory(engine), POLICY, ZONE, clock=lambda: START)
    facts = [
        InvitationFact(f"i-{n}", "c-1", SurveyKind.NPS, START - timedelta(hours=n))
        for n in range(50)
    ]
    model.record_invitations(facts)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM aggregator_invitations" in statement and "max(" not in statement:
            statements.append(statement)

    assert len(model.invitations(START - timedelta(days=30))) == 50
    model.record_invitation(InvitationFact("i-new", "c-2", SurveyKind.NPS, START))
    assert len(model.invitations(START - timedelta(days=30))) == 51
    assert len(model.invitations(START - timedelta(days=30))) == 51
    with session_factory(engine)() as session:
        revision = session.execute(select(RevisionRow.revision)).scalar_one()
    assert revision == 2  # one a transaction: the batch, then the one invitation
    # The first read loads the horizon; each read after looks only for newer revisions.
    assert len(statements) == 3
    assert "aggregator_invitations.sent_at >=" in statements[0]
    assert all("aggregator_invitations.revision >" in later for later in statements[1:])


def test_a_worker_lets_go_of_facts_as_they_fall_behind_its_horizon(tmp_path: Any) -> None:
    from shared.db import make_engine, migrate, session_factory

    url = f"sqlite:///{tmp_path / 'read-model.sqlite3'}"
    migrate(url)
    clock = [START]
    model = SqlReadModel(session_factory(make_engine(url)), POLICY, ZONE, clock=lambda: clock[0])
    model.record_invitations(
        [
            InvitationFact(f"i-{days}", "c-1", SurveyKind.NPS, START - timedelta(days=days))
            for days in range(0, 170, 10)
        ]
    )
    assert len(model.invitations(START - timedelta(days=180))) == 17
    assert len(model._invitations._facts) == 17  # what it holds in memory

    clock[0] += timedelta(days=61)
    assert len(model.invitations(clock[0] - timedelta(days=180))) == 12  # 110 days back
    # Let go of but those within the 2 days of slack behind the horizon (120 days back).
    assert len(model._invitations._facts) == 13


@pytest.fixture
def postgres(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    with two_migrated_databases(request, tmp_path_factory, "postgresql") as (sessions, _):
        yield sessions


@pytest.mark.postgres
def test_a_reader_misses_nothing_that_workers_write_at_the_same_time(
    postgres: sessionmaker[Session],
) -> None:
    """Four workers write batches of the same responses at once while a fifth reads them
    over and over: the revisions' order keeps its catching up exact (and nothing deadlocks).

    On PostgreSQL, where writers overlap; SQLite lets one write at a time in any case.
    """
    import random
    import threading

    sessions = postgres
    reader = SqlReadModel(sessions, POLICY, ZONE, clock=lambda: START)
    tables = SqlReadModel(sessions, POLICY, ZONE, clock=lambda: FAR_AHEAD)
    since = START - timedelta(days=180)
    done = threading.Event()
    failures: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        worker = SqlReadModel(sessions, POLICY, ZONE, clock=lambda: START)
        try:
            for round_ in range(15):
                worker.record_responses(
                    [
                        ResponseFact(
                            response_id=f"r-{rng.randrange(40)}",
                            customer_id="c-1",
                            survey_kind=SurveyKind.NPS,
                            score=(score := rng.randrange(11)),
                            category=classify(score),
                            responded_at=START - timedelta(days=rng.randrange(200)),
                            segment={"store": rng.choice("AB")},
                            received_at=START + timedelta(seconds=round_ * 10 + seed),
                            event_id=str(uuid.UUID(int=seed * 1000 + round_)),
                        )
                        for _ in range(5)
                    ]
                )
        except BaseException as failure:
            failures.append(failure)

    def read_over_and_over() -> None:
        while not done.is_set():
            reader.responses(since)

    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(1, 5)]
    looking = threading.Thread(target=read_over_and_over)
    looking.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    looking.join(timeout=60)

    assert not failures
    assert read(reader, since) == read(tables, since)
    assert len(read(tables, since)["responses"]) > 20
