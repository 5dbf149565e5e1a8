"""The notifier takes classified responses in by the batch, in one transaction, and attempts
their deliveries in the background: Slack's speed does not hold up the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import (
    _KEYS_ABOUT,
    PENDING,
    DeliveryFailed,
    DeliveryRow,
    OutboxEntry,
    Pacing,
    Sender,
    SqlOutbox,
)
from services.notifier.bursts import BurstPolicy
from services.notifier.case_store import AlertRow, CaseRow, SqlCases
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, Delivery, LoopConfig
from services.notifier.review_store import (
    ReviewLedger,
    SqlReviewDecisions,
    review_decisions_counter,
)
from shared.db import Sessions, make_engine
from shared.events import CaseAction, CaseEvent
from shared.ids import case_id_for
from tests.unit.builders import FakeClock, InstantSlack, a_classified_response, counted, run
from tests.unit.test_case_buttons import step
from tests.unit.test_notifier import FakeSender, an_alert

CONFIG = LoopConfig(slack_channel="#customer-feedback", company_name="Our Shop")


class RefusingOutbox(SqlOutbox):
    """The SQL outbox, refusing any delivery about one response (a fault in the batch)."""

    def __init__(self, sessions: sessionmaker[Session], refuse: str) -> None:
        super().__init__(sessions)
        self.refuse = refuse

    def enqueue_many(self, deliveries: Sequence[Delivery], *args: Any, **kwargs: Any) -> Any:
        if any(delivery.subject_id == self.refuse for delivery in deliveries):
            raise ValueError(f"refusing {self.refuse}")
        return super().enqueue_many(deliveries, *args, **kwargs)


class HeldSender:
    """Starts every send, and lets none finish until released."""

    def __init__(self, expected: int, failing_first: int = 0) -> None:
        self.failing_first = failing_first
        self.expected = expected
        self.started: list[OutboxEntry] = []
        self.sent: list[OutboxEntry] = []
        self.all_started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, entry: OutboxEntry) -> str:
        if self.failing_first:
            self.failing_first -= 1
            raise DeliveryFailed("Slack answered 500: fatal_error")
        self.started.append(entry)
        if len(self.started) >= self.expected:
            self.all_started.set()
        await self.release.wait()
        self.sent.append(entry)
        return f"C0ALERTS:1700000000.{len(self.sent):06d}"

    async def find(self, entry: OutboxEntry) -> str | None:
        return None


def sql_dispatcher(
    sessions: Sessions,
    outbox: SqlOutbox,
    slack: Sender,
    *,
    joined: bool = True,
    attempts_at_once: int = 8,
    clock: FakeClock | None = None,
    cases: SqlCases | None = None,
    **more: Any,
) -> Dispatcher:
    registry = CollectorRegistry()
    senders: dict[Channel, Sender] = {Channel.SLACK: slack, Channel.EMAIL: FakeSender()}
    options: dict[str, Any] = {"together": sessions.together} if joined else {}
    return Dispatcher(
        outbox,
        senders,
        CONFIG,
        DeliveryMetrics.create(registry),
        clock=clock or FakeClock(datetime.now(UTC)),
        cases=cases or SqlCases(sessions),
        reviews=ReviewLedger(
            SqlReviewDecisions(sessions),
            CONFIG,
            outbox.is_suppressed,
            review_decisions_counter(registry),
        ),
        # Every alert a post of its own, at once (no turns between posts, no summaries).
        bursts=BurstPolicy(0, 1_000_000),
        attempts_at_once=attempts_at_once,
        **options,
        **more,
    )


def rows(sessions: Sessions, table: Any) -> int:
    with sessions() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def a_batch(n: int) -> list[Any]:
    return [a_classified_response(2, response_id=f"r{i}", customer_id=f"c{i}") for i in range(n)]


@pytest.mark.parametrize("joined", [True, False])
def test_a_batch_is_taken_in_as_one_transaction(sessions: Sessions, joined: bool) -> None:
    """A fault in the batch's last response leaves nothing of the batch written (the stream
    then takes the batch one response at a time, so only the faulty one is a dead letter);
    without the joined transaction the responses before it would have been written."""
    slack = FakeSender()
    dispatcher = sql_dispatcher(
        sessions, RefusingOutbox(sessions, refuse="r2"), slack, joined=joined
    )

    with pytest.raises(ValueError, match="refusing r2"):
        run(dispatcher.handle_many(a_batch(3)))

    written = (rows(sessions, CaseRow), rows(sessions, AlertRow), rows(sessions, DeliveryRow))
    # Unjoined, the three cases and alerts would be written, and no delivery (the outbox's
    # writes for the batch are one transaction of their own).
    assert written == ((0, 0, 0) if joined else (3, 3, 0))
    assert slack.attempted == []


def test_a_batch_writes_each_response_and_attempts_each_alert_once(sessions: Sessions) -> None:
    slack = FakeSender()
    dispatcher = sql_dispatcher(sessions, SqlOutbox(sessions), slack)

    async def twice() -> None:
        await dispatcher.handle_many(a_batch(5))
        # The same batch again, as after a crash before its events were acked.
        await dispatcher.handle_many(a_batch(5))
        await dispatcher.settle()

    run(twice())

    assert sorted(entry.subject_id for entry in slack.sent) == [f"r{i}" for i in range(5)]
    assert (rows(sessions, CaseRow), rows(sessions, AlertRow)) == (5, 5)


def test_slack_being_slow_does_not_hold_up_the_stream_beyond_the_attempts_at_once(
    sessions: Sessions,
) -> None:
    """Attempts run in the background: a batch returns (and its events are acked) while
    Slack has not answered; once ``attempts_at_once`` attempts are under way, the next
    batch waits for a slot, so the stream never runs away from Slack."""
    slack = HeldSender(expected=3)
    outbox = SqlOutbox(sessions)
    dispatcher = sql_dispatcher(sessions, outbox, slack, attempts_at_once=3)

    async def scenario() -> None:
        await asyncio.wait_for(dispatcher.handle_many(a_batch(3)), timeout=30)
        await asyncio.wait_for(slack.all_started.wait(), timeout=30)
        assert slack.sent == []
        more = asyncio.ensure_future(
            dispatcher.handle_many([a_classified_response(2, response_id="r3", customer_id="c3")])
        )
        await asyncio.sleep(0.3)
        assert not more.done()  # waiting for a slot
        assert len(slack.started) == 3
        slack.release.set()
        await asyncio.wait_for(more, timeout=30)
        await asyncio.wait_for(dispatcher.settle(), timeout=30)

    run(scenario())
    assert sorted(entry.subject_id for entry in slack.sent) == ["r0", "r1", "r2", "r3"]


def test_due_retries_are_attempted_side_by_side(sessions: Sessions) -> None:
    """The retry timer's attempts run at once, not one after another: one Slack call that
    hangs no longer holds up every retry behind it."""
    slack = HeldSender(expected=3, failing_first=3)
    clock = FakeClock(datetime.now(UTC))
    dispatcher = sql_dispatcher(sessions, SqlOutbox(sessions), slack, clock=clock)

    async def scenario() -> int:
        await dispatcher.handle_many(a_batch(3))
        await dispatcher.settle()  # each first attempt failed: three retries pending
        clock.advance(600)
        retrying = asyncio.ensure_future(dispatcher.retry_due())
        # One after another, the second would not start until the first was released.
        await asyncio.wait_for(slack.all_started.wait(), timeout=30)
        slack.release.set()
        return await asyncio.wait_for(retrying, timeout=30)

    assert run(scenario()) == 3
    assert sorted(entry.subject_id for entry in slack.sent) == ["r0", "r1", "r2"]


def test_an_attempt_stuck_for_good_gives_its_slot_back(sessions: Sessions) -> None:
    """Every call an attempt makes has a timeout but one: should one never return (here the
    hook after a send), the attempt is cut short once past its lease and frees its slot,
    and the stream goes on; the delivery is attempted again when its lease ends."""
    never = asyncio.Event()

    async def stuck(entry: OutboxEntry, provider_ref: str) -> None:
        await never.wait()

    slack = FakeSender()
    dispatcher = sql_dispatcher(
        sessions,
        SqlOutbox(sessions),
        slack,
        attempts_at_once=1,
        on_sent=stuck,
        attempt_timeout_seconds=0.05,
    )

    async def scenario() -> None:
        await dispatcher.handle_many(a_batch(1))
        # The only slot is held by r0's attempt until it is cut short.
        await asyncio.wait_for(
            dispatcher.handle_many([a_classified_response(2, response_id="r1", customer_id="c1")]),
            timeout=30,
        )
        await asyncio.wait_for(dispatcher.settle(), timeout=30)

    run(scenario())
    assert [entry.subject_id for entry in slack.sent] == ["r0", "r1"]


def test_an_attempt_cut_short_at_shutdown_is_left_to_its_lease(sessions: Sessions) -> None:
    """settle(grace) cancels what is still going: the delivery stays pending, claimed until
    its lease ends, when the retry timer attempts it again."""
    slack = HeldSender(expected=1)
    outbox = SqlOutbox(sessions)
    dispatcher = sql_dispatcher(sessions, outbox, slack)

    async def scenario() -> None:
        await dispatcher.handle_many(a_batch(1))
        await asyncio.wait_for(slack.all_started.wait(), timeout=30)
        await dispatcher.settle(grace=0.1)

    run(scenario())
    [key] = outbox.keys_about("alert", "r0")
    status, _ = outbox.payload_of(key) or ("", {})
    assert status == PENDING and slack.sent == []
    assert outbox.due(datetime.now(UTC), 10) == []  # leased, not due yet


def test_joined_writes_are_seen_by_other_sessions_only_once_the_block_commits(
    sessions: Sessions,
) -> None:
    cases = SqlCases(sessions)
    now = datetime.now(UTC)
    with sessions.together():
        cases.remember_alert("r0", {"event_id": "e0"}, now)
        with sessions.together():  # nested: joins the outer block
            cases.remember_alert("r1", {"event_id": "e1"}, now)
        assert rows(sessions, AlertRow) == 0
    assert rows(sessions, AlertRow) == 2
    # Outside a block, each write commits on its own.
    cases.remember_alert("r2", {"event_id": "e2"}, now)
    assert rows(sessions, AlertRow) == 3


def test_a_response_s_deliveries_are_found_through_an_index(database_url: str) -> None:
    """Every response looks for its earlier alert: without the index, a scan of the whole
    outbox (20,000 rows in the chaos test's large run) on each one."""
    engine = make_engine(database_url)
    statement = str(_KEYS_ABOUT.compile(dialect=engine.dialect))
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", ("alert", "r0")).all()
    engine.dispose()
    assert "USING INDEX ix_notifier_deliveries_subject" in " ".join(map(str, plan))


async def taken_in(dispatcher: Dispatcher, batch: list[Any]) -> None:
    await dispatcher.handle_many(batch)
    await dispatcher.settle()


def test_the_retry_timer_leaves_alerts_waiting_for_their_first_attempt_alone(
    sessions: Sessions,
) -> None:
    """A batch's alerts wait for a free slot for their first attempts. The retry timer used
    to find them due meanwhile and start attempts of its own, which raced the first ones to
    claim them (776 claims lost in 1,000 alerts of bench/notifier_hot_path.py)."""
    slack = HeldSender(expected=1)
    outbox = SqlOutbox(sessions)
    clock = FakeClock(datetime.now(UTC))
    dispatcher = sql_dispatcher(sessions, outbox, slack, attempts_at_once=1, clock=clock)

    async def scenario() -> list[str]:
        intake = asyncio.ensure_future(dispatcher.handle_many(a_batch(3)))
        # r0's attempt holds the only slot; r1's waits for it, r2's is not started yet.
        await asyncio.wait_for(slack.all_started.wait(), timeout=30)
        due = outbox.due(clock(), 10)
        slack.release.set()
        await asyncio.wait_for(intake, timeout=30)
        await asyncio.wait_for(dispatcher.settle(), timeout=30)
        return due

    assert run(scenario()) == []
    assert [entry.subject_id for entry in slack.started] == ["r0", "r1", "r2"]
    assert [entry.attempts for entry in slack.sent] == [1, 1, 1]


def test_an_alert_whose_first_attempt_never_came_is_the_retry_timers_once_its_hold_ends(
    sessions: Sessions,
) -> None:
    """Should the worker die before the first attempt, the retry timer takes the alert once
    the hold ends; a first attempt that comes later after all does not claim it too."""
    outbox = SqlOutbox(sessions)
    now = datetime.now(UTC)
    lease = timedelta(seconds=30)
    pacing = Pacing(turn_until=now, burst_minimum=999, burst_limit=9)
    delivery = an_alert("r0")

    assert outbox.enqueue(delivery, now, now + lease, pacing, claim=False).outcome == "added"
    assert outbox.due(now, 10) == []
    assert outbox.due(now + lease, 10) == [delivery.idempotency_key]
    retried = outbox.claim(delivery.idempotency_key, now + lease, now + 2 * lease)
    assert retried is not None and retried.attempts == 1
    late = outbox.claim_paced(delivery.idempotency_key, now + lease, now + 2 * lease, pacing, True)
    assert late is None


def test_an_alert_costs_the_database_few_statements_and_shares_its_commits(
    sessions: Sessions,
) -> None:
    """Counted, not timed: each statement cost the notifier 100 to 500 µs, and on
    PostgreSQL each is a round trip its one writing thread waits for (docs/PERFORMANCE.md).
    A batch is taken in with 7 statements, however many alerts it has (the versions kept,
    the alerts, the cases opened and read back, the review decisions, the looks for earlier
    alerts, the deliveries). The attempts asked for while a group commit runs go in the next
    group: their claims in 2 statements for them all (the first attempts, their channel's
    turn), where it was 2 an alert; the alerts sent meanwhile marked sent, and where each was
    posted remembered, in 3 (2 for one alone), where it was 2 an alert. So a group costs at
    most 5 statements, and the channel's first turn 3 more once (it finds no row, writes it
    and takes it). There were 2 statements an alert to claim before (50 or more for these
    20), 11 an alert in all before that, and 16.5 statements and 3.75 commits before that."""
    slack = InstantSlack()
    dispatcher = sql_dispatcher(sessions, SqlOutbox(sessions), slack)
    batch = a_batch(20)
    with counted(sessions) as counts:
        run(taken_in(dispatcher, batch))

    assert len(slack.sent) == len(batch)
    # The batch's intake commits first; every later commit is a group's.
    groups = counts["commits"] - 1
    # How they group depends on when each attempt asks; one each would be 2 * 20.
    assert groups <= len(batch) // 2
    assert counts["statements"] <= 7 + 3 + 5 * groups
    assert counts["statements"] < 7 + 2 * len(batch)


def test_a_batch_of_case_steps_is_applied_in_one_transaction(sessions: Sessions) -> None:
    """Every alert's case comes back to the notifier opened, from the cases topic: one
    transaction a batch of them, not one an event."""
    opened: list[CaseEvent] = []

    async def announce(event: CaseEvent) -> None:
        opened.append(event)

    dispatcher = sql_dispatcher(sessions, SqlOutbox(sessions), InstantSlack(), on_case=announce)
    run(taken_in(dispatcher, a_batch(20)))
    assert len(opened) == 20
    with counted(sessions) as counts:
        run(dispatcher.handle_case_events(opened))

    assert counts["commits"] == 1
    # History only: the cases read and the steps written, for the batch (3 an event before).
    assert counts["statements"] == 2
    assert [len(SqlCases(sessions).steps(e.case_id)) for e in opened] == [1] * 20


def test_staff_steps_of_a_batch_are_shown_on_their_alerts_each_responses_in_order(
    sessions: Sessions,
) -> None:
    slack = InstantSlack()
    clock = FakeClock(datetime.now(UTC))
    dispatcher = sql_dispatcher(
        sessions,
        SqlOutbox(sessions),
        slack,
        clock=clock,
        case_links=lambda case: f"https://cx.example/cases/{case.case_id}",
    )
    run(taken_in(dispatcher, a_batch(2)))
    assert len(slack.sent) == 2
    at = clock()
    steps = [
        step(CaseAction.CLAIMED, "U0KIM", "r0", at),
        step(CaseAction.CLAIMED, "U0KIM", "r1", at),
        step(CaseAction.CONTACTED, "U0KIM", "r0", at + timedelta(minutes=1)),
        # Claiming a contacted case does not fit its state: refused, and not redrawn.
        step(CaseAction.CLAIMED, "U0KIM", "r0", at + timedelta(minutes=2)),
    ]

    run(dispatcher.handle_case_events(steps))

    updates = [entry for entry in slack.sent if "ts" in entry.payload]
    assert sorted(entry.subject_id for entry in updates) == ["r0", "r0", "r1"]
    last_of_r0 = [entry for entry in updates if entry.subject_id == "r0"][-1]
    assert "*Contacted*" in str(last_of_r0.payload["blocks"])
    assert SqlCases(sessions).get(case_id_for("r0")).state == "contacted"  # type: ignore[union-attr]
