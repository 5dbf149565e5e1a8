"""The aggregator's agents and timers: record each fact once, refresh, publish the digest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import faust
from prometheus_client import Histogram

from services.aggregator.adapters import ReadModel
from services.aggregator.loop_health import CaseStep
from services.aggregator.money import PurchaseFact, read_purchase
from services.aggregator.responses import InvitationFact, ResponseFact
from services.aggregator.service import DigestPublisher, Refresher, RefreshPace
from shared.events import CaseEvent, ClassifiedResponse, Invitation, decode
from shared.streams import EventLoop

DIGEST_CHECK_SECONDS = 60.0
# How long a batch of responses waits for more after its first: a small share of the refresh.
BATCH_SECONDS = 0.1


def register(
    app: faust.App,
    *,
    classified: faust.TopicT,
    invitations: faust.TopicT,
    purchases: faust.TopicT,
    cases: faust.TopicT,
    read_model: ReadModel,
    refresher: Refresher,
    digests: DigestPublisher,
    loop: EventLoop,
    pace: RefreshPace,
    refresh_durations: Histogram,
    batch_size: int,
) -> None:
    @app.agent(classified, name="count")
    async def count(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> ResponseFact:
            return ResponseFact.of(decode(ClassifiedResponse, value))

        async def handle(facts: Sequence[ResponseFact]) -> None:
            await asyncio.to_thread(read_model.record_responses, facts)

        await loop.run_batches(stream, read, handle, batch_size, BATCH_SECONDS)

    @app.agent(invitations, name="count_invitations")
    async def count_invitations(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> InvitationFact | None:
            return InvitationFact.of(decode(Invitation, value))

        async def handle(facts: Sequence[InvitationFact | None]) -> None:
            sent = [fact for fact in facts if fact is not None]
            if sent:
                await asyncio.to_thread(read_model.record_invitations, sent)

        await loop.run_batches(stream, read, handle, batch_size, BATCH_SECONDS)

    @app.agent(purchases, name="count_purchases")
    async def count_purchases(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> PurchaseFact:
            return PurchaseFact.of(read_purchase(value))

        async def handle(facts: Sequence[PurchaseFact]) -> None:
            await asyncio.to_thread(read_model.record_purchases, facts)

        await loop.run_batches(stream, read, handle, batch_size, BATCH_SECONDS)

    @app.agent(cases, name="follow_cases")
    async def follow_cases(stream: faust.StreamT[bytes]) -> None:
        def read(key: bytes | None, value: bytes | None) -> CaseStep:
            return CaseStep.of(decode(CaseEvent, value))

        async def handle(steps: Sequence[CaseStep]) -> None:
            await asyncio.to_thread(read_model.record_case_steps, steps)

        await loop.run_batches(stream, read, handle, batch_size, BATCH_SECONDS)

    @app.task
    async def refresh_windows() -> None:
        clock = asyncio.get_running_loop().time
        wait = pace.interval
        while True:
            await asyncio.sleep(wait)
            started = clock()
            try:
                await asyncio.to_thread(refresher.refresh)
            except Exception:
                # The database may be away; the gauges keep their last figures until it is back.
                app.log.exception("refreshing the NPS windows failed")
            took = clock() - started
            refresh_durations.observe(took)
            wait = pace.wait_after(took)

    @app.timer(DIGEST_CHECK_SECONDS, name="publish_digest")
    async def publish_digest() -> None:
        try:
            await digests.publish_due()
        except Exception:
            # The next check tries again; the digest's id keeps it one digest downstream.
            app.log.exception("publishing the weekly digest failed")
