"""Prometheus helpers: one registry per worker, metrics passed that registry explicitly.

Labels stay low-cardinality: a service, a topic, an outcome, a channel; never an
id or an address.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest
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


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
