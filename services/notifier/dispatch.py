"""The notifier's service layer: plan, write to the outbox, then send; retry what failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

from services.notifier.adapters import DeliveryFailed, Outbox, Sender
from services.notifier.domain import Channel, DeliveryKind, LoopConfig, plan
from shared.events import ClassifiedResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryMetrics:
    deliveries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        deliveries = Counter(
            "npsloop_deliveries_total",
            "Delivery attempts by channel, kind and outcome (sent, retry, failed, duplicate).",
            ["channel", "kind", "outcome"],
            registry=registry,
        )
        for channel in Channel:
            for kind in DeliveryKind:
                for outcome in ("sent", "retry", "failed", "duplicate"):
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
    ) -> None:
        self.outbox = outbox
        self.senders = senders
        self.config = config
        self.metrics = metrics
        self.attempt_timeout = attempt_timeout_seconds
        self.retry_max = retry_max_seconds
        self.clock = clock

    async def handle(self, classified: ClassifiedResponse) -> None:
        for delivery in plan(classified, self.config):
            added = await asyncio.to_thread(self.outbox.add, delivery, self.clock())
            if not added:
                self.metrics.deliveries.labels(
                    delivery.channel.value, delivery.kind.value, "duplicate"
                ).inc()
                continue
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

    async def _retry_later(
        self, key: str, error: str, attempts: int, retry_after: float | None
    ) -> None:
        backoff = min(2.0 ** max(attempts - 1, 0), self.retry_max)
        wait = max(backoff, retry_after or 0.0)
        log.warning("delivery will be retried in %.1fs: %s", wait, error)
        await asyncio.to_thread(
            self.outbox.mark_retry, key, error, self.clock() + timedelta(seconds=wait)
        )
