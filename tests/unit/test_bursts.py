"""Bursts in a Slack channel: posts are paced per channel and a backlog of alerts goes out
as summaries, every alert exactly once, whatever Slack answers and however many workers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import (
    Busy,
    Claim,
    DeliveryFailed,
    Enqueued,
    Intake,
    Outbox,
    OutboxEntry,
    Pacing,
    Sender,
    SqlOutbox,
)
from services.notifier.alerts import SUMMARY_MAX_LINES
from services.notifier.bursts import SUMMARY_LINE, BurstPolicy, summary_of
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, Delivery, DeliveryKind, LoopConfig, plan
from services.notifier.rules import parse_rules
from tests.unit.builders import FakeClock, a_classified_response, run
from tests.unit.test_notifier import FakeOutbox, FakeSender

STORE = "#store-aarhus"
CONFIG = LoopConfig(slack_channel=STORE, company_name="Our Shop")
# Detractors alert the store; promoters' praise goes to a channel of its own.
RULES = parse_rules(
    """
version: 1
rules:
  - name: detractors
    when: {category: detractor}
    then:
      - slack_alert
  - name: promoters
    when: {category: promoter}
    then:
      - kudos: {channel: "#kudos"}
""",
    default_channel=STORE,
)


class TimedSender(FakeSender):
    """A fake Slack that notes when (by the test's clock) each message reached it, and can
    refuse the next summaries."""

    def __init__(self, clock: FakeClock, *failures: DeliveryFailed) -> None:
        super().__init__()
        self.clock = clock
        self.summary_failures = list(failures)
        self.times: list[tuple[datetime, OutboxEntry]] = []

    async def send(self, entry: OutboxEntry) -> str:
        if entry.kind == "alert_summary" and self.summary_failures:
            self.attempted.append(entry)
            raise self.summary_failures.pop(0)
        reference = await super().send(entry)
        self.times.append((self.clock(), entry))
        return f"C0STORE:{reference}"


class Burst:
    """A dispatcher on a fake clock posting to a fake Slack, and the outbox it shares."""

    def __init__(
        self,
        outbox: Outbox | None = None,
        clock: FakeClock | None = None,
        *failures: DeliveryFailed,
        **options: Any,
    ) -> None:
        self.registry = CollectorRegistry()
        self.clock = clock or FakeClock()
        self.outbox = outbox or FakeOutbox()
        self.slack = TimedSender(self.clock, *failures)
        self.dead: list[tuple[str, str]] = []
        senders: dict[Channel, Sender] = {Channel.SLACK: self.slack, Channel.EMAIL: FakeSender()}

        async def record_dead(entry: OutboxEntry, reason: str) -> None:
            self.dead.append((entry.idempotency_key, reason))

        self.dispatcher = Dispatcher(
            self.outbox,
            senders,
            CONFIG,
            DeliveryMetrics.create(self.registry),
            clock=self.clock,
            on_dead=record_dead,
            rules=RULES,
            **options,
        )

    def count(self, outcome: str) -> float | None:
        return self.registry.get_sample_value(
            "npsloop_deliveries_total", {"channel": "slack", "kind": "alert", "outcome": outcome}
        )


def detractors(count: int, prefix: str = "aarhus") -> list[str]:
    return [f"{prefix}-{number:02d}" for number in range(count)]


def arrive(burst: Burst, response_ids: list[str], within_seconds: float = 1.0) -> None:
    for response_id in response_ids:
        run(burst.dispatcher.handle(a_classified_response(2, response_id=response_id)))
        burst.clock.advance(within_seconds / len(response_ids))


def tick_until_quiet(*bursts: Burst, step: float = 1.0, ticks: int = 120) -> None:
    """The retry timer of each worker, once a step, until nothing is left to send."""
    clock = bursts[0].clock
    for _ in range(ticks):
        clock.advance(step)
        for burst in bursts:
            run(burst.dispatcher.retry_due())
    assert run(bursts[0].dispatcher.retry_due()) == 0


def mentions(entry: OutboxEntry, response_ids: list[str]) -> list[str]:
    text = json.dumps(entry.payload, ensure_ascii=False)
    return [response_id for response_id in response_ids if response_id in text]


def gaps(times: list[datetime]) -> list[timedelta]:
    return [later - earlier for earlier, later in pairwise(times)]


def times_each_alert_reached_slack(
    sent: list[OutboxEntry], response_ids: list[str]
) -> dict[str, int]:
    seen: Counter[str] = Counter()
    for entry in sent:
        seen.update(mentions(entry, response_ids))
    return {response_id: seen[response_id] for response_id in response_ids}


def test_fourteen_detractors_in_a_second_make_an_alert_then_one_summary_of_the_other_13() -> None:
    burst = Burst()
    arrived = detractors(14)
    arrive(burst, arrived)
    tick_until_quiet(burst)

    [alone, summary] = burst.slack.sent
    assert alone.kind == "alert" and mentions(alone, arrived) == [arrived[0]]
    assert summary.kind == "alert_summary"
    assert summary.payload["channel"] == STORE
    assert summary.payload["text"].startswith("13 new detractors in #store-aarhus in the last")
    assert SUMMARY_LINE not in summary.payload
    assert mentions(summary, arrived) == arrived[1:]
    assert times_each_alert_reached_slack(burst.slack.sent, arrived) == dict.fromkeys(arrived, 1)

    assert {row.status for row in burst.outbox.rows.values()} == {"sent"}
    coalesced = [
        row.provider_ref
        for row in burst.outbox.rows.values()
        if row.provider_ref != "C0STORE:fake-ref-1"
    ]
    assert coalesced == ["summary:C0STORE:fake-ref-2"] * 13
    assert burst.count("sent") == 1.0 and burst.count("coalesced") == 13.0
    assert burst.registry.get_sample_value("npsloop_alert_summaries_total") == 1.0


def test_below_the_threshold_alerts_go_one_by_one_a_turn_apart() -> None:
    burst = Burst()
    arrived = detractors(4)
    arrive(burst, arrived, within_seconds=0.2)
    tick_until_quiet(burst, step=0.25)

    assert [entry.kind for entry in burst.slack.sent] == ["alert"] * 4
    assert times_each_alert_reached_slack(burst.slack.sent, arrived) == dict.fromkeys(arrived, 1)
    assert burst.count("coalesced") == 0.0


def test_posts_to_a_channel_are_at_least_the_interval_apart_and_other_channels_do_not_wait() -> (
    None
):
    burst = Burst(bursts=BurstPolicy(interval_seconds=2.0, threshold=100))
    arrive(burst, detractors(6), within_seconds=0.1)
    run(burst.dispatcher.handle(a_classified_response(10, response_id="promoter-1")))
    tick_until_quiet(burst, step=0.25)

    store = [at for at, entry in burst.slack.times if entry.recipient == STORE]
    assert len(store) == 6
    assert min(gaps(store)) >= timedelta(seconds=2)
    [kudos_at] = [at for at, entry in burst.slack.times if entry.kind == "kudos"]
    assert kudos_at < store[1], "the kudos channel does not wait for the store's turns"


def test_a_429_holds_the_whole_channel_until_its_retry_after() -> None:
    burst = Burst()
    burst.slack.failures = [DeliveryFailed("Slack answered 429: ratelimited", retry_after=10)]
    arrive(burst, ["first"])
    burst.clock.advance(2)
    arrive(burst, ["second"])
    run(burst.dispatcher.handle(a_classified_response(10, response_id="promoter-1")))
    assert [entry.kind for entry in burst.slack.sent] == ["kudos"]

    for _ in range(30):
        burst.clock.advance(0.25)
        run(burst.dispatcher.retry_due())
    [first_at, second_at] = [at for at, entry in burst.slack.times if entry.kind == "alert"]
    rate_limited_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert first_at >= rate_limited_at + timedelta(seconds=10)
    assert second_at >= first_at + timedelta(seconds=1)


def test_a_failed_summary_puts_every_alert_in_it_back_and_none_is_lost_or_doubled() -> None:
    burst = Burst(None, None, DeliveryFailed("Slack answered 503"), DeliveryFailed("timeout"))
    arrived = detractors(9)
    arrive(burst, arrived)
    tick_until_quiet(burst)

    failed = [entry for entry in burst.slack.attempted if entry not in burst.slack.sent]
    assert [mentions(entry, arrived) for entry in failed] == [arrived[1:], arrived[1:]]
    assert times_each_alert_reached_slack(burst.slack.sent, arrived) == dict.fromkeys(arrived, 1)
    assert burst.count("retry") == 16.0 and burst.count("coalesced") == 8.0
    rows = burst.outbox.rows
    assert sorted(row.attempts for row in rows.values()) == [1] + [3] * 8


def test_a_summary_slack_refuses_makes_each_of_its_alerts_a_dead_letter() -> None:
    refused = DeliveryFailed("Slack answered 200: channel_not_found", permanent=True)
    burst = Burst(None, None, refused)
    arrived = detractors(6)
    arrive(burst, arrived)
    tick_until_quiet(burst)

    assert len(burst.slack.sent) == 1
    assert sorted(key for key, _ in burst.dead) == sorted(
        key for key, row in burst.outbox.rows.items() if row.status == "failed"
    )
    assert len(burst.dead) == 5 and burst.count("failed") == 5.0


def test_a_big_backlog_becomes_several_summaries_each_showing_every_alert_in_it() -> None:
    burst = Burst()
    arrived = detractors(60)
    arrive(burst, arrived, within_seconds=0.5)
    tick_until_quiet(burst)

    summaries = [entry for entry in burst.slack.sent if entry.kind == "alert_summary"]
    assert [len(mentions(entry, arrived)) for entry in summaries] == [SUMMARY_MAX_LINES] * 2 + [9]
    assert all("more" not in json.dumps(entry.payload) for entry in summaries)
    assert times_each_alert_reached_slack(burst.slack.sent, arrived) == dict.fromkeys(arrived, 1)


def test_an_alert_planned_without_a_summary_line_is_posted_on_its_own() -> None:
    burst = Burst()
    arrived = detractors(6)
    arrive(burst, arrived)
    # As if planned by a notifier from before summaries: its payload has no summary line.
    old = burst.outbox.rows[f"alert:{arrived[3]}:slack:{STORE}"]
    old.delivery.payload.pop(SUMMARY_LINE)
    tick_until_quiet(burst)

    assert [entry.kind for entry in burst.slack.sent] == ["alert", "alert_summary", "alert"]
    assert times_each_alert_reached_slack(burst.slack.sent, arrived) == dict.fromkeys(arrived, 1)


def test_a_summary_counts_the_minutes_from_its_oldest_alert_and_keeps_the_fallback_channel() -> (
    None
):
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    payloads = [
        {
            "channel": STORE,
            "fallback_channel": "#customer-feedback",
            SUMMARY_LINE: {
                "response_id": "r1",
                "score": 3,
                "category": "detractor",
                "comment": "<!channel> slow",
            },
        },
        {SUMMARY_LINE: {"response_id": "r2", "score": 7, "category": "passive", "comment": None}},
    ]
    message = summary_of(STORE, payloads, now - timedelta(minutes=4, seconds=1), now)
    assert message["text"] == "1 new detractor and 1 passive in #store-aarhus in the last 5 minutes"
    assert message["fallback_channel"] == "#customer-feedback"
    shown = json.dumps(message["blocks"])
    assert "`r1`" in shown and "`r2`" in shown and "<!channel>" not in shown


# --- two workers, one outbox ------------------------------------------------------------


@pytest.fixture(params=["fake", "sql"])
def shared_outbox(request: pytest.FixtureRequest) -> Iterator[Outbox]:
    if request.param == "fake":
        yield FakeOutbox()
    else:
        sessions: sessionmaker[Session] = request.getfixturevalue("sessions")
        yield SqlOutbox(sessions)


def test_two_workers_sharing_an_outbox_send_each_alert_once_and_take_turns(
    shared_outbox: Outbox,
) -> None:
    clock = FakeClock()
    one, other = Burst(shared_outbox, clock), Burst(shared_outbox, clock)
    one.slack.delay_seconds = other.slack.delay_seconds = 0.01
    arrived = detractors(40)

    async def both_workers() -> None:
        # Each worker takes half the responses (its partitions), at the same moments,
        # then both retry timers tick together.
        for first, second in zip(arrived[::2], arrived[1::2], strict=True):
            await asyncio.gather(
                one.dispatcher.handle(a_classified_response(2, response_id=first)),
                other.dispatcher.handle(a_classified_response(2, response_id=second)),
            )
            clock.advance(0.05)
        for _ in range(60):
            clock.advance(0.5)
            await asyncio.gather(one.dispatcher.retry_due(), other.dispatcher.retry_due())

    run(both_workers())

    sent = one.slack.sent + other.slack.sent
    assert times_each_alert_reached_slack(sent, arrived) == dict.fromkeys(arrived, 1)
    assert len(sent) < 10
    posted_at = sorted(at for at, _ in one.slack.times + other.slack.times)
    assert min(gaps(posted_at)) >= timedelta(seconds=1)


# --- the outbox's part, for the fake and the real one alike ---------------------------


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def an_alert(response_id: str, channel: str = STORE) -> Delivery:
    config = LoopConfig(slack_channel=channel, company_name="Our Shop")
    [delivery] = plan(a_classified_response(2, response_id=response_id), config)
    return delivery


def test_an_outbox_gives_a_channel_one_turn_at_a_time(shared_outbox: Outbox) -> None:
    assert shared_outbox.take_turn(STORE, NOW, later(1)) is None
    assert shared_outbox.take_turn(STORE, later(0.5), later(1.5)) == later(1)
    assert shared_outbox.take_turn("#kudos", later(0.5), later(1.5)) is None
    assert shared_outbox.take_turn(STORE, later(1), later(2)) is None


def test_an_outbox_holds_a_channel_for_a_retry_after_but_never_shortens_a_turn(
    shared_outbox: Outbox,
) -> None:
    assert shared_outbox.take_turn(STORE, NOW, later(1)) is None
    shared_outbox.hold_turn(STORE, later(30))
    shared_outbox.hold_turn(STORE, later(5))
    assert shared_outbox.take_turn(STORE, later(29), later(30)) == later(30)
    assert shared_outbox.take_turn(STORE, later(30), later(31)) is None


def test_an_outbox_claims_the_waiting_alerts_of_a_channel_only_from_the_minimum_on(
    shared_outbox: Outbox,
) -> None:
    keys = []
    for number in range(5):
        delivery = an_alert(f"r{number}")
        shared_outbox.add(delivery, NOW)
        keys.append(delivery.idempotency_key)
    elsewhere = an_alert("elsewhere", "#store-odense")
    shared_outbox.add(elsewhere, NOW)
    in_flight = shared_outbox.claim(keys[0], NOW, later(30))
    assert in_flight is not None
    shared_outbox.claim(keys[1], NOW, later(30))
    shared_outbox.mark_retry(keys[1], "503", later(10))

    assert shared_outbox.claim_waiting("alert", STORE, later(1), later(31), 4, 10) == []
    claimed = shared_outbox.claim_waiting("alert", STORE, later(1), later(31), 2, 2)
    assert [entry.idempotency_key for entry in claimed] == keys[2:4]
    assert all(entry.attempts == 1 for entry in claimed)
    assert set(shared_outbox.due(later(1), 10)) == {keys[4], elsewhere.idempotency_key}
    assert shared_outbox.claim(keys[2], later(2), later(32)) is None


def test_an_outbox_releases_a_claim_without_counting_an_attempt(shared_outbox: Outbox) -> None:
    delivery = an_alert("r1")
    shared_outbox.add(delivery, NOW)
    shared_outbox.claim(delivery.idempotency_key, NOW, later(30))
    shared_outbox.release(delivery.idempotency_key, later(1), None)
    assert shared_outbox.due(later(1), 10) == [delivery.idempotency_key]
    again = shared_outbox.claim(delivery.idempotency_key, later(1), later(31))
    assert again is not None and again.attempts == 1


def test_an_outbox_marks_a_summarys_alerts_sent_together(shared_outbox: Outbox) -> None:
    keys = []
    for number in range(3):
        delivery = an_alert(f"r{number}")
        shared_outbox.add(delivery, NOW)
        keys.append(delivery.idempotency_key)
    claimed = shared_outbox.claim_waiting("alert", STORE, NOW, later(30), 3, 10)
    assert len(claimed) == 3
    shared_outbox.mark_all_sent(keys, "summary:C1:1.2", later(1))
    assert shared_outbox.due(later(3600), 10) == []
    assert all(shared_outbox.claim(key, later(3600), later(3630)) is None for key in keys)


def test_workers_claiming_a_channels_waiting_alerts_at_once_never_share_one(
    sessions: sessionmaker[Session],
) -> None:
    outbox = SqlOutbox(sessions)
    keys = set()
    for number in range(30):
        delivery = an_alert(f"r{number}")
        outbox.add(delivery, NOW)
        keys.add(delivery.idempotency_key)
    workers = 4
    start = threading.Barrier(workers)

    def claim() -> list[str]:
        start.wait()
        claimed = outbox.claim_waiting("alert", STORE, later(1), later(31), 1, SUMMARY_MAX_LINES)
        return [entry.idempotency_key for entry in claimed]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(claim) for _ in range(workers)]]
    claimed = [key for result in results for key in result]
    assert len(claimed) == len(set(claimed)), "a waiting alert was claimed by two workers"
    assert set(claimed) <= keys and len(claimed) >= SUMMARY_MAX_LINES


# --- one transaction per step of the hot path ---------------------------------------------


def pacing(at: datetime, burst_minimum: int = 13) -> Pacing:
    return Pacing(turn_until=at + timedelta(seconds=1), burst_minimum=burst_minimum, burst_limit=19)


def an_owner_email(customer_id: str) -> Delivery:
    return Delivery(
        kind=DeliveryKind.OWNER_EMAIL,
        channel=Channel.EMAIL,
        recipient="owner@example.com",
        subject_id="r-email",
        payload={"to_email": "owner@example.com", "subject": "A detractor"},
        customer_id=customer_id,
    )


def test_an_outbox_writes_a_due_alert_and_claims_it_with_its_channels_turn_at_once(
    shared_outbox: Outbox,
) -> None:
    delivery = an_alert("r1")

    intake = shared_outbox.enqueue(delivery, NOW, later(30), pacing(NOW))

    assert intake.outcome == Enqueued.ADDED and intake.claim is not None
    assert intake.claim.paced and intake.claim.waiting == ()
    assert intake.claim.entry.idempotency_key == delivery.idempotency_key
    assert intake.claim.entry.attempts == 1 and not intake.claim.entry.outcome_unknown
    assert shared_outbox.take_turn(STORE, later(0.5), later(1.5)) == later(1)
    assert shared_outbox.claim(delivery.idempotency_key, later(29), later(59)) is None


def test_an_alert_written_while_its_channel_is_busy_waits_for_the_turn_without_an_attempt(
    shared_outbox: Outbox,
) -> None:
    assert shared_outbox.take_turn(STORE, NOW, later(5)) is None
    delivery = an_alert("r1")

    intake = shared_outbox.enqueue(delivery, later(1), later(31), pacing(later(1)))

    assert intake == Intake(Enqueued.ADDED, Busy(later(5)))
    assert shared_outbox.due(later(4), 10) == []
    assert shared_outbox.due(later(5), 10) == [delivery.idempotency_key]
    claim = shared_outbox.claim_paced(
        delivery.idempotency_key, later(5), later(35), pacing(later(5))
    )
    assert claim is not None and claim.paced and claim.entry.attempts == 1


def test_an_alert_written_takes_the_waiting_alerts_of_its_channel_along_from_the_minimum_on(
    shared_outbox: Outbox,
) -> None:
    waiting = []
    for number in range(3):
        delivery = an_alert(f"r{number}")
        shared_outbox.add(delivery, NOW)
        waiting.append(delivery.idempotency_key)
    shared_outbox.add(an_alert("elsewhere", "#store-odense"), NOW)

    alone = shared_outbox.enqueue(an_alert("r3"), NOW, later(30), pacing(NOW, burst_minimum=4))
    assert alone.claim is not None and alone.claim.waiting == ()

    along = shared_outbox.enqueue(
        an_alert("r4"), later(1), later(31), pacing(later(1), burst_minimum=3)
    )
    assert along.claim is not None
    assert [entry.idempotency_key for entry in along.claim.waiting] == waiting
    assert all(entry.attempts == 1 for entry in along.claim.waiting)
    assert all(shared_outbox.claim(key, later(2), later(32)) is None for key in waiting)


def test_an_outbox_writes_nothing_for_an_earlier_alert_a_duplicate_or_a_suppressed_customer(
    shared_outbox: Outbox,
) -> None:
    first = an_alert("r1")
    assert shared_outbox.enqueue(first, NOW, later(30), pacing(NOW), True).outcome == (
        Enqueued.ADDED
    )
    to_another_channel = an_alert("r1", "#store-odense")
    earlier = shared_outbox.enqueue(to_another_channel, later(1), later(31), pacing(later(1)), True)
    assert earlier == Intake(Enqueued.EARLIER)
    assert shared_outbox.keys_about("alert", "r1") == [first.idempotency_key]
    assert shared_outbox.enqueue(first, later(1), later(31), pacing(later(1))) == Intake(
        Enqueued.DUPLICATE
    )

    shared_outbox.suppress("c-quiet", "unsubscribed", NOW, erase=False)
    suppressed = shared_outbox.enqueue(an_owner_email("c-quiet"), NOW, later(30), pacing(NOW))
    assert suppressed == Intake(Enqueued.SUPPRESSED)
    assert shared_outbox.keys_about("owner_email", "r-email") == []


def test_an_email_is_claimed_without_a_turn_and_a_later_one_is_only_written(
    shared_outbox: Outbox,
) -> None:
    email = shared_outbox.enqueue(an_owner_email("c-1"), NOW, later(30), pacing(NOW))
    assert email.claim is not None and not email.claim.paced
    scheduled = dataclasses.replace(an_alert("r1"), send_at=later(60))
    assert shared_outbox.enqueue(scheduled, NOW, later(30), pacing(NOW)) == Intake(Enqueued.ADDED)
    assert scheduled.idempotency_key not in shared_outbox.due(later(59), 10)
    assert scheduled.idempotency_key in shared_outbox.due(later(60), 10)
    assert shared_outbox.take_turn(STORE, NOW, later(1)) is None


def test_an_alert_whose_last_attempt_may_have_landed_is_claimed_unpaced_and_paced_after(
    shared_outbox: Outbox,
) -> None:
    delivery = an_alert("r1")
    shared_outbox.add(delivery, NOW)
    shared_outbox.claim(delivery.idempotency_key, NOW, later(30))
    # The worker died mid-call: the row still says the attempt is in flight.

    claim = shared_outbox.claim_paced(delivery.idempotency_key, later(30), later(60), pacing(NOW))

    assert claim is not None and claim.entry.outcome_unknown and not claim.paced
    assert shared_outbox.take_turn("#kudos", later(30), later(31)) is None
    assert shared_outbox.pace(claim.entry, later(31), later(61), pacing(later(31))) == ()
    assert shared_outbox.take_turn(STORE, later(31.5), later(32.5)) == later(32)


def test_an_alert_paced_while_its_channel_is_busy_is_released_until_the_turn_ends(
    shared_outbox: Outbox,
) -> None:
    delivery = an_alert("r1")
    shared_outbox.add(delivery, NOW)
    entry = shared_outbox.claim(delivery.idempotency_key, NOW, later(30))
    assert entry is not None
    assert shared_outbox.take_turn(STORE, NOW, later(3)) is None

    assert shared_outbox.pace(entry, later(1), later(31), pacing(later(1))) == Busy(later(3))

    assert shared_outbox.due(later(3), 10) == [delivery.idempotency_key]
    again = shared_outbox.claim(delivery.idempotency_key, later(3), later(33))
    assert again is not None and again.attempts == 1


def test_workers_writing_alerts_for_one_channel_at_once_claim_each_alert_once(
    sessions: sessionmaker[Session],
) -> None:
    outbox = SqlOutbox(sessions)
    workers, each = 4, 10
    start = threading.Barrier(workers)

    def write(worker: int) -> list[str]:
        start.wait()
        claimed = []
        for number in range(each):
            at = later(number)
            intake = outbox.enqueue(
                an_alert(f"w{worker}-{number}"), at, at + timedelta(seconds=30), pacing(at, 1)
            )
            if isinstance(intake.claim, Claim):
                claimed.append(intake.claim.entry.idempotency_key)
                claimed.extend(entry.idempotency_key for entry in intake.claim.waiting)
        return claimed

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(write, w) for w in range(workers)]]
    claimed = [key for result in results for key in result]
    assert len(claimed) == len(set(claimed)), "an alert was claimed by two workers"
    # Before any lease ends: the alerts that wait for a turn of their own.
    unclaimed = set(outbox.due(later(20), 100))
    assert set(claimed).isdisjoint(unclaimed)
    assert len(claimed) + len(unclaimed) == workers * each


class TickingClock(FakeClock):
    """Each reading a millisecond after the one before, as a real clock moves on."""

    def __call__(self) -> datetime:
        now = self.now
        self.advance(0.001)
        return now


def test_an_alert_that_meets_a_turn_ended_meanwhile_is_posted_at_once_not_a_tick_later() -> None:
    clock = TickingClock()
    burst = Burst(FakeOutbox(), clock, bursts=BurstPolicy(0, 1_000_000))
    # Without an interval a turn lasts no time, yet another lane's post took the channel
    # at a moment this lane's clock reaches only while it takes its own turn.
    taken_at = clock.now + timedelta(seconds=0.0015)
    assert burst.outbox.take_turn(STORE, taken_at, taken_at) is None

    run(burst.dispatcher.handle(a_classified_response(2, response_id="aarhus-01")))

    [posted] = burst.slack.sent
    assert mentions(posted, ["aarhus-01"]) == ["aarhus-01"]
    assert burst.count("sent") == 1


def test_an_alert_that_meets_a_turn_still_running_waits_for_the_timer() -> None:
    clock = TickingClock()
    burst = Burst(FakeOutbox(), clock, bursts=BurstPolicy(0, 1_000_000))
    taken_at = clock.now + timedelta(seconds=0.5)
    assert burst.outbox.take_turn(STORE, taken_at, taken_at) is None

    run(burst.dispatcher.handle(a_classified_response(2, response_id="aarhus-01")))

    assert burst.slack.sent == []
    clock.advance(1)
    assert run(burst.dispatcher.retry_due()) == 1
    assert burst.count("sent") == 1
