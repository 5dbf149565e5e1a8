"""EventLoop.run_batches: events decoded and handled a batch at a time, each acked only once
its batch is handled; a transient failure retries the batch, a poison event fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from shared.events import DeadLetter, DecodeError, decode
from shared.metrics import StreamMetrics
from shared.streams import EventLoop

TOPIC = "npsloop.responses.classified.v1"


class ManualStream:
    """What run_batches uses of a Faust stream: noack(), events() and ack().

    ``pauses`` holds, by offset, how long the stream is quiet before that event arrives.
    """

    def __init__(self, values: list[bytes], pauses: dict[int, float] | None = None) -> None:
        self.events_out = [
            SimpleNamespace(
                message=SimpleNamespace(
                    topic=TOPIC, partition=0, offset=offset, key=b"c-1", value=value
                )
            )
            for offset, value in enumerate(values)
        ]
        self.pauses = pauses or {}
        self.acked: list[int] = []
        self.manual = False

    def noack(self) -> ManualStream:
        self.manual = True
        return self

    async def events(self) -> AsyncIterator[Any]:
        for offset, event in enumerate(self.events_out):
            if offset in self.pauses:
                await asyncio.sleep(self.pauses[offset])
            yield event

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


class FakeDlq:
    """A dlq topic that records the letters it was sent."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.letters.append(decode(DeadLetter, value))


def read(_key: bytes | None, value: bytes | None) -> int:
    """The decoder: a number, or a DecodeError with its reason."""
    try:
        return int(value or b"")
    except ValueError:
        raise DecodeError(f"not a number: {value!r}") from None


class Counter:
    """A batch handler that records each batch it was given and what was acked by then.

    ``transient`` batches fail with an outage first; a batch holding a value in ``poison``
    fails, as does that value alone.
    """

    def __init__(self, stream: ManualStream, transient: int = 0, poison: set[int] = frozenset()):
        self.stream = stream
        self.transient = transient
        self.poison = poison
        self.batches: list[list[int]] = []
        self.acked_before: list[list[int]] = []

    async def __call__(self, values: Sequence[int]) -> None:
        self.acked_before.append(list(self.stream.acked))
        if self.transient:
            self.transient -= 1
            raise OperationalError("SELECT 1", {}, ConnectionError("the database is away"))
        if self.poison & set(values):
            raise ValueError(f"cannot count {sorted(self.poison & set(values))}")
        self.batches.append(list(values))


def batches_run(
    values: list[bytes],
    max_size: int,
    within: float = 0.05,
    pauses: dict[int, float] | None = None,
    transient: int = 0,
    poison: set[int] = frozenset(),
) -> tuple[ManualStream, Counter, FakeDlq, CollectorRegistry]:
    stream = ManualStream(values, pauses)
    handler = Counter(stream, transient, poison)
    dlq = FakeDlq()
    registry = CollectorRegistry()
    loop = EventLoop("aggregator", dlq, StreamMetrics.create(registry))  # type: ignore[arg-type]
    asyncio.run(loop.run_batches(stream, read, handler, max_size, within))  # type: ignore[arg-type]
    return stream, handler, dlq, registry


def outcomes(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value(
        "npsloop_events_processed_total",
        {"service": "aggregator", "topic": TOPIC, "outcome": outcome},
    )


def numbers(count: int) -> list[bytes]:
    return [str(n).encode() for n in range(count)]


def test_events_waiting_are_handled_in_batches_of_at_most_the_size_in_their_order() -> None:
    stream, handler, dlq, registry = batches_run(numbers(25), max_size=10)
    assert handler.batches == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert stream.manual, "acks must be manual, after handling"
    assert stream.acked == list(range(25))
    assert dlq.letters == []
    assert outcomes(registry, "ok") == 25


def test_an_event_is_acked_only_once_its_batch_has_been_handled() -> None:
    _, handler, _, _ = batches_run(numbers(7), max_size=3)
    assert handler.acked_before == [[], [0, 1, 2], [0, 1, 2, 3, 4, 5]]


def test_a_batch_waits_no_longer_than_within_after_its_first_event() -> None:
    stream, handler, _, _ = batches_run(numbers(5), max_size=100, within=0.05, pauses={3: 0.5})
    assert handler.batches == [[0, 1, 2], [3, 4]]
    assert stream.acked == list(range(5))


def test_an_undecodable_event_goes_to_the_dlq_with_its_reason_and_its_batch_goes_on() -> None:
    values = numbers(6)
    values[2] = b"seven"
    stream, handler, dlq, registry = batches_run(values, max_size=10)
    assert handler.batches == [[0, 1, 3, 4, 5]]
    [letter] = dlq.letters
    assert (letter.offset, letter.value, letter.error_type) == (2, b"seven", "DecodeError")
    assert letter.error == "not a number: b'seven'"
    assert stream.acked == list(range(6))
    assert (outcomes(registry, "ok"), outcomes(registry, "dead_letter")) == (5, 1)


def test_a_batch_of_nothing_but_undecodable_events_reaches_no_handler() -> None:
    stream, handler, dlq, _ = batches_run([b"x", b"y"], max_size=10)
    assert handler.batches == [] and handler.acked_before == []
    assert [letter.offset for letter in dlq.letters] == [0, 1]
    assert stream.acked == [0, 1]


def test_a_transient_failure_retries_the_whole_batch_until_it_passes() -> None:
    stream, handler, dlq, registry = batches_run(numbers(4), max_size=10, transient=2)
    assert handler.batches == [[0, 1, 2, 3]]
    assert len(handler.acked_before) == 3, "two failed attempts, then the one that passed"
    assert all(acked == [] for acked in handler.acked_before), "nothing acked while retrying"
    assert dlq.letters == []
    assert stream.acked == [0, 1, 2, 3]
    retries = {"service": "aggregator", "topic": TOPIC}
    assert registry.get_sample_value("npsloop_event_retries_total", retries) == 2


def test_a_poison_event_fails_alone_to_the_dlq_and_the_rest_of_its_batch_is_handled() -> None:
    stream, handler, dlq, registry = batches_run(numbers(8), max_size=5, poison={2})
    # The failing batch handled again one event at a time; the next batch whole.
    assert handler.batches == [[0], [1], [3], [4], [5, 6, 7]]
    [letter] = dlq.letters
    assert (letter.offset, letter.error_type) == (2, "ValueError")
    assert letter.error.startswith("cannot count [2]")
    assert stream.acked == list(range(8))
    assert (outcomes(registry, "ok"), outcomes(registry, "dead_letter")) == (7, 1)


def test_a_batch_cut_short_by_a_stop_is_not_acked_and_so_delivered_again() -> None:
    stream = ManualStream(numbers(6), pauses={3: 0.2})
    started = asyncio.Event()

    async def never_done(values: Sequence[int]) -> None:
        if values[0] == 3:
            started.set()
            await asyncio.Event().wait()

    async def stop_mid_batch() -> None:
        loop = EventLoop("aggregator", FakeDlq(), StreamMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]
        running = asyncio.create_task(loop.run_batches(stream, read, never_done, 10, 0.05))  # type: ignore[arg-type]
        await asyncio.wait_for(started.wait(), timeout=5)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    asyncio.run(stop_mid_batch())
    assert stream.acked == [0, 1, 2]
