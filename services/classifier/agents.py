"""The classifier's agent: decode, classify, send."""

from __future__ import annotations

import faust

from services.classifier.domain import classify_response
from shared.events import Response, decode, encode
from shared.streams import EventLoop


def register(
    app: faust.App, responses: faust.TopicT, classified: faust.TopicT, loop: EventLoop
) -> None:
    @app.agent(responses, name="classify")
    async def classify(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            result = classify_response(decode(Response, value))
            await classified.send(key=result.response.customer_id.encode(), value=encode(result))

        await loop.run(stream, handle)
