"""Ingest's relay: publishes the journal to Kafka, oldest first, marking what the broker took."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.ingest.store import IngestStore, JournalEntry

log = logging.getLogger(__name__)


class Relay:
    """Moves journaled events onto their topics; survives a broker outage by waiting it out.

    Entries are leased while in flight, so two ingest workers sharing a database do not
    publish the same entry at once; an entry whose attempt failed is tried again when
    its lease runs out. Consumers are idempotent, so a repeat after a crash is harmless.
    """

    def __init__(
        self,
        store: IngestStore,
        topics: Mapping[str, faust.TopicT],
        registry: CollectorRegistry,
        *,
        batch_size: int = 500,
        send_timeout_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.topics = topics
        self.batch_size = batch_size
        self.send_timeout = send_timeout_seconds
        self.backlog = 0
        self._wake = asyncio.Event()
        self.published = Counter(
            "npsloop_journal_published_total",
            "Journal entries published to Kafka, by topic.",
            ["topic"],
            registry=registry,
        )
        self.backlog_gauge = Gauge(
            "npsloop_journal_backlog",
            "Accepted events not yet confirmed by the broker.",
            registry=registry,
        )

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        pause = 0.5
        while True:
            try:
                sent = await self.publish_once()
                pause = 0.5
            except Exception as exc:
                log.warning(
                    "publishing the journal failed, retrying in %.1fs: %s: %s",
                    pause,
                    type(exc).__name__,
                    exc,
                )
                sent = 0
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            if sent == 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _send(self, entries: list[JournalEntry]) -> None:
        """Hand the entries to the producer and wait for the broker to confirm them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        async with asyncio.timeout_at(deadline):
            # Faust answers a future (typed as an awaitable); ensure_future hands it back as is.
            pending = [
                asyncio.ensure_future(
                    await self.topics[entry.topic].send(key=entry.key.encode(), value=entry.value)
                )
                for entry in entries
            ]
        # Waited for, never cancelled: the producer keeps sending what it holds, and Faust
        # logs a traceback for every future cancelled under it.
        _, late = await asyncio.wait(pending, timeout=max(deadline - loop.time(), 0.001))
        if late:
            for confirmation in late:
                # Its entry is published again; how this attempt ends is no news.
                confirmation.add_done_callback(_outcome_ignored)
            raise TimeoutError(
                f"the broker confirmed {len(pending) - len(late)} of {len(pending)} entries "
                f"within {self.send_timeout:g}s"
            )
        for confirmation in pending:
            confirmation.result()

    async def publish_once(self) -> int:
        """One round: claim a batch, send it, mark it published; two transactions, the
        backlog counted in the first (events accepted during the round count next time)."""
        now = datetime.now(UTC)
        claimed = await asyncio.to_thread(
            self.store.claim_unpublished,
            now,
            now + timedelta(seconds=self.send_timeout * 3),
            self.batch_size,
        )
        entries = claimed.entries
        self._set_backlog(claimed.backlog)
        if not entries:
            return 0
        try:
            await self._send(entries)
        except BaseException:
            await asyncio.to_thread(self.store.release, [entry.id for entry in entries])
            raise
        await asyncio.to_thread(
            self.store.mark_published, [entry.id for entry in entries], datetime.now(UTC)
        )
        for entry in entries:
            self.published.labels(entry.topic).inc()
        self._set_backlog(claimed.backlog - len(entries))
        return len(entries)

    def _set_backlog(self, backlog: int) -> None:
        self.backlog = backlog
        self.backlog_gauge.set(backlog)


def _outcome_ignored(confirmation: asyncio.Future[Any]) -> None:
    if not confirmation.cancelled():
        confirmation.exception()  # retrieved, so asyncio does not log it as never retrieved
