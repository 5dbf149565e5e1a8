"""The notifier's service layer: plan, write to the outbox, then send; retry what failed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import Counter as Counter_
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.notifier.adapters import (
    ATTEMPT_TIMEOUTS,
    NO_ANSWER,
    PENDING,
    SENT,
    STILL_UNKNOWN,
    Busy,
    Claim,
    ClaimAsk,
    DeliveryFailed,
    Enqueued,
    Outbox,
    OutboxEntry,
    Pacing,
    Sender,
    Sent,
    may_have_delivered,
    message_metadata,
)
from services.notifier.alerts import CaseView, alert_message, escalation_message
from services.notifier.bursts import BurstPolicy, can_join_a_summary, summary_of
from services.notifier.case_store import (
    Intake,
    Posted,
    SqlCases,
    StepOutcome,
    StepResult,
    Version,
)
from services.notifier.cases import Case
from services.notifier.domain import (
    Channel,
    Delivery,
    DeliveryKind,
    LoopConfig,
    plan,
    plan_alert_update,
    plan_digest,
    plan_invitation,
)
from services.notifier.review_store import ReviewLedger
from services.notifier.rules import OpenCase, RuleSet, default_rules
from shared.db import GroupCommit
from shared.events import (
    CaseAction,
    CaseEvent,
    ClassifiedResponse,
    ContactPreference,
    Digest,
    Invitation,
    InvitationStatus,
)
from shared.ids import case_id_for, derived_id
from shared.links import SurveyLinks

SentHook = Callable[[OutboxEntry, str], Awaitable[None]]
# Kinds a response gets at most one of, whichever channel its later versions route to.
ONCE_PER_RESPONSE = frozenset({DeliveryKind.ALERT, DeliveryKind.KUDOS})
CaseHook = Callable[[CaseEvent], Awaitable[None]]
LinkMaker = Callable[[Invitation], SurveyLinks]
CaseLinker = Callable[[Case], str]
# Steps staff take from the alert's buttons; opened and escalated happen in the notifier.
STAFF_STEPS = frozenset(
    {CaseAction.CLAIMED, CaseAction.CONTACTED, CaseAction.RESOLVED, CaseAction.REOPENED}
)

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTCOMES = (
    "sent",
    "coalesced",
    "retry",
    "failed",
    "duplicate",
    "cancelled",
    "suppressed",
    "found",
)
# An attempt's lease, in attempt timeouts: how long no other attempt may touch a delivery.
LEASE_TIMEOUTS = 3
# How a delivery sent as a line of a burst summary is referenced: "summary:<channel>:<ts>".
SUMMARY_REFERENCE = "summary:"
# Distinct values of one segment dimension the cases-open gauge shows before "other".
CASE_SEGMENT_VALUES = 20


@dataclass(frozen=True)
class DeliveryMetrics:
    deliveries: Counter
    latency: Histogram
    pending: Gauge
    dead: Gauge
    escalations: Counter
    case_steps: Counter
    time_to_claim: Histogram
    time_to_contact: Histogram
    cases_open: Gauge
    summaries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        deliveries = Counter(
            "npsloop_deliveries_total",
            "Deliveries by channel, kind and outcome (sent, coalesced into a burst summary, "
            "retry, failed, duplicate, cancelled, suppressed; found: an attempt that seemed "
            "lost had delivered, so it was not sent again).",
            ["channel", "kind", "outcome"],
            registry=registry,
        )
        for channel in Channel:
            for kind in DeliveryKind:
                for outcome in OUTCOMES:
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
        case_steps = Counter(
            "npsloop_case_steps_total",
            "Case steps from the alerts' buttons by action and outcome (applied, refused: did "
            "not fit the case's state, duplicate: already applied).",
            ["action", "outcome"],
            registry=registry,
        )
        for action in STAFF_STEPS:
            for outcome in StepOutcome:
                case_steps.labels(action.value, outcome.value)
        # Hours, not seconds, are the scale of an SLA: buckets from a minute to a week.
        case_buckets = (
            60,
            300,
            900,
            1800,
            3600,
            4 * 3600,
            8 * 3600,
            24 * 3600,
            48 * 3600,
            72 * 3600,
            7 * 24 * 3600,
        )
        time_to_claim = Histogram(
            "npsloop_case_time_to_claim_seconds",
            "From a case opening to someone claiming it.",
            buckets=case_buckets,
            registry=registry,
        )
        time_to_contact = Histogram(
            "npsloop_case_time_to_contact_seconds",
            "From a case opening to the customer being contacted.",
            buckets=case_buckets,
            registry=registry,
        )
        cases_open = Gauge(
            "npsloop_cases_open",
            "Cases not resolved, by state and by segment (one series per dimension and value; "
            f"past {CASE_SEGMENT_VALUES} values of a dimension the rest count as other).",
            ["state", "dimension", "value"],
            registry=registry,
        )
        summaries = Counter(
            "npsloop_alert_summaries_total",
            "Burst summaries posted to Slack, each instead of several alerts (counted in "
            "npsloop_deliveries_total as coalesced).",
            registry=registry,
        )
        return cls(
            deliveries,
            latency,
            pending,
            dead,
            escalations,
            case_steps,
            time_to_claim,
            time_to_contact,
            cases_open,
            summaries,
        )


@dataclass(frozen=True)
class Taken:
    """A classified response as its batch's transaction took it in."""

    classified: ClassifiedResponse
    # Not a redelivery of the version kept for the response's alert.
    new_version: bool
    # The case whose opened event is to be published (see case_store.Intake).
    to_announce: Case | None
    # Each planned delivery, and how the outbox took it.
    deliveries: list[tuple[Delivery, Enqueued]]


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
        max_attempts: int = 400,
        random: Random | None = None,
        rules: RuleSet | None = None,
        cases: SqlCases | None = None,
        on_case: CaseHook | None = None,
        case_links: CaseLinker | None = None,
        bursts: BurstPolicy | None = None,
        reviews: ReviewLedger | None = None,
        together: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        attempts_at_once: int = 16,
    ) -> None:
        # The hot path's writes (a batch's intake, case steps, each attempt's claim and
        # outcome) run on one thread and share commits, rather than each taking its turn on
        # the database's lock: 8 attempts at once then kept up with 200 alerts a second.
        # A group is one transaction (Sessions.together), so a batch's intake is never split
        # into one a store; without it, each store's writes are transactions of their own.
        self.writes = GroupCommit(together)
        self.attempts_at_once = attempts_at_once
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._attempts: set[asyncio.Future[None]] = set()
        self.case_links = case_links
        self.bursts = bursts or BurstPolicy()
        self.reviews = reviews
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
        """``handle_many`` of one response, returning once its deliveries were attempted."""
        await self.handle_many([classified])
        await self.settle()

    async def handle_many(self, batch: Sequence[ClassifiedResponse]) -> None:
        """Take a batch of classified responses in, in order, in one transaction: each one's
        version, case, review decision and deliveries. Their first attempts then start in
        the background, at most ``attempts_at_once`` at a time; this returns once they have
        started (and waits for a free slot before starting one).

        Everything a response asks for is in the outbox when this returns, so the events can
        be acked: should the worker die mid-attempt, the outbox attempts it again."""
        now = self.clock()
        taken = await self.writes.run(functools.partial(self._take_in_all, batch, now))
        for intake in taken:
            await self._act_on(intake)

    def _take_in_all(self, batch: Sequence[ClassifiedResponse], now: datetime) -> list[Taken]:
        """Each response's writes, as if one after another; in a thread, within the batch's
        transaction. A stretch of the batch in which no response comes twice is taken in
        with a few statements for each store (not a few a response): its responses touch
        none of each other's rows, so together they write what they would have in turn."""
        taken: list[Taken] = []
        for stretch in _distinct_stretches(batch, lambda c: c.response.response_id):
            taken.extend(self._take_in(stretch, now))
        return taken

    def _take_in(self, stretch: Sequence[ClassifiedResponse], now: datetime) -> list[Taken]:
        routings = [self.rules.evaluate(classified) for classified in stretch]
        # Without a case store there is no alert to redraw: a later version is a duplicate.
        intakes = [Intake(False, None, None)] * len(stretch)
        if self.cases is not None:
            versions = []
            for classified, routing in zip(stretch, routings, strict=True):
                opening = next((a for a in routing.actions if isinstance(a, OpenCase)), None)
                versions.append(
                    Version(
                        classified.response.response_id,
                        classified.model_dump(mode="json"),
                        None if opening is None else self._opening(classified, opening),
                    )
                )
            intakes = self.cases.take_in_many(versions, now)
        stretch = [self._with_invitation_contact(classified) for classified in stretch]
        if self.reviews is not None:
            self.reviews.record_many(
                [(c, routing.actions) for c, routing in zip(stretch, routings, strict=True)], now
            )
        plans = [
            plan(classified, self.config, routing.actions, now, self._view(intake.case))
            for classified, routing, intake in zip(stretch, routings, intakes, strict=True)
        ]
        # A later version of a response (a comment added, a context that arrived late) never
        # posts a second alert or kudos, wherever it routes: the alert already there is
        # redrawn in place instead. Each is claimed by its attempt, in a transaction of its
        # own: the batch's holds no channel's turn. The outbox holds it for that attempt.
        outcomes = iter(
            self.outbox.enqueue_many(
                [delivery for deliveries in plans for delivery in deliveries],
                now,
                self._lease_until(now),
                ONCE_PER_RESPONSE,
            )
        )
        return [
            Taken(
                classified,
                intake.new_version,
                intake.to_announce,
                [(delivery, next(outcomes)) for delivery in deliveries],
            )
            for classified, intake, deliveries in zip(stretch, intakes, plans, strict=True)
        ]

    async def _act_on(self, taken: Taken) -> None:
        """What follows a response's intake: its case announced, its deliveries attempted
        (or its alert redrawn, for a later version)."""
        if taken.to_announce is not None:
            await self._announce_opened(taken.to_announce)
        response_id = taken.classified.response.response_id
        for delivery, outcome in taken.deliveries:
            labels = (delivery.channel.value, delivery.kind.value)
            if outcome == Enqueued.EARLIER:
                if delivery.kind == DeliveryKind.ALERT and taken.new_version:
                    await self.refresh_alert(response_id, str(taken.classified.event_id))
                else:
                    self.metrics.deliveries.labels(*labels, "duplicate").inc()
            elif outcome in (Enqueued.SUPPRESSED, Enqueued.DUPLICATE):
                self.metrics.deliveries.labels(*labels, outcome.value).inc()
            elif delivery.send_at is None or delivery.send_at <= self.clock():
                # The outbox holds it for this attempt (claim=False above).
                await self._start(self.attempt(delivery.idempotency_key, first=True))

    async def _start(self, attempt: Awaitable[None]) -> asyncio.Future[None]:
        """Run an attempt in the background once a slot is free."""
        slots = self._slots_here()
        await slots.acquire()
        task = asyncio.ensure_future(self._within_bounds(attempt))
        self._attempts.add(task)
        task.add_done_callback(functools.partial(self._attempt_ended, slots))
        return task

    async def _within_bounds(self, attempt: Awaitable[None]) -> None:
        # Every call an attempt makes has a timeout of its own, yet should one wait for good
        # (a database lock), its slot must not go with it: the stream and the retry timer
        # wait for slots. Cut short, it is attempted again once its lease ends.
        async with asyncio.timeout(self.attempt_timeout * ATTEMPT_TIMEOUTS):
            await attempt

    def _slots_here(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop; a worker has one, a test may run several.
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.attempts_at_once))
        return self._slots[1]

    def _attempt_ended(self, slots: asyncio.Semaphore, task: asyncio.Future[None]) -> None:
        self._attempts.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            # The delivery stays claimed until its lease ends; then the retry timer attempts
            # it again (looking first whether this attempt delivered).
            log.error("an attempt failed: %r", task.exception())

    async def settle(self, grace: float | None = None) -> None:
        """Wait for the attempts under way; those still going after ``grace`` seconds are
        cancelled (their deliveries are attempted again once their leases end)."""
        pending = set(self._attempts)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    def _view(self, case: Case | None) -> CaseView | None:
        if case is None or self.case_links is None:
            return None
        return CaseView.of(case, self.case_links(case))

    async def handle_case_event(self, event: CaseEvent) -> None:
        """``handle_case_events`` of one event."""
        await self.handle_case_events([event])

    async def handle_case_events(self, batch: Sequence[CaseEvent]) -> None:
        """Case steps, each applied once, in order, in one transaction; then each applied
        staff step is shown on its alert in place: the steps of one response one after
        another, those of different responses side by side (``attempts_at_once`` at most).

        A step for a case that does not exist raises UnknownCase (a dead letter: the stream
        then takes the batch one event at a time); one that does not fit the case's state
        (claiming a resolved case) is refused and counted."""
        if self.cases is None:
            return
        apply = functools.partial(self.cases.apply_steps, batch, self.clock())
        results = await self.writes.run(apply)
        redraws: dict[str, list[CaseEvent]] = {}
        for event, result in zip(batch, results, strict=True):
            if self._counted_step(event, result):
                redraws.setdefault(event.response_id, []).append(event)
        if not redraws:
            return
        slots = asyncio.Semaphore(self.attempts_at_once)

        async def redraw(events: list[CaseEvent]) -> None:
            async with slots:
                for event in events:
                    await self.refresh_alert(event.response_id, str(event.event_id))

        await asyncio.gather(*(redraw(events) for events in redraws.values()))

    def _counted_step(self, event: CaseEvent, result: StepResult) -> bool:
        """Count a staff step's outcome; True when it was applied (its alert is redrawn)."""
        if event.action not in STAFF_STEPS:
            return False  # opened and escalated: history only, applied where they happened
        self.metrics.case_steps.labels(event.action.value, result.outcome.value).inc()
        if result.outcome == StepOutcome.REFUSED:
            log.info("case step refused: %s", result.reason)
        if result.outcome != StepOutcome.APPLIED:
            return False
        before, after = result.before, result.after
        if before.claimed_at is None and after.claimed_at is not None:
            self.metrics.time_to_claim.observe(
                max((after.claimed_at - after.opened_at).total_seconds(), 0.0)
            )
        if before.contacted_at is None and after.contacted_at is not None:
            self.metrics.time_to_contact.observe(
                max((after.contacted_at - after.opened_at).total_seconds(), 0.0)
            )
        return True

    async def refresh_alert(self, response_id: str, cause: str) -> None:
        """Redraw a response's alert with its latest version and its case: in place with
        chat.update once posted, or in the outbox while it still waits to be sent."""
        assert self.cases is not None
        posted = await asyncio.to_thread(self.cases.alert, response_id)
        if posted is None:
            return
        classified = ClassifiedResponse.model_validate(posted.classified)
        case = await asyncio.to_thread(self.cases.get, case_id_for(response_id))
        view = self._view(case)
        if not (posted.channel and posted.ts):
            if await self._redraw_waiting(response_id, classified, view):
                return
            # Sent between the look above and the redraw (its attempt had already marked
            # it sent, so it did not see the newer content): redrawn in place instead.
            posted = await asyncio.to_thread(self.cases.alert, response_id)
            if posted is None or not (posted.channel and posted.ts):
                return  # a line of a burst summary: no message of its own to redraw
        # A later update supersedes one still waiting: Slack should end up showing the
        # newest state, not whichever retry happened to land last.
        waiting = await asyncio.to_thread(
            self.outbox.keys_about, DeliveryKind.ALERT_UPDATE.value, response_id
        )
        for key in waiting:
            await asyncio.to_thread(self.outbox.cancel, key, "superseded by a later update")
        await self._deliver(
            plan_alert_update(classified, posted.channel, posted.ts, view, cause, self.clock())
        )

    async def _redraw_waiting(
        self, response_id: str, classified: ClassifiedResponse, view: CaseView | None
    ) -> bool:
        """Redraw the response's alert where it waits in the outbox; False when it has been
        sent meanwhile. One that is on its way is redrawn here too: its attempt finds the
        newer content when it marks it sent, and draws it over the message it posted."""
        for key in await asyncio.to_thread(
            self.outbox.keys_about, DeliveryKind.ALERT.value, response_id
        ):
            waiting_alert = await asyncio.to_thread(self.outbox.payload_of, key)
            if waiting_alert is None:
                continue
            status, payload = waiting_alert
            if status == PENDING:
                redrawn = alert_message(classified, payload["channel"], view)
                if "fallback_channel" in payload:
                    redrawn["fallback_channel"] = payload["fallback_channel"]
                if await asyncio.to_thread(self.outbox.replace_payload, key, redrawn):
                    continue
                status = (await asyncio.to_thread(self.outbox.payload_of, key) or ("", {}))[0]
            if status == SENT:
                return False
        return True

    def _with_invitation_contact(self, classified: ClassifiedResponse) -> ClassifiedResponse:
        """A response recorded from an invitation's link carries no address (links hold ids,
        never personal data): the customer is emailed where the invitation was sent."""
        response = classified.response
        if response.contact.email or not response.invitation_id:
            return classified
        contact = self.outbox.invitation_contact(response.invitation_id)
        if contact is None:
            return classified
        return classified.model_copy(
            update={"response": response.model_copy(update={"contact": contact})}
        )

    def _opening(
        self, classified: ClassifiedResponse, action: OpenCase
    ) -> tuple[Case, dict[str, Any]]:
        """The case a response opens, with the segment it is counted in."""
        response = classified.response
        case = Case.open(
            response.response_id,
            response.customer_id,
            response.occurred_at,
            action.sla_hours,
            action.question,
        )
        segment = classified.context.segment if classified.context else response.segment
        return case, segment.model_dump(exclude_none=True)

    async def _announce_opened(self, case: Case) -> None:
        if self.on_case is None:
            return
        await self.on_case(
            CaseEvent(
                # From the case, not the response: every version of a response opens the
                # same case with the same event.
                event_id=derived_id(uuid.UUID(case.case_id), "opened"),
                occurred_at=case.opened_at,
                case_id=case.case_id,
                response_id=case.response_id,
                action=CaseAction.OPENED,
                note=case.question,
                sla_due_at=case.sla_due_at,
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
            scrubbed = await asyncio.to_thread(self.cases.forget_customer, preference.customer_id)
            for response_id in scrubbed:
                # What staff saw in Slack is redrawn without the comment; the copies the
                # outbox kept of the alert are scrubbed as well.
                await asyncio.to_thread(self.outbox.erase_about, response_id)
                await self.refresh_alert(response_id, f"erased:{preference.event_id}")
        if preference.action == "erased" and self.reviews is not None:
            await self.reviews.forget_customer(preference.customer_id)

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

    async def _deliver(self, delivery: Delivery, first_of_kind: bool = False) -> bool:
        """Write a delivery to the outbox and make its first attempt if it is due, all its
        writes before sending in one transaction; False when ``first_of_kind`` found a
        delivery of its kind about its subject, and it was not written."""
        labels = (delivery.channel.value, delivery.kind.value)
        now = self.clock()
        lease_until = self._lease_until(now)
        intake = await asyncio.to_thread(
            self.outbox.enqueue, delivery, now, lease_until, self._pacing(now), first_of_kind
        )
        if intake.outcome == Enqueued.EARLIER:
            return False
        if intake.outcome in (Enqueued.SUPPRESSED, Enqueued.DUPLICATE):
            self.metrics.deliveries.labels(*labels, intake.outcome.value).inc()
        elif intake.claim is not None:
            await self._attempt(delivery.idempotency_key, intake.claim, now, lease_until)
        return True

    async def retry_due(self, limit: int = 100) -> int:
        """Attempt the pending deliveries whose time has come, ``attempts_at_once`` at a time,
        and wait for those attempts; returns how many were due.

        Side by side, not one after another: a backlog of retries (Slack down a while) would
        otherwise drain at one Slack call at a time, every call that hangs holding up all
        the others (one tick took 47 s in the chaos test at 20,000 responses)."""
        keys = await asyncio.to_thread(self.outbox.due, self.clock(), limit)
        started = [await self._start(self.attempt(key)) for key in keys]
        if started:
            await asyncio.wait(started)
        return len(keys)

    def _lease_until(self, now: datetime) -> datetime:
        # The lease keeps other attempts (the retry timer, another worker) off a delivery
        # for as long as one attempt may take.
        return now + timedelta(seconds=self.attempt_timeout * LEASE_TIMEOUTS)

    def _pacing(self, now: datetime) -> Pacing:
        return Pacing(
            turn_until=now + timedelta(seconds=self.bursts.interval_seconds),
            burst_minimum=self.bursts.threshold - 1,
            burst_limit=self.bursts.max_lines - 1,
        )

    async def attempt(self, key: str, again: bool = True, first: bool = False) -> None:
        now = self.clock()
        lease_until = self._lease_until(now)
        # With the other claims asked for meanwhile: a few statements for them all.
        ask = ClaimAsk(key, now, lease_until, self._pacing(now), first)
        claim = await self.writes.run_batched(self.outbox.claim_paced_many, ask)
        if claim is not None:
            await self._attempt(key, claim, now, lease_until, again)

    async def _attempt(
        self,
        key: str,
        claim: Claim | Busy,
        now: datetime,
        lease_until: datetime,
        again: bool = True,
    ) -> None:
        """One attempt at a delivery, as its claim left it. A Slack one posts in its
        channel's turn (the claim took it, unless the attempt before may have delivered);
        one whose channel was busy waits, pending, for the turn's end."""
        if isinstance(claim, Busy):
            await self._after_turn(key, claim, again)
            return
        entry, waiting = claim.entry, claim.waiting
        if entry.outcome_unknown:
            found = await self._find(entry)
            if found is None:
                return
            if found:
                # The attempt before delivered after all: recorded, not sent again.
                log.info("delivery %s was delivered by an earlier attempt", entry.kind)
                await self._sent(entry, found, "found")
                return
        if entry.channel == Channel.SLACK:
            if not claim.paced:
                paced = await self.writes.run(
                    functools.partial(self.outbox.pace, entry, now, lease_until, self._pacing(now))
                )
                if isinstance(paced, Busy):
                    await self._after_turn(key, paced, again)
                    return
                waiting = paced
            burst = await self._burst_of(waiting, now)
            if burst:
                await self._post_summary([entry, *burst])
                return
        provider_ref = await self._send(entry, [entry])
        if provider_ref is None:
            return
        await self._sent(entry, provider_ref, "sent")

    async def _after_turn(self, key: str, busy: Busy, again: bool) -> None:
        """A delivery that found its channel busy is left to the retry timer, unless the turn
        that held the channel has ended already: a turn as short as the clocks of two lanes
        apart (no interval between posts) would otherwise cost it a tick of the timer."""
        if again and busy.until <= self.clock():
            await self.attempt(key, again=False)

    async def _find(self, entry: OutboxEntry) -> str | None:
        """Where an earlier attempt delivered the entry ("" when it did not, None when the
        provider could not be asked now: the entry is retried later)."""
        # Whatever went wrong while looking, the outcome stays unknown: the next attempt
        # must look again, not send (a failed look once made the retry post twice).
        try:
            async with asyncio.timeout(self.attempt_timeout * 2):
                return await self.senders[entry.channel].find(entry) or ""
        except DeliveryFailed as exc:
            await self._failed([entry], f"{STILL_UNKNOWN}: {exc}", False, exc.retry_after)
        except TimeoutError:
            await self._failed([entry], f"{STILL_UNKNOWN}: {NO_ANSWER}", False, None)
        return None

    async def _sent(self, entry: OutboxEntry, provider_ref: str, outcome: str) -> None:
        sent_at = self.clock()
        redraw = await self.writes.run_batched(
            self._record_sent, (entry, Sent(entry.idempotency_key, provider_ref, sent_at))
        )
        self.metrics.deliveries.labels(entry.channel.value, entry.kind, outcome).inc()
        if entry.origin_at is not None and outcome == "sent":
            latency = (sent_at - entry.origin_at).total_seconds()
            self.metrics.latency.labels(entry.channel.value).observe(max(latency, 0.0))
        if redraw:
            # The response changed (or its case moved) while this alert was on its way: the
            # newer content, stored in the outbox meanwhile, is drawn over it.
            await self.refresh_alert(entry.subject_id, f"posted:{entry.idempotency_key}")
        if self.on_sent is not None and not provider_ref.startswith(SUMMARY_REFERENCE):
            await self.on_sent(entry, provider_ref)

    def _record_sent(self, sent: list[tuple[OutboxEntry, Sent]]) -> list[bool]:
        """Mark deliveries sent and, for alerts, remember where each was posted, so its case
        steps can redraw it in place; for each, True when its content changed while it was
        on its way. A write of the group commit, for all the deliveries of its group: a few
        statements for them all, on its thread."""
        currents = self.outbox.mark_sent_many([mark for _, mark in sent])
        posted: list[Posted] = []
        changed: list[bool] = []
        for (entry, mark), current in zip(sent, currents, strict=True):
            where = self._posted_at(entry, mark.provider_ref)
            if where is None:
                changed.append(False)
                continue
            posted.append(Posted(entry.subject_id, *where, mark.at))
            changed.append(current is not None and current != entry.payload)
        if posted and self.cases is not None:
            self.cases.alerts_posted(posted)
        return changed

    def _posted_at(self, entry: OutboxEntry, provider_ref: str) -> tuple[str, str] | None:
        """The Slack channel and ts of an alert's own message, to redraw it by; None for
        any other delivery, and without a case store."""
        if (
            self.cases is None
            or entry.kind != DeliveryKind.ALERT.value
            or entry.channel != Channel.SLACK
        ):
            return None
        channel, _, ts = provider_ref.partition(":")
        if (
            not channel
            or not ts
            or channel == "local"
            or provider_ref.startswith(SUMMARY_REFERENCE)
        ):
            # A line in a burst summary has no message of its own to redraw.
            return None
        return channel, ts

    async def _burst_of(self, waiting: Sequence[OutboxEntry], now: datetime) -> list[OutboxEntry]:
        """Of the alerts the claim took along (when with this one they reached the burst
        threshold), those that can be lines of a summary."""
        burst = [other for other in waiting if can_join_a_summary(other.payload)]
        for other in waiting:
            if other not in burst:
                # Planned before alerts had summary lines: it is posted on its own, in a turn
                # of its own, without the claim counting as an attempt.
                await asyncio.to_thread(
                    self.outbox.release, other.idempotency_key, now, other.previous_error
                )
        return burst

    async def _post_summary(self, entries: Sequence[OutboxEntry]) -> None:
        """One message for a burst of alerts; each alert is sent with the summary's reference,
        or, if the summary does not get through, retried (or dead) with the others."""
        now = self.clock()
        entries = sorted(entries, key=lambda entry: entry.origin_at or now)
        first = entries[0]
        oldest = first.origin_at
        payloads = [entry.payload for entry in entries]
        key = f"summary:{first.idempotency_key}"
        payload = summary_of(first.recipient, payloads, oldest or now, now)
        # Every alert it carries is named in its metadata: should this attempt die mid-call,
        # each alert's next attempt finds the summary instead of posting again.
        payload["metadata"] = message_metadata(key, [entry.idempotency_key for entry in entries])
        summary = OutboxEntry(
            idempotency_key=key,
            channel=Channel.SLACK,
            kind="alert_summary",
            recipient=first.recipient,
            payload=payload,
            attempts=max(entry.attempts for entry in entries),
            origin_at=oldest,
        )
        provider_ref = await self._send(summary, entries)
        if provider_ref is None:
            return
        sent_at = self.clock()
        reference = f"{SUMMARY_REFERENCE}{provider_ref}"
        keys = [entry.idempotency_key for entry in entries]
        await asyncio.to_thread(self.outbox.mark_all_sent, keys, reference, sent_at)
        self.metrics.summaries.inc()
        for entry in entries:
            self.metrics.deliveries.labels(entry.channel.value, entry.kind, "coalesced").inc()
            if entry.origin_at is not None:
                latency = (sent_at - entry.origin_at).total_seconds()
                self.metrics.latency.labels(entry.channel.value).observe(max(latency, 0.0))
        # on_sent is not called: its hooks take the reference for the entry's own message
        # (to update an alert as its case moves), and a summary line has no message of its own.

    async def _send(self, message: OutboxEntry, carried: Sequence[OutboxEntry]) -> str | None:
        """The provider's reference for the message; None when it failed, and the
        deliveries it carried are retried or dead."""
        sender = self.senders[message.channel]
        try:
            async with asyncio.timeout(self.attempt_timeout * 2):
                return await sender.send(message)
        except DeliveryFailed as exc:
            await self._failed(carried, str(exc), exc.permanent, exc.retry_after)
        except TimeoutError:
            await self._failed(carried, NO_ANSWER, False, None)
        return None

    async def _failed(
        self,
        entries: Sequence[OutboxEntry],
        error: str,
        permanent: bool,
        retry_after: float | None,
    ) -> None:
        """A permanent refusal, or the last attempt, makes a delivery dead (and a dead
        letter with its reason); anything else is tried again later."""
        # One wait for all the alerts of a failed summary, so that they come due together
        # and go out together again.
        attempts = max(entry.attempts for entry in entries)
        # Exponential backoff with jitter, so retries of a burst do not stampede together;
        # a Retry-After from the provider is a floor.
        backoff = min(2.0 ** max(attempts - 1, 0), self.retry_max)
        wait = max(self.random.uniform(backoff / 2, backoff), retry_after or 0.0)
        if may_have_delivered(error):
            # A request that got no answer in time may still land (the provider was slow,
            # not down): the next attempt looks for it only once it has had as long as an
            # attempt's lease, or it would not see it yet and send it again.
            wait = max(wait, self.attempt_timeout * LEASE_TIMEOUTS)
        retry_at = self.clock() + timedelta(seconds=wait)
        first = entries[0]
        if retry_after is not None and first.channel == Channel.SLACK:
            # Slack rate-limits per channel: nothing else posts there before Retry-After.
            await asyncio.to_thread(
                self.outbox.hold_turn,
                first.recipient,
                self.clock() + timedelta(seconds=retry_after),
            )
        # A look for an earlier attempt that failed did not send: it does not count towards
        # the limit, nor is the delivery given up on then. Counted, looks that failed (a look
        # reads up to 5 pages of history, each of which may fail) used up the attempts of
        # alerts that had hardly been sent: at 20,000 responses, with a tenth of Slack's
        # answers failing, 2 were dead after failed looks, and 4 more after 12 to 16
        # attempts, most of them looks, of which one send failed.
        looking = error.startswith(STILL_UNKNOWN)
        for entry in entries:
            key = entry.idempotency_key
            labels = (entry.channel.value, entry.kind)
            if permanent or (entry.attempts >= self.max_attempts and not looking):
                reason = error if permanent else f"gave up after {entry.attempts} attempts: {error}"
                log.error("delivery %s is dead: %s", entry.kind, reason)
                await self.writes.run(functools.partial(self.outbox.mark_failed, key, reason))
                self.metrics.deliveries.labels(*labels, "failed").inc()
                if self.on_dead is not None:
                    await self.on_dead(entry, reason)
                continue
            log.warning("delivery will be retried in %.1fs: %s", wait, error)
            await self.writes.run(
                functools.partial(self.outbox.mark_retry, key, error, retry_at, not looking)
            )
            self.metrics.deliveries.labels(*labels, "retry").inc()

    async def refresh_gauges(self) -> None:
        counts = await asyncio.to_thread(self.outbox.counts)
        self.metrics.pending.set(counts.get("pending", 0))
        self.metrics.dead.set(counts.get("failed", 0))
        if self.cases is not None:
            open_cases = await asyncio.to_thread(self.cases.open_by_segment)
            self.metrics.cases_open.clear()
            for (state, dimension, value), count in cases_open_series(open_cases).items():
                self.metrics.cases_open.labels(state, dimension, value).set(count)


def _distinct_stretches(items: Sequence[T], key: Callable[[T], Hashable]) -> Iterator[list[T]]:
    """The items in order, cut into stretches in which no key comes twice (as few as may be:
    a new stretch begins only where its key came before in the current one)."""
    stretch: list[T] = []
    keys: set[Hashable] = set()
    for item in items:
        if key(item) in keys:
            yield stretch
            stretch, keys = [], set()
        stretch.append(item)
        keys.add(key(item))
    if stretch:
        yield stretch


def cases_open_series(
    open_cases: list[tuple[str, dict[str, Any]]], max_values: int = CASE_SEGMENT_VALUES
) -> dict[tuple[str, str, str], int]:
    """Open cases counted by (state, dimension, value), plus (state, "all", "all");
    per dimension only the ``max_values`` commonest values keep their own series."""
    counts: Counter_[tuple[str, str, str]] = Counter_()
    by_dimension: dict[str, Counter_[str]] = {}
    for state, segment in open_cases:
        counts[(state, "all", "all")] += 1
        for dimension, value in segment.items():
            if isinstance(value, str) and value:
                by_dimension.setdefault(dimension, Counter_())[value] += 1
    kept = {
        dimension: {value for value, _ in values.most_common(max_values)}
        for dimension, values in by_dimension.items()
    }
    for state, segment in open_cases:
        for dimension, value in segment.items():
            if isinstance(value, str) and value:
                shown = value if value in kept[dimension] else "other"
                counts[(state, dimension, shown)] += 1
    return dict(counts)
