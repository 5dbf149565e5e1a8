"""Ingest's adapters: publishing accepted events onto their topics."""

from __future__ import annotations

import asyncio
from typing import Protocol

import faust

from shared.events import Event, encode
from shared.topics import TopicSpec


class PublishError(Exception):
    """The broker did not confirm an event in time; the client should retry."""


class Publisher(Protocol):
    """Puts events on topics and returns once the broker has them."""

    async def publish(self, spec: TopicSpec, key: str, event: Event) -> None: ...


class FaustPublisher:
    """Publishes with the worker's own producer and waits for the broker's acknowledgement."""

    def __init__(self, topics: dict[str, faust.TopicT], timeout_seconds: float = 10.0) -> None:
        self._topics = topics
        self._timeout = timeout_seconds

    async def publish(self, spec: TopicSpec, key: str, event: Event) -> None:
        topic = self._topics[spec.name]
        try:
            async with asyncio.timeout(self._timeout):
                pending = await topic.send(key=key.encode(), value=encode(event))
                await pending
        except TimeoutError as exc:
            raise PublishError(f"the broker did not confirm within {self._timeout:.0f}s") from exc
