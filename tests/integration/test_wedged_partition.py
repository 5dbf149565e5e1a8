"""The wedge watch and the contiguous commits against a real Faust consumer on a real broker.

Faust passes over a fetched message without handing it to the agent when its books say
the message was read already; the chaos test met restarted workers in that state
(docs/RELIABILITY.md). Here the books are set that way on purpose, after the first
message: the next one, or all that follow, are fetched and never handled. The commit
must wait at the first message passed over (Faust's own consumer commits past a single
one, and it is lost), the watch must find the partition once the stall has lasted, and
every message must be handled and committed in the end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from shared.commits import use_contiguous_commits
from shared.wedge import WedgeWatch

pytestmark = pytest.mark.integration

STALL_SECONDS = 2.0
MESSAGES = 10


async def until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def wedge_and_watch(
    bootstrap: str, datadir: Path, passed_over: int, from_start: bool = False
) -> dict[str, Any]:
    """``from_start``: the books are set so before anything was committed, and the first
    messages are passed over."""
    name = f"wedge-{uuid.uuid4().hex[:8]}"
    app = faust.App(
        name,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2,
        # As the test stacks' workers: a fresh group settles in seconds, not Faust's default.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=0.6,
        broker_rebalance_timeout=12.0,
    )
    use_contiguous_commits(app)
    topic = app.topic(name, key_type=bytes, value_type=bytes, value_serializer="raw", partitions=1)
    handled: list[bytes] = []
    everything = {str(n).encode() for n in range(MESSAGES + 1)}
    partitions: set[Any] = set()

    @app.agent(topic)
    async def take(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            partitions.add(event.message.tp)
            handled.append(event.value)

    await app.start()
    try:
        await until(lambda: bool(app.consumer.assignment()), 60, "the partition")
        if from_start:
            # The key's partition is not known before a message is handled: every
            # partition of the topic gets the books of a stream that read ahead.
            consumer: Any = app.consumer
            held = [tp for tp in consumer.assignment() if tp.topic == name]
            await until(lambda: all(tp in consumer._first_offsets for tp in held), 60, "the starts")
            for tp in held:
                consumer._read_offset[tp] = passed_over
            for number in range(MESSAGES + 1):
                await topic.send(key=b"one", value=str(number).encode())
            await until(lambda: bool(partitions), 30, "a message handled")
            (tp,) = partitions
        else:
            await topic.send(key=b"one", value=b"0")
            await until(lambda: handled == [b"0"], 60, "the first message")
            (tp,) = partitions  # one key: one partition, whatever the topic's count
            await until(lambda: app.consumer._committed_offset.get(tp) == 1, 30, "its commit")
            # Faust now believes it has read ahead: what comes up to there is passed over.
            app.consumer._read_offset[tp] = 1 + passed_over
            for number in range(1, MESSAGES + 1):
                await topic.send(key=b"one", value=str(number).encode())
        await until(lambda: app.consumer.highwater(tp) == MESSAGES + 1, 30, "the fetch")
        await asyncio.sleep(STALL_SECONDS + 1)
        handled_while_wedged = list(handled)
        committed_while_wedged = app.consumer._committed_offset.get(tp)

        watch = WedgeWatch.create(app, CollectorRegistry(), STALL_SECONDS)
        rereads: list[Any] = []
        started = time.monotonic()

        async def watching() -> None:
            while True:
                rereads.extend(await watch.check())
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watching())
        try:
            await until(lambda: set(handled) == everything, 60, "the messages read again")
            await until(
                lambda: app.consumer._committed_offset.get(tp) == MESSAGES + 1, 30, "the commit"
            )
        finally:
            watcher.cancel()
        return {
            "handled_while_wedged": handled_while_wedged,
            "committed_while_wedged": committed_while_wedged,
            "handled": handled,
            "rereads": rereads,
            "seconds": time.monotonic() - started,
            "counted": watch.rereads.labels(tp.topic)._value.get(),
        }
    finally:
        await app.stop()


@pytest.mark.parametrize("passed_over", [1, MESSAGES], ids=["one", "all"])
def test_messages_faust_passed_over_are_never_committed_past_and_are_read_again(
    fresh_kafka_bootstrap: str, tmp_path: Path, passed_over: int
) -> None:
    outcome = asyncio.run(wedge_and_watch(fresh_kafka_bootstrap, tmp_path, passed_over))
    # Fetched, not handled: the commit stands at the first message passed over.
    assert outcome["handled_while_wedged"] == [
        str(n).encode() for n in [0, *range(passed_over + 1, MESSAGES + 1)]
    ]
    assert outcome["committed_while_wedged"] == 1
    # The watch read the partition again once, after the stall, and everything was handled.
    assert len(outcome["rereads"]) == 1
    assert outcome["counted"] == 1
    assert outcome["seconds"] >= STALL_SECONDS
    # Read again from the committed offset: those handled before come again (every handler
    # of npsloop bears that), those passed over come for the first time.
    assert outcome["handled"][len(outcome["handled_while_wedged"]) :] == [
        str(n).encode() for n in range(1, MESSAGES + 1)
    ]


def test_the_first_messages_of_a_partition_never_committed_are_not_committed_past(
    fresh_kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Before the group's first commit, the first offset is the partition's own: a stream
    that passed over the first three would otherwise commit past them (lost for good)."""
    outcome = asyncio.run(wedge_and_watch(fresh_kafka_bootstrap, tmp_path, 3, from_start=True))
    assert outcome["handled_while_wedged"] == [str(n).encode() for n in range(3, MESSAGES + 1)]
    assert outcome["committed_while_wedged"] is None
    # Read again from the partition's start: each time whole and in order (more than once
    # when the fetch after the seek takes longer than the test's stall of 2 s).
    assert outcome["rereads"]
    after = outcome["handled"][len(outcome["handled_while_wedged"]) :]
    whole = [str(n).encode() for n in range(MESSAGES + 1)]
    assert after and after == whole * (len(after) // len(whole))


def test_the_consumer_fetches_with_the_wait_it_was_set_up_with(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Faust fixes the broker's fetch wait at 1500 ms, and the embedded broker answers a
    fetch only when its wait is over: each hop of the pipeline took up to that long there."""

    def app_with(**wait: int) -> faust.App:
        app = faust.App(
            f"fetch-{uuid.uuid4().hex[:8]}",
            broker=f"kafka://{kafka_bootstrap}",
            store="memory://",
            datadir=str(tmp_path),
            web_enabled=False,
        )
        use_contiguous_commits(app, **wait)
        return app

    async def fetch_wait(app: faust.App) -> int:
        # The aiokafka client Faust's consumer thread makes, started as the thread starts it.
        thread: Any = app.consumer._thread  # type: ignore[attr-defined]
        client = thread._create_worker_consumer(app.transport)
        await client.start()
        try:
            return int(client._fetcher._fetch_max_wait_ms)
        finally:
            await client.stop()

    assert asyncio.run(fetch_wait(app_with(fetch_max_wait_ms=40))) == 40
    assert asyncio.run(fetch_wait(app_with())) == 500
