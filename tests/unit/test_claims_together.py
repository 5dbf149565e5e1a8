"""Claims asked for together (``SqlOutbox.claim_paced_many``, the notifier's group commit):
the same claims, paces and turns as when asked one after another, in a few statements for
them all rather than two or more each (each a round trip on PostgreSQL)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.psycopg2 import EXECUTEMANY_VALUES_PLUS_BATCH

from services.notifier.adapters import (
    CHANNEL_TURN,
    Busy,
    Claim,
    ClaimAsk,
    DeliveryRow,
    Pacing,
    Sent,
    SqlOutbox,
)
from services.notifier.domain import Channel, Delivery, DeliveryKind, LoopConfig, plan
from shared.db import make_engine, migrate, session_factory
from tests.conftest import two_migrated_databases
from tests.unit.builders import a_classified_response, counted

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ASKED_AT = NOW + timedelta(seconds=1)
LEASE_UNTIL = NOW + timedelta(seconds=31)
CHANNELS = ("#store-aarhus", "#store-odense")


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def an_alert(response_id: str, channel: str) -> Delivery:
    config = LoopConfig(slack_channel=channel, company_name="Our Shop")
    [delivery] = plan(a_classified_response(2, response_id=response_id), config)
    return delivery


def an_owner_email(response_id: str) -> Delivery:
    return Delivery(
        kind=DeliveryKind.OWNER_EMAIL,
        channel=Channel.EMAIL,
        recipient="owner@example.com",
        subject_id=response_id,
        payload={"to_email": "owner@example.com", "subject": "A detractor"},
        customer_id=f"c-{response_id}",
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database to copy: migrating takes longer than a whole example."""
    path = tmp_path_factory.mktemp("claims") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@contextlib.contextmanager
def outbox_copy(template: Path, path: Path) -> Iterator[SqlOutbox]:
    shutil.copyfile(template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        yield SqlOutbox(session_factory(engine))
    finally:
        engine.dispose()


# --- what a group's claims meet ----------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A delivery, and how the outbox holds it when the claims come: ``held`` for its first
    attempt (taken in, not yet due), ``waiting`` (due, never tried), ``unknown`` (an attempt
    died mid-call: the next one looks before it sends)."""

    kind: str  # a channel of CHANNELS, or "email"
    state: str


@dataclass(frozen=True)
class Scenario:
    planned: tuple[Planned, ...]
    turns: tuple[str, ...]  # each channel's turn: "none" yet, "free" or "busy"
    interval: float
    burst_minimum: int
    asks: tuple[tuple[int, bool], ...]  # a delivery's place, and whether the ask is first


scenarios = st.builds(
    Scenario,
    planned=st.lists(
        st.builds(
            Planned,
            kind=st.sampled_from([*CHANNELS, "email"]),
            state=st.sampled_from(["held", "held", "waiting", "unknown"]),
        ),
        min_size=1,
        max_size=10,
    ).map(tuple),
    turns=st.tuples(*(st.sampled_from(["none", "free", "busy"]) for _ in CHANNELS)),
    interval=st.sampled_from([0.0, 10.0]),
    burst_minimum=st.sampled_from([1, 2, 99]),
    asks=st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=1, max_size=14).map(tuple),
)


def prepare(outbox: SqlOutbox, scenario: Scenario) -> list[str]:
    keys = []
    for number, planned in enumerate(scenario.planned):
        response_id = f"r{number}"
        delivery = (
            an_owner_email(response_id)
            if planned.kind == "email"
            else an_alert(response_id, planned.kind)
        )
        if planned.state == "held":
            # As a batch's intake leaves it: held for its first attempt until the lease ends.
            outbox.enqueue_many([delivery], NOW, LEASE_UNTIL)
        else:
            outbox.add(delivery, NOW - timedelta(minutes=5))
        if planned.state == "unknown":
            # Claimed long ago, by an attempt that never said how it ended.
            outbox.claim(delivery.idempotency_key, NOW - timedelta(minutes=5), NOW)
        keys.append(delivery.idempotency_key)
    for channel, turn in zip(CHANNELS, scenario.turns, strict=True):
        if turn == "free":
            outbox.take_turn(channel, NOW - timedelta(minutes=1), NOW - timedelta(minutes=1))
        elif turn == "busy":
            outbox.take_turn(channel, NOW, later(5))
    return keys


def asks_of(scenario: Scenario, keys: list[str]) -> list[ClaimAsk]:
    pacing = Pacing(
        turn_until=ASKED_AT + timedelta(seconds=scenario.interval),
        burst_minimum=scenario.burst_minimum,
        burst_limit=4,
    )
    # As the dispatcher asks: a delivery's first attempt once, its retries any number of
    # times. (A first attempt asked for twice and given back meanwhile would be claimed
    # again one by one, where together the second ask finds it claimed.)
    # And a first attempt is asked for while its delivery is held for it (one whose hold
    # has ended may be this attempt's where one by one a burst look took it along).
    asks, firsts = [], set()
    for place, first in scenario.asks:
        key = keys[place % len(keys)]
        if first and (key in firsts or scenario.planned[place % len(keys)].state != "held"):
            continue
        if first:
            firsts.add(key)
        asks.append(ClaimAsk(key, ASKED_AT, LEASE_UNTIL, pacing, first))
    return asks


def described(result: Claim | Busy | None) -> Any:
    if result is None or isinstance(result, Busy):
        return result
    entry = result.entry
    waiting = tuple(w.idempotency_key for w in result.waiting)
    return (entry.idempotency_key, entry.attempts, entry.previous_error, result.paced, waiting)


def stored(outbox: SqlOutbox) -> list[tuple[Any, ...]]:
    """Every row as the claims left it. A turn's row by when the turn ends: its count of
    takes is one a transaction when a turn ending at once is taken again (adapters.TURN)."""
    rows = []
    with outbox._sessions() as session:
        for row in session.execute(select(DeliveryRow).order_by(DeliveryRow.id)).scalars():
            if row.kind == CHANNEL_TURN:
                rows.append((row.idempotency_key, row.next_attempt_at))
            else:
                rows.append(
                    (
                        row.idempotency_key,
                        row.status,
                        row.attempts,
                        row.next_attempt_at,
                        row.last_error,
                        row.attempted_at,
                    )
                )
    return rows


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios)
def test_claims_asked_together_are_the_claims_asked_one_after_another(
    scenario: Scenario, template: Path, tmp_path: Path
) -> None:
    with (
        outbox_copy(template, tmp_path / "apart.sqlite3") as apart,
        outbox_copy(template, tmp_path / "together.sqlite3") as together,
    ):
        keys = prepare(apart, scenario)
        assert prepare(together, scenario) == keys
        asks = asks_of(scenario, keys)

        one_by_one = [
            apart.claim_paced(ask.key, ask.now, ask.lease_until, ask.pacing, ask.first)
            for ask in asks
        ]
        at_once = together.claim_paced_many(asks)

        assert [described(r) for r in at_once] == [described(r) for r in one_by_one]
        assert stored(together) == stored(apart)


# --- what they cost ----------------------------------------------------------------------


def held_alerts(outbox: SqlOutbox, count: int, channel: str = CHANNELS[0]) -> list[str]:
    deliveries = [an_alert(f"r{number}", channel) for number in range(count)]
    outbox.enqueue_many(deliveries, NOW, LEASE_UNTIL)
    return [delivery.idempotency_key for delivery in deliveries]


def first_asks(keys: list[str], interval: float, burst_minimum: int = 99) -> list[ClaimAsk]:
    pacing = Pacing(ASKED_AT + timedelta(seconds=interval), burst_minimum, burst_limit=19)
    return [ClaimAsk(key, ASKED_AT, LEASE_UNTIL, pacing, first=True) for key in keys]


def test_first_attempts_to_a_channel_without_an_interval_cost_two_statements_in_all(
    template: Path, tmp_path: Path
) -> None:
    """The bench's setting (every detractor its own post at once): one claim for them all,
    and the channel's turn taken once. Asked one by one it was 2 statements each."""
    with outbox_copy(template, tmp_path / "outbox.sqlite3") as outbox:
        outbox.take_turn(CHANNELS[0], NOW, NOW)
        keys = held_alerts(outbox, 12)
        with counted(outbox._sessions) as counts:
            claims = outbox.claim_paced_many(first_asks(keys, interval=0))

    assert [c.entry.idempotency_key for c in claims if isinstance(c, Claim)] == keys
    assert all(isinstance(c, Claim) and c.paced and c.entry.attempts == 1 for c in claims)
    assert counts["statements"] == 2


def test_first_attempts_to_a_paced_channel_post_one_and_give_the_rest_back_together(
    template: Path, tmp_path: Path
) -> None:
    """Slack's pace (a post a second a channel): the first takes the turn, the others wait
    for its end, given back in one statement; with bursts on, the look for waiting alerts
    runs once, having found too few, not once a claim."""
    with outbox_copy(template, tmp_path / "outbox.sqlite3") as outbox:
        outbox.take_turn(CHANNELS[0], NOW, NOW)
        keys = held_alerts(outbox, 12)
        with counted(outbox._sessions) as counts:
            claims = outbox.claim_paced_many(first_asks(keys, interval=1, burst_minimum=4))
        assert set(outbox.due(ASKED_AT + timedelta(seconds=1), 20)) == set(keys[1:])

    first, *rest = claims
    assert isinstance(first, Claim) and first.paced and first.waiting == ()
    assert rest == [Busy(ASKED_AT + timedelta(seconds=1))] * 11
    # The claim, the turn, the look for waiting alerts, the eleven given back.
    assert counts["statements"] == 4


def test_a_channel_found_busy_is_asked_once_for_all_its_claims(
    template: Path, tmp_path: Path
) -> None:
    with outbox_copy(template, tmp_path / "outbox.sqlite3") as outbox:
        outbox.take_turn(CHANNELS[0], NOW, later(5))
        outbox.take_turn(CHANNELS[1], NOW, NOW)
        keys = held_alerts(outbox, 6) + held_alerts(outbox, 1, CHANNELS[1])
        ask_keys = [keys[0], keys[6], *keys[1:6]]
        with counted(outbox._sessions) as counts:
            claims = outbox.claim_paced_many(first_asks(ask_keys, interval=1))

    assert claims[0] == Busy(later(5))
    assert isinstance(claims[1], Claim) and claims[1].entry.idempotency_key == keys[6]
    assert claims[2:] == [Busy(later(5))] * 5
    # The claim; the busy turn and when it ends; the other channel's turn; the give-back.
    assert counts["statements"] == 5


# --- on each database ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_outbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlOutbox]:
    with two_migrated_databases(request, tmp_path_factory, request.param) as (sessions, _):
        yield SqlOutbox(sessions)


def test_a_groups_claims_and_marks_hold_on_either_database(any_outbox: SqlOutbox) -> None:
    """Claimed together, then marked sent together: more than a page of the batched marks
    psycopg2 sends PostgreSQL in one round trip each (``make_engine``), every one kept with
    its own reference."""
    any_outbox.take_turn(CHANNELS[0], NOW, NOW)
    keys = held_alerts(any_outbox, 150)
    claims = any_outbox.claim_paced_many(first_asks(keys, interval=0))
    assert [c.entry.idempotency_key for c in claims if isinstance(c, Claim) and c.paced] == keys

    marks = [Sent(key, f"C0STORE:{number}", ASKED_AT) for number, key in enumerate(keys)]
    payloads = any_outbox.mark_sent_many(marks)

    assert all(payload is not None and payload["channel"] for payload in payloads)
    assert any_outbox.due(later(3600), 200) == []
    with any_outbox._sessions() as session:
        stored = dict(
            session.execute(select(DeliveryRow.idempotency_key, DeliveryRow.provider_ref)).all()
        )
        dialect = session.get_bind().dialect
    assert [stored[key] for key in keys] == [mark.provider_ref for mark in marks]
    if dialect.name == "postgresql":
        assert dialect.executemany_mode == EXECUTEMANY_VALUES_PLUS_BATCH
