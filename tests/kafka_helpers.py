"""Reading topics in tests with aiokafka and no consumer group.

kafka-python's group consumer does not join a group on Tansu; producing with it is fine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

# Room for records bigger than the clients' 1 MiB defaults (the embedded broker takes them).
LARGE_RECORD_BYTES = 8 * 1024 * 1024


def produce(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close()


def produce_many(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> list[tuple[str, int, int]]:
    """Produce (topic, key, value) records with one producer; where each landed
    (topic, partition, offset), in the order given."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=20,
        max_request_size=LARGE_RECORD_BYTES,
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        producer.flush(timeout=120)
        landed = [future.get(timeout=30) for future in futures]
        return [(meta.topic, meta.partition, meta.offset) for meta in landed]
    finally:
        producer.close()


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=LARGE_RECORD_BYTES,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[tuple[bytes | None, bytes | None]] = []
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    records.append((message.key, message.value))
                    if message.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        # The embedded broker answers an end offset short of a batch written at once (two
        # dead letters in the same millisecond): the ends are where reading may stop at the
        # earliest, and it goes on until a fetch finds nothing more.
        while batch := await consumer.getmany(timeout_ms=300):
            records.extend((m.key, m.value) for messages in batch.values() for m in messages)
        return records
    finally:
        await consumer.stop()


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record on the topic right now, in partition order."""
    return asyncio.run(_read_all(bootstrap, topic))


# How long collect() waits for anything new before it reads the topic again from the start.
STALL_SECONDS = 2.0


async def _collect(
    bootstrap: str,
    topic: str,
    count: int,
    deadline: float,
    settle: float,
    check: Callable[[], None],
    enough: Callable[[list[tuple[bytes | None, bytes | None]]], bool] | None = None,
) -> dict[tuple[int, int], tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=LARGE_RECORD_BYTES,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        assigned = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not assigned:
            return {}
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        # By place, so that a record read twice (after a new start) counts once.
        records: dict[tuple[int, int], tuple[bytes | None, bytes | None]] = {}
        last_new = last_start = time.monotonic()
        satisfied = False
        while time.monotonic() < deadline:
            check()
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    place = (tp.partition, message.offset)
                    if place not in records:
                        records[place] = (message.key, message.value)
                        last_new = time.monotonic()
                        satisfied = False
            now = time.monotonic()
            caught_up = not any(batch.values())
            if not satisfied and len(records) >= count and (enough is None or caught_up):
                # ``enough`` is asked only once caught up, as it may read every record.
                satisfied = enough is None or enough(list(records.values()))
            if satisfied and now - last_new >= settle:
                break
            if not satisfied and min(now - last_new, now - last_start) >= STALL_SECONDS:
                # A consumer that has caught up with a partition while it was being written
                # can be told "nothing more" for good by the embedded broker, though a
                # fresh read finds the rest: read again from the start.
                await consumer.seek_to_beginning(*assigned)
                last_start = now
        return records
    finally:
        await consumer.stop()


def collect(
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float = 60.0,
    settle: float = 0.0,
    check: Callable[[], None] = lambda: None,
    enough: Callable[[list[tuple[bytes | None, bytes | None]]], bool] | None = None,
) -> list[tuple[bytes | None, bytes | None]]:
    """The topic's records from its beginning, read until there are ``count`` (and, if
    given, ``enough`` says they are enough, asked whenever the reading has caught up) and
    then nothing new for ``settle`` seconds, or until ``timeout``; ``check`` runs between
    reads.

    It counts what it reads rather than trusting end offsets: the embedded broker (Tansu
    0.6) answers ListOffsets with a wrong end offset after batched writes. And it reads the
    topic again from its start when nothing new comes while records are missing: the same
    broker can leave a consumer that caught up mid-write without the last records.
    """
    deadline = time.monotonic() + timeout
    records = asyncio.run(_collect(bootstrap, topic, count, deadline, settle, check, enough))
    return [records[place] for place in sorted(records)]


def collect_placed(
    bootstrap: str, topic: str, count: int, timeout: float = 60.0
) -> dict[tuple[int, int], tuple[bytes | None, bytes | None]]:
    """Like collect, each record by its place: (partition, offset)."""
    deadline = time.monotonic() + timeout
    return asyncio.run(_collect(bootstrap, topic, count, deadline, 0.0, lambda: None))


def wait_for_records(
    bootstrap: str, topic: str, count: int, timeout: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    deadline = time.monotonic() + timeout
    records = read_all(bootstrap, topic)
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        records = read_all(bootstrap, topic)
    return records
