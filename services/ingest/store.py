"""Ingest's tables and the transactions on them.

Every accepted inbound event is written to the journal in the same transaction that
makes it accepted (and, for a signed webhook, remembers its id); the relay publishes
the journal to Kafka. Planning decisions are journaled the same way, in the
transaction that changes the customer's state, so a crash can neither lose a
decision nor publish one that did not happen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.ingest import planning
from shared.db import Base, UtcDateTime, insert_ignore, upsert_many
from shared.events import (
    Contact,
    ContactPreference,
    Event,
    Invitation,
    InvitationStatus,
    Purchase,
    PurchaseKind,
    encode,
)
from shared.ids import derived_id, event_id
from shared.topics import INVITATIONS, TopicSpec

BigId = BigInteger().with_variant(Integer(), "sqlite")
When = UtcDateTime


class JournalRow(Base):
    __tablename__ = "ingest_journal"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    accepted_at: Mapped[datetime] = mapped_column(When)
    published_at: Mapped[datetime | None] = mapped_column(When)
    lease_until: Mapped[datetime | None] = mapped_column(When)


class WebhookIdRow(Base):
    __tablename__ = "ingest_webhook_ids"

    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(When)


class CustomerRow(Base):
    __tablename__ = "ingest_customers"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email_hash: Mapped[str | None] = mapped_column(String(64))
    last_invited_at: Mapped[datetime | None] = mapped_column(When)
    last_responded_at: Mapped[datetime | None] = mapped_column(When)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(When)
    erased_at: Mapped[datetime | None] = mapped_column(When)
    updated_at: Mapped[datetime] = mapped_column(When)


class InvitationRow(Base):
    __tablename__ = "ingest_invitations"

    invitation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(200))
    survey_kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(120))
    send_at: Mapped[datetime | None] = mapped_column(When)
    previous_invited_at: Mapped[datetime | None] = mapped_column(When)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(When)
    updated_at: Mapped[datetime] = mapped_column(When)


class DecisionRow(Base):
    __tablename__ = "ingest_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    invitation_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(120))
    send_at: Mapped[datetime | None] = mapped_column(When)
    decided_at: Mapped[datetime] = mapped_column(When)


class ReplayedWebhook(Exception):
    """A webhook-id seen before: the same delivery sent again."""


class JournalFull(Exception):
    """More accepted events wait for the broker than the configured limit."""


@dataclass(frozen=True)
class Inbound:
    """An event accepted at the edge, for the journal."""

    spec: TopicSpec
    key: str
    customer_id: str | None
    event: Event


@dataclass(frozen=True)
class JournalEntry:
    id: int
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Claimed:
    """The entries leased to one relay, and how many were unpublished, these included."""

    entries: list[JournalEntry]
    backlog: int


@dataclass(frozen=True)
class DecisionRecord:
    decided_at: datetime
    invitation_id: str
    order_id: str | None
    status: str
    reason: str | None
    send_at: datetime | None


def email_hash(email: str) -> str:
    """Looks a person up for erasure without keeping their address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def invitation_id_for(order_id: str) -> str:
    return str(event_id("invitation", order_id))


class IngestStore:
    """The transactions of ingest; every method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], webhook_memory: timedelta) -> None:
        self._sessions = sessions
        self._webhook_memory = webhook_memory

    # --- the journal -------------------------------------------------------------------

    def accept(
        self,
        inbound: list[Inbound],
        webhook_id: str | None,
        now: datetime,
        max_backlog: int | None = None,
    ) -> int:
        """Journal events (and remember the webhook id); returns how many were new.

        With ``max_backlog``, refuses (JournalFull) while that many wait for the broker.
        """
        with self._sessions.begin() as session:
            if max_backlog is not None and _unpublished(session) >= max_backlog:
                raise JournalFull(max_backlog)
            if webhook_id is not None:
                remembered = insert_ignore(
                    session,
                    WebhookIdRow.__table__,
                    {"webhook_id": webhook_id, "received_at": now},
                    keys=["webhook_id"],
                )
                if not remembered:
                    raise ReplayedWebhook(webhook_id)
            return sum(self._journal(session, item, now) for item in inbound)

    def _journal(self, session: Session, item: Inbound, now: datetime) -> bool:
        return insert_ignore(
            session,
            JournalRow.__table__,
            {
                "event_id": str(item.event.event_id),
                "topic": item.spec.name,
                "key": item.key,
                "customer_id": item.customer_id,
                "value": encode(item.event),
                "accepted_at": now,
            },
            keys=["event_id"],
        )

    def forget_old_webhook_ids(self, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                delete(WebhookIdRow).where(WebhookIdRow.received_at < now - self._webhook_memory)
            )

    def backlog(self) -> int:
        with self._sessions() as session:
            return _unpublished(session)

    def claim_unpublished(self, now: datetime, lease_until: datetime, limit: int) -> Claimed:
        """The oldest unpublished entries, leased to this relay for one attempt, and the
        backlog, counted in the same transaction."""
        with self._sessions.begin() as session:
            rows = session.execute(_CLAIMABLE, {"now": now, "limit": limit}).all()
            if rows:
                session.execute(
                    _LEASE, [{"entry_id": row.id, "until": lease_until} for row in rows]
                )
            return Claimed(
                [JournalEntry(row.id, row.topic, row.key, row.value) for row in rows],
                _unpublished(session),
            )

    def journaled(
        self, topic: str, since: datetime, until: datetime | None = None, batch: int = 1000
    ) -> Iterator[JournalEntry]:
        """The journal's entries of a topic accepted in [since, until), oldest first."""
        last = 0
        while True:
            with self._sessions() as session:
                query = select(
                    JournalRow.id, JournalRow.topic, JournalRow.key, JournalRow.value
                ).where(
                    JournalRow.topic == topic,
                    JournalRow.accepted_at >= since,
                    JournalRow.id > last,
                )
                if until is not None:
                    query = query.where(JournalRow.accepted_at < until)
                rows = session.execute(query.order_by(JournalRow.id).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield JournalEntry(row.id, row.topic, row.key, row.value)
            last = rows[-1].id

    def mark_published(self, ids: list[int], now: datetime) -> None:
        if not ids:  # an executemany needs a row: no statement for none
            return
        with self._sessions.begin() as session:
            session.execute(_PUBLISHED, [{"entry_id": id_, "now": now} for id_ in ids])

    def release(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._sessions.begin() as session:
            session.execute(_RELEASE, [{"entry_id": id_} for id_ in ids])

    # --- planning ----------------------------------------------------------------------

    def plan(self, purchase: Purchase, rules: planning.Rules, now: datetime) -> Invitation | None:
        """Decide about a purchase event; None when it was decided before (a redelivery)."""
        with self._sessions.begin() as session:
            if purchase.kind == PurchaseKind.PURCHASE:
                return self._plan_purchase(session, purchase, rules, now)
            return self._cancel_for(session, purchase, now)

    def _customer(self, session: Session, customer_id: str, now: datetime) -> CustomerRow:
        row = session.get(CustomerRow, customer_id)
        if row is None:
            row = CustomerRow(customer_id=customer_id, updated_at=now)
            session.add(row)
        return row

    def _plan_purchase(
        self, session: Session, purchase: Purchase, rules: planning.Rules, now: datetime
    ) -> Invitation | None:
        invitation_id = invitation_id_for(purchase.order_id)
        if session.get(InvitationRow, invitation_id) is not None:
            return None
        customer = self._customer(session, purchase.customer_id, now)
        if customer.erased_at is not None:
            # An erased person stays erased: their new purchase keeps no contact here, and the
            # purchase itself, journaled at the edge, loses it too.
            purchase = purchase.model_copy(update={"contact": Contact()})
            self._erase_personal_data(session, purchase.customer_id)
        elif purchase.contact.email:
            customer.email_hash = email_hash(purchase.contact.email)
        state = planning.CustomerState(
            last_invited_at=customer.last_invited_at,
            last_responded_at=customer.last_responded_at,
            unsubscribed=customer.unsubscribed_at is not None,
            erased=customer.erased_at is not None,
        )
        decision = planning.decide(purchase, state, rules, now)
        invitation = _invitation_event(purchase, invitation_id, decision, now)
        session.add(
            InvitationRow(
                invitation_id=invitation_id,
                customer_id=purchase.customer_id,
                order_id=purchase.order_id,
                survey_kind=invitation.survey_kind.value,
                status=decision.status.value,
                reason=decision.reason.value if decision.reason else None,
                send_at=decision.send_at,
                previous_invited_at=customer.last_invited_at,
                context=json.loads(invitation.model_dump_json(include=_CONTEXT_FIELDS)),
                created_at=now,
                updated_at=now,
            )
        )
        if decision.status == InvitationStatus.SCHEDULED:
            customer.last_invited_at = decision.send_at
        customer.updated_at = now
        self._record(session, invitation)
        return invitation

    def _cancel_for(self, session: Session, purchase: Purchase, now: datetime) -> Invitation | None:
        invitation_id = invitation_id_for(purchase.order_id)
        reason = planning.cancellation_reason(purchase)
        row = session.get(InvitationRow, invitation_id)
        if row is None:
            # The refund overtook its purchase: remember, so the purchase is not surveyed.
            invitation = Invitation(
                event_id=derived_id(purchase.event_id, "invitation-cancelled"),
                occurred_at=now,
                invitation_id=invitation_id,
                customer_id=purchase.customer_id,
                status=InvitationStatus.CANCELLED,
                reason=reason.value,
                order_id=purchase.order_id,
            )
            session.add(
                InvitationRow(
                    invitation_id=invitation_id,
                    customer_id=purchase.customer_id,
                    order_id=purchase.order_id,
                    survey_kind=invitation.survey_kind.value,
                    status=InvitationStatus.CANCELLED.value,
                    reason=reason.value,
                    context={},
                    created_at=now,
                    updated_at=now,
                )
            )
            self._record(session, invitation)
            return invitation
        send_at = row.send_at
        if row.status != InvitationStatus.SCHEDULED.value or send_at is None or send_at <= now:
            return None
        return self._cancel(
            session, row, reason.value, derived_id(purchase.event_id, "cancel"), now
        )

    def _cancel(
        self, session: Session, row: InvitationRow, reason: str, cancel_id: Any, now: datetime
    ) -> Invitation:
        row.status = InvitationStatus.CANCELLED.value
        row.reason = reason
        row.updated_at = now
        customer = session.get(CustomerRow, row.customer_id)
        if customer is not None and customer.last_invited_at == row.send_at:
            # The customer was never asked: the fatigue window starts from the invitation before.
            customer.last_invited_at = row.previous_invited_at
            customer.updated_at = now
        invitation = Invitation(
            event_id=cancel_id,
            occurred_at=now,
            invitation_id=row.invitation_id,
            customer_id=row.customer_id,
            status=InvitationStatus.CANCELLED,
            reason=reason,
            send_at=row.send_at,
            order_id=row.order_id,
        )
        self._record(session, invitation)
        return invitation

    def _record(self, session: Session, invitation: Invitation) -> None:
        """The decision's history row and its event in the journal, in the same transaction."""
        inserted = insert_ignore(
            session,
            DecisionRow.__table__,
            {
                "event_id": str(invitation.event_id),
                "customer_id": invitation.customer_id,
                "invitation_id": invitation.invitation_id,
                "order_id": invitation.order_id,
                "status": invitation.status.value,
                "reason": invitation.reason,
                "send_at": invitation.send_at,
                "decided_at": invitation.occurred_at,
            },
            keys=["event_id"],
        )
        if inserted:
            self._journal(
                session,
                Inbound(INVITATIONS, invitation.customer_id, invitation.customer_id, invitation),
                invitation.occurred_at,
            )

    def record_sent(self, invitation: Invitation, now: datetime) -> bool:
        """The notifier sent an invitation: part of the history; a later refund is too late."""
        if invitation.status != InvitationStatus.SENT:
            return False
        with self._sessions.begin() as session:
            row = session.get(InvitationRow, invitation.invitation_id)
            if row is not None and row.status == InvitationStatus.SCHEDULED.value:
                row.status = InvitationStatus.SENT.value
                row.updated_at = now
            return insert_ignore(
                session,
                DecisionRow.__table__,
                {
                    "event_id": str(invitation.event_id),
                    "customer_id": invitation.customer_id,
                    "invitation_id": invitation.invitation_id,
                    "order_id": invitation.order_id,
                    "status": InvitationStatus.SENT.value,
                    "reason": None,
                    "send_at": invitation.send_at,
                    "decided_at": invitation.occurred_at.astimezone(UTC),
                },
                keys=["event_id"],
            )

    # --- what customers tell us ---------------------------------------------------------

    def record_responses(self, responses: Iterable[tuple[str, datetime]], now: datetime) -> None:
        """Each customer's latest answer, for the contact rules: one transaction for a batch
        of (customer id, responded at), in any order (only the latest of each counts)."""
        latest: dict[str, datetime] = {}
        for customer_id, responded_at in responses:
            if customer_id not in latest or responded_at > latest[customer_id]:
                latest[customer_id] = responded_at
        if not latest:
            return
        with self._sessions.begin() as session:
            upsert_many(
                session,
                CustomerRow.__table__,
                [
                    {
                        "customer_id": customer_id,
                        "last_responded_at": latest[customer_id].astimezone(UTC),
                        "updated_at": now,
                    }
                    for customer_id in sorted(latest)
                ],
                ["customer_id"],
                only_if=_answered_later,
            )

    def apply_preference(self, preference: ContactPreference, now: datetime) -> list[Invitation]:
        """Unsubscribe, resubscribe or erase; returns the scheduled invitations it cancelled."""
        with self._sessions.begin() as session:
            customer = self._customer(session, preference.customer_id, now)
            customer.updated_at = now
            if preference.action == "resubscribed":
                customer.unsubscribed_at = None
                return []
            if preference.action == "unsubscribed":
                customer.unsubscribed_at = customer.unsubscribed_at or preference.occurred_at
            else:
                customer.erased_at = customer.erased_at or preference.occurred_at
                customer.email_hash = None
                self._erase_personal_data(session, preference.customer_id)
            scheduled = session.execute(
                select(InvitationRow).where(
                    InvitationRow.customer_id == preference.customer_id,
                    InvitationRow.status == InvitationStatus.SCHEDULED.value,
                )
            ).scalars()
            return [
                self._cancel(
                    session,
                    row,
                    preference.action,
                    derived_id(preference.event_id, f"cancel:{row.invitation_id}"),
                    now,
                )
                for row in scheduled
                if (row.send_at or now) > now
            ]

    def _erase_personal_data(self, session: Session, customer_id: str) -> None:
        for row in session.execute(
            select(InvitationRow).where(InvitationRow.customer_id == customer_id)
        ).scalars():
            row.context = {**row.context, "contact": {}}
        for entry in session.execute(
            select(JournalRow).where(JournalRow.customer_id == customer_id)
        ).scalars():
            entry.value = _without_contact(entry.value)

    def customers_with_email(self, email: str) -> list[str]:
        with self._sessions() as session:
            return list(
                session.execute(
                    select(CustomerRow.customer_id).where(
                        CustomerRow.email_hash == email_hash(email)
                    )
                ).scalars()
            )

    def history(self, customer_id: str) -> list[DecisionRecord]:
        with self._sessions() as session:
            rows = session.execute(
                select(DecisionRow)
                .where(DecisionRow.customer_id == customer_id)
                .order_by(DecisionRow.decided_at, DecisionRow.id)
            ).scalars()
            return [
                DecisionRecord(
                    decided_at=row.decided_at,
                    invitation_id=row.invitation_id,
                    order_id=row.order_id,
                    status=row.status,
                    reason=row.reason,
                    send_at=row.send_at,
                )
                for row in rows
            ]

    def invitation_context(self, invitation_id: str) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.get(InvitationRow, invitation_id)
            return None if row is None else dict(row.context)


def _unpublished(session: Session) -> int:
    return int(session.execute(_UNPUBLISHED).scalar_one())


def _answered_later(proposed: Any) -> Any:
    """A customer's answer replaces the one remembered only when it is later."""
    last = CustomerRow.__table__.c.last_responded_at
    return last.is_(None) | (proposed.last_responded_at > last)


# The journal's statements, built once (see shared.db on why): the count runs on every POST,
# the relay's for every few events accepted.
_JOURNAL = cast(Table, JournalRow.__table__)
_UNPUBLISHED = select(func.count()).select_from(_JOURNAL).where(_JOURNAL.c.published_at.is_(None))
_CLAIMABLE = (
    select(_JOURNAL.c.id, _JOURNAL.c.topic, _JOURNAL.c.key, _JOURNAL.c.value)
    .where(
        _JOURNAL.c.published_at.is_(None),
        _JOURNAL.c.lease_until.is_(None) | (_JOURNAL.c.lease_until < bindparam("now")),
    )
    .order_by(_JOURNAL.c.id)
    .limit(bindparam("limit"))
)
_LEASE = (
    update(_JOURNAL)
    .where(_JOURNAL.c.id == bindparam("entry_id"))
    .values(lease_until=bindparam("until"))
)
_PUBLISHED = (
    update(_JOURNAL)
    .where(_JOURNAL.c.id == bindparam("entry_id"))
    .values(published_at=bindparam("now"), lease_until=None)
)
_RELEASE = update(_JOURNAL).where(_JOURNAL.c.id == bindparam("entry_id")).values(lease_until=None)


# The order's context, frozen into the invitation when it is decided.
_CONTEXT_FIELDS = {
    "order_id",
    "amount",
    "currency",
    "products",
    "segment",
    "locale",
    "contact",
    "experience",
    "purchased_at",
}


def _invitation_event(
    purchase: Purchase, invitation_id: str, decision: planning.Decision, now: datetime
) -> Invitation:
    return Invitation(
        event_id=derived_id(purchase.event_id, f"invitation:{decision.status}"),
        occurred_at=now,
        invitation_id=invitation_id,
        customer_id=purchase.customer_id,
        status=decision.status,
        reason=decision.reason.value if decision.reason else None,
        send_at=decision.send_at,
        order_id=purchase.order_id,
        amount=purchase.amount,
        currency=purchase.currency,
        products=purchase.products,
        segment=purchase.segment,
        locale=purchase.locale,
        contact=purchase.contact,
        experience=purchase.experience,
        purchased_at=purchase.purchased_at,
    )


def _without_contact(value: bytes) -> bytes:
    try:
        document = json.loads(value)
    except ValueError:
        return value
    if isinstance(document, dict) and "contact" in document:
        document["contact"] = {}
    return json.dumps(document).encode()
