"""The aggregator's agent and refresh timer: record each response once, recompute the windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import faust

from services.aggregator.adapters import NpsGauges, ReadModel
from services.aggregator.domain import WINDOWS, Figures
from shared.events import ClassifiedResponse, SurveyKind, decode
from shared.streams import EventLoop


class WindowRefresher:
    """Recomputes every window from the read model and shows it on the gauges."""

    def __init__(self, read_model: ReadModel, gauges: NpsGauges) -> None:
        self.read_model = read_model
        self.gauges = gauges

    def refresh(self) -> None:
        now = datetime.now(UTC)
        for kind in SurveyKind:
            for window in WINDOWS:
                counts = self.read_model.counts(kind, window.start(now))
                self.gauges.show(kind, window, Figures.of(counts))


def register(
    app: faust.App,
    classified: faust.TopicT,
    read_model: ReadModel,
    refresher: WindowRefresher,
    loop: EventLoop,
    refresh_seconds: float,
) -> None:
    @app.agent(classified, name="count")
    async def count(stream: faust.StreamT[bytes]) -> None:
        async def handle(key: bytes | None, value: bytes | None) -> None:
            await asyncio.to_thread(read_model.record, decode(ClassifiedResponse, value))

        await loop.run(stream, handle)

    @app.timer(refresh_seconds, name="refresh_windows")
    async def refresh_windows() -> None:
        try:
            await asyncio.to_thread(refresher.refresh)
        except Exception:
            # The database may be away; the gauges keep their last figures until it is back.
            app.log.exception("refreshing the NPS windows failed")
