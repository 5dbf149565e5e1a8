"""The notifier's adapters: the delivery outbox (SQLAlchemy) and the senders
(Slack, SendGrid, a local file)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Email, Header, Mail, To
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import JSON, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.notifier.domain import Channel, Delivery
from shared.db import Base, UtcDateTime, insert_ignore

PENDING, SENT, FAILED, CANCELLED = "pending", "sent", "failed", "cancelled"


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


class SuppressionRow(Base):
    __tablename__ = "notifier_suppressions"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
    since: Mapped[datetime] = mapped_column(UtcDateTime)


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


class Outbox(Protocol):
    """The idempotency ledger: every delivery is written here before it is sent."""

    def add(self, delivery: Delivery, now: datetime) -> bool:
        """Record a delivery as pending; False when its key is already recorded."""

    def claim(self, key: str, now: datetime, lease_until: datetime) -> OutboxEntry | None:
        """Take a pending, due delivery for one attempt (None when sent, failed or being tried)."""

    def mark_sent(self, key: str, provider_ref: str, now: datetime) -> None: ...

    def mark_retry(self, key: str, error: str, next_attempt_at: datetime) -> None: ...

    def mark_failed(self, key: str, error: str) -> None: ...

    def cancel(self, key: str, reason: str) -> bool:
        """Cancel a delivery not sent yet; True when one was pending."""

    def keys_about(self, kind: str, subject_id: str) -> list[str]:
        """The keys of the deliveries of a kind about a response or invitation."""

    def due(self, now: datetime, limit: int) -> list[str]:
        """Keys of pending deliveries whose next attempt is due."""

    def suppress(self, customer_id: str, reason: str, now: datetime, erase: bool) -> int:
        """Stop every email to a customer, cancelling what is pending (and, erasing, their
        personal data in the outbox); returns how many deliveries were cancelled."""

    def unsuppress(self, customer_id: str) -> None: ...

    def is_suppressed(self, customer_id: str) -> bool: ...

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (pending, sent, failed, cancelled)."""


class SqlOutbox:
    """The outbox in the notifier's database; the unique key is the last line of defence."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, delivery: Delivery, now: datetime) -> bool:
        with self._sessions.begin() as session:
            return insert_ignore(
                session,
                DeliveryRow.__table__,
                {
                    "idempotency_key": delivery.idempotency_key,
                    "channel": delivery.channel.value,
                    "kind": delivery.kind.value,
                    "recipient": delivery.recipient,
                    "response_id": delivery.subject_id,
                    "customer_id": delivery.customer_id,
                    "payload": delivery.payload,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": delivery.send_at or now,
                    "created_at": now,
                    "origin_at": delivery.origin_at,
                },
                keys=["idempotency_key"],
            )

    def claim(self, key: str, now: datetime, lease_until: datetime) -> OutboxEntry | None:
        with self._sessions.begin() as session:
            # One conditional UPDATE: of two workers trying the same row, one wins.
            claimed = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.idempotency_key == key,
                    DeliveryRow.status == PENDING,
                    DeliveryRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease_until, attempts=DeliveryRow.attempts + 1)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            row = session.execute(
                select(DeliveryRow).where(DeliveryRow.idempotency_key == key)
            ).scalar_one()
            return OutboxEntry(
                idempotency_key=row.idempotency_key,
                channel=Channel(row.channel),
                kind=row.kind,
                recipient=row.recipient,
                payload=dict(row.payload),
                attempts=row.attempts,
                origin_at=row.origin_at,
            )

    def mark_sent(self, key: str, provider_ref: str, now: datetime) -> None:
        self._set(key, status=SENT, sent_at=now, provider_ref=provider_ref[:200], last_error=None)

    def mark_retry(self, key: str, error: str, next_attempt_at: datetime) -> None:
        self._set(key, next_attempt_at=next_attempt_at, last_error=error[:2000])

    def mark_failed(self, key: str, error: str) -> None:
        self._set(key, status=FAILED, last_error=error[:2000])

    def keys_about(self, kind: str, subject_id: str) -> list[str]:
        with self._sessions() as session:
            return list(
                session.execute(
                    select(DeliveryRow.idempotency_key).where(
                        DeliveryRow.kind == kind, DeliveryRow.response_id == subject_id
                    )
                ).scalars()
            )

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

    def unsuppress(self, customer_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(SuppressionRow).where(SuppressionRow.customer_id == customer_id))

    def is_suppressed(self, customer_id: str) -> bool:
        with self._sessions() as session:
            return session.get(SuppressionRow, customer_id) is not None

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


class DeliveryFailed(Exception):
    """A provider did not take a message. ``permanent`` ones are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after = retry_after


class Sender(Protocol):
    """Sends one outbox entry; returns the provider's reference or raises DeliveryFailed."""

    async def send(self, entry: OutboxEntry) -> str: ...


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class SlackSender:
    """chat.postMessage with the real slack-sdk async client."""

    def __init__(self, token: str, base_url: str, timeout_seconds: float) -> None:
        # base_url ends in "/": the setting guarantees it (slack-sdk joins method names on).
        self._client = AsyncWebClient(
            token=token, base_url=base_url, timeout=int(max(timeout_seconds, 1))
        )

    async def send(self, entry: OutboxEntry) -> str:
        payload = dict(entry.payload)
        fallback = payload.pop("fallback_channel", None)
        try:
            try:
                response = await self._client.chat_postMessage(**payload)
            except SlackApiError as exc:
                # A routed channel (#store-aarhus-c) may not exist: the rule's fallback does.
                if fallback and exc.response.get("error") == "channel_not_found":
                    response = await self._client.chat_postMessage(
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {type(exc).__name__}: {exc}") from exc
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
