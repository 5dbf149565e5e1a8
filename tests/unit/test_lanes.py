"""EventLoop.run_in_lanes: events of one key in order, different keys side by side, never
more than the lanes at once, each acked only once its handling has ended."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.metrics import StreamMetrics
from shared.streams import EventLoop


class ManualStream:
    """What run_in_lanes uses of a Faust stream: noack(), events() and ack()."""

    def __init__(self, keys: list[bytes | None]) -> None:
        self.events_out = [
            SimpleNamespace(
                message=SimpleNamespace(
                    topic="t", partition=0, offset=offset, key=key, value=str(offset).encode()
                )
            )
            for offset, key in enumerate(keys)
        ]
        self.acked: list[int] = []
        self.manual = False

    def noack(self) -> ManualStream:
        self.manual = True
        return self

    async def events(self) -> AsyncIterator[Any]:
        for event in self.events_out:
            yield event
        # A stream stays open: it ends here only once every event is acked (or never).
        for _ in range(5_000):
            if len(self.acked) == len(self.events_out):
                return
            await asyncio.sleep(0.001)

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


class Dlq:
    async def send(self, *, key: bytes, value: bytes) -> None:
        raise AssertionError("nothing here should be dead-lettered")


def lanes_run(keys: list[bytes | None], lanes: int, seed: int = 3) -> dict[str, Any]:
    stream = ManualStream(keys)
    loop = EventLoop("notifier", Dlq(), StreamMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]
    pause = random.Random(seed)
    seen: dict[bytes | None, list[int]] = defaultdict(list)
    running: set[int] = set()
    most = 0
    handled_before_ack: list[bool] = []

    async def handle(key: bytes | None, value: bytes | None) -> None:
        nonlocal most
        offset = int(value or b"-1")
        running.add(offset)
        most = max(most, len(running))
        # Even offsets take longer: a key's next event would overtake it if let.
        await asyncio.sleep((0.01 if offset % 2 == 0 else 0.0) + pause.random() / 500)
        seen[key].append(offset)
        handled_before_ack.append(offset not in stream.acked)
        running.discard(offset)

    asyncio.run(loop.run_in_lanes(stream, handle, lanes))  # type: ignore[arg-type]
    return {"stream": stream, "seen": seen, "most": most, "handled": handled_before_ack}


def test_one_keys_events_are_handled_in_order_and_other_keys_side_by_side() -> None:
    keys: list[bytes | None] = [f"c-{n // 3 % 5}".encode() for n in range(60)]
    keys.append(None)
    outcome = lanes_run(keys, lanes=4)
    stream, seen = outcome["stream"], outcome["seen"]
    assert stream.manual, "acks must be manual, after handling"
    for key in set(keys):
        expected = [offset for offset, k in enumerate(keys) if k == key]
        assert seen[key] == expected, key
    assert outcome["most"] > 1, "different keys were never handled at once"
    assert outcome["most"] <= 4


def test_an_event_is_acked_only_after_its_handling_ended() -> None:
    outcome = lanes_run([b"a", b"b", b"c", b"a", b"b", b"c"] * 5, lanes=3)
    stream, seen = outcome["stream"], outcome["seen"]
    handled = sorted(offset for offsets in seen.values() for offset in offsets)
    assert handled == list(range(30))
    assert sorted(stream.acked) == handled
    assert all(outcome["handled"])


@pytest.mark.parametrize("lanes", [1, 2, 8])
def test_no_more_than_the_lanes_are_in_flight(lanes: int) -> None:
    outcome = lanes_run([f"k-{n}".encode() for n in range(40)], lanes=lanes)
    assert outcome["most"] <= lanes
    if lanes == 1:
        assert outcome["most"] == 1
