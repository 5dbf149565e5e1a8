"""A watch over each partition a worker holds: one whose consumption is wedged is read again.

Faust keeps its own books of what it has read, acked and committed per partition, beside
aiokafka's fetch position. After a rebalance those books can disagree with the position
(seen on the embedded broker when a worker is killed and its replacement joins): the
fetcher then either passes over messages without handing them to the agent, or the
agent handles them but the committed offset never moves, because Faust commits only
an unbroken run of acked offsets from the committed one. Either way the worker looks
healthy, holds its partitions, and the partition's lag stays where it is for good.

The watch sees it from outside those books: a partition that has messages beyond its
committed offset, none of them in the worker's hands (fetched and not yet acked), and a
committed offset that has not moved for ``stall_seconds``, is sought back to its
committed offset and read again from there. Every handler bears a message twice (the
classifier's seen table, the notifier's outbox keys, the aggregator's upserts), so the
worst a false alarm does is repeat work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter

from shared.streams import settled, topic_partitions_held

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 5.0


@dataclass
class WedgeWatch:
    """Remembers since when each held partition's committed offset has stood still."""

    app: Any
    rereads: Counter
    stall_seconds: float
    clock: Callable[[], float] = time.monotonic
    _standing: dict[Any, tuple[int | None, float]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, app: faust.App, registry: CollectorRegistry, stall_seconds: float
    ) -> WedgeWatch:
        rereads = Counter(
            "npsloop_consumer_rereads_total",
            "Partitions sought back to their committed offset and read again because their "
            "consumption was wedged (behind its end, nothing in hand, committed offset still).",
            ["topic"],
            registry=registry,
        )
        return cls(app, rereads, stall_seconds)

    async def check(self) -> list[Any]:
        """Read again each wedged partition; returns those it sought back."""
        app = self.app
        if not settled(app):
            # Between generations the books are being rebuilt: nothing stands still yet.
            self._standing.clear()
            return []
        consumer = app.consumer
        try:
            held = topic_partitions_held(app)
            # Faust keeps these only on its consumer; there is no public accessor.
            committed_offsets = consumer._committed_offset
            in_hand = {message.tp for message in list(consumer._unacked_messages)}
        except Exception:
            return []  # not started, or between generations
        now = self.clock()
        for tp in list(self._standing):
            if tp not in held:
                del self._standing[tp]
        wedged = []
        for tp in held:
            committed: int | None = committed_offsets.get(tp)
            highwater: int | None = consumer.highwater(tp)
            if highwater is None or highwater <= (committed or 0) or tp in in_hand:
                self._standing.pop(tp, None)
                continue
            standing = self._standing.get(tp)
            if standing is None or standing[0] != committed:
                self._standing[tp] = (committed, now)
                continue
            if now - standing[1] < self.stall_seconds:
                continue
            log.warning(
                "%s[%s] is wedged: %s messages past its committed offset %s, none in hand, "
                "for %.0fs; reading it again from there",
                tp.topic,
                tp.partition,
                highwater - (committed or 0),
                committed,
                now - standing[1],
            )
            await self._read_again(consumer, tp, committed)
            self.rereads.labels(tp.topic).inc()
            self._standing[tp] = (committed, now)
            wedged.append(tp)
        return wedged

    @staticmethod
    async def _read_again(consumer: Any, tp: Any, committed: int | None) -> None:
        # Forget what Faust believes was acked past the committed offset, so that the
        # offsets read again commit in one unbroken run.
        consumer._acked.pop(tp, None)
        consumer._acked_index.pop(tp, None)
        consumer._gap.pop(tp, None)
        if committed is None:
            # Never committed: from the partition's first offset, where the group started.
            committed = (await consumer.earliest_offsets(tp))[tp]
            first_offsets = getattr(consumer, "_first_offsets", None)
            if first_offsets is not None:
                first_offsets[tp] = committed
        await consumer.seek(tp, committed)


def watch_for_wedges(app: faust.App, registry: CollectorRegistry, stall_seconds: float) -> None:
    """Check every few seconds, on every worker, that no held partition is wedged."""
    watch = WedgeWatch.create(app, registry, stall_seconds)

    @app.timer(CHECK_INTERVAL_SECONDS, name="watch_for_wedged_partitions")
    async def watch_for_wedged_partitions() -> None:
        try:
            await watch.check()
        except Exception:
            log.exception("checking for wedged partitions failed")
