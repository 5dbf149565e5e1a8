"""Faust's Kafka consumer, committing only what was handled, in an unbroken run.

Faust's stream can pass over a fetched message without handing it to the agent (after a
rebalance, see docs/RELIABILITY.md). Faust's own consumer then commits past it when it is
a single one: the message is lost. With this consumer the commit waits at it instead,
and the wedge watch (shared/wedge.py) reads the partition again.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer as KafkaClient
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP


class ContiguousConsumer(AIOKafkaConsumer):
    """Faust's Kafka consumer, committing only an unbroken run of acked offsets that starts
    at the committed one.

    Faust's own commits past a single offset that was never acked (it tolerates a
    difference of one between the committed offset and the lowest acked), and counts as
    acked any offsets missing from the fetched sequence (meant for compacted topics and
    transaction markers). npsloop's topics are neither, so a hole means a message was
    passed over without being handled: the commit waits at it instead, the partition
    stands still, and the wedge watch reads it again. Without this, one message passed
    over was committed past and lost (the chaos test's figures fell short by that much).
    """

    # How long the broker may hold a fetch that finds nothing new (see use_contiguous_commits).
    fetch_max_wait_ms = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Of each held partition the group never committed: its first offset, where reading
        # starts (Faust's books say None for it, as for an offset committed at 0).
        self._first_offsets: dict[TP, int] = {}

    async def perform_seek(self) -> None:
        await super().perform_seek()
        never = [tp for tp in self.assignment() if self._committed_offset.get(tp) is None]
        if never:
            self._first_offsets.update(await self.earliest_offsets(*never))

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        return None

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        acked.sort()
        done = self._acked_index[tp]
        committed = self._committed_offset.get(tp)
        if committed is not None:
            # Offsets below the committed one were handled again after a seek: done with.
            below = bisect_left(acked, committed)
            if below:
                done.difference_update(acked[:below])
                del acked[:below]
            if not acked or acked[0] != committed:
                return None  # the next message to commit is not acked (yet)
        elif self._first_offsets.get(tp) != acked[0]:
            # Never committed: the run starts at the partition's first offset, or a stream
            # that passed over the first messages would commit past them.
            return None
        run = 1
        while run < len(acked) and acked[run] == acked[run - 1] + 1:
            run += 1
        batch = acked[:run]
        del acked[:run]
        done.difference_update(batch)
        return batch[-1] + 1


class _ConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait the app was set up with."""

    def _create_worker_consumer(self, transport: Transport) -> KafkaClient:
        client = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1500 ms; aiokafka keeps the value until start() hands it to
        # its fetcher (test_wedged_partition.py checks that the fetcher gets this one).
        client._fetch_max_wait_ms = cast(ContiguousConsumer, self.consumer).fetch_max_wait_ms
        return client


def use_contiguous_commits(app: faust.App, fetch_max_wait_ms: int = 500) -> None:
    """Have the app's consumer be a ContiguousConsumer (set before the consumer is made),
    its fetches held by the broker at most ``fetch_max_wait_ms`` when nothing is new."""
    app.transport.Consumer = type(  # type: ignore[misc]
        "ContiguousConsumer", (ContiguousConsumer,), {"fetch_max_wait_ms": fetch_max_wait_ms}
    )
