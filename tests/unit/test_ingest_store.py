"""IngestStore on a migrated SQLite file: the journal, webhook ids, planning and preferences."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.ingest.domain import ContactSubmission, PurchaseSubmission
from services.ingest.planning import Rules
from services.ingest.store import Inbound, IngestStore, ReplayedWebhook, invitation_id_for
from shared import topics
from shared.events import (
    Contact,
    ContactPreference,
    Experience,
    Invitation,
    InvitationStatus,
    Purchase,
    PurchaseKind,
    Segment,
    decode,
)
from shared.send_window import SendWindow
from tests.unit.builders import counted

RULES = Rules(
    delay_service=timedelta(hours=24),
    delay_product=timedelta(days=14),
    window=SendWindow.parse("09:00-20:00"),
    default_timezone="Europe/Copenhagen",
    fatigue=timedelta(days=90),
)

# Monday 4 May 2026, 12:00 in Copenhagen: a service purchase now is invited at NOON + 24h.
NOON = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SEND_AT = NOON + timedelta(hours=24)
EMAIL = "anna.andersen@example.com"


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> IngestStore:
    return IngestStore(sessions, webhook_memory=timedelta(minutes=10))


def a_purchase(
    order_id: str = "ord-1",
    *,
    customer_id: str = "cust-1",
    email: str | None = EMAIL,
    purchased_at: datetime = NOON,
    kind: PurchaseKind = PurchaseKind.PURCHASE,
    experience: Experience = Experience.SERVICE,
) -> Purchase:
    return Purchase(
        event_id=uuid.uuid4(),
        occurred_at=purchased_at,
        kind=kind,
        order_id=order_id,
        customer_id=customer_id,
        amount=Decimal("129.95"),
        currency="DKK",
        products=["Espresso machine", "Descaler"],
        segment=Segment(region="Nordics", store="Aarhus"),
        experience=experience,
        contact=Contact(email=email, name="Anna" if email else None),
        locale="da-DK",
        purchased_at=purchased_at,
    )


def a_refund(order_id: str = "ord-1", *, customer_id: str = "cust-1") -> Purchase:
    return a_purchase(order_id, customer_id=customer_id, email=None, kind=PurchaseKind.REFUND)


def a_preference(action: str, customer_id: str = "cust-1") -> ContactPreference:
    return ContactPreference.model_validate(
        {
            "event_id": uuid.uuid4(),
            "occurred_at": NOON,
            "customer_id": customer_id,
            "action": action,
        }
    )


def inbound(purchase: Purchase) -> Inbound:
    return Inbound(topics.PURCHASES, purchase.customer_id, purchase.customer_id, purchase)


def decisions(store: IngestStore, customer_id: str = "cust-1") -> list[tuple[str, str | None]]:
    return [(record.status, record.reason) for record in store.history(customer_id)]


def journaled_invitations(store: IngestStore) -> list[Invitation]:
    entries = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=1000).entries
    store.release([entry.id for entry in entries])
    return [
        decode(Invitation, entry.value)
        for entry in entries
        if entry.topic == "npsloop.invitations.v1"
    ]


def raw_journal(sessions: sessionmaker[Session], customer_id: str) -> list[bytes]:
    with sessions() as session:
        rows = session.execute(
            text("SELECT value FROM ingest_journal WHERE customer_id = :customer"),
            {"customer": customer_id},
        ).all()
        return [bytes(row.value) for row in rows]


# --- the journal --------------------------------------------------------------------------


def test_an_accepted_event_is_journaled_once_however_often_it_arrives(store: IngestStore) -> None:
    purchase = a_purchase()
    assert store.accept([inbound(purchase)], None, NOON) == 1
    assert store.accept([inbound(purchase)], None, NOON) == 0
    assert store.backlog() == 1


def test_accept_counts_only_the_new_events_of_a_batch(store: IngestStore) -> None:
    seen = a_purchase("ord-1")
    store.accept([inbound(seen)], None, NOON)
    assert store.accept([inbound(seen), inbound(a_purchase("ord-2"))], None, NOON) == 1
    assert store.backlog() == 2


def test_a_replayed_webhook_is_refused_and_journals_nothing_more(store: IngestStore) -> None:
    store.accept([inbound(a_purchase("ord-1"))], "wh-1", NOON)
    with pytest.raises(ReplayedWebhook, match="wh-1"):
        store.accept([inbound(a_purchase("ord-2"))], "wh-1", NOON + timedelta(seconds=5))
    assert store.backlog() == 1


def test_a_webhook_id_is_remembered_for_the_webhook_memory(store: IngestStore) -> None:
    store.accept([inbound(a_purchase("ord-1"))], "wh-1", NOON)
    later = NOON + timedelta(minutes=5)
    store.forget_old_webhook_ids(later)
    with pytest.raises(ReplayedWebhook):
        store.accept([inbound(a_purchase("ord-2"))], "wh-1", later)


def test_an_old_webhook_id_once_forgotten_is_let_through_again(store: IngestStore) -> None:
    store.accept([inbound(a_purchase("ord-1"))], "wh-1", NOON)
    later = NOON + timedelta(minutes=11)
    store.forget_old_webhook_ids(later)
    assert store.accept([inbound(a_purchase("ord-2"))], "wh-1", later) == 1


def test_unpublished_entries_are_claimed_oldest_first(store: IngestStore) -> None:
    orders = [a_purchase(f"ord-{n}") for n in range(3)]
    for purchase in orders:
        store.accept([inbound(purchase)], None, NOON)

    first_two = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=2).entries

    assert [decode(Purchase, entry.value).order_id for entry in first_two] == ["ord-0", "ord-1"]
    assert first_two[0].id < first_two[1].id
    assert {entry.topic for entry in first_two} == {"npsloop.purchases.v1"}
    assert {entry.key for entry in first_two} == {"cust-1"}


def test_a_claimed_entry_is_not_claimed_again_while_its_lease_lasts(store: IngestStore) -> None:
    store.accept([inbound(a_purchase())], None, NOON)
    store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=10)
    during = NOON + timedelta(seconds=10)
    assert store.claim_unpublished(during, during + timedelta(seconds=30), limit=10).entries == []


def test_a_claimed_entry_comes_back_when_its_lease_runs_out(store: IngestStore) -> None:
    store.accept([inbound(a_purchase())], None, NOON)
    claimed = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=10).entries
    later = NOON + timedelta(seconds=31)
    again = store.claim_unpublished(later, later + timedelta(seconds=30), limit=10)
    assert again.entries == claimed


def test_a_released_entry_can_be_claimed_at_once(store: IngestStore) -> None:
    store.accept([inbound(a_purchase())], None, NOON)
    claimed = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=10).entries
    store.release([entry.id for entry in claimed])
    assert store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=10).entries == claimed


def test_a_claim_counts_the_backlog_leased_entries_included(store: IngestStore) -> None:
    store.accept([inbound(a_purchase(f"ord-{n}")) for n in range(3)], None, NOON)
    first = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=2)
    store.mark_published([first.entries[0].id], NOON)

    # ord-1 is leased to the first claim and ord-2 is free: both wait for the broker.
    second = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=10)

    assert (len(first.entries), first.backlog) == (2, 3)
    assert [decode(Purchase, entry.value).order_id for entry in second.entries] == ["ord-2"]
    assert second.backlog == 2 == store.backlog()


def test_publishing_or_releasing_no_entries_changes_nothing(store: IngestStore) -> None:
    store.accept([inbound(a_purchase())], None, NOON)
    store.mark_published([], NOON)
    store.release([])
    assert store.backlog() == 1


def test_a_published_entry_leaves_the_backlog_for_good(store: IngestStore) -> None:
    store.accept([inbound(a_purchase("ord-1")), inbound(a_purchase("ord-2"))], None, NOON)
    claimed = store.claim_unpublished(NOON, NOON + timedelta(seconds=30), limit=1).entries
    store.mark_published([entry.id for entry in claimed], NOON)

    assert store.backlog() == 1
    later = NOON + timedelta(minutes=5)
    remaining = store.claim_unpublished(later, later + timedelta(seconds=30), limit=10).entries
    assert [decode(Purchase, entry.value).order_id for entry in remaining] == ["ord-2"]


# --- planning -----------------------------------------------------------------------------


def test_a_purchase_with_an_email_is_scheduled_and_journaled_with_its_order_context(
    store: IngestStore,
) -> None:
    purchase = a_purchase()

    invitation = store.plan(purchase, RULES, NOON)

    assert invitation is not None
    assert invitation.status == InvitationStatus.SCHEDULED
    assert invitation.send_at == SEND_AT
    [journaled] = journaled_invitations(store)
    assert journaled == invitation
    assert journaled.invitation_id == invitation_id_for("ord-1")
    assert journaled.order_id == "ord-1"
    assert journaled.segment == Segment(region="Nordics", store="Aarhus")
    assert journaled.products == ["Espresso machine", "Descaler"]
    assert journaled.amount == Decimal("129.95")
    assert journaled.currency == "DKK"
    assert journaled.contact == Contact(email=EMAIL, name="Anna")
    assert decisions(store) == [("scheduled", None)]
    [record] = store.history("cust-1")
    assert record.send_at == SEND_AT
    assert record.order_id == "ord-1"
    assert record.decided_at == NOON


def test_a_purchase_built_from_a_submission_is_scheduled(store: IngestStore) -> None:
    submission = PurchaseSubmission(
        order_id="ord-9",
        customer_id="cust-9",
        amount=Decimal("10"),
        currency="SEK",
        experience=Experience.SERVICE,
        contact=ContactSubmission(email="sven@example.se"),
        locale="sv-SE",
    )
    invitation = store.plan(submission.to_event(NOON), RULES, NOON)
    assert invitation is not None
    assert invitation.send_at == SEND_AT
    assert decisions(store, "cust-9") == [("scheduled", None)]


def test_the_order_context_is_frozen_into_the_invitation(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)

    context = store.invitation_context(invitation_id_for("ord-1"))

    assert context is not None
    assert context["order_id"] == "ord-1"
    assert context["segment"]["store"] == "Aarhus"
    assert context["products"] == ["Espresso machine", "Descaler"]
    assert Decimal(context["amount"]) == Decimal("129.95")
    assert context["contact"] == {"email": EMAIL, "name": "Anna"}
    assert context["locale"] == "da-DK"
    assert context["experience"] == "service"
    assert "status" not in context


def test_an_unknown_invitation_has_no_context(store: IngestStore) -> None:
    assert store.invitation_context("no-such-invitation") is None


def test_the_same_purchase_again_is_not_decided_twice(store: IngestStore) -> None:
    purchase = a_purchase()
    store.plan(purchase, RULES, NOON)
    backlog = store.backlog()

    assert store.plan(purchase, RULES, NOON + timedelta(minutes=1)) is None
    assert store.backlog() == backlog
    assert decisions(store) == [("scheduled", None)]


def test_a_second_purchase_within_the_fatigue_window_is_suppressed_for_fatigue(
    store: IngestStore,
) -> None:
    store.plan(a_purchase("ord-1"), RULES, NOON)
    later = NOON + timedelta(days=30)
    second = store.plan(a_purchase("ord-2", purchased_at=later), RULES, later)

    assert second is not None
    assert (second.status, second.reason) == (InvitationStatus.SUPPRESSED, "fatigue")
    assert second.send_at is None
    assert decisions(store) == [("scheduled", None), ("suppressed", "fatigue")]


def test_a_purchase_after_the_fatigue_window_is_scheduled_again(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1"), RULES, NOON)
    later = NOON + timedelta(days=91)
    second = store.plan(a_purchase("ord-2", purchased_at=later), RULES, later)
    assert second is not None
    assert second.status == InvitationStatus.SCHEDULED


def test_fatigue_is_per_customer(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1", customer_id="cust-1"), RULES, NOON)
    other = store.plan(a_purchase("ord-2", customer_id="cust-2"), RULES, NOON)
    assert other is not None
    assert other.status == InvitationStatus.SCHEDULED


def test_a_refund_before_the_send_time_cancels_the_invitation(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    cancelled = store.plan(a_refund(), RULES, NOON + timedelta(hours=2))

    assert cancelled is not None
    assert (cancelled.status, cancelled.reason) == (InvitationStatus.CANCELLED, "refund")
    assert cancelled.invitation_id == invitation_id_for("ord-1")
    assert decisions(store) == [("scheduled", None), ("cancelled", "refund")]
    assert [i.status for i in journaled_invitations(store)] == ["scheduled", "cancelled"]


def test_a_cancellation_before_the_send_time_cancels_with_its_own_reason(
    store: IngestStore,
) -> None:
    store.plan(a_purchase(), RULES, NOON)
    cancellation = a_purchase(kind=PurchaseKind.CANCELLATION, email=None)
    store.plan(cancellation, RULES, NOON + timedelta(hours=2))
    assert decisions(store) == [("scheduled", None), ("cancelled", "cancellation")]


def test_a_refunded_invitation_does_not_count_towards_fatigue(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1"), RULES, NOON)
    store.plan(a_refund("ord-1"), RULES, NOON + timedelta(hours=2))

    later = NOON + timedelta(days=3)
    next_purchase = store.plan(a_purchase("ord-2", purchased_at=later), RULES, later)

    assert next_purchase is not None
    assert next_purchase.status == InvitationStatus.SCHEDULED


def test_after_a_refund_fatigue_counts_from_the_invitation_before_it(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1"), RULES, NOON)
    second = NOON + timedelta(days=100)
    store.plan(a_purchase("ord-2", purchased_at=second), RULES, second)
    store.plan(a_refund("ord-2"), RULES, second + timedelta(hours=1))

    # 150 days after ord-1 was sent, but only 50 after ord-2 would have been.
    third_at = NOON + timedelta(days=150)
    third = store.plan(a_purchase("ord-3", purchased_at=third_at), RULES, third_at)
    assert third is not None
    assert third.status == InvitationStatus.SCHEDULED


def test_a_refund_puts_back_the_invitation_before_it_as_the_last_one(store: IngestStore) -> None:
    # A product used for a hundred days before it is asked about.
    rules = replace(RULES, delay_product=timedelta(days=100))
    store.plan(a_purchase("ord-1"), rules, NOON)
    long_used = a_purchase("ord-2", experience=Experience.PRODUCT)
    scheduled = store.plan(long_used, rules, NOON)
    assert scheduled is not None
    assert scheduled.status == InvitationStatus.SCHEDULED
    store.plan(a_refund("ord-2"), rules, NOON + timedelta(hours=1))

    third = store.plan(a_purchase("ord-3"), rules, NOON + timedelta(hours=2))

    # ord-1 is still to be sent a day from now: the customer must not be asked twice.
    assert third is not None
    assert third.reason == "fatigue"


def test_a_refund_after_the_send_time_changes_nothing(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    backlog = store.backlog()

    assert store.plan(a_refund(), RULES, SEND_AT + timedelta(minutes=1)) is None
    assert decisions(store) == [("scheduled", None)]
    assert store.backlog() == backlog


def test_a_second_refund_of_the_same_order_changes_nothing(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    store.plan(a_refund(), RULES, NOON + timedelta(hours=1))
    assert store.plan(a_refund(), RULES, NOON + timedelta(hours=2)) is None
    assert decisions(store) == [("scheduled", None), ("cancelled", "refund")]


def test_a_refund_that_overtakes_its_purchase_keeps_the_purchase_from_being_surveyed(
    store: IngestStore,
) -> None:
    early = store.plan(a_refund(), RULES, NOON)
    assert early is not None
    assert (early.status, early.reason) == (InvitationStatus.CANCELLED, "refund")

    assert store.plan(a_purchase(), RULES, NOON + timedelta(minutes=1)) is None

    assert decisions(store) == [("cancelled", "refund")]
    assert [i.status for i in journaled_invitations(store)] == ["cancelled"]


def test_a_refund_that_overtakes_its_purchase_does_not_tire_the_customer(
    store: IngestStore,
) -> None:
    store.plan(a_refund("ord-1"), RULES, NOON)
    store.plan(a_purchase("ord-1"), RULES, NOON)
    other = store.plan(a_purchase("ord-2"), RULES, NOON)
    assert other is not None
    assert other.status == InvitationStatus.SCHEDULED


def test_a_purchase_without_an_email_is_suppressed_for_no_email(store: IngestStore) -> None:
    invitation = store.plan(a_purchase(email=None), RULES, NOON)
    assert invitation is not None
    assert (invitation.status, invitation.reason) == (InvitationStatus.SUPPRESSED, "no_email")
    assert decisions(store) == [("suppressed", "no_email")]


def test_a_purchase_without_an_email_does_not_tire_the_customer(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1", email=None), RULES, NOON)
    second = store.plan(a_purchase("ord-2"), RULES, NOON)
    assert second is not None
    assert second.status == InvitationStatus.SCHEDULED


def test_the_history_shows_the_send_time_of_a_purchase_stamped_in_another_offset(
    store: IngestStore,
) -> None:
    copenhagen_noon = NOON.astimezone(timezone(timedelta(hours=2)))
    invitation = store.plan(a_purchase(purchased_at=copenhagen_noon), RULES, NOON)
    assert invitation is not None
    assert invitation.send_at == SEND_AT
    [record] = store.history("cust-1")
    assert record.send_at == SEND_AT


def test_a_refund_after_the_send_time_changes_nothing_for_a_purchase_in_another_offset(
    store: IngestStore,
) -> None:
    copenhagen_noon = NOON.astimezone(timezone(timedelta(hours=2)))
    store.plan(a_purchase(purchased_at=copenhagen_noon), RULES, NOON)
    assert store.plan(a_refund(), RULES, SEND_AT + timedelta(hours=1)) is None


# --- contact preferences ------------------------------------------------------------------


def test_unsubscribing_cancels_scheduled_invitations(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)

    cancelled = store.apply_preference(a_preference("unsubscribed"), NOON + timedelta(hours=1))

    assert [(i.invitation_id, i.status, i.reason) for i in cancelled] == [
        (invitation_id_for("ord-1"), InvitationStatus.CANCELLED, "unsubscribed")
    ]
    assert decisions(store) == [("scheduled", None), ("cancelled", "unsubscribed")]
    assert [i.status for i in journaled_invitations(store)] == ["scheduled", "cancelled"]


def test_unsubscribing_leaves_an_invitation_already_sent_alone(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    assert store.apply_preference(a_preference("unsubscribed"), SEND_AT + timedelta(hours=1)) == []
    assert decisions(store) == [("scheduled", None)]


def test_an_unsubscribed_customers_later_purchases_are_suppressed(store: IngestStore) -> None:
    store.apply_preference(a_preference("unsubscribed"), NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    assert (invitation.status, invitation.reason) == (InvitationStatus.SUPPRESSED, "unsubscribed")


def test_a_resubscribed_customer_is_invited_again(store: IngestStore) -> None:
    store.plan(a_purchase("ord-1"), RULES, NOON)
    store.apply_preference(a_preference("unsubscribed"), NOON + timedelta(hours=1))
    store.apply_preference(a_preference("resubscribed"), NOON + timedelta(hours=2))

    later = NOON + timedelta(days=2)
    invitation = store.plan(a_purchase("ord-2", purchased_at=later), RULES, later)

    assert invitation is not None
    assert invitation.status == InvitationStatus.SCHEDULED


def test_customers_are_found_by_email_whatever_its_case(store: IngestStore) -> None:
    store.plan(a_purchase(customer_id="cust-1", email="Anna.Andersen@Example.com"), RULES, NOON)
    store.plan(a_purchase("ord-2", customer_id="cust-2", email="someone@example.com"), RULES, NOON)
    assert store.customers_with_email(" anna.andersen@EXAMPLE.com ") == ["cust-1"]


def test_an_erased_customer_is_no_longer_found_by_email(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    store.apply_preference(a_preference("erased"), NOON + timedelta(hours=1))
    assert store.customers_with_email(EMAIL) == []


def test_erasure_removes_the_contact_from_the_frozen_context(store: IngestStore) -> None:
    store.plan(a_purchase(), RULES, NOON)
    store.apply_preference(a_preference("erased"), NOON + timedelta(hours=1))

    context = store.invitation_context(invitation_id_for("ord-1"))

    assert context is not None
    assert context["contact"] == {}
    assert context["order_id"] == "ord-1"


def test_erasure_removes_the_email_from_the_customers_journal_entries(
    store: IngestStore, sessions: sessionmaker[Session]
) -> None:
    purchase = a_purchase()
    store.accept([inbound(purchase)], None, NOON)
    store.plan(purchase, RULES, NOON)
    other = a_purchase("ord-2", customer_id="cust-2", email="someone@example.com")
    store.accept([inbound(other)], None, NOON)
    assert any(EMAIL.encode() in value for value in raw_journal(sessions, "cust-1"))

    cancelled = store.apply_preference(a_preference("erased"), NOON + timedelta(hours=1))

    assert [i.reason for i in cancelled] == ["erased"]
    values = raw_journal(sessions, "cust-1")
    assert len(values) == 3
    assert not any(EMAIL.encode() in value for value in values)
    assert not any(b"Anna" in value for value in values)
    assert b"someone@example.com" in raw_journal(sessions, "cust-2")[0]


def test_an_erased_customers_later_purchases_are_suppressed_as_erased(
    store: IngestStore,
) -> None:
    store.apply_preference(a_preference("erased"), NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    assert (invitation.status, invitation.reason) == (InvitationStatus.SUPPRESSED, "erased")
    assert store.customers_with_email(EMAIL) == []


def test_an_erased_customers_later_purchase_keeps_no_contact_in_its_invitation(
    store: IngestStore,
) -> None:
    store.apply_preference(a_preference("erased"), NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    context = store.invitation_context(invitation_id_for("ord-1"))
    assert context is not None
    assert not any(context["contact"].values())
    assert invitation.contact == Contact()


# --- responses ----------------------------------------------------------------------------


def test_a_recent_response_makes_a_later_purchase_suppressed_for_fatigue(
    store: IngestStore,
) -> None:
    store.record_responses([("cust-1", NOON - timedelta(days=10))], NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    assert invitation.reason == "fatigue"


def test_a_response_long_ago_does_not_tire_the_customer(store: IngestStore) -> None:
    store.record_responses([("cust-1", NOON - timedelta(days=200))], NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    assert invitation.status == InvitationStatus.SCHEDULED


def test_an_older_response_arriving_late_does_not_replace_the_latest(store: IngestStore) -> None:
    store.record_responses([("cust-1", NOON - timedelta(days=10))], NOON)
    store.record_responses([("cust-1", NOON - timedelta(days=200))], NOON + timedelta(minutes=1))
    invitation = store.plan(a_purchase(), RULES, NOON + timedelta(minutes=2))
    assert invitation is not None
    assert invitation.reason == "fatigue"


def test_a_batch_of_responses_keeps_each_customers_latest_whatever_the_order(
    store: IngestStore,
) -> None:
    store.record_responses([("cust-2", NOON - timedelta(days=10))], NOON)
    store.record_responses(
        [
            ("cust-1", NOON - timedelta(days=10)),
            ("cust-1", NOON - timedelta(days=200)),
            # Older than what cust-2 already has: it stays tired.
            ("cust-2", NOON - timedelta(days=300)),
            ("cust-3", NOON - timedelta(days=200)),
        ],
        NOON,
    )
    reasons = {
        customer: store.plan(a_purchase(f"ord-{customer}", customer_id=customer), RULES, NOON)
        for customer in ("cust-1", "cust-2", "cust-3")
    }
    assert {customer: i and i.reason for customer, i in reasons.items()} == {
        "cust-1": "fatigue",
        "cust-2": "fatigue",
        "cust-3": None,
    }


def test_a_batch_of_responses_is_one_transaction(
    store: IngestStore, sessions: sessionmaker[Session]
) -> None:
    """The responses agent noted each response in a transaction of its own: a fifth of
    ingest's CPU in bench/pipeline.py."""
    store.record_responses([("cust-0", NOON - timedelta(days=1))], NOON)
    batch = [(f"cust-{i % 50}", NOON - timedelta(minutes=i)) for i in range(200)]
    with counted(sessions) as counts:
        store.record_responses(batch, NOON)
    assert counts["commits"] == 1
    # One upsert: the new inserted, the known updated where the answer is later.
    assert counts["statements"] == 1


def test_a_response_leaves_the_rest_of_what_is_known_of_the_customer(
    store: IngestStore,
) -> None:
    store.apply_preference(a_preference("unsubscribed"), NOON)
    store.record_responses([("cust-1", NOON - timedelta(days=200))], NOON)
    invitation = store.plan(a_purchase(), RULES, NOON)
    assert invitation is not None
    assert (invitation.status, invitation.reason) == (InvitationStatus.SUPPRESSED, "unsubscribed")


def test_a_sent_invitation_joins_the_history_and_a_later_refund_is_too_late(
    store: IngestStore,
) -> None:
    scheduled = store.plan(a_purchase(), RULES, NOON)
    assert scheduled is not None and scheduled.send_at is not None
    sent = scheduled.model_copy(
        update={"event_id": uuid.uuid4(), "status": InvitationStatus.SENT, "occurred_at": NOON}
    )
    assert store.record_sent(sent, NOON)
    assert not store.record_sent(sent, NOON), "the same sent event is recorded once"
    # A refund still before the planned send time: the email has gone, so nothing to cancel.
    assert store.plan(a_refund(), RULES, NOON + timedelta(minutes=1)) is None
    assert decisions(store) == [("scheduled", None), ("sent", None)]
