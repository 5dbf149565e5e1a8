"""The notifier: which deliveries a response calls for, what they say, and sending each once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import (
    IN_FLIGHT,
    NOT_FOUND,
    PENDING,
    Busy,
    Claim,
    ClaimAsk,
    DeliveryFailed,
    Enqueued,
    Intake,
    Outbox,
    OutboxEntry,
    Pacing,
    Sender,
    Sent,
    SqlOutbox,
    may_have_delivered,
)
from services.notifier.bursts import BurstPolicy, can_join_a_summary
from services.notifier.customer_emails import review_request_email
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, Delivery, DeliveryKind, LoopConfig, plan
from services.notifier.reviews import ReviewLinks
from shared.events import ClassifiedResponse, Contact, Segment
from tests.unit.builders import FakeClock, a_classified_response, run

REVIEW_LINKS = {
    "google": "https://g.page/r/our-shop/review",
    "facebook": "https://facebook.com/our-shop/reviews",
}


def unsubscribe_link(customer_id: str, locale: str | None, sent_at: datetime) -> str:
    return f"https://survey.example.com/u/{customer_id}"


CONFIG = LoopConfig(
    slack_channel="#nps-alerts",
    company_name="Our Shop",
    review_links=ReviewLinks(REVIEW_LINKS),
    unsubscribe_link=unsubscribe_link,
)


# --- plan() -------------------------------------------------------------------------------


def test_a_detractor_alerts_the_configured_slack_channel_with_the_comment() -> None:
    classified = a_classified_response(2, comment="Nobody answered the phone")
    [delivery] = plan(classified, CONFIG)
    assert delivery.kind is DeliveryKind.ALERT
    assert delivery.channel is Channel.SLACK
    assert delivery.recipient == "#nps-alerts"
    assert delivery.payload["channel"] == "#nps-alerts"
    assert "Nobody answered the phone" in json.dumps(delivery.payload)
    assert delivery.subject_id == classified.response.response_id


def test_a_passive_alerts_slack_too() -> None:
    deliveries = plan(a_classified_response(7), CONFIG)
    assert [(d.kind, d.channel, d.recipient) for d in deliveries] == [
        (DeliveryKind.ALERT, Channel.SLACK, "#nps-alerts")
    ]
    assert "Passive" in deliveries[0].payload["text"]


def test_a_promoter_with_an_email_is_asked_for_a_review_with_every_link() -> None:
    classified = a_classified_response(10, email="ana@example.com", name="Ana")
    [delivery] = [d for d in plan(classified, CONFIG) if d.kind is DeliveryKind.REVIEW_REQUEST]
    assert delivery.channel is Channel.EMAIL
    assert delivery.recipient == "ana@example.com"
    assert delivery.payload["to_email"] == "ana@example.com"
    for link in REVIEW_LINKS.values():
        assert link in delivery.payload["text"]
        assert f'href="{link}"' in delivery.payload["html"]


def emails(deliveries: list[Delivery]) -> list[Delivery]:
    return [delivery for delivery in deliveries if delivery.channel is Channel.EMAIL]


def test_a_promoter_without_an_email_gets_no_email() -> None:
    assert emails(plan(a_classified_response(9, email=None), CONFIG)) == []


def test_a_promoter_gets_no_email_when_no_review_links_are_configured() -> None:
    config = LoopConfig(
        slack_channel="#nps-alerts", company_name="Our Shop", unsubscribe_link=unsubscribe_link
    )
    assert emails(plan(a_classified_response(9, email="ana@example.com"), config)) == []


def test_a_promoters_praise_is_shared_with_staff_in_slack_too() -> None:
    [kudos] = [
        d
        for d in plan(a_classified_response(10, comment="Fantastisk"), CONFIG)
        if d.kind is DeliveryKind.KUDOS
    ]
    assert kudos.channel is Channel.SLACK and "Fantastisk" in json.dumps(kudos.payload)


def test_an_update_of_the_same_response_has_the_same_idempotency_key() -> None:
    first = a_classified_response(3, response_id="inv-7", comment=None)
    update = a_classified_response(3, response_id="inv-7", comment="Still waiting for a refund")
    assert first.event_id != update.event_id
    [original] = plan(first, CONFIG)
    [again] = plan(update, CONFIG)
    assert again.idempotency_key == original.idempotency_key


def test_different_responses_have_different_idempotency_keys() -> None:
    [one] = plan(a_classified_response(3, response_id="inv-1"), CONFIG)
    [other] = plan(a_classified_response(3, response_id="inv-2"), CONFIG)
    assert one.idempotency_key != other.idempotency_key


def test_a_detractor_with_a_long_comment_still_alerts() -> None:
    deliveries = plan(a_classified_response(1, comment="Where do I start. " * 300), CONFIG)
    assert len(deliveries) == 1
    assert deliveries[0].channel is Channel.SLACK


# --- messages -----------------------------------------------------------------------------


def test_html_in_a_name_is_escaped_in_the_email() -> None:
    name = "<script>alert(1)</script>"
    body = review_request_email(
        None, "Smith & Sons", name, 10, REVIEW_LINKS, "https://x.example/u"
    ).html
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "Smith &amp; Sons" in body


def test_a_review_link_cannot_break_out_of_its_href() -> None:
    links = {"google": 'https://g.page/r/x" onclick="steal()'}
    body = review_request_email(None, "Shop", None, 9, links, "https://x.example/u").html
    assert 'onclick="steal()' not in body
    assert "&quot; onclick=&quot;steal()" in body


# --- fakes for the dispatcher -------------------------------------------------------------


@dataclass
class FakeRow:
    delivery: Delivery
    status: str
    attempts: int
    next_attempt_at: datetime
    provider_ref: str | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    attempted_at: datetime | None = None


class FakeOutbox:
    """The Outbox protocol in memory, with SqlOutbox's semantics."""

    def __init__(self) -> None:
        self.rows: dict[str, FakeRow] = {}
        self.suppressed: dict[str, str] = {}
        self.turns: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def add(self, delivery: Delivery, now: datetime, held_until: datetime | None = None) -> bool:
        with self._lock:
            if delivery.idempotency_key in self.rows:
                return False
            due = held_until or delivery.send_at or now
            self.rows[delivery.idempotency_key] = FakeRow(delivery, PENDING, 0, due, created_at=now)
            return True

    def cancel(self, key: str, reason: str) -> bool:
        row = self.rows.get(key)
        if row is None or row.status != PENDING:
            return False
        row.status = "cancelled"
        row.last_error = reason
        return True

    def keys_about(self, kind: str, subject_id: str) -> list[str]:
        return [
            key
            for key, row in self.rows.items()
            if row.delivery.kind.value == kind and row.delivery.subject_id == subject_id
        ]

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for row in self.rows.values():
            counted[row.status] = counted.get(row.status, 0) + 1
        return counted

    def payload_of(self, key: str) -> tuple[str, dict[str, Any]] | None:
        row = self.rows.get(key)
        return None if row is None else (row.status, dict(row.delivery.payload))

    def replace_payload(self, key: str, payload: dict[str, Any]) -> bool:
        row = self.rows.get(key)
        if row is None or row.status != PENDING:
            return False
        row.delivery = dataclasses.replace(row.delivery, payload=payload)
        return True

    def invitation_contact(self, invitation_id: str) -> Contact | None:
        for row in self.rows.values():
            delivery = row.delivery
            if delivery.kind is DeliveryKind.INVITATION and delivery.subject_id == invitation_id:
                return Contact(email=delivery.recipient, name=delivery.payload.get("to_name"))
        return None

    def suppress(self, customer_id: str, reason: str, now: datetime, erase: bool) -> int:
        self.suppressed.setdefault(customer_id, reason)
        keys = [
            key
            for key, row in self.rows.items()
            if row.delivery.customer_id == customer_id
            and row.delivery.channel.value == "email"
            and row.status == PENDING
        ]
        return sum(self.cancel(key, reason) for key in keys)

    def erase_about(self, subject_id: str) -> None:
        for row in self.rows.values():
            if row.delivery.subject_id == subject_id and row.status != PENDING:
                row.delivery = dataclasses.replace(row.delivery, payload={"erased": True})

    def unsuppress(self, customer_id: str) -> None:
        self.suppressed.pop(customer_id, None)

    def is_suppressed(self, customer_id: str) -> bool:
        return customer_id in self.suppressed

    def claim(
        self, key: str, now: datetime, lease_until: datetime, first: bool = False
    ) -> OutboxEntry | None:
        with self._lock:
            row = self.rows.get(key)
            if row is None or row.status != PENDING:
                return None
            if (row.attempts != 0) if first else (row.next_attempt_at > now):
                return None
            row.next_attempt_at = lease_until
            row.attempts += 1
            previous_error, row.last_error = row.last_error, IN_FLIGHT
            if not (may_have_delivered(previous_error) and row.attempted_at is not None):
                row.attempted_at = now
            return self._entry(key, previous_error)

    def _entry(self, key: str, previous_error: str | None = None) -> OutboxEntry:
        row = self.rows[key]
        return OutboxEntry(
            idempotency_key=key,
            channel=row.delivery.channel,
            kind=row.delivery.kind.value,
            recipient=row.delivery.recipient,
            payload=dict(row.delivery.payload),
            attempts=row.attempts,
            origin_at=row.delivery.origin_at,
            subject_id=row.delivery.subject_id,
            created_at=row.created_at,
            previous_error=previous_error,
            attempted_at=row.attempted_at,
        )

    def claim_waiting(
        self,
        kind: str,
        recipient: str,
        now: datetime,
        lease_until: datetime,
        minimum: int,
        limit: int,
    ) -> list[OutboxEntry]:
        with self._lock:
            keys = [
                key
                for key, row in self.rows.items()
                if row.delivery.channel is Channel.SLACK
                and row.delivery.kind.value == kind
                and row.delivery.recipient == recipient
                and row.status == PENDING
                and row.next_attempt_at <= now
                and not may_have_delivered(row.last_error)
            ][:limit]
            if len(keys) < minimum:
                return []
            claimed = []
            for key in keys:
                row = self.rows[key]
                row.next_attempt_at = lease_until
                row.attempts += 1
                row.attempted_at = now
                previous_error, row.last_error = row.last_error, IN_FLIGHT
                claimed.append(self._entry(key, previous_error))
            return claimed

    def pace(
        self, entry: OutboxEntry, now: datetime, lease_until: datetime, pacing: Pacing
    ) -> tuple[OutboxEntry, ...] | Busy:
        busy_until = self.take_turn(entry.recipient, now, pacing.turn_until)
        if busy_until is not None:
            previous_error = NOT_FOUND if entry.outcome_unknown else entry.previous_error
            self.release(entry.idempotency_key, busy_until, previous_error)
            return Busy(busy_until)
        if entry.outcome_unknown:
            self.rows[entry.idempotency_key].attempted_at = now
        if entry.kind != DeliveryKind.ALERT.value or not can_join_a_summary(entry.payload):
            return ()
        return tuple(
            self.claim_waiting(
                DeliveryKind.ALERT.value,
                entry.recipient,
                now,
                lease_until,
                pacing.burst_minimum,
                pacing.burst_limit,
            )
        )

    def claim_paced(
        self, key: str, now: datetime, lease_until: datetime, pacing: Pacing, first: bool = False
    ) -> Claim | Busy | None:
        entry = self.claim(key, now, lease_until, first)
        if entry is None:
            return None
        if entry.channel != Channel.SLACK or entry.outcome_unknown:
            return Claim(entry)
        waiting = self.pace(entry, now, lease_until, pacing)
        return waiting if isinstance(waiting, Busy) else Claim(entry, paced=True, waiting=waiting)

    def claim_paced_many(self, asks: Sequence[ClaimAsk]) -> list[Claim | Busy | None]:
        return [
            self.claim_paced(ask.key, ask.now, ask.lease_until, ask.pacing, ask.first)
            for ask in asks
        ]

    def enqueue(
        self,
        delivery: Delivery,
        now: datetime,
        lease_until: datetime,
        pacing: Pacing,
        first_of_kind: bool = False,
        claim: bool = True,
    ) -> Intake:
        if first_of_kind and self.keys_about(delivery.kind.value, delivery.subject_id):
            return Intake(Enqueued.EARLIER)
        if (
            delivery.channel == Channel.EMAIL
            and delivery.customer_id is not None
            and self.is_suppressed(delivery.customer_id)
        ):
            return Intake(Enqueued.SUPPRESSED)
        due = delivery.send_at is None or delivery.send_at <= now
        if not self.add(delivery, now, lease_until if due and not claim else None):
            return Intake(Enqueued.DUPLICATE)
        if not claim or not due:
            return Intake(Enqueued.ADDED)
        return Intake(
            Enqueued.ADDED,
            self.claim_paced(delivery.idempotency_key, now, lease_until, pacing, first=True),
        )

    def enqueue_many(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        lease_until: datetime,
        once_per_subject: Collection[DeliveryKind] = (),
    ) -> list[Enqueued]:
        pacing = Pacing(turn_until=now, burst_minimum=0, burst_limit=0)  # unused: no claim
        return [
            self.enqueue(d, now, lease_until, pacing, d.kind in once_per_subject, False).outcome
            for d in deliveries
        ]

    def release(self, key: str, next_attempt_at: datetime, previous_error: str | None) -> None:
        with self._lock:
            row = self.rows[key]
            if row.status == PENDING:
                row.next_attempt_at = next_attempt_at
                row.attempts -= 1
                row.last_error = previous_error

    def take_turn(self, recipient: str, now: datetime, until: datetime) -> datetime | None:
        with self._lock:
            busy_until = self.turns.get(recipient)
            if busy_until is not None and busy_until > now:
                return busy_until
            self.turns[recipient] = until
            return None

    def hold_turn(self, recipient: str, until: datetime) -> None:
        with self._lock:
            self.turns[recipient] = max(self.turns.get(recipient, until), until)

    def mark_all_sent(self, keys: Sequence[str], provider_ref: str, now: datetime) -> None:
        for key in keys:
            self.mark_sent(key, provider_ref, now)

    def mark_sent_many(self, sent: Sequence[Sent]) -> list[dict[str, Any] | None]:
        return [self.mark_sent(s.key, s.provider_ref, s.at) for s in sent]

    def mark_sent(self, key: str, provider_ref: str, now: datetime) -> dict[str, Any] | None:
        row = self.rows.get(key)
        if row is None:
            return None
        row.status = "sent"
        row.provider_ref = provider_ref
        row.last_error = None
        return dict(row.delivery.payload)

    def mark_retry(
        self, key: str, error: str, next_attempt_at: datetime, counted: bool = True
    ) -> None:
        self.rows[key].next_attempt_at = next_attempt_at
        self.rows[key].last_error = error
        if not counted:
            self.rows[key].attempts -= 1

    def mark_failed(self, key: str, error: str) -> None:
        self.rows[key].status = "failed"
        self.rows[key].last_error = error

    def due(self, now: datetime, limit: int) -> list[str]:
        pending = [
            (row.next_attempt_at, key)
            for key, row in self.rows.items()
            if row.status == PENDING and row.next_attempt_at <= now
        ]
        return [key for _, key in sorted(pending)[:limit]]


class FakeSender:
    """Records every entry it is handed; raises the given failures first, one per attempt."""

    def __init__(self, *failures: DeliveryFailed, delay_seconds: float = 0.0) -> None:
        self.failures = list(failures)
        self.delay_seconds = delay_seconds
        self.attempted: list[OutboxEntry] = []
        self.sent: list[OutboxEntry] = []

    async def send(self, entry: OutboxEntry) -> str:
        self.attempted.append(entry)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(entry)
        return f"fake-ref-{len(self.sent)}"

    async def find(self, entry: OutboxEntry) -> str | None:
        return None


class Loop:
    """A dispatcher wired to fakes, with its registry, clock and senders at hand."""

    def __init__(
        self,
        slack: FakeSender | None = None,
        email: FakeSender | None = None,
        **options: Any,
    ) -> None:
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.outbox = FakeOutbox()
        self.slack = slack or FakeSender()
        self.email = email or FakeSender()
        senders: dict[Channel, Sender] = {Channel.SLACK: self.slack, Channel.EMAIL: self.email}
        self.dispatcher = Dispatcher(
            self.outbox,
            senders,
            CONFIG,
            DeliveryMetrics.create(self.registry),
            clock=self.clock,
            **options,
        )

    def handle(self, classified: ClassifiedResponse) -> None:
        run(self.dispatcher.handle(classified))

    def retry_due(self) -> int:
        return run(self.dispatcher.retry_due())

    def count(self, outcome: str, channel: str = "slack", kind: str = "alert") -> float | None:
        return self.registry.get_sample_value(
            "npsloop_deliveries_total", {"channel": channel, "kind": kind, "outcome": outcome}
        )


# --- Dispatcher ---------------------------------------------------------------------------


def test_a_detractor_is_sent_to_slack_once() -> None:
    loop = Loop()
    loop.handle(a_classified_response(1, comment="Broken on arrival"))
    assert len(loop.slack.sent) == 1
    assert loop.slack.sent[0].recipient == "#nps-alerts"
    assert "Broken on arrival" in json.dumps(loop.slack.sent[0].payload)
    assert loop.email.attempted == []
    assert loop.count("sent") == 1.0


def test_a_promoter_review_request_goes_to_the_email_sender() -> None:
    loop = Loop()
    loop.handle(a_classified_response(10, email="ana@example.com"))
    assert [entry.recipient for entry in loop.email.sent] == ["ana@example.com"]
    assert [entry.kind for entry in loop.slack.sent] == ["kudos"]
    assert loop.count("sent", channel="email", kind="review_request") == 1.0


def test_the_same_classified_response_twice_is_sent_once_and_counted_as_a_duplicate() -> None:
    loop = Loop()
    classified = a_classified_response(2)
    loop.handle(classified)
    loop.handle(classified)
    assert len(loop.slack.attempted) == 1
    assert loop.count("sent") == 1.0
    assert loop.count("duplicate") == 1.0


def test_an_update_of_an_alerted_response_does_not_alert_again() -> None:
    loop = Loop()
    loop.handle(a_classified_response(2, response_id="inv-3", comment=None))
    loop.handle(a_classified_response(2, response_id="inv-3", comment="Added later"))
    assert len(loop.slack.sent) == 1
    assert loop.count("duplicate") == 1.0


def test_a_transient_failure_waits_for_retry_after_then_is_sent_exactly_once() -> None:
    loop = Loop(slack=FakeSender(DeliveryFailed("Slack answered 429", retry_after=30)))
    loop.handle(a_classified_response(2))
    assert loop.slack.sent == []
    assert loop.count("retry") == 1.0

    loop.clock.advance(29.9)
    assert loop.retry_due() == 0
    assert len(loop.slack.attempted) == 1

    loop.clock.advance(0.1)
    assert loop.retry_due() == 1
    assert len(loop.slack.sent) == 1
    assert loop.slack.sent[0].attempts == 2

    loop.clock.advance(3600)
    assert loop.retry_due() == 0
    assert len(loop.slack.attempted) == 2
    assert loop.count("sent") == 1.0


def test_transient_failures_without_retry_after_back_off_exponentially_up_to_the_cap() -> None:
    failures = [DeliveryFailed("Slack answered 503") for _ in range(4)]
    loop = Loop(slack=FakeSender(*failures), retry_max_seconds=3.0)
    loop.handle(a_classified_response(2))
    waits = []
    while not loop.slack.sent:
        waited = 0.0
        while loop.retry_due() == 0:
            loop.clock.advance(0.5)
            waited += 0.5
            assert waited < 60, "the retry never came due"
        waits.append(waited)
    # Each wait is jittered between half the backoff and the backoff (1, 2, then the cap 3),
    # measured here in half-second steps.
    for waited, backoff in zip(waits, [1.0, 2.0, 3.0, 3.0], strict=True):
        assert backoff / 2 <= waited <= backoff + 0.5
    assert loop.count("retry") == 4.0
    assert loop.count("sent") == 1.0


def test_retries_of_a_burst_are_spread_by_jitter() -> None:
    # Without pacing each alert is tried at once and fails on its own: its retry is its own.
    loop = Loop(
        slack=FakeSender(*[DeliveryFailed("503") for _ in range(20)]),
        retry_max_seconds=60,
        bursts=BurstPolicy(interval_seconds=0),
    )
    for number in range(20):
        loop.handle(a_classified_response(2, response_id=f"burst-{number}"))
    due = sorted(row.next_attempt_at for row in loop.outbox.rows.values())
    assert len(set(due)) > 10, "twenty retries should not all come due at the same moment"


def test_a_delivery_out_of_attempts_is_dead_and_becomes_a_dead_letter_with_its_reason() -> None:
    dead: list[tuple[str, str]] = []

    async def record(entry: OutboxEntry, reason: str) -> None:
        dead.append((entry.idempotency_key, reason))

    loop = Loop(
        slack=FakeSender(*[DeliveryFailed("Slack answered 500") for _ in range(3)]),
        max_attempts=3,
        on_dead=record,
    )
    classified = a_classified_response(2)
    loop.handle(classified)
    for _ in range(200):
        loop.clock.advance(1)
        loop.retry_due()
    [delivery] = plan(classified, CONFIG)
    assert loop.outbox.rows[delivery.idempotency_key].status == "failed"
    assert dead == [(delivery.idempotency_key, "gave up after 3 attempts: Slack answered 500")]
    assert loop.count("failed") == 1.0 and loop.slack.sent == []


def test_a_permanent_failure_is_marked_failed_and_never_retried() -> None:
    loop = Loop(
        slack=FakeSender(DeliveryFailed("Slack answered 404: channel_not_found", permanent=True))
    )
    classified = a_classified_response(2)
    loop.handle(classified)
    [delivery] = plan(classified, CONFIG)
    assert loop.outbox.rows[delivery.idempotency_key].status == "failed"
    assert loop.count("failed") == 1.0

    loop.clock.advance(86_400)
    assert loop.retry_due() == 0
    loop.handle(classified)
    assert len(loop.slack.attempted) == 1
    assert loop.count("sent") == 0.0


def test_a_provider_that_does_not_answer_in_time_is_retried_later() -> None:
    loop = Loop(slack=FakeSender(delay_seconds=5.0), attempt_timeout_seconds=0.01)
    loop.handle(a_classified_response(2))
    assert loop.slack.sent == []
    assert loop.count("retry") == 1.0
    assert loop.retry_due() == 0
    loop.clock.advance(1)
    loop.slack.delay_seconds = 0.0
    assert loop.retry_due() == 1
    assert len(loop.slack.sent) == 1


# --- the outbox contract, for the fake and the real one alike -----------------------------


@pytest.fixture(params=["fake", "sql"])
def outbox(request: pytest.FixtureRequest) -> Iterator[Outbox]:
    if request.param == "fake":
        yield FakeOutbox()
    else:
        yield SqlOutbox(request.getfixturevalue("sessions"))


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def an_alert(response_id: str = "resp-1") -> Delivery:
    [delivery] = plan(a_classified_response(2, response_id=response_id), CONFIG)
    return delivery


def test_an_outbox_records_a_key_once(outbox: Outbox) -> None:
    delivery = an_alert()
    assert outbox.add(delivery, NOW) is True
    assert outbox.add(delivery, later(1)) is False
    assert outbox.due(later(1), 10) == [delivery.idempotency_key]


def test_an_outbox_hands_out_a_claimed_delivery_once_until_its_lease_ends(outbox: Outbox) -> None:
    delivery = an_alert()
    outbox.add(delivery, NOW)
    entry = outbox.claim(delivery.idempotency_key, NOW, later(30))
    assert entry is not None
    assert entry.attempts == 1
    assert entry.channel is Channel.SLACK
    assert entry.payload == delivery.payload
    assert outbox.claim(delivery.idempotency_key, later(29), later(60)) is None
    assert outbox.due(later(29), 10) == []
    again = outbox.claim(delivery.idempotency_key, later(30), later(60))
    assert again is not None
    assert again.attempts == 2


def test_an_outbox_does_not_hand_out_a_delivery_before_its_retry_time(outbox: Outbox) -> None:
    delivery = an_alert()
    outbox.add(delivery, NOW)
    outbox.claim(delivery.idempotency_key, NOW, later(30))
    outbox.mark_retry(delivery.idempotency_key, "429", later(5))
    assert outbox.due(later(4), 10) == []
    assert outbox.claim(delivery.idempotency_key, later(4), later(34)) is None
    assert outbox.due(later(5), 10) == [delivery.idempotency_key]


@pytest.mark.parametrize("finish", ["sent", "failed"])
def test_an_outbox_never_hands_out_a_finished_delivery(outbox: Outbox, finish: str) -> None:
    delivery = an_alert()
    outbox.add(delivery, NOW)
    outbox.claim(delivery.idempotency_key, NOW, later(30))
    if finish == "sent":
        outbox.mark_sent(delivery.idempotency_key, "C1:123.456", later(1))
    else:
        outbox.mark_failed(delivery.idempotency_key, "channel_not_found")
    assert outbox.due(later(3600), 10) == []
    assert outbox.claim(delivery.idempotency_key, later(3600), later(3630)) is None


def test_an_outbox_lists_due_keys_oldest_first_up_to_the_limit(outbox: Outbox) -> None:
    keys = []
    for index, seconds in enumerate((20, 10, 30)):
        delivery = an_alert(response_id=f"resp-{index}")
        outbox.add(delivery, later(seconds))
        keys.append(delivery.idempotency_key)
    assert outbox.due(later(25), 10) == [keys[1], keys[0]]
    assert outbox.due(later(60), 2) == [keys[1], keys[0]]


# --- SqlOutbox specifics ------------------------------------------------------------------


def test_two_workers_claiming_the_same_delivery_at_once_get_it_only_once(
    sessions: sessionmaker[Session],
) -> None:
    outbox = SqlOutbox(sessions)
    delivery = an_alert()
    outbox.add(delivery, NOW)
    workers = 4
    start = threading.Barrier(workers)

    def claim() -> OutboxEntry | None:
        start.wait()
        return outbox.claim(delivery.idempotency_key, NOW, later(30))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(claim) for _ in range(workers)]
        results = [future.result(timeout=30) for future in futures]
    assert sum(result is not None for result in results) == 1


def test_a_sent_delivery_is_no_longer_due(sessions: sessionmaker[Session]) -> None:
    outbox = SqlOutbox(sessions)
    delivery = an_alert()
    assert outbox.add(delivery, NOW) is True
    assert outbox.add(delivery, NOW) is False
    entry = outbox.claim(delivery.idempotency_key, NOW, later(30))
    assert entry is not None
    outbox.mark_sent(delivery.idempotency_key, "C1:123.456", later(1))
    assert outbox.due(later(3600), 100) == []


def test_the_dispatcher_sends_once_through_the_sql_outbox(sessions: sessionmaker[Session]) -> None:
    registry = CollectorRegistry()
    slack = FakeSender()
    clock = FakeClock()
    dispatcher = Dispatcher(
        SqlOutbox(sessions),
        {Channel.SLACK: slack, Channel.EMAIL: FakeSender()},
        CONFIG,
        DeliveryMetrics.create(registry),
        clock=clock,
    )
    classified = a_classified_response(0)
    run(dispatcher.handle(classified))
    run(dispatcher.handle(classified))
    clock.advance(3600)
    assert run(dispatcher.retry_due()) == 0
    assert len(slack.sent) == 1
    labels = {"channel": "slack", "kind": "alert", "outcome": "duplicate"}
    assert registry.get_sample_value("npsloop_deliveries_total", labels) == 1.0


def test_a_later_version_routed_to_another_channel_never_alerts_a_second_time() -> None:
    loop = Loop()
    first = a_classified_response(2, response_id="inv-late", comment=None)
    loop.handle(first)
    # The invitation's context arrived late: the comment's version knows the store.
    later = a_classified_response(2, response_id="inv-late", comment="Pakken kom aldrig")
    later = later.model_copy(
        update={"response": later.response.model_copy(update={"segment": Segment(store="Odense")})}
    )
    loop.handle(later)
    assert [entry.kind for entry in loop.slack.sent] == ["alert"]
    assert loop.count("duplicate") == 1.0
