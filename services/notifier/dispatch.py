"""The notifier's service layer: plan, write to the outbox, then send; retry what failed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.notifier.adapters import DeliveryFailed, Outbox, OutboxEntry, Sender
from services.notifier.alerts import escalation_message
from services.notifier.case_store import SqlCases
from services.notifier.cases import Case
from services.notifier.domain import (
    Channel,
    Delivery,
    DeliveryKind,
    LoopConfig,
    plan,
    plan_digest,
    plan_invitation,
)
from services.notifier.rules import OpenCase, RuleSet, default_rules
from shared.events import (
    CaseAction,
    CaseEvent,
    ClassifiedResponse,
    ContactPreference,
    Digest,
    Invitation,
    InvitationStatus,
)
from shared.ids import derived_id
from shared.links import SurveyLinks

SentHook = Callable[[OutboxEntry, str], Awaitable[None]]
# Kinds a response gets at most one of, whichever channel its later versions route to.
ONCE_PER_RESPONSE = frozenset({DeliveryKind.ALERT, DeliveryKind.KUDOS})
CaseHook = Callable[[CaseEvent], Awaitable[None]]
LinkMaker = Callable[[Invitation], SurveyLinks]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryMetrics:
    deliveries: Counter
    latency: Histogram
    pending: Gauge
    dead: Gauge
    escalations: Counter

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
        latency = Histogram(
            "npsloop_delivery_latency_seconds",
            "From the response's submission (or an invitation's send time) to the provider "
            "accepting the message.",
            ["channel"],
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        for channel in Channel:
            latency.labels(channel.value)
        pending = Gauge(
            "npsloop_outbox_pending", "Deliveries waiting to be sent or retried.", registry=registry
        )
        dead = Gauge(
            "npsloop_outbox_dead",
            "Deliveries given up on (refused, or out of attempts): each is in the dlq.",
            registry=registry,
        )
        escalations = Counter(
            "npsloop_escalations_total",
            "Cases escalated because nobody claimed them within their SLA.",
            registry=registry,
        )
        return cls(deliveries, latency, pending, dead, escalations)


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
        on_dead: SentHook | None = None,
        max_attempts: int = 12,
        random: Random | None = None,
        rules: RuleSet | None = None,
        cases: SqlCases | None = None,
        on_case: CaseHook | None = None,
    ) -> None:
        self.rules = rules or default_rules(config.slack_channel)
        self.cases = cases
        self.on_case = on_case
        self.on_dead = on_dead
        self.max_attempts = max_attempts
        self.random = random or Random()
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
        routing = self.rules.evaluate(classified)
        if self.cases is not None:
            await asyncio.to_thread(
                self.cases.remember_alert,
                classified.response.response_id,
                classified.model_dump(mode="json"),
                self.clock(),
            )
            for action in routing.actions:
                if isinstance(action, OpenCase):
                    await self._open_case(classified, action)
        for delivery in plan(classified, self.config, routing.actions):
            if delivery.kind in ONCE_PER_RESPONSE:
                # A later version of a response (a comment added, a context that arrived
                # late) may route elsewhere: it never posts a second alert or kudos.
                earlier = await asyncio.to_thread(
                    self.outbox.keys_about, delivery.kind.value, delivery.subject_id
                )
                if earlier and delivery.idempotency_key not in earlier:
                    self.metrics.deliveries.labels(
                        delivery.channel.value, delivery.kind.value, "duplicate"
                    ).inc()
                    continue
            await self._deliver(delivery)

    async def _open_case(self, classified: ClassifiedResponse, action: OpenCase) -> None:
        assert self.cases is not None
        response = classified.response
        case = Case.open(
            response.response_id,
            response.customer_id,
            response.occurred_at,
            action.sla_hours,
            action.question,
        )
        segment = classified.context.segment if classified.context else response.segment
        opened = await asyncio.to_thread(
            self.cases.open, case, segment.model_dump(exclude_none=True), self.clock()
        )
        if opened and self.on_case is not None:
            await self.on_case(
                CaseEvent(
                    event_id=derived_id(response.event_id, "case-opened"),
                    occurred_at=case.opened_at,
                    case_id=case.case_id,
                    response_id=case.response_id,
                    action=CaseAction.OPENED,
                    note=action.question,
                )
            )

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

    async def escalate_due(self, limit: int = 100) -> int:
        """Escalate, once each, the cases nobody claimed within their SLA."""
        if self.cases is None:
            return 0
        now = self.clock()
        due = await asyncio.to_thread(self.cases.due_for_escalation, now, limit)
        for case in due:
            escalated = case.apply(CaseAction.ESCALATED, None, now)
            await asyncio.to_thread(self.cases.save, escalated, now)
            self.metrics.escalations.inc()
            if self.on_case is not None:
                await self.on_case(
                    CaseEvent(
                        event_id=derived_id(uuid.UUID(case.case_id), "escalated"),
                        occurred_at=now,
                        case_id=case.case_id,
                        response_id=case.response_id,
                        action=CaseAction.ESCALATED,
                        note=f"unclaimed past its SLA ({case.sla_due_at:%Y-%m-%d %H:%M} UTC)",
                    )
                )
            posted = await asyncio.to_thread(self.cases.alert, case.response_id)
            if posted is None:
                continue
            classified = ClassifiedResponse.model_validate(posted.classified)
            await self._deliver(
                Delivery(
                    kind=DeliveryKind.ESCALATION,
                    channel=Channel.SLACK,
                    recipient=self.config.escalation_channel,
                    subject_id=case.case_id,
                    payload=escalation_message(classified, self.config.escalation_channel, case),
                    origin_at=now,
                )
            )
        return len(due)

    async def handle_digest(self, digest: Digest) -> None:
        await self._deliver(plan_digest(digest, self.config.digest_channel))

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
        if preference.action == "erased" and self.cases is not None:
            await asyncio.to_thread(self.cases.forget_customer, preference.customer_id)

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
        try:
            async with asyncio.timeout(self.attempt_timeout * 2):
                provider_ref = await sender.send(entry)
        except DeliveryFailed as exc:
            await self._failed(entry, str(exc), exc.permanent, exc.retry_after)
            return
        except TimeoutError:
            await self._failed(entry, "the provider did not answer in time", False, None)
            return
        sent_at = self.clock()
        await asyncio.to_thread(self.outbox.mark_sent, key, provider_ref, sent_at)
        self.metrics.deliveries.labels(entry.channel.value, entry.kind, "sent").inc()
        if entry.origin_at is not None:
            latency = (sent_at - entry.origin_at).total_seconds()
            self.metrics.latency.labels(entry.channel.value).observe(max(latency, 0.0))
        if self.on_sent is not None:
            await self.on_sent(entry, provider_ref)

    async def _failed(
        self, entry: OutboxEntry, error: str, permanent: bool, retry_after: float | None
    ) -> None:
        """A permanent refusal, or the last attempt, makes the delivery dead (and a dead
        letter with its reason); anything else is tried again later."""
        key = entry.idempotency_key
        labels = (entry.channel.value, entry.kind)
        if permanent or entry.attempts >= self.max_attempts:
            reason = error if permanent else f"gave up after {entry.attempts} attempts: {error}"
            log.error("delivery %s is dead: %s", entry.kind, reason)
            await asyncio.to_thread(self.outbox.mark_failed, key, reason)
            self.metrics.deliveries.labels(*labels, "failed").inc()
            if self.on_dead is not None:
                await self.on_dead(entry, reason)
            return
        # Exponential backoff with jitter, so retries of a burst do not stampede together;
        # a Retry-After from the provider is a floor.
        backoff = min(2.0 ** max(entry.attempts - 1, 0), self.retry_max)
        wait = max(self.random.uniform(backoff / 2, backoff), retry_after or 0.0)
        log.warning("delivery will be retried in %.1fs: %s", wait, error)
        await asyncio.to_thread(
            self.outbox.mark_retry, key, error, self.clock() + timedelta(seconds=wait)
        )
        self.metrics.deliveries.labels(*labels, "retry").inc()

    async def refresh_gauges(self) -> None:
        counts = await asyncio.to_thread(self.outbox.counts)
        self.metrics.pending.set(counts.get("pending", 0))
        self.metrics.dead.set(counts.get("failed", 0))
