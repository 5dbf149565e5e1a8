"""The notifier's service layer: plan, write to the outbox, then send; retry what failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

from services.notifier.adapters import DeliveryFailed, Outbox, OutboxEntry, Sender
from services.notifier.domain import (
    Channel,
    Delivery,
    DeliveryKind,
    LoopConfig,
    plan,
    plan_invitation,
)
from shared.events import ClassifiedResponse, ContactPreference, Invitation, InvitationStatus
from shared.links import SurveyLinks

SentHook = Callable[[OutboxEntry, str], Awaitable[None]]
LinkMaker = Callable[[Invitation], SurveyLinks]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryMetrics:
    deliveries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        deliveries = Counter(
            "npsloop_deliveries_total",
            "Deliveries by channel, kind and outcome "
            "(sent, retry, failed, duplicate, cancelled, suppressed).",
            ["channel", "kind", "outcome"],
            registry=registry,
        )
        for channel in Channel:
            for kind in DeliveryKind:
                for outcome in ("sent", "retry", "failed", "duplicate", "cancelled", "suppressed"):
                    deliveries.labels(channel.value, kind.value, outcome)
        return cls(deliveries)


class Dispatcher:
    """Sends each planned delivery at most once per idempotency key, retrying until it lands."""

    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[Channel, Sender],
        config: LoopConfig,
        metrics: DeliveryMetrics,
        *,
        attempt_timeout_seconds: float = 10.0,
        retry_max_seconds: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        links: LinkMaker | None = None,
        on_sent: SentHook | None = None,
    ) -> None:
        self.outbox = outbox
        self.links = links
        self.on_sent = on_sent
        self.senders = senders
        self.config = config
        self.metrics = metrics
        self.attempt_timeout = attempt_timeout_seconds
        self.retry_max = retry_max_seconds
        self.clock = clock

    async def handle(self, classified: ClassifiedResponse) -> None:
        for delivery in plan(classified, self.config):
            await self._deliver(delivery)

    async def handle_invitation(self, invitation: Invitation) -> None:
        """A scheduled invitation waits in the outbox for its send time; a cancelled one is
        taken out if it has not gone yet."""
        if invitation.status == InvitationStatus.CANCELLED:
            await self._cancel_invitation(invitation)
            return
        if invitation.status != InvitationStatus.SCHEDULED or self.links is None:
            return
        delivery = plan_invitation(invitation, self.config, self.links(invitation))
        if delivery is not None:
            await self._deliver(delivery)

    async def handle_preference(self, preference: ContactPreference) -> None:
        if preference.action == "resubscribed":
            await asyncio.to_thread(self.outbox.unsuppress, preference.customer_id)
            return
        await asyncio.to_thread(
            self.outbox.suppress,
            preference.customer_id,
            preference.action,
            self.clock(),
            preference.action == "erased",
        )

    async def _cancel_invitation(self, invitation: Invitation) -> None:
        # A cancellation carries no address: the outbox finds the email by what it is about.
        keys = await asyncio.to_thread(
            self.outbox.keys_about, DeliveryKind.INVITATION.value, invitation.invitation_id
        )
        for key in keys:
            if await asyncio.to_thread(self.outbox.cancel, key, invitation.reason or "cancelled"):
                self.metrics.deliveries.labels(
                    Channel.EMAIL.value, DeliveryKind.INVITATION.value, "cancelled"
                ).inc()

    async def _deliver(self, delivery: Delivery) -> None:
        labels = (delivery.channel.value, delivery.kind.value)
        if delivery.channel == Channel.EMAIL and delivery.customer_id is not None:
            suppressed = await asyncio.to_thread(self.outbox.is_suppressed, delivery.customer_id)
            if suppressed:
                self.metrics.deliveries.labels(*labels, "suppressed").inc()
                return
        added = await asyncio.to_thread(self.outbox.add, delivery, self.clock())
        if not added:
            self.metrics.deliveries.labels(*labels, "duplicate").inc()
            return
        if delivery.send_at is None or delivery.send_at <= self.clock():
            await self.attempt(delivery.idempotency_key)

    async def retry_due(self, limit: int = 100) -> int:
        """Attempt the pending deliveries whose time has come; returns how many were due."""
        keys = await asyncio.to_thread(self.outbox.due, self.clock(), limit)
        for key in keys:
            await self.attempt(key)
        return len(keys)

    async def attempt(self, key: str) -> None:
        now = self.clock()
        # The lease keeps other attempts (the retry timer, another worker) off this delivery
        # for as long as one attempt may take.
        lease_until = now + timedelta(seconds=self.attempt_timeout * 3)
        entry = await asyncio.to_thread(self.outbox.claim, key, now, lease_until)
        if entry is None:
            return
        sender = self.senders[entry.channel]
        labels = (entry.channel.value, entry.kind)
        try:
            async with asyncio.timeout(self.attempt_timeout * 2):
                provider_ref = await sender.send(entry)
        except DeliveryFailed as exc:
            if exc.permanent:
                log.error("delivery %s failed for good: %s", entry.kind, exc)
                await asyncio.to_thread(self.outbox.mark_failed, key, str(exc))
                self.metrics.deliveries.labels(*labels, "failed").inc()
                return
            await self._retry_later(key, str(exc), entry.attempts, exc.retry_after)
            self.metrics.deliveries.labels(*labels, "retry").inc()
            return
        except TimeoutError:
            await self._retry_later(
                key, "the provider did not answer in time", entry.attempts, None
            )
            self.metrics.deliveries.labels(*labels, "retry").inc()
            return
        await asyncio.to_thread(self.outbox.mark_sent, key, provider_ref, self.clock())
        self.metrics.deliveries.labels(*labels, "sent").inc()
        if self.on_sent is not None:
            await self.on_sent(entry, provider_ref)

    async def _retry_later(
        self, key: str, error: str, attempts: int, retry_after: float | None
    ) -> None:
        backoff = min(2.0 ** max(attempts - 1, 0), self.retry_max)
        wait = max(backoff, retry_after or 0.0)
        log.warning("delivery will be retried in %.1fs: %s", wait, error)
        await asyncio.to_thread(
            self.outbox.mark_retry, key, error, self.clock() + timedelta(seconds=wait)
        )
