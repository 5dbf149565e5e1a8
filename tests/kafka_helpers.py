"""Reading topics in tests with aiokafka and no consumer group.

kafka-python's group consumer does not join a group on Tansu; producing with it is fine.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer


def produce(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close()


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
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
        return records
    finally:
        await consumer.stop()


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record on the topic right now, in partition order."""
    return asyncio.run(_read_all(bootstrap, topic))


def wait_for_records(
    bootstrap: str, topic: str, count: int, timeout: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    deadline = time.monotonic() + timeout
    records = read_all(bootstrap, topic)
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        records = read_all(bootstrap, topic)
    return records
