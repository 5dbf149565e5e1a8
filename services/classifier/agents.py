"""The classifier's agents: remember each invitation's context; classify each response.

Both topics are keyed by customer with the same partition count, so a response and the
invitation it answers meet in the same partition, and so in the same worker's tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TableT

from services.classifier.domain import context_of
from services.classifier.metrics import ClassifierMetrics
from shared.events import (
    ClassifiedResponse,
    Invitation,
    InvitationStatus,
    Response,
    ResponseContext,
    decode,
    encode,
)
from shared.streams import EventLoop

Classify = Callable[[Response, ResponseContext | None, str | None], ClassifiedResponse]


def register(
    app: faust.App,
    *,
    responses: faust.TopicT,
    invitations: faust.TopicT,
    classified: faust.TopicT,
    contexts: TableT[str, Any],
    seen: TableT[str, Any],
    classify: Classify,
    metrics: ClassifierMetrics,
    loop: EventLoop,
    ready: Callable[[], bool],
) -> None:
    @app.agent(invitations, name="remember_contexts")
    async def remember_contexts(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            invitation = decode(Invitation, value)
            if invitation.status == InvitationStatus.SCHEDULED:
                contexts[invitation.invitation_id] = context_of(invitation).model_dump(mode="json")
                metrics.contexts.inc()

        await loop.run(stream, handle)

    @app.agent(responses, name="classify")
    async def classify_responses(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            response = decode(Response, value)
            known = contexts.get(response.invitation_id) if response.invitation_id else None
            context = ResponseContext.model_validate(known) if known else None
            metrics.joins.labels("joined" if context else "no_context").inc()
            previous = seen.get(response.response_id)
            # Text analysis is CPU work: under a millisecond for a short comment, 50 ms for
            # the longest analysed (MAX_CHARACTERS), so the loop can afford it once the
            # language detector is built. A thread an event cost a sixth of the worker's CPU
            # (bench/pipeline.py). Building the detector takes a second: until then, a thread.
            if ready():
                result = classify(response, context, previous)
            else:
                result = await asyncio.to_thread(classify, response, context, previous)
            await classified.send(key=response.customer_id.encode(), value=encode(result))
            seen[response.response_id] = str(response.event_id)
            metrics.count(result)

        await loop.run(stream, handle)
