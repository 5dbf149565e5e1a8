"""An attempt whose outcome is unknown (no answer in time, or the worker died mid-call) is
looked for at the provider before it is tried again: Slack gets each alert once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import (
    IN_FLIGHT,
    NO_ANSWER,
    STILL_UNKNOWN,
    Busy,
    Claim,
    DeliveryFailed,
    OutboxEntry,
    Pacing,
    Sender,
    SlackSender,
    SqlOutbox,
    message_metadata,
)
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, LoopConfig
from tests.fakes import SLACK_TEST_TOKEN, FakeSlack, Hang, ServerError, fake_slack
from tests.unit.builders import FakeClock, a_classified_response, run
from tests.unit.test_bursts import STORE, an_alert
from tests.unit.test_notifier import FakeOutbox, FakeRow, FakeSender

CONFIG = LoopConfig(slack_channel="#customer-feedback", company_name="Our Shop")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = fake_slack()
    yield server
    server.stop()


def an_entry(attempts: int, previous_error: str | None) -> OutboxEntry:
    return OutboxEntry(
        idempotency_key="alert:resp-1:slack:#customer-feedback",
        channel=Channel.SLACK,
        kind="alert",
        recipient="#customer-feedback",
        payload={"channel": "#customer-feedback", "text": "Detractor 2/10"},
        attempts=attempts,
        created_at=datetime.now(UTC),
        previous_error=previous_error,
    )


@pytest.mark.parametrize(
    ("attempts", "previous_error", "unknown"),
    [
        (1, None, False),
        (2, "Slack answered 500: internal_error", False),
        (2, IN_FLIGHT, True),
        (3, f"{NO_ANSWER}: Slack: ServerDisconnectedError", True),
        (2, NO_ANSWER, True),
    ],
)
def test_only_an_attempt_that_may_have_delivered_makes_the_outcome_unknown(
    attempts: int, previous_error: str | None, unknown: bool
) -> None:
    assert an_entry(attempts, previous_error).outcome_unknown is unknown


def test_slack_finds_a_message_an_earlier_attempt_posted_by_its_key(slack: FakeSlack) -> None:
    sender = SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 5)
    entry = an_entry(1, None)
    posted = run(sender.send(entry))

    found = run(sender.find(an_entry(2, IN_FLIGHT)))

    assert found == posted
    other = OutboxEntry(**{**an_entry(2, IN_FLIGHT).__dict__, "idempotency_key": "alert:other"})
    assert run(sender.find(other)) is None


def slack_dispatcher(
    slack: FakeSlack, registry: CollectorRegistry | None = None, retry_max_seconds: float = 300
) -> tuple[Dispatcher, FakeOutbox, FakeClock]:
    """A dispatcher posting to the fake Slack with the real client, timing out after 1 s."""
    outbox = FakeOutbox()
    clock = FakeClock(datetime.now(UTC))
    senders: dict[Channel, Sender] = {
        Channel.SLACK: SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 1),
        Channel.EMAIL: FakeSender(),
    }
    dispatcher = Dispatcher(
        outbox,
        senders,
        CONFIG,
        DeliveryMetrics.create(registry or CollectorRegistry()),
        clock=clock,
        attempt_timeout_seconds=1,
        retry_max_seconds=retry_max_seconds,
    )
    return dispatcher, outbox, clock


def test_a_post_that_timed_out_but_landed_is_not_posted_again(slack: FakeSlack) -> None:
    """The fake answers after the client gave up, and keeps the message, as Slack may."""
    slack.fail_next(1, Hang(3.0), path="chat.postMessage")
    registry = CollectorRegistry()
    dispatcher, outbox, clock = slack_dispatcher(slack, registry)

    run(dispatcher.handle(a_classified_response(2)))
    [row] = outbox.rows.values()
    assert row.status == "pending" and (row.last_error or "").startswith(NO_ANSWER)
    slack.wait_for(1, "/api/chat.postMessage")
    # Let the hanging answer finish and the message land.
    time.sleep(3.2)
    clock.advance(timedelta(minutes=10).total_seconds())
    run(dispatcher.retry_due())

    assert row.status == "sent"
    assert len(slack.received("/api/chat.postMessage")) == 1
    assert len(slack.messages) == 1
    labels = {"channel": "slack", "kind": "alert", "outcome": "found"}
    assert registry.get_sample_value("npsloop_deliveries_total", labels) == 1


def test_a_post_without_an_answer_is_looked_for_only_once_it_had_the_time_to_land(
    slack: FakeSlack,
) -> None:
    """Looking sooner, while the slow request is still on its way, finds nothing and
    posts the alert a second time."""
    slack.fail_next(1, Hang(1.5), path="chat.postMessage")
    dispatcher, outbox, clock = slack_dispatcher(slack, retry_max_seconds=1)

    run(dispatcher.handle(a_classified_response(2)))
    [row] = outbox.rows.values()
    assert (row.last_error or "").startswith(NO_ANSWER)
    clock.advance(2.9)  # past any backoff, short of the attempt's lease (3 timeouts)
    assert run(dispatcher.retry_due()) == 0
    time.sleep(1.0)  # the hanging request lands meanwhile
    clock.advance(0.2)
    assert run(dispatcher.retry_due()) == 1

    assert row.status == "sent"
    assert len(slack.messages) == 1


def test_when_looking_for_an_earlier_attempt_fails_the_next_attempt_looks_again(
    slack: FakeSlack,
) -> None:
    """Slack answers the post too late, then 500 to the first look: the look is tried
    again, finds the message, and nothing is posted twice."""
    slack.fail_next(1, Hang(1.5), path="chat.postMessage")
    slack.fail_next(1, ServerError(), path="conversations.list")
    dispatcher, outbox, clock = slack_dispatcher(slack, retry_max_seconds=1)

    run(dispatcher.handle(a_classified_response(2)))
    [row] = outbox.rows.values()
    time.sleep(1.0)  # the hanging request lands
    for _ in range(2):
        clock.advance(60)
        run(dispatcher.retry_due())

    assert row.status == "sent"
    assert len(slack.received("/api/conversations.list")) == 2
    assert len(slack.received("/api/chat.postMessage")) == 1
    assert len(slack.messages) == 1


def test_a_worker_that_died_mid_call_leaves_the_next_attempt_to_look_first() -> None:
    """In flight when the worker died: the provider had it, so it is recorded, not resent."""

    class Remembering(FakeSender):
        async def find(self, entry: OutboxEntry) -> str | None:
            return "C0ALERTS:1.000001" if entry.outcome_unknown else None

    outbox = FakeOutbox()
    clock = FakeClock()
    slack = Remembering()
    dispatcher = Dispatcher(
        outbox,
        {Channel.SLACK: slack, Channel.EMAIL: FakeSender()},
        CONFIG,
        DeliveryMetrics.create(CollectorRegistry()),
        clock=clock,
    )
    classified = a_classified_response(2)
    # A first worker claimed the alert and died before it could record anything.
    slack.failures.append(DeliveryFailed("never reached", permanent=False))
    run(dispatcher.handle(classified))
    [key] = outbox.rows
    outbox.rows[key].last_error = IN_FLIGHT
    clock.advance(3600)

    run(dispatcher.retry_due())

    assert outbox.rows[key].status == "sent"
    assert outbox.rows[key].provider_ref == "C0ALERTS:1.000001"
    assert len(slack.sent) == 0


def test_an_alert_carried_by_a_summary_is_found_as_a_line_of_that_summary(
    slack: FakeSlack,
) -> None:
    sender = SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 5)
    alert = an_entry(2, IN_FLIGHT)
    summary = OutboxEntry(
        **{
            **an_entry(1, None).__dict__,
            "idempotency_key": f"summary:{alert.idempotency_key}",
            "payload": {
                "channel": "#customer-feedback",
                "text": "14 new detractors",
                "metadata": message_metadata("summary:x", [alert.idempotency_key, "alert:b"]),
            },
        }
    )
    channel_ts = run(sender.send(summary))

    assert run(sender.find(alert)) == f"summary:{channel_ts}"


def test_an_alert_whose_last_attempt_may_have_landed_is_not_taken_into_a_summary(
    sessions: sessionmaker[Session],
) -> None:
    outbox = SqlOutbox(sessions)
    now = datetime.now(UTC)
    alerts = [an_alert(f"resp-{n}") for n in range(6)]
    for alert in alerts:
        outbox.add(alert, now)
    uncertain = alerts[2].idempotency_key
    outbox.mark_retry(uncertain, f"{NO_ANSWER}: Slack: TimeoutError", now)

    claimed = outbox.claim_waiting("alert", STORE, now, now + timedelta(seconds=30), 2, 25)

    assert uncertain not in {entry.idempotency_key for entry in claimed}
    assert len(claimed) == 5


class LookingFails:
    """A post that times out (it may have landed), then looks that fail ``failures`` times
    before Slack answers that the message is not there."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.looks = 0
        self.posts: list[OutboxEntry] = []
        # How the posts after the first are answered, in turn (then: posted).
        self.answers: list[DeliveryFailed] = []

    async def send(self, entry: OutboxEntry) -> str:
        self.posts.append(entry)
        if len(self.posts) == 1:
            raise DeliveryFailed(NO_ANSWER, maybe_delivered=True)
        if self.answers:
            raise self.answers.pop(0)
        return "C0ALERTS:1700000000.000001"

    async def find(self, entry: OutboxEntry) -> str | None:
        self.looks += 1
        if self.looks <= self.failures:
            raise DeliveryFailed("Slack answered 500 while looking for an earlier attempt")
        return None


def settle_with_three_attempts(slack: LookingFails) -> tuple[FakeRow, list[str]]:
    """An alert through a dispatcher allowing 3 attempts, retried for half an hour: its
    outbox row, and the reasons of any dead letter."""
    dead: list[str] = []

    async def record(entry: OutboxEntry, reason: str) -> None:
        dead.append(reason)

    outbox = FakeOutbox()
    clock = FakeClock(datetime.now(UTC))
    dispatcher = Dispatcher(
        outbox,
        {Channel.SLACK: slack, Channel.EMAIL: FakeSender()},
        CONFIG,
        DeliveryMetrics.create(CollectorRegistry()),
        clock=clock,
        max_attempts=3,
        retry_max_seconds=5,
        on_dead=record,
    )
    run(dispatcher.handle(a_classified_response(2)))
    for _ in range(60):
        clock.advance(30)
        run(dispatcher.retry_due())
    [row] = outbox.rows.values()
    return row, dead


def test_a_delivery_whose_look_keeps_failing_is_not_given_up_on() -> None:
    """Out of attempts only by failed looks, it is neither dead nor sent blind: it keeps
    looking until Slack answers, then posts once."""
    slack = LookingFails(failures=5)
    row, dead = settle_with_three_attempts(slack)

    assert dead == [] and row.status == "sent"
    assert slack.looks == 6 and len(slack.posts) == 2


def test_failed_looks_do_not_use_up_a_deliverys_attempts() -> None:
    """Five failed looks, then a post Slack answers 500: with 3 attempts allowed, the alert
    is tried again and posted, as only two attempts posted (counted, the looks made it dead:
    at 20,000 responses in the chaos test, 4 alerts were, after 12 to 16 attempts)."""
    slack = LookingFails(failures=5)
    slack.answers.append(DeliveryFailed("Slack answered 500: internal_error"))
    row, dead = settle_with_three_attempts(slack)

    assert dead == [] and row.status == "sent"
    assert slack.looks == 6 and len(slack.posts) == 3
    assert row.attempts == 3


def test_a_look_reads_around_the_attempt_that_may_have_posted(slack: FakeSlack) -> None:
    """The alert's attempt posted an hour ago and 1,500 messages followed: more than the
    pages a look reads, newest first, from when the alert was recorded. Read around when
    that attempt began, the history holds the alert's message, and it is found."""
    sender = SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 1)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    slack.clock = lambda: an_hour_ago.timestamp() + 0.5
    posted = run(sender.send(an_entry(1, None)))
    slack.clock = time.time
    channel = slack.channel_id("customer-feedback")
    for number in range(1500):
        key = f"alert:other-{number}:slack:#customer-feedback"
        slack.add_message(channel, "Detractor 3/10", message_metadata(key))
    recorded = OutboxEntry(**{**an_entry(2, IN_FLIGHT).__dict__, "created_at": an_hour_ago})

    assert run(sender.find(dataclasses.replace(recorded, attempted_at=an_hour_ago))) == posted
    assert len(slack.received("/api/conversations.history")) == 1
    # Without the attempt's time (a delivery recorded before it was kept), the look reads
    # from when the delivery was recorded and gives up after its pages.
    assert run(sender.find(recorded)) is None


START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=3)


def claimed(outbox: SqlOutbox, key: str, at: datetime) -> OutboxEntry:
    entry = outbox.claim(key, at, at + LEASE)
    assert entry is not None
    return entry


def an_alert_that_hung(outbox: SqlOutbox) -> tuple[str, OutboxEntry]:
    """An alert whose first attempt, claimed at START, got no answer: its key and that
    first claim."""
    alert = an_alert("resp-1")
    outbox.add(alert, START)
    first = claimed(outbox, alert.idempotency_key, START)
    outbox.mark_retry(alert.idempotency_key, f"{NO_ANSWER}: Slack: TimeoutError", START)
    return alert.idempotency_key, first


def test_a_claim_keeps_the_time_of_the_attempt_that_may_have_posted(
    sessions: sessionmaker[Session],
) -> None:
    """Until a look settles it, every claim keeps when that attempt began; the attempt that
    sends after the look found nothing takes its own time."""
    outbox = SqlOutbox(sessions)
    key, first = an_alert_that_hung(outbox)
    assert first.attempted_at == START
    later = START + timedelta(minutes=1)
    looking = claimed(outbox, key, later)
    assert looking.outcome_unknown and looking.attempted_at == START
    outbox.mark_retry(key, f"{STILL_UNKNOWN}: Slack answered 500", later, counted=False)
    again = claimed(outbox, key, later + timedelta(minutes=1))
    assert again.outcome_unknown and again.attempted_at == START
    assert again.attempts == 2

    sending = later + timedelta(minutes=2)
    pacing = Pacing(sending + timedelta(seconds=1), burst_minimum=4, burst_limit=24)
    assert outbox.pace(again, sending, sending + LEASE, pacing) == ()
    outbox.mark_retry(key, f"{NO_ANSWER}: Slack: TimeoutError", sending)
    assert claimed(outbox, key, sending + timedelta(minutes=1)).attempted_at == sending

    outbox.mark_retry(key, "Slack answered 500: internal_error", sending)
    retried = sending + timedelta(minutes=5)
    assert claimed(outbox, key, retried).attempted_at == retried


def test_an_alert_looked_for_and_not_found_waits_for_its_turn_without_looking_again(
    sessions: sessionmaker[Session],
) -> None:
    """Its channel busy after the look, it is released known: the next claim paces it (it
    may carry others in a summary) instead of looking again, each look another call that
    may fail."""
    outbox = SqlOutbox(sessions)
    key, _ = an_alert_that_hung(outbox)
    later = START + timedelta(minutes=1)
    looking = claimed(outbox, key, later)
    assert looking.outcome_unknown
    # Another alert holds the channel's turn when the look has found nothing.
    turn_ends = later + timedelta(seconds=1)
    assert outbox.take_turn(STORE, later, turn_ends) is None

    pacing = Pacing(later + timedelta(seconds=1), burst_minimum=4, burst_limit=24)
    assert outbox.pace(looking, later, later + LEASE, pacing) == Busy(turn_ends)

    again = outbox.claim_paced(key, turn_ends, turn_ends + LEASE, pacing)
    assert isinstance(again, Claim)
    assert not again.entry.outcome_unknown and again.paced
    assert again.entry.attempts == 2
