"""A batch's intake writes with a few statements a store, not a few a response: what it
takes and refuses is what the stores' one-at-a-time writes take and refuse, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import SENT, DeliveryRow, Enqueued, Sent, SqlOutbox
from services.notifier.case_store import (
    AlertRow,
    CaseRow,
    CaseStepRow,
    PostedAlert,
    SqlCases,
    UnknownCase,
    Version,
)
from services.notifier.cases import Case
from services.notifier.dispatch import ONCE_PER_RESPONSE, _distinct_stretches
from services.notifier.domain import Channel, Delivery, DeliveryKind
from services.notifier.review_store import ReviewDecisionRow, SqlReviewDecisions
from services.notifier.reviews import ReviewDecision, ReviewReason
from shared.events import CaseAction, CaseEvent
from shared.nps import Category
from tests.conftest import two_migrated_databases
from tests.unit.builders import FakeClock, InstantSlack, a_classified_response, run
from tests.unit.test_notifier_batches import sql_dispatcher, taken_in

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=30)
PACING_UNUSED: Any = None  # enqueue(claim=False) takes no channel's turn


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    """Two migrated databases: one written a row at a time, the other a batch at a time."""
    with two_migrated_databases(request, tmp_path_factory, request.param) as databases:
        yield databases


def rows_of(sessions: sessionmaker[Session], table: Any, key: Any) -> list[tuple[Any, ...]]:
    """Every row but its surrogate id (a batch inserts in the order of its keys)."""
    columns = [column for column in table.c if column.name != "id"]
    with sessions() as session:
        found = session.execute(select(*columns).order_by(key)).all()
    return [tuple(row) for row in found]


def a_delivery(
    kind: DeliveryKind,
    subject: str,
    recipient: str = "#cx",
    channel: Channel = Channel.SLACK,
    customer: str | None = None,
    send_at: datetime | None = None,
) -> Delivery:
    return Delivery(
        kind=kind,
        channel=channel,
        recipient=recipient,
        subject_id=subject,
        payload={"text": f"{kind.value} about {subject} to {recipient}"},
        customer_id=customer,
        send_at=send_at,
        origin_at=NOW - timedelta(seconds=3),
    )


def test_an_outbox_takes_a_batch_as_it_takes_its_deliveries_one_after_another(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    one_by_one, batched = (SqlOutbox(sessions) for sessions in two_databases)
    before = [a_delivery(DeliveryKind.ALERT, "r-old"), a_delivery(DeliveryKind.KUDOS, "r-k")]
    for outbox in (one_by_one, batched):
        outbox.suppress("c-quiet", "unsubscribed", NOW, erase=False)
        for delivery in before:
            outbox.add(delivery, NOW)
    email = Channel.EMAIL
    batch = [
        a_delivery(DeliveryKind.ALERT, "r1"),
        # Its alert routed to a second channel: once a response, wherever it routes.
        a_delivery(DeliveryKind.ALERT, "r1", recipient="#store-7"),
        a_delivery(DeliveryKind.ALERT, "r-old", recipient="#store-7"),  # alerted before
        a_delivery(DeliveryKind.KUDOS, "r-k"),  # there already: a duplicate, and earlier
        a_delivery(DeliveryKind.OWNER_EMAIL, "r1", "owner@example.com", email, "c-quiet"),
        a_delivery(DeliveryKind.OWNER_EMAIL, "r2", "owner@example.com", email, "c-2"),
        a_delivery(DeliveryKind.OWNER_EMAIL, "r2", "owner@example.com", email, "c-2"),
        # Not due yet: not held for a first attempt, due when it is.
        a_delivery(DeliveryKind.REVIEW_REQUEST, "r3", "c3@example.com", email, "c-3", LEASE),
        a_delivery(DeliveryKind.ALERT, "r2"),
    ]

    expected = [
        one_by_one.enqueue(
            d, NOW, LEASE, PACING_UNUSED, d.kind in ONCE_PER_RESPONSE, claim=False
        ).outcome
        for d in batch
    ]
    outcomes = batched.enqueue_many(batch, NOW, LEASE, ONCE_PER_RESPONSE)

    assert outcomes == expected
    assert expected == [
        Enqueued.ADDED,
        Enqueued.EARLIER,
        Enqueued.EARLIER,
        Enqueued.EARLIER,
        Enqueued.SUPPRESSED,
        Enqueued.ADDED,
        Enqueued.DUPLICATE,
        Enqueued.ADDED,
        Enqueued.ADDED,
    ]
    key = DeliveryRow.idempotency_key
    table = DeliveryRow.__table__
    assert rows_of(two_databases[1], table, key) == rows_of(two_databases[0], table, key)


def test_a_duplicate_of_a_delivery_there_already_is_told_apart_from_one_added(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    """Without a kind sent once, only the database's unique key finds a duplicate: the
    statement's RETURNING tells the rows it inserted from those it found."""
    _, batched = two_databases
    outbox = SqlOutbox(batched)
    outbox.add(a_delivery(DeliveryKind.OWNER_EMAIL, "r0", "o@example.com", Channel.EMAIL), NOW)
    batch = [
        a_delivery(DeliveryKind.OWNER_EMAIL, subject, "o@example.com", Channel.EMAIL)
        for subject in ("r1", "r0", "r2")
    ]
    assert outbox.enqueue_many(batch, NOW, LEASE) == [
        Enqueued.ADDED,
        Enqueued.DUPLICATE,
        Enqueued.ADDED,
    ]


def test_deliveries_marked_sent_together_are_as_marked_one_after_another(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    """Each mark gives the content its delivery holds now (a redraw stored while it was on
    its way, or None for a key not there); a key marked twice ends as its last mark."""
    one_by_one, batched = (SqlOutbox(sessions) for sessions in two_databases)
    deliveries = [a_delivery(DeliveryKind.ALERT, f"r{n}") for n in range(3)]
    redrawn = {"text": "r1, its comment added while it was on its way"}
    for outbox in (one_by_one, batched):
        for delivery in deliveries:
            outbox.add(delivery, NOW)
        outbox.replace_payload(deliveries[1].idempotency_key, redrawn)
    key = [delivery.idempotency_key for delivery in deliveries]
    marks = [
        Sent(key[0], "C1:1.1", NOW),
        Sent(key[1], "C1:1.2", NOW + timedelta(seconds=1)),
        Sent("alert:never-there", "C1:1.3", NOW),
        Sent(key[2], "C1:1.4", NOW),
        Sent(key[0], "C1:1.5", NOW + timedelta(seconds=2)),
    ]

    expected = [one_by_one.mark_sent(m.key, m.provider_ref, m.at) for m in marks]
    assert batched.mark_sent_many(marks) == expected
    assert expected == [
        deliveries[0].payload,
        redrawn,
        None,
        deliveries[2].payload,
        deliveries[0].payload,
    ]
    table, row_key = DeliveryRow.__table__, DeliveryRow.idempotency_key
    assert rows_of(two_databases[1], table, row_key) == rows_of(two_databases[0], table, row_key)
    with two_databases[1]() as session:
        assert set(session.execute(select(DeliveryRow.status)).scalars()) == {SENT}


def an_opening(response_id: str, customer_id: str) -> tuple[Case, dict[str, Any]]:
    case = Case.open(response_id, customer_id, NOW, 24, "What went wrong?")
    return case, {"region": "north"}


def a_version(response_id: str, event: str, opens: bool = True) -> Version:
    classified = {"event_id": event, "response": {"customer_id": f"c-{response_id}"}}
    opening = an_opening(response_id, f"c-{response_id}") if opens else None
    return Version(response_id, classified, opening)


def test_a_case_store_takes_a_batch_as_it_takes_its_versions_one_after_another(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    one_by_one, batched = (SqlCases(sessions) for sessions in two_databases)
    for cases in (one_by_one, batched):
        # r-seen: alerted, its case opened and its opened event back; r-lost: opened by a
        # worker that died before its event came back; r-again: the same version again.
        for version in (a_version("r-seen", "e1"), a_version("r-lost", "e1")):
            cases.take_in(version.response_id, version.classified, NOW, version.opening)
        cases.take_in("r-again", a_version("r-again", "e1").classified, NOW)
        opened = cases.get(a_version("r-seen", "e1").opening[0].case_id)  # type: ignore[index]
        assert opened is not None
        cases.apply_step(opened_event(opened), NOW)
    batch = [
        a_version("r-new", "e1"),
        a_version("r-seen", "e2"),
        a_version("r-lost", "e2"),
        a_version("r-again", "e1", opens=False),
        a_version("r-no-case", "e1", opens=False),
    ]

    expected = [one_by_one.take_in(v.response_id, v.classified, NOW, v.opening) for v in batch]
    intakes = batched.take_in_many(batch, NOW)

    assert intakes == expected
    # New versions all but r-again; r-new announced as opened, r-lost announced again.
    assert [intake.new_version for intake in intakes] == [True, True, True, False, True]
    announced = [None if i.to_announce is None else i.to_announce.response_id for i in intakes]
    assert announced == ["r-new", None, "r-lost", None, None]
    assert [intake.case is not None for intake in intakes] == [True, True, True, False, False]
    for table, key in (
        (AlertRow.__table__, AlertRow.response_id),
        (CaseRow.__table__, CaseRow.case_id),
    ):
        assert rows_of(batched._sessions, table, key) == rows_of(one_by_one._sessions, table, key)


def opened_event(case: Case) -> CaseEvent:
    return CaseEvent(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        case_id=case.case_id,
        response_id=case.response_id,
        action=CaseAction.OPENED,
    )


def test_a_case_store_takes_one_version_of_a_response_at_a_time(sessions: Any) -> None:
    with pytest.raises(ValueError, match="one version of a response at a time"):
        SqlCases(sessions).take_in_many([a_version("r1", "e1"), a_version("r1", "e2")], NOW)


def a_decision(response_id: str, asked: bool) -> ReviewDecision:
    return ReviewDecision(
        response_id=response_id,
        customer_id=f"c-{response_id}",
        category=Category.PROMOTER if asked else Category.PASSIVE,
        store=None,
        policy="promoters",
        reason=ReviewReason.PROMOTER if asked else ReviewReason.NOT_A_PROMOTER,
        detail="",
    )


def test_review_decisions_of_a_batch_are_kept_as_one_after_another(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    """One decision a response, the first, unless a later one asks where it did not."""
    one_by_one, batched = (SqlReviewDecisions(sessions) for sessions in two_databases)
    for store in (one_by_one, batched):
        store.record(a_decision("r-not-asked", False), NOW)
        store.record(a_decision("r-asked", True), NOW)
    batch = [
        a_decision("r-new", True),
        a_decision("r-not-asked", True),  # now asks: written
        a_decision("r-asked", False),  # never taken back
        a_decision("r-asked-2", False),
    ]
    later = NOW + timedelta(minutes=1)

    expected = [one_by_one.record(decision, later) for decision in batch]
    changed = batched.record_many(batch, later)

    assert changed == expected == [True, True, False, True]
    key = ReviewDecisionRow.response_id
    table = ReviewDecisionRow.__table__
    assert rows_of(batched._sessions, table, key) == rows_of(one_by_one._sessions, table, key)


def test_a_batch_is_cut_where_a_response_comes_again() -> None:
    items = ["r0", "r1", "r0", "r2", "r1", "r1", "r3"]
    assert list(_distinct_stretches(items, lambda item: item)) == [
        ["r0", "r1"],
        ["r0", "r2", "r1"],
        ["r1", "r3"],
    ]
    assert list(_distinct_stretches([], lambda item: item)) == []


def test_a_batch_with_versions_of_one_response_alerts_once_and_redraws_it(
    sessions: Any,
) -> None:
    """A comment added within the same batch as the response: one alert, showing the newer
    version, as when they come in two batches; a redelivery changes nothing. The batch is
    taken in as three stretches: a later version must see what the earlier one wrote."""
    first = a_classified_response(2, response_id="r0", customer_id="c0", comment="Slow.")
    newer = a_classified_response(2, response_id="r0", customer_id="c0", comment="Slow and rude.")
    other = a_classified_response(7, response_id="r1", customer_id="c1")
    slack = InstantSlack()
    dispatcher = sql_dispatcher(sessions, SqlOutbox(sessions), slack, clock=FakeClock(NOW))

    # r1 comes twice: the same event again, as after a crash before it was acked.
    run(taken_in(dispatcher, [first, other, newer, other]))

    posts = [entry for entry in slack.sent if "ts" not in entry.payload]
    assert sorted(entry.subject_id for entry in posts) == ["r0", "r1"]
    # Posted with the newer version, or redrawn with it, as the attempt and the intake met.
    about_r0 = [entry for entry in slack.sent if entry.subject_id == "r0"]
    assert "Slow and rude." in str(about_r0[-1].payload)
    stored = SqlCases(sessions).alert("r0")
    assert stored is not None and stored.classified["event_id"] == str(newer.event_id)


class LateLook(SqlCases):
    """Answers the first look at a response's alert only once that alert has been sent:
    the redraw of a newer version then looks while the alert is on its way, and finds it
    sent by the time it comes to redraw it."""

    def __init__(self, sessions: sessionmaker[Session], response_id: str) -> None:
        super().__init__(sessions)
        self.outbox = SqlOutbox(sessions)
        self.response_id = response_id
        self.held = False

    def alert(self, response_id: str) -> PostedAlert | None:
        seen = super().alert(response_id)
        if response_id == self.response_id and not self.held:
            self.held = True
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self._sent():
                time.sleep(0.01)
        return seen

    def _sent(self) -> bool:
        keys = self.outbox.keys_about(DeliveryKind.ALERT.value, self.response_id)
        return bool(keys) and (self.outbox.payload_of(keys[0]) or ("", {}))[0] == SENT


def test_a_newer_version_is_drawn_over_an_alert_sent_while_it_was_being_redrawn(
    sessions: Any,
) -> None:
    """The redraw looked (not posted yet), then the alert was sent with the older version
    (its attempt marked it sent before the redraw replaced its content), then the redraw
    found it no longer waiting: it used to stop there, and Slack kept the older version."""
    first = a_classified_response(2, response_id="r0", customer_id="c0", comment="Slow.")
    newer = a_classified_response(2, response_id="r0", customer_id="c0", comment="Slow and rude.")
    slack = InstantSlack()
    cases = LateLook(sessions, "r0")
    dispatcher = sql_dispatcher(
        sessions, SqlOutbox(sessions), slack, clock=FakeClock(NOW), cases=cases
    )

    run(taken_in(dispatcher, [first, newer]))

    assert cases.held
    [post, update] = slack.sent
    assert "ts" not in post.payload and "Slow and rude." not in str(post.payload)
    assert "ts" in update.payload and "Slow and rude." in str(update.payload)


def a_step(case: Case, action: CaseAction, event_id: uuid.UUID | None = None) -> CaseEvent:
    return CaseEvent(
        event_id=event_id or uuid.uuid4(),
        occurred_at=NOW,
        case_id=case.case_id,
        response_id=case.response_id,
        action=action,
        actor=None if action in (CaseAction.OPENED, CaseAction.ESCALATED) else "U0KIM",
    )


def test_case_steps_of_a_batch_are_applied_as_one_after_another(
    two_databases: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    """Opened and escalated events (history only) are written set-wise between the staff
    steps, which are applied in turn: the outcomes and the history are those of one event
    after another."""
    one_by_one, batched = (SqlCases(sessions) for sessions in two_databases)
    cases = {}
    for store in (one_by_one, batched):
        for name in ("r1", "r2", "r3"):
            version = a_version(name, "e1")
            store.take_in(version.response_id, version.classified, NOW, version.opening)
            cases[name] = version.opening[0]  # type: ignore[index]
    recorded = a_step(cases["r3"], CaseAction.OPENED)
    for store in (one_by_one, batched):
        store.apply_step(recorded, NOW)
    again = uuid.uuid4()
    batch = [
        a_step(cases["r1"], CaseAction.OPENED, again),
        a_step(cases["r2"], CaseAction.OPENED),
        recorded,  # there already: a duplicate
        a_step(cases["r1"], CaseAction.OPENED, again),  # twice in the batch: a duplicate
        a_step(cases["r1"], CaseAction.CLAIMED),
        a_step(cases["r1"], CaseAction.ESCALATED),
        a_step(cases["r2"], CaseAction.RESOLVED),
        a_step(cases["r1"], CaseAction.CLAIMED),  # claimed already: refused
        a_step(cases["r2"], CaseAction.ESCALATED),
    ]

    expected = [one_by_one.apply_step(event, NOW) for event in batch]
    results = batched.apply_steps(batch, NOW)

    assert results == expected
    assert [result.outcome.value for result in results] == [
        "applied",
        "applied",
        "duplicate",
        "duplicate",
        "applied",
        "applied",
        "applied",
        "refused",
        "applied",
    ]
    table, key = CaseStepRow.__table__, CaseStepRow.event_id
    assert rows_of(batched._sessions, table, key) == rows_of(one_by_one._sessions, table, key)
    table, key = CaseRow.__table__, CaseRow.case_id
    assert rows_of(batched._sessions, table, key) == rows_of(one_by_one._sessions, table, key)


def test_a_history_event_about_a_case_never_opened_here_is_refused(sessions: Any) -> None:
    stranger = an_opening("r-stranger", "c-x")[0]
    with pytest.raises(UnknownCase, match="does not exist here"):
        SqlCases(sessions).apply_steps([a_step(stranger, CaseAction.OPENED)], NOW)
