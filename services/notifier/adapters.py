"""The notifier's adapters: the delivery outbox (SQLAlchemy) and the senders
(Slack, SendGrid, a local file)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import urllib.error
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, cast

import aiohttp
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Email, Header, Mail, To
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import JSON, Integer, String, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.notifier.bursts import FALLBACK_CHANNEL, SUMMARY_LINE, can_join_a_summary
from services.notifier.domain import Channel, Delivery, DeliveryKind
from shared.db import Base, UtcDateTime, insert_ignore, inserted_keys
from shared.events import Contact

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, CANCELLED = "pending", "sent", "failed", "cancelled"
# What last_error says while an attempt is under way: found by the next attempt, it means
# the worker died mid-call, so the provider may or may not have the message.
IN_FLIGHT = "in flight: the attempt did not finish"
NO_ANSWER = "the provider did not answer in time"
# The provider could not be asked whether an earlier attempt delivered: still unknown.
STILL_UNKNOWN = "an earlier attempt may have delivered"
# It was asked, and the message is not where that attempt would have posted it: known now.
NOT_FOUND = "not where an earlier attempt would have posted it; waiting for the channel"
# The longest one attempt at a delivery takes, in timeouts of one call: the dispatcher cuts
# it short then, so a message it posted has a ts within that much of its start.
ATTEMPT_TIMEOUTS = 5
# A Slack channel's turn is a row of the outbox too, so that every worker sees it (and no
# migration was needed): next_attempt_at is when the turn ends, attempts counts the takes (a
# transaction that takes a turn ending at once for several posts counts one).
TURN, CHANNEL_TURN = "turn", "channel_turn"


class DeliveryRow(Base):
    __tablename__ = "notifier_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    # What the delivery is about: a response id, or an invitation id for an invitation.
    response_id: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(String(2000))
    origin_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the attempt began that may have delivered (or, once it is known, the latest one):
    # the window of the channel's history a look for it reads.
    attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SuppressionRow(Base):
    __tablename__ = "notifier_suppressions"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
    since: Mapped[datetime] = mapped_column(UtcDateTime)


# The statements of an alert's way through the outbox, built once: building a statement
# costs several times what the database takes to run it (docs/PERFORMANCE.md).
_DELIVERIES = cast(Table, DeliveryRow.__table__)
_BY_KEY = _DELIVERIES.c.idempotency_key == bindparam("key")
_KEYS_ABOUT = select(_DELIVERIES.c.idempotency_key).where(
    _DELIVERIES.c.kind == bindparam("kind"), _DELIVERIES.c.response_id == bindparam("subject_id")
)
_LAST_ATTEMPT = select(_DELIVERIES.c.last_error, _DELIVERIES.c.attempted_at).where(_BY_KEY)
_ROW = select(_DELIVERIES).where(_BY_KEY)
_CLAIM = (
    update(_DELIVERIES)
    .where(
        _BY_KEY,
        _DELIVERIES.c.status == PENDING,
        _DELIVERIES.c.next_attempt_at <= bindparam("now"),
    )
    .values(
        next_attempt_at=bindparam("lease_until"),
        attempts=_DELIVERIES.c.attempts + 1,
        last_error=IN_FLIGHT,
        attempted_at=bindparam("began"),
    )
)
_TAKE_TURN = (
    update(_DELIVERIES)
    .where(_BY_KEY, _DELIVERIES.c.next_attempt_at <= bindparam("now"))
    .values(
        next_attempt_at=bindparam("until"),
        sent_at=bindparam("now"),
        attempts=_DELIVERIES.c.attempts + 1,
    )
)
# Deliveries' first attempts: nothing came before them, and nothing holds them (a claim
# counts an attempt until the attempt ends or gives it back), so they need no look and no
# wait, and any number are claimed in one statement.
_CLAIM_FIRSTS = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.idempotency_key.in_(bindparam("keys", expanding=True)),
        _DELIVERIES.c.status == PENDING,
        _DELIVERIES.c.attempts == 0,
    )
    .values(
        next_attempt_at=bindparam("lease_until"),
        attempts=1,
        last_error=IN_FLIGHT,
        attempted_at=bindparam("began"),
    )
    .returning(*_DELIVERIES.c)
)
# A claim given back: executed with many rows, for the claims a transaction found busy.
_RELEASE = (
    update(_DELIVERIES)
    .where(_BY_KEY, _DELIVERIES.c.status == PENDING)
    .values(
        next_attempt_at=bindparam("next_attempt_at"),
        attempts=_DELIVERIES.c.attempts - 1,
        last_error=bindparam("previous_error"),
    )
)
_BEGAN = update(_DELIVERIES).where(_BY_KEY).values(attempted_at=bindparam("now"))
_TURN_ENDS = select(_DELIVERIES.c.next_attempt_at).where(_BY_KEY)
_WAITING = (
    select(_DELIVERIES.c.idempotency_key, _DELIVERIES.c.last_error)
    .where(
        _DELIVERIES.c.channel == Channel.SLACK.value,
        _DELIVERIES.c.kind == bindparam("kind"),
        _DELIVERIES.c.recipient == bindparam("recipient"),
        _DELIVERIES.c.status == PENDING,
        _DELIVERIES.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(_DELIVERIES.c.id)
    .limit(bindparam("limit"))
    # A row another transaction holds (claimed in the same transaction as its channel's
    # turn is taken) is passed over, never waited for: a worker holding a turn waits for
    # no delivery, so none can deadlock with it.
    .with_for_update(skip_locked=True)
)
_MARK_SENT = (
    update(_DELIVERIES)
    .where(_BY_KEY)
    .values(
        status=SENT,
        # Not the columns' own names: those are SQLAlchemy's for an UPDATE's values.
        sent_at=bindparam("at"),
        provider_ref=bindparam("ref"),
        last_error=None,
    )
)
# One delivery marked: the content it holds now comes back with it (a redraw stored while
# the message was on its way is there).
_MARK_ONE_SENT = _MARK_SENT.returning(_DELIVERIES.c.payload)
_PAYLOADS = select(_DELIVERIES.c.idempotency_key, _DELIVERIES.c.payload).where(
    _DELIVERIES.c.idempotency_key.in_(bindparam("keys", expanding=True))
)
_PAYLOAD = select(_DELIVERIES.c.status, _DELIVERIES.c.payload).where(_BY_KEY)
_SUPPRESSED = select(SuppressionRow.__table__.c.customer_id).where(
    SuppressionRow.__table__.c.customer_id == bindparam("customer_id")
)
# A batch's intake (enqueue_many): what is known about all its deliveries, a statement each.
_KINDS_ABOUT = select(_DELIVERIES.c.kind, _DELIVERIES.c.response_id).where(
    _DELIVERIES.c.response_id.in_(bindparam("subjects", expanding=True)),
    _DELIVERIES.c.kind.in_(bindparam("kinds", expanding=True)),
)
_SUPPRESSED_AMONG = select(SuppressionRow.__table__.c.customer_id).where(
    SuppressionRow.__table__.c.customer_id.in_(bindparam("customer_ids", expanding=True))
)


@dataclass(frozen=True)
class OutboxEntry:
    """A delivery as the outbox holds it, ready for a sender."""

    idempotency_key: str
    channel: Channel
    kind: str
    recipient: str
    payload: dict[str, Any]
    attempts: int
    origin_at: datetime | None = None
    # What the delivery is about: the response id (or invitation id).
    subject_id: str = ""
    created_at: datetime | None = None
    # How the attempt before this one ended (None: this is the first, or it was retried).
    previous_error: str | None = None
    # When the attempt began that may have delivered it (when ``outcome_unknown``).
    attempted_at: datetime | None = None

    @property
    def outcome_unknown(self) -> bool:
        """The attempt before may have delivered: it died mid-call or got no answer."""
        return self.attempts > 1 and may_have_delivered(self.previous_error)


def may_have_delivered(last_error: str | None) -> bool:
    """Whether the attempt that left this error may have delivered all the same."""
    previous = last_error or ""
    return previous == IN_FLIGHT or previous.startswith((NO_ANSWER, STILL_UNKNOWN))


@dataclass(frozen=True)
class Pacing:
    """How an attempt at a Slack delivery shares its channel: it takes the channel's turn
    until ``turn_until``; an alert takes along, for a summary, the alerts waiting for the
    channel when at least ``burst_minimum`` wait (at most ``burst_limit`` of them)."""

    turn_until: datetime
    burst_minimum: int
    burst_limit: int


@dataclass(frozen=True)
class ClaimAsk:
    """What one attempt asks of ``claim_paced_many``: ``claim_paced``'s arguments."""

    key: str
    now: datetime
    lease_until: datetime
    pacing: Pacing
    first: bool = False


@dataclass(frozen=True)
class Claim:
    """A delivery claimed for one attempt."""

    entry: OutboxEntry
    # Whether the attempt holds the Slack channel's turn already (never for email, nor when
    # the attempt before may have delivered: that is looked for first, then paced).
    paced: bool = False
    # The alerts waiting for the channel, claimed too, to go with this one in a summary.
    waiting: tuple[OutboxEntry, ...] = ()


@dataclass(frozen=True)
class Busy:
    """The Slack channel's turn was someone else's until ``until``: the delivery was not
    tried, and waits, pending, until then (the claim did not count as an attempt)."""

    until: datetime


class Enqueued(StrEnum):
    """What writing a delivery to the outbox came to."""

    ADDED = "added"
    # A delivery of its kind about its subject was there already (only asked for some).
    EARLIER = "earlier"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Sent:
    """A delivery that went out: where the provider has it, and when."""

    key: str
    provider_ref: str
    at: datetime


@dataclass(frozen=True)
class Intake:
    """A delivery written to the outbox, and the claim of its first attempt if it is due."""

    outcome: Enqueued
    claim: Claim | Busy | None = None


class Outbox(Protocol):
    """The idempotency ledger: every delivery is written here before it is sent."""

    def add(self, delivery: Delivery, now: datetime) -> bool:
        """Record a delivery as pending; False when its key is already recorded."""

    def claim(self, key: str, now: datetime, lease_until: datetime) -> OutboxEntry | None:
        """Take a pending, due delivery for one attempt (None when sent, failed or being tried)."""

    def mark_sent_many(self, sent: Sequence[Sent]) -> list[dict[str, Any] | None]:
        """Mark deliveries sent, each with its own reference; each one's payload as stored
        now (None when there is no such key), in order."""

    def mark_all_sent(self, keys: Sequence[str], provider_ref: str, now: datetime) -> None:
        """Mark deliveries sent together, in one message (a burst summary)."""

    def mark_retry(
        self, key: str, error: str, next_attempt_at: datetime, counted: bool = True
    ) -> None:
        """Leave a delivery pending until ``next_attempt_at``; not ``counted``: the attempt
        does not count towards the limit (it only looked, and the look failed)."""

    def release(self, key: str, next_attempt_at: datetime, previous_error: str | None) -> None:
        """Give back a claimed delivery that was not tried after all, due again at
        ``next_attempt_at``; the claim does not count as an attempt, and the delivery keeps
        what its last real attempt said."""

    def take_turn(self, recipient: str, now: datetime, until: datetime) -> datetime | None:
        """Take the Slack channel's turn to post, until ``until``; None when taken, else
        when the turn that holds the channel ends."""

    def hold_turn(self, recipient: str, until: datetime) -> None:
        """Keep the Slack channel's turn from anyone until ``until`` (a 429's Retry-After)."""

    def claim_waiting(
        self,
        kind: str,
        recipient: str,
        now: datetime,
        lease_until: datetime,
        minimum: int,
        limit: int,
    ) -> list[OutboxEntry]:
        """Claim, like ``claim``, the due Slack deliveries of a kind to a channel, oldest
        first, up to ``limit``; none unless at least ``minimum`` are due. A delivery whose
        last attempt may have delivered is left to ``claim``, which looks for it first."""

    def pace(
        self, entry: OutboxEntry, now: datetime, lease_until: datetime, pacing: Pacing
    ) -> tuple[OutboxEntry, ...] | Busy:
        """For a claimed Slack delivery, in one transaction: ``take_turn`` and, for an alert
        that can join a summary, ``claim_waiting`` (the alerts that go with it). Busy when
        the channel is: the delivery is ``release``d until the turn ends."""

    def claim_paced(
        self, key: str, now: datetime, lease_until: datetime, pacing: Pacing, first: bool = False
    ) -> Claim | Busy | None:
        """``claim`` and, for a Slack delivery whose last attempt cannot have delivered,
        ``pace``, in one transaction; None when not claimed. ``first``: the first attempt of
        a delivery ``enqueue`` held for its caller, claimed unless another attempt came
        first (whenever it is due)."""

    def claim_paced_many(self, asks: Sequence[ClaimAsk]) -> list[Claim | Busy | None]:
        """``claim_paced`` for each ask, in one transaction, as if one after another; a
        result for each, in order."""

    def enqueue(
        self,
        delivery: Delivery,
        now: datetime,
        lease_until: datetime,
        pacing: Pacing,
        first_of_kind: bool = False,
        claim: bool = True,
    ) -> Intake:
        """In one transaction: unless ``first_of_kind`` finds a delivery of its kind about
        its subject (``keys_about``) or the customer stopped emails (``is_suppressed``),
        ``add`` the delivery, then, if it is due and ``claim`` asks, ``claim_paced`` its
        first attempt."""

    def enqueue_many(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        lease_until: datetime,
        once_per_subject: Collection[DeliveryKind] = (),
    ) -> list[Enqueued]:
        """``enqueue`` of each delivery in turn (claimed by no one, ``first_of_kind`` for the
        kinds ``once_per_subject``), in one transaction and a few statements for them all:
        each is taken or refused as it would have been one after another."""

    def mark_failed(self, key: str, error: str) -> None: ...

    def cancel(self, key: str, reason: str) -> bool:
        """Cancel a delivery not sent yet; True when one was pending."""

    def keys_about(self, kind: str, subject_id: str) -> list[str]:
        """The keys of the deliveries of a kind about a response or invitation."""

    def invitation_contact(self, invitation_id: str) -> Contact | None:
        """Whom an invitation was emailed to (None: not by this notifier, or erased since)."""

    def due(self, now: datetime, limit: int) -> list[str]:
        """Keys of pending deliveries whose next attempt is due."""

    def payload_of(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The status and payload of a delivery (None when unknown)."""

    def replace_payload(self, key: str, payload: dict[str, Any]) -> bool:
        """Give a delivery not sent yet new content; True when it was pending."""

    def suppress(self, customer_id: str, reason: str, now: datetime, erase: bool) -> int:
        """Stop every email to a customer, cancelling what is pending (and, erasing, their
        personal data in the outbox); returns how many deliveries were cancelled."""

    def unsuppress(self, customer_id: str) -> None: ...

    def erase_about(self, subject_id: str) -> None:
        """Scrub the payloads of the deliveries already sent about a response (the copies
        of an erased customer's alert); pending ones are redrawn by their sender."""

    def is_suppressed(self, customer_id: str) -> bool: ...

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (pending, sent, failed, cancelled)."""


class SqlOutbox:
    """The outbox in the notifier's database; the unique key is the last line of defence."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, delivery: Delivery, now: datetime) -> bool:
        with self._sessions.begin() as session:
            return _add(session, delivery, now)

    def claim(self, key: str, now: datetime, lease_until: datetime) -> OutboxEntry | None:
        with self._sessions.begin() as session:
            return _claim(session, key, now, lease_until)

    def pace(
        self, entry: OutboxEntry, now: datetime, lease_until: datetime, pacing: Pacing
    ) -> tuple[OutboxEntry, ...] | Busy:
        with self._sessions.begin() as session, _Turns(session) as turns:
            return _pace(session, entry, now, lease_until, pacing, turns)

    def claim_paced(
        self, key: str, now: datetime, lease_until: datetime, pacing: Pacing, first: bool = False
    ) -> Claim | Busy | None:
        [claimed] = self.claim_paced_many([ClaimAsk(key, now, lease_until, pacing, first)])
        return claimed

    def claim_paced_many(self, asks: Sequence[ClaimAsk]) -> list[Claim | Busy | None]:
        """The first attempts among the asks claimed in one statement, and each channel's
        turn taken, or found busy, once for all of them that it answers (``_Turns``): a
        handful of statements for a group commit's claims rather than two or more each.
        Once each was the round trips that bounded the notifier on PostgreSQL.

        A delivery's first attempt is asked for once (its retries any number of times): a
        second ask would find it claimed, even when the first was given back meanwhile.
        tests/unit/test_claims_together.py checks the claims against asking one by one."""
        # A first attempt is claimed ahead with the others unless a retry of its delivery
        # was asked for before it (then it is claimed in its place, after the retry). Ahead
        # of the asks before it changes nothing: its delivery is held for it, not due, so no
        # retry or burst look could take it, unless the hold has ended (the attempt came
        # late); then it is this attempt's rather than a look's, once either way.
        retried: set[str] = set()
        ahead: set[int] = set()
        for place, ask in enumerate(asks):
            if not ask.first:
                retried.add(ask.key)
            elif ask.key not in retried:
                ahead.add(place)
        with self._sessions.begin() as session, _Turns(session) as turns:
            claimed = _claim_firsts(session, [asks[place] for place in sorted(ahead)])
            results: list[Claim | Busy | None] = []
            for place, ask in enumerate(asks):
                if not ask.first:
                    entry = _claim(session, ask.key, ask.now, ask.lease_until)
                elif place in ahead:
                    # Popped: of two asks for one first attempt, only the first claims it.
                    entry = claimed.pop(ask.key, None)
                else:
                    entry = _claim_firsts(session, [ask]).get(ask.key)
                results.append(None if entry is None else _paced(session, entry, ask, turns))
            return results

    def enqueue(
        self,
        delivery: Delivery,
        now: datetime,
        lease_until: datetime,
        pacing: Pacing,
        first_of_kind: bool = False,
        claim: bool = True,
    ) -> Intake:
        once = (delivery.kind,) if first_of_kind else ()
        # Due, and claimed by the caller's first attempt later (not here): held for that
        # attempt until the lease ends (then the retry timer takes it), so the timer does not
        # race it.
        hold = None if claim else lease_until
        with self._sessions.begin() as session:
            [outcome] = _enqueue(session, [delivery], now, hold, once)
            due = delivery.send_at is None or delivery.send_at <= now
            if outcome != Enqueued.ADDED or not claim or not due:
                return Intake(outcome)
            ask = ClaimAsk(delivery.idempotency_key, now, lease_until, pacing, first=True)
            entry = _claim_firsts(session, [ask]).get(ask.key)
            if entry is None:
                return Intake(Enqueued.ADDED)
            with _Turns(session) as turns:
                return Intake(Enqueued.ADDED, _paced(session, entry, ask, turns))

    def enqueue_many(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        lease_until: datetime,
        once_per_subject: Collection[DeliveryKind] = (),
    ) -> list[Enqueued]:
        with self._sessions.begin() as session:
            return _enqueue(session, deliveries, now, lease_until, once_per_subject)

    def claim_waiting(
        self,
        kind: str,
        recipient: str,
        now: datetime,
        lease_until: datetime,
        minimum: int,
        limit: int,
    ) -> list[OutboxEntry]:
        with self._sessions.begin() as session:
            return _claim_waiting(session, kind, recipient, now, lease_until, minimum, limit)

    def mark_sent(self, key: str, provider_ref: str, now: datetime) -> dict[str, Any] | None:
        [payload] = self.mark_sent_many([Sent(key, provider_ref, now)])
        return payload

    def mark_sent_many(self, sent: Sequence[Sent]) -> list[dict[str, Any] | None]:
        marks = [{"key": s.key, "at": s.at, "ref": s.provider_ref[:200]} for s in sent]
        with self._sessions.begin() as session:
            if len(marks) == 1:
                payload = session.execute(_MARK_ONE_SENT, marks[0]).scalar_one_or_none()
                return [None if payload is None else dict(payload)]
            # Many: two statements for them all, the marks executed with many rows, then one
            # read (an UPDATE's RETURNING is not there for executemany on every driver).
            session.execute(_MARK_SENT, marks)
            keys = list({s.key for s in sent})
            stored = {key: payload for key, payload in session.execute(_PAYLOADS, {"keys": keys})}
        return [None if (p := stored.get(s.key)) is None else dict(p) for s in sent]

    def mark_all_sent(self, keys: Sequence[str], provider_ref: str, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.idempotency_key.in_(list(keys)))
                .values(status=SENT, sent_at=now, provider_ref=provider_ref[:200], last_error=None)
            )

    def mark_retry(
        self, key: str, error: str, next_attempt_at: datetime, counted: bool = True
    ) -> None:
        # Not counted: the claim that began the attempt is taken back, as release does.
        uncount = {} if counted else {"attempts": DeliveryRow.attempts - 1}
        self._set(key, next_attempt_at=next_attempt_at, last_error=error[:2000], **uncount)

    def release(self, key: str, next_attempt_at: datetime, previous_error: str | None) -> None:
        with self._sessions.begin() as session:
            _release(session, key, next_attempt_at, previous_error)

    def take_turn(self, recipient: str, now: datetime, until: datetime) -> datetime | None:
        with self._sessions.begin() as session:
            return _take_turn(session, recipient, now, until)

    def hold_turn(self, recipient: str, until: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.idempotency_key == _turn_key(recipient),
                    DeliveryRow.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )

    def mark_failed(self, key: str, error: str) -> None:
        self._set(key, status=FAILED, last_error=error[:2000])

    def keys_about(self, kind: str, subject_id: str) -> list[str]:
        with self._sessions() as session:
            return _keys_about(session, kind, subject_id)

    def payload_of(self, key: str) -> tuple[str, dict[str, Any]] | None:
        with self._sessions() as session:
            row = session.execute(_PAYLOAD, {"key": key}).first()
            return None if row is None else (row[0], dict(row[1]))

    def replace_payload(self, key: str, payload: dict[str, Any]) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.idempotency_key == key, DeliveryRow.status == PENDING)
                .values(payload=payload)
            )
            return bool(getattr(result, "rowcount", 0))

    def invitation_contact(self, invitation_id: str) -> Contact | None:
        with self._sessions() as session:
            payload = session.execute(
                select(DeliveryRow.payload).where(
                    DeliveryRow.kind == DeliveryKind.INVITATION.value,
                    DeliveryRow.response_id == invitation_id,
                )
            ).scalar()
        if not payload or not payload.get("to_email"):
            return None
        return Contact(email=payload["to_email"], name=payload.get("to_name"))

    def cancel(self, key: str, reason: str) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.idempotency_key == key, DeliveryRow.status == PENDING)
                .values(status=CANCELLED, last_error=reason[:2000])
            )
            return bool(getattr(result, "rowcount", 0))

    def suppress(self, customer_id: str, reason: str, now: datetime, erase: bool) -> int:
        with self._sessions.begin() as session:
            insert_ignore(
                session,
                SuppressionRow.__table__,
                {"customer_id": customer_id, "reason": reason, "since": now},
                keys=["customer_id"],
            )
            cancelled = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.customer_id == customer_id,
                    DeliveryRow.channel == Channel.EMAIL.value,
                    DeliveryRow.status == PENDING,
                )
                .values(status=CANCELLED, last_error=reason)
            )
            if erase:
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.customer_id == customer_id)
                    .values(payload={"erased": True}, recipient="erased")
                )
            return int(getattr(cancelled, "rowcount", 0))

    def erase_about(self, subject_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.response_id == subject_id, DeliveryRow.status != PENDING)
                .values(payload={"erased": True})
            )

    def unsuppress(self, customer_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(SuppressionRow).where(SuppressionRow.customer_id == customer_id))

    def is_suppressed(self, customer_id: str) -> bool:
        with self._sessions() as session:
            return _suppressed(session, customer_id)

    def counts(self) -> dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ).all()
            return {status: int(count) for status, count in rows}

    def due(self, now: datetime, limit: int) -> list[str]:
        with self._sessions() as session:
            return list(
                session.execute(
                    select(DeliveryRow.idempotency_key)
                    .where(DeliveryRow.status == PENDING, DeliveryRow.next_attempt_at <= now)
                    .order_by(DeliveryRow.next_attempt_at)
                    .limit(limit)
                ).scalars()
            )

    def _set(self, key: str, **values: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(DeliveryRow).where(DeliveryRow.idempotency_key == key).values(**values)
            )


def _turn_key(recipient: str) -> str:
    return f"{CHANNEL_TURN}:{Channel.SLACK.value}:{recipient}"


def _enqueue(
    session: Session,
    deliveries: Sequence[Delivery],
    now: datetime,
    hold_until: datetime | None,
    once_per_subject: Collection[DeliveryKind],
) -> list[Enqueued]:
    """Each delivery added, in turn, unless it is a kind sent once about its subject and one
    is there already, its customer stopped emails, or its key is taken; with a few
    statements for them all. One due now is held until ``hold_until`` (when given) for the
    caller's first attempt."""
    once = {kind.value for kind in once_per_subject}
    subjects = sorted({d.subject_id for d in deliveries if d.kind.value in once})
    known: set[tuple[str, str]] = set()
    if subjects:
        about = {"subjects": subjects, "kinds": sorted(once)}
        known = {(kind, subject) for kind, subject in session.execute(_KINDS_ABOUT, about)}
    customers = sorted(
        {d.customer_id for d in deliveries if d.channel == Channel.EMAIL and d.customer_id}
    )
    suppressed: set[str] = set()
    if customers:
        among = {"customer_ids": customers}
        suppressed = set(session.execute(_SUPPRESSED_AMONG, among).scalars())
    # What each would have found, one after another: an earlier one of its kind about its
    # subject (there already, or added before it here), its customer's emails stopped, or
    # its key taken before it here. The rest are inserted; those whose key the database
    # had already are duplicates.
    outcomes: list[Enqueued | None] = []
    rows: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        about_it = (delivery.kind.value, delivery.subject_id)
        if delivery.kind.value in once and about_it in known:
            outcomes.append(Enqueued.EARLIER)
        elif delivery.channel == Channel.EMAIL and delivery.customer_id in suppressed:
            outcomes.append(Enqueued.SUPPRESSED)
        elif delivery.idempotency_key in rows:
            outcomes.append(Enqueued.DUPLICATE)
        else:
            due = delivery.send_at is None or delivery.send_at <= now
            held_until = hold_until if due else None
            rows[delivery.idempotency_key] = _row_of(delivery, now, held_until)
            known.add(about_it)
            outcomes.append(None)
    # In the order of their keys: two workers' intakes lock rows in the same order.
    added = inserted_keys(
        session, _DELIVERIES, [rows[key] for key in sorted(rows)], ["idempotency_key"]
    )
    return [
        outcome
        if outcome is not None
        else Enqueued.ADDED
        if (delivery.idempotency_key,) in added
        else Enqueued.DUPLICATE
        for delivery, outcome in zip(deliveries, outcomes, strict=True)
    ]


def _add(
    session: Session, delivery: Delivery, now: datetime, held_until: datetime | None = None
) -> bool:
    row = _row_of(delivery, now, held_until)
    return insert_ignore(session, DeliveryRow.__table__, row, keys=["idempotency_key"])


def _row_of(
    delivery: Delivery, now: datetime, held_until: datetime | None = None
) -> dict[str, Any]:
    return {
        "idempotency_key": delivery.idempotency_key,
        "channel": delivery.channel.value,
        "kind": delivery.kind.value,
        "recipient": delivery.recipient,
        "response_id": delivery.subject_id,
        "customer_id": delivery.customer_id,
        "payload": delivery.payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": held_until or delivery.send_at or now,
        "created_at": now,
        "origin_at": delivery.origin_at,
    }


def _suppressed(session: Session, customer_id: str) -> bool:
    return session.execute(_SUPPRESSED, {"customer_id": customer_id}).first() is not None


def _keys_about(session: Session, kind: str, subject_id: str) -> list[str]:
    return list(session.execute(_KEYS_ABOUT, {"kind": kind, "subject_id": subject_id}).scalars())


def _claim_firsts(session: Session, asks: Sequence[ClaimAsk]) -> dict[str, OutboxEntry]:
    """The first attempts of deliveries, each claimed whenever it is due unless an attempt
    came before it (see _CLAIM_FIRSTS): the claimed ones, by key.

    One statement, so one lease and one start for all: the earliest asked. None of their
    attempts has begun before it, and a lease a few milliseconds short only lets the
    retry timer in that much sooner should the attempt die."""
    if not asks:
        return {}
    claimed = {
        "keys": [ask.key for ask in asks],
        "lease_until": min(ask.lease_until for ask in asks),
        "began": min(ask.now for ask in asks),
    }
    return {row.idempotency_key: _entry(row) for row in session.execute(_CLAIM_FIRSTS, claimed)}


def _claim(session: Session, key: str, now: datetime, lease_until: datetime) -> OutboxEntry | None:
    """Claim a pending, due delivery."""
    previous_error, began = None, now
    last = session.execute(_LAST_ATTEMPT, {"key": key}).first()
    if last is not None:
        previous_error = last.last_error
        if may_have_delivered(previous_error) and last.attempted_at is not None:
            # Looked for where that attempt may have posted: its time is kept until the
            # look has settled it.
            began = last.attempted_at
    if not _claim_row(session, key, now, lease_until, began):
        return None
    return _entry(session.execute(_ROW, {"key": key}).one(), previous_error)


@dataclass
class _Turns:
    """What one transaction has learnt of Slack channels' turns, so that its later claims
    need not ask the database again. Each answer is the one asking again would give:

    - a turn it took that ends at once (no interval between posts) is its own until it
      commits (the row is locked, or on SQLite the database), so taking it again succeeds;
    - a turn it took with an interval, or found taken, stays busy until its end: only its
      holder's 429 could move that end, and only later;
    - a channel whose burst look found too few alerts waiting finds as few again (alerts
      that became due in the milliseconds between are found by the next look).

    The claims it found busy are given back together, as the block using it ends (``with
    _Turns(session) as turns``): none of them is due before the turn ends, so no later claim
    in the transaction could take one.
    """

    session: Session
    instant: set[str] = field(default_factory=set)
    busy: dict[str, datetime] = field(default_factory=dict)
    no_burst: set[str] = field(default_factory=set)
    given_back: list[dict[str, Any]] = field(default_factory=list)

    def __enter__(self) -> _Turns:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # Raised: the transaction is rolled back, the claims with it.
        if kind is None and self.given_back:
            self.session.execute(_RELEASE, self.given_back)

    def take(self, recipient: str, now: datetime, until: datetime) -> datetime | None:
        """``_take_turn``, unless what this transaction knows answers it."""
        busy_until = self.busy.get(recipient)
        if busy_until is not None and busy_until > now:
            return busy_until
        if recipient in self.instant and until <= now:
            return None
        busy_until = _take_turn(self.session, recipient, now, until)
        self.instant.discard(recipient)
        if busy_until is not None:
            self.busy[recipient] = busy_until
        elif until > now:
            self.busy[recipient] = until
        else:
            self.instant.add(recipient)
        return busy_until

    def give_back(self, key: str, busy_until: datetime, previous_error: str | None) -> None:
        self.given_back.append(_released(key, busy_until, previous_error))


def _paced(session: Session, entry: OutboxEntry, ask: ClaimAsk, turns: _Turns) -> Claim | Busy:
    """A claimed delivery's claim, paced when it is a Slack one that no attempt before it
    may have delivered (one that may have is looked for first, then paced)."""
    if entry.channel != Channel.SLACK or entry.outcome_unknown:
        return Claim(entry)
    waiting = _pace(session, entry, ask.now, ask.lease_until, ask.pacing, turns)
    return waiting if isinstance(waiting, Busy) else Claim(entry, paced=True, waiting=waiting)


def _pace(
    session: Session,
    entry: OutboxEntry,
    now: datetime,
    lease_until: datetime,
    pacing: Pacing,
    turns: _Turns,
) -> tuple[OutboxEntry, ...] | Busy:
    busy_until = turns.take(entry.recipient, now, pacing.turn_until)
    if busy_until is not None:
        # The delivery waits, pending, for the end of the turn that holds the channel. One
        # whose earlier attempt was looked for and not found need not be looked for again:
        # at 20,000 responses, alerts looked, found their channel busy and looked again,
        # until one of the looks failed, and the backlog drained at 1 alert a second.
        previous_error = NOT_FOUND if entry.outcome_unknown else entry.previous_error
        turns.give_back(entry.idempotency_key, busy_until, previous_error)
        return Busy(busy_until)
    if entry.outcome_unknown:
        # The look found nothing, and this attempt sends: its own time is what a look
        # after it must read around.
        session.execute(_BEGAN, {"key": entry.idempotency_key, "now": now})
    if (
        entry.kind != DeliveryKind.ALERT.value
        or not can_join_a_summary(entry.payload)
        # No burst can form: as many as it takes would be more than a summary holds.
        or pacing.burst_minimum > pacing.burst_limit
        or entry.recipient in turns.no_burst
    ):
        return ()
    waiting = _claim_waiting(
        session,
        DeliveryKind.ALERT.value,
        entry.recipient,
        now,
        lease_until,
        pacing.burst_minimum,
        pacing.burst_limit,
    )
    if not waiting:
        turns.no_burst.add(entry.recipient)
    return tuple(waiting)


def _release(
    session: Session, key: str, next_attempt_at: datetime, previous_error: str | None
) -> None:
    session.execute(_RELEASE, _released(key, next_attempt_at, previous_error))


def _released(key: str, next_attempt_at: datetime, previous_error: str | None) -> dict[str, Any]:
    """_RELEASE's values for one claim given back."""
    return {"key": key, "next_attempt_at": next_attempt_at, "previous_error": previous_error}


def _take_turn(session: Session, recipient: str, now: datetime, until: datetime) -> datetime | None:
    """None when this transaction took the channel's turn (until ``until``), else when the
    turn that holds the channel ends."""
    key = _turn_key(recipient)
    # The same conditional UPDATE as a claim: of two workers, one gets the turn.
    turn = {"key": key, "now": now, "until": until}
    if getattr(session.execute(_TAKE_TURN, turn), "rowcount", 0) == 1:
        return None
    busy_until: datetime | None = session.execute(_TURN_ENDS, {"key": key}).scalar_one_or_none()
    if busy_until is not None:
        return busy_until
    # The channel's first turn: its row is written once, then taken like any other.
    insert_ignore(
        session,
        DeliveryRow.__table__,
        {
            "idempotency_key": key,
            "channel": Channel.SLACK.value,
            "kind": CHANNEL_TURN,
            "recipient": recipient,
            "response_id": recipient,
            "payload": {},
            "status": TURN,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
        keys=["idempotency_key"],
    )
    if getattr(session.execute(_TAKE_TURN, turn), "rowcount", 0) == 1:
        return None
    # Never empty: this function alone writes the row, with a time.
    return session.execute(_TURN_ENDS, {"key": key}).scalar_one() or until


def _claim_waiting(
    session: Session,
    kind: str,
    recipient: str,
    now: datetime,
    lease_until: datetime,
    minimum: int,
    limit: int,
) -> list[OutboxEntry]:
    waiting = {"kind": kind, "recipient": recipient, "now": now, "limit": limit}
    keys = [
        key
        for key, last_error in session.execute(_WAITING, waiting).all()
        if not may_have_delivered(last_error)
    ]
    if len(keys) < minimum:
        return []
    claimed = []
    # Row by row with claim's condition, so a row another worker took meanwhile is skipped,
    # never shared; in key order, so two workers cannot deadlock.
    for key in sorted(keys):
        if _claim_row(session, key, now, lease_until, now):
            claimed.append(key)
    rows = session.execute(
        select(DeliveryRow).where(DeliveryRow.idempotency_key.in_(claimed)).order_by(DeliveryRow.id)
    ).scalars()
    return [_entry(row) for row in rows]


def _claim_row(
    session: Session, key: str, now: datetime, lease_until: datetime, began: datetime
) -> bool:
    """One conditional UPDATE: of two workers trying the same pending, due row, one wins; the
    row says it is in flight until the attempt records how it ended, and when the attempt
    that may deliver it began."""
    values = {"key": key, "now": now, "lease_until": lease_until, "began": began}
    claimed = session.execute(_CLAIM, values)
    return getattr(claimed, "rowcount", 0) == 1


def _entry(row: Any, previous_error: str | None = None) -> OutboxEntry:
    """From a DeliveryRow, or a row of its table's columns."""
    return OutboxEntry(
        idempotency_key=row.idempotency_key,
        channel=Channel(row.channel),
        kind=row.kind,
        recipient=row.recipient,
        payload=dict(row.payload),
        attempts=row.attempts,
        origin_at=row.origin_at,
        subject_id=row.response_id,
        created_at=row.created_at,
        previous_error=previous_error,
        attempted_at=row.attempted_at,
    )


class DeliveryFailed(Exception):
    """A provider did not take a message. ``permanent`` ones are not retried."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        maybe_delivered: bool = False,
    ):
        # A call that got no answer may have delivered all the same: said first in the
        # reason, which the outbox keeps, so the next attempt looks before it sends.
        super().__init__(f"{NO_ANSWER}: {reason}" if maybe_delivered else reason)
        self.permanent = permanent
        self.retry_after = retry_after


class Sender(Protocol):
    """Sends one outbox entry; returns the provider's reference or raises DeliveryFailed."""

    async def send(self, entry: OutboxEntry) -> str: ...

    async def find(self, entry: OutboxEntry) -> str | None:
        """The provider's reference of this entry if an earlier attempt delivered it after
        all (None: not delivered, or the provider cannot tell)."""


METADATA_EVENT = "npsloop_delivery"
_SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")


def message_metadata(key: str, carried: Sequence[str] = ()) -> dict[str, Any]:
    """Slack message metadata naming the delivery (and, for a summary, every alert in it)."""
    payload: dict[str, Any] = {"key": key}
    if carried:
        payload["keys"] = list(carried)
    return {"event_type": METADATA_EVENT, "event_payload": payload}


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class LevelInEffect(logging.Logger):
    """A stand-in for one of slack-sdk's loggers whose ``level`` is the level in effect.

    slack-sdk formats each call's debug lines (the request with its payload, the answer)
    whenever ``logger.level <= DEBUG``, and a logger left at NOTSET has level 0: at any
    level configured above it, every post formatted lines nobody logs, a tenth of the
    client's CPU a post (bench/slack_client.py). What is logged goes to the logger it
    stands for, so that logger's handlers and level still decide.
    """

    def __init__(self, stands_for: logging.Logger) -> None:
        super().__init__(stands_for.name)
        self.parent = stands_for

    @property
    def level(self) -> int:
        return self.parent.getEffectiveLevel() if self.parent else logging.WARNING

    @level.setter
    def level(self, _value: int) -> None:
        # Logger.__init__ sets it; the level is always the one in effect above.
        pass

    def isEnabledFor(self, level: int) -> bool:
        # Not cached: the worker configures its level after this is made.
        return self.parent.isEnabledFor(level) if self.parent else level >= logging.WARNING


class SlackSender:
    """chat.postMessage with the real slack-sdk async client.

    Every message carries its idempotency key in Slack's message metadata, so when an
    attempt's outcome is unknown (the worker died mid-call, Slack did not answer in time)
    the next one first looks in the channel's history: a message already there is not
    posted again. This needs the channels:history scope; without it, the retry posts.
    """

    # A look reads the channel's history from a little before the attempt that may have
    # posted began (the clocks of Slack and the worker may differ) to a while after it could
    # have lasted (Slack may take a request in after the client gave up on it).
    LOOK_BEFORE = timedelta(seconds=10)
    LOOK_AFTER = timedelta(seconds=20)
    # For a delivery recorded before attempts kept their time: from this long before that.
    LOOKBACK = timedelta(minutes=2)
    HISTORY_PAGES = 5

    def __init__(self, token: str, base_url: str, timeout_seconds: float) -> None:
        self._attempt_lasts = timedelta(seconds=timeout_seconds * ATTEMPT_TIMEOUTS)
        self._timeout = int(max(timeout_seconds, 1))
        # base_url ends in "/": the setting guarantees it (slack-sdk joins method names on).
        self._slack = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=self._timeout,
            logger=LevelInEffect(logging.getLogger("slack_sdk.web.async_base_client")),
        )
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._channel_ids: dict[str, str] = {}

    def _client(self) -> AsyncWebClient:
        # Without a session of its own, slack-sdk opens one, and a new connection, for every
        # call. One session per event loop keeps connections alive; made lazily, as aiohttp
        # binds a session to the loop it is made in.
        loop = asyncio.get_running_loop()
        session = self._slack.session
        if session is None or session.closed or self._session_loop is not loop:
            self._slack.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self._session_loop = loop
        return self._slack

    async def close(self) -> None:
        """Close the kept-alive connections (a call after this opens a session again)."""
        session = self._slack.session
        if session is not None and self._session_loop is asyncio.get_running_loop():
            await session.close()

    async def find(self, entry: OutboxEntry) -> str | None:
        if "ts" in entry.payload or entry.created_at is None:
            # An update changes a message in place: doing it twice shows the same thing.
            return None
        oldest, latest = self._window(entry, entry.created_at)
        channels = [entry.payload.get("channel"), entry.payload.get("fallback_channel")]
        try:
            for name in [c for c in channels if isinstance(c, str) and c]:
                channel_id = await self._channel_id(name)
                if channel_id is None:
                    continue
                ts = await self._posted(channel_id, oldest, latest, entry.idempotency_key)
                if ts is not None and ts.startswith("summary:"):
                    return f"summary:{channel_id}:{ts.removeprefix('summary:')}"
                if ts is not None:
                    return f"{channel_id}:{ts}"
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429 or status >= 500:
                raise DeliveryFailed(
                    f"Slack answered {status} while looking for an earlier attempt",
                    retry_after=_retry_after(exc.response.headers.get("Retry-After")),
                ) from exc
            # missing_scope, not_in_channel...: it cannot be known; posting again is the
            # lesser harm than never posting.
            log.warning("cannot look for an earlier attempt: %s", exc.response.get("error"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {type(exc).__name__}: {exc}") from exc
        return None

    def _window(self, entry: OutboxEntry, created_at: datetime) -> tuple[str, str | None]:
        """Slack's oldest and latest of the history where an earlier attempt's message is:
        around when that attempt began, not everything since the delivery was recorded (in
        a busy channel the message would be past the pages a look reads)."""
        if entry.attempted_at is None:
            return f"{(created_at - self.LOOKBACK).timestamp():.6f}", None
        oldest = entry.attempted_at - self.LOOK_BEFORE
        latest = entry.attempted_at + self._attempt_lasts + self.LOOK_AFTER
        return f"{oldest.timestamp():.6f}", f"{latest.timestamp():.6f}"

    async def _channel_id(self, channel: str) -> str | None:
        if _SLACK_CHANNEL_ID.match(channel):
            return channel
        if channel not in self._channel_ids:
            cursor = None
            for _ in range(20):
                page = await self._client().conversations_list(
                    cursor=cursor, limit=1000, types="public_channel,private_channel"
                )
                listed: list[dict[str, Any]] = page.get("channels", [])
                for found in listed:
                    self._channel_ids[f"#{found['name']}"] = found["id"]
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        return self._channel_ids.get(channel if channel.startswith("#") else f"#{channel}")

    async def _posted(
        self, channel_id: str, oldest: str, latest: str | None, key: str
    ) -> str | None:
        cursor = None
        for _ in range(self.HISTORY_PAGES):
            page = await self._client().conversations_history(
                channel=channel_id,
                oldest=oldest,
                latest=latest,
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            messages: list[dict[str, Any]] = page.get("messages", [])
            for message in messages:
                named = (message.get("metadata") or {}).get("event_payload") or {}
                if named.get("key") == key:
                    return str(message.get("ts"))
                if key in (named.get("keys") or ()):
                    # Posted as a line of a burst summary.
                    return f"summary:{message.get('ts')}"
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def send(self, entry: OutboxEntry) -> str:
        payload = dict(entry.payload)
        fallback = payload.pop(FALLBACK_CHANNEL, None)
        payload.pop(SUMMARY_LINE, None)
        try:
            if "ts" in payload:
                # An alert redrawn in place; link unfurling was settled when it was posted.
                payload.pop("unfurl_links", None)
                payload.pop("unfurl_media", None)
                response = await self._client().chat_update(**payload)
                return f"{response.get('channel', '')}:{response.get('ts', '')}"
            payload.setdefault("metadata", message_metadata(entry.idempotency_key))
            try:
                response = await self._client().chat_postMessage(**payload)
            except SlackApiError as exc:
                # A routed channel (#store-aarhus-c) may not exist: the rule's fallback does.
                if fallback and exc.response.get("error") == "channel_not_found":
                    response = await self._client().chat_postMessage(
                        **{**payload, "channel": fallback}
                    )
                else:
                    raise
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error", "unknown_error") if exc.response.data else "no body"
            transient = status == 429 or status >= 500
            raise DeliveryFailed(
                f"Slack answered {status}: {error}",
                permanent=not transient,
                retry_after=_retry_after(exc.response.headers.get("Retry-After")),
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise DeliveryFailed(f"Slack unreachable: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(
                f"Slack: {type(exc).__name__}: {exc}", maybe_delivered=True
            ) from exc
        return f"{response.get('channel', '')}:{response.get('ts', '')}"


class SendGridSender:
    """Mail send with the real sendgrid client, which is synchronous: run in a thread."""

    def __init__(
        self, api_key: str, base_url: str, from_email: str, from_name: str, timeout_seconds: float
    ) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=base_url.rstrip("/"))
        self._client.client.timeout = timeout_seconds
        self._from = Email(from_email, from_name)

    async def send(self, entry: OutboxEntry) -> str:
        return await asyncio.to_thread(self._send, entry)

    async def find(self, entry: OutboxEntry) -> str | None:
        # SendGrid cannot be asked whether a message was accepted (short of the paid Email
        # Activity API): an email whose attempt died mid-call may, rarely, go twice.
        return None

    def _send(self, entry: OutboxEntry) -> str:
        payload = entry.payload
        mail = Mail(
            from_email=self._from,
            to_emails=To(payload["to_email"], payload.get("to_name")),
            subject=payload["subject"],
            plain_text_content=payload["text"],
            html_content=payload["html"],
        )
        for name, value in (payload.get("headers") or {}).items():
            mail.header = Header(name, value)
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            status = exc.status_code
            transient = status == 429 or status >= 500
            raise DeliveryFailed(
                f"SendGrid answered {status}",
                permanent=not transient,
                retry_after=_retry_after((exc.headers or {}).get("Retry-After")),
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise DeliveryFailed(f"SendGrid unreachable: {type(exc).__name__}: {exc}") from exc
        message_id = response.headers.get("X-Message-Id", "") if response.headers else ""
        return str(message_id or response.status_code)


class LocalOutboxSender:
    """Without credentials, messages land in a JSON Lines file a person can read.

    `npsloop outbox` prints it; `npsloop up` shows each line as it arrives.
    """

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self._path = path

    async def find(self, entry: OutboxEntry) -> str | None:
        key = entry.idempotency_key
        if not entry.outcome_unknown:
            return None
        return await asyncio.to_thread(self._find, key)

    def _find(self, key: str) -> str | None:
        if not self._path.exists():
            return None
        with open(self._path, encoding="utf-8") as file:
            for line in file:
                if key in line and json.loads(line).get("idempotency_key") == key:
                    return f"local:{self._path.name}"
        return None

    async def send(self, entry: OutboxEntry) -> str:
        return await asyncio.to_thread(self._append, entry)

    def _append(self, entry: OutboxEntry) -> str:
        record = {
            "at": datetime.now(UTC).isoformat(),
            "channel": entry.channel.value,
            "kind": entry.kind,
            "recipient": entry.recipient,
            "idempotency_key": entry.idempotency_key,
            "payload": entry.payload,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(self._path, "a", encoding="utf-8") as file:
            file.write(line)
        return f"local:{self._path.name}"
