"""The notifier's agents and retry timer: decode, dispatch."""

from __future__ import annotations

import faust

from services.notifier.dispatch import Dispatcher
from shared.events import (
    CaseEvent,
    ClassifiedResponse,
    ContactPreference,
    Digest,
    Invitation,
    decode,
)
from shared.streams import EventLoop

RETRY_INTERVAL_SECONDS = 1.0
# Classified responses taken in with one transaction: as many as have arrived, up to this
# many, gathered for at most BATCH_SECONDS (a lone response waits no longer than that).
BATCH_SIZE = 100
BATCH_SECONDS = 0.01
ESCALATION_INTERVAL_SECONDS = 5.0


def register(
    app: faust.App,
    *,
    classified: faust.TopicT,
    invitations: faust.TopicT,
    preferences: faust.TopicT,
    digests: faust.TopicT,
    cases: faust.TopicT,
    dispatcher: Dispatcher,
    loop: EventLoop,
) -> None:
    @app.agent(classified, name="loops")
    async def loops(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> ClassifiedResponse:
            return decode(ClassifiedResponse, value)

        await loop.run_batches(stream, read, dispatcher.handle_many, BATCH_SIZE, BATCH_SECONDS)

    @app.agent(invitations, name="invite")
    async def invite(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            await dispatcher.handle_invitation(decode(Invitation, value))

        await loop.run(stream, handle)

    @app.agent(preferences, name="honour_preferences")
    async def honour_preferences(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            await dispatcher.handle_preference(decode(ContactPreference, value))

        await loop.run(stream, handle)

    @app.agent(digests, name="share_digests")
    async def share_digests(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            await dispatcher.handle_digest(decode(Digest, value))

        await loop.run(stream, handle)

    @app.agent(cases, name="follow_cases")
    async def follow_cases(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> CaseEvent:
            return decode(CaseEvent, value)

        # Every alert's case comes back here opened: one transaction a batch, not an event.
        await loop.run_batches(
            stream, read, dispatcher.handle_case_events, BATCH_SIZE, BATCH_SECONDS
        )

    @app.timer(ESCALATION_INTERVAL_SECONDS, name="escalate_unclaimed_cases")
    async def escalate_unclaimed_cases() -> None:
        try:
            await dispatcher.escalate_due()
        except Exception:
            # The database may be away; the next tick tries again, and escalates once.
            app.log.exception("escalating unclaimed cases failed")

    @app.timer(5.0, name="count_the_outbox")
    async def count_the_outbox() -> None:
        try:
            await dispatcher.refresh_gauges()
        except Exception:
            app.log.exception("counting the outbox failed")

    @app.timer(RETRY_INTERVAL_SECONDS, name="send_due_deliveries")
    async def send_due_deliveries() -> None:
        try:
            await dispatcher.retry_due()
        except Exception:
            # The database may be away; the next tick tries again and nothing pending is lost.
            app.log.exception("sending due deliveries failed")
