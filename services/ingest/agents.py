"""Ingest's agents: plan invitations from purchases, note responses, honour contact preferences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import faust

from services.ingest.planning import Rules
from services.ingest.store import IngestStore
from shared.events import ContactPreference, Invitation, Purchase, Response, decode
from shared.streams import EventLoop

# A customer's latest answer only tires them for later purchases, so a batch of responses
# may gather for a moment: one transaction for up to this many, instead of one each.
RESPONSES_BATCH_SIZE = 500
RESPONSES_BATCH_SECONDS = 0.05


def register(
    app: faust.App,
    *,
    purchases: faust.TopicT,
    invitations: faust.TopicT,
    responses: faust.TopicT,
    preferences: faust.TopicT,
    store: IngestStore,
    rules: Rules,
    loop: EventLoop,
    on_journaled: Callable[[], None],
) -> None:
    @app.agent(purchases, name="plan_invitations")
    async def plan_invitations(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            purchase = decode(Purchase, value)
            if await asyncio.to_thread(store.plan, purchase, rules, datetime.now(UTC)):
                on_journaled()

        await loop.run(stream, handle)

    @app.agent(invitations, name="note_sent_invitations")
    async def note_sent_invitations(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            invitation = decode(Invitation, value)
            await asyncio.to_thread(store.record_sent, invitation, datetime.now(UTC))

        await loop.run(stream, handle)

    @app.agent(responses, name="note_responses")
    async def note_responses(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> tuple[str, datetime]:
            response = decode(Response, value)
            return response.customer_id, response.responded_at

        async def handle(answers: Sequence[tuple[str, datetime]]) -> None:
            await asyncio.to_thread(store.record_responses, answers, datetime.now(UTC))

        await loop.run_batches(stream, read, handle, RESPONSES_BATCH_SIZE, RESPONSES_BATCH_SECONDS)

    @app.agent(preferences, name="honour_preferences")
    async def honour_preferences(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            preference = decode(ContactPreference, value)
            if await asyncio.to_thread(store.apply_preference, preference, datetime.now(UTC)):
                on_journaled()

        await loop.run(stream, handle)
