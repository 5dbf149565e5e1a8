"""Prometheus helpers: one registry per worker, metrics passed that registry explicitly.

Labels stay low-cardinality: a service, a topic, an outcome, a channel; never an
id or an address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class StreamMetrics:
    """What every worker counts about the events it consumes."""

    events: Counter
    dead_letters: Counter
    retries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StreamMetrics:
        return cls(
            events=Counter(
                "npsloop_events_processed_total",
                "Events consumed, by topic and outcome (ok, dead_letter).",
                ["service", "topic", "outcome"],
                registry=registry,
            ),
            dead_letters=Counter(
                "npsloop_dead_letters_total",
                "Events sent to the dead-letter topic, by the topic they came from and why "
                "(the kind of error, e.g. DecodeError).",
                ["service", "topic", "reason"],
                registry=registry,
            ),
            retries=Counter(
                "npsloop_event_retries_total",
                "Event attempts repeated after a transient failure (database or broker away).",
                ["service", "topic"],
                registry=registry,
            ),
        )


PartitionKey = tuple[str, int]


def partition_lag(
    highwaters: Mapping[PartitionKey, int | None],
    committed: Mapping[PartitionKey, int | None],
) -> dict[PartitionKey, int]:
    """Messages not yet processed in each partition: its end offset less the committed one.

    Both offsets name the next message (Kafka's convention), so a partition that is
    caught up has lag 0. A partition whose end is not known yet (no fetch answered)
    is left out rather than guessed; one never committed counts from offset 0,
    where a worker reading from the earliest offset starts.
    """
    return {
        key: max(highwater - (committed.get(key) or 0), 0)
        for key, highwater in highwaters.items()
        if highwater is not None
    }


@dataclass(frozen=True)
class ConsumerLag:
    """How far behind its topics' ends each partition that a worker holds is."""

    messages: Gauge
    _shown: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerLag:
        return cls(
            Gauge(
                "npsloop_consumer_lag_messages",
                "Messages in an assigned partition not yet processed and committed by this "
                "worker's consumer group (end offset - committed offset).",
                ["topic", "partition"],
                registry=registry,
            )
        )

    def show(self, lags: Mapping[PartitionKey, int]) -> None:
        """Set the lag of the partitions held now; forget those given away in a rebalance."""
        current = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for labels in self._shown - current.keys():
            self.messages.remove(*labels)
        for labels, lag in current.items():
            self.messages.labels(*labels).set(lag)
        self._shown.clear()
        self._shown.update(current)


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
