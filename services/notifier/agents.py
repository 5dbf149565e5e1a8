"""The notifier's agent and retry timer: decode, dispatch."""

from __future__ import annotations

import faust

from services.notifier.dispatch import Dispatcher
from shared.events import ClassifiedResponse, decode
from shared.streams import EventLoop

RETRY_INTERVAL_SECONDS = 1.0


def register(
    app: faust.App, classified: faust.TopicT, dispatcher: Dispatcher, loop: EventLoop
) -> None:
    @app.agent(classified, name="loops")
    async def loops(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            await dispatcher.handle(decode(ClassifiedResponse, value))

        await loop.run(stream, handle)

    @app.timer(RETRY_INTERVAL_SECONDS, name="retry_due_deliveries")
    async def retry_due_deliveries() -> None:
        try:
            await dispatcher.retry_due()
        except Exception:
            # The database may be away; the next tick tries again and nothing pending is lost.
            app.log.exception("retrying due deliveries failed")
