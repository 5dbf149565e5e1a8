"""The relay that publishes ingest's journal, against a producer whose broker does not answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.ingest.adapters import Relay
from services.ingest.store import Inbound, IngestStore
from shared import topics
from shared.events import encode
from tests.unit.builders import a_response, run


class SilentTopic:
    """A topic whose producer takes every message and never hears back from the broker."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[object]] = []

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[object]:
        confirmation: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.sent.append(confirmation)
        return confirmation


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> IngestStore:
    return IngestStore(sessions, webhook_memory=timedelta(minutes=10))


def test_a_broker_that_does_not_confirm_leaves_the_entries_for_later_and_says_so(
    store: IngestStore,
) -> None:
    response = a_response()
    inbound = Inbound(topics.RESPONSES, response.customer_id, response.customer_id, response)
    store.accept([inbound], None, datetime.now(UTC))
    topic = SilentTopic()
    relay = Relay(
        store,
        {topics.RESPONSES.name: topic},  # type: ignore[dict-item]
        CollectorRegistry(),
        send_timeout_seconds=0.2,
    )

    async def publish() -> str:
        with pytest.raises(TimeoutError) as raised:
            await relay.publish_once()
        # The producer still holds the message and may yet deliver it: left to finish.
        assert [confirmation.cancelled() for confirmation in topic.sent] == [False]
        return str(raised.value)

    reason = run(publish())

    assert reason == "the broker confirmed 0 of 1 entries within 0.2s"
    assert relay.backlog == 1
    assert [
        entry.key
        for entry in store.claim_unpublished(datetime.now(UTC), datetime.now(UTC), 10).entries
    ] == [response.customer_id]


class ConfirmingTopic:
    """A topic whose broker confirms every message at once."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[object]:
        self.values.append(value)
        confirmation: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        confirmation.set_result(None)
        return confirmation


def test_each_round_publishes_a_batch_and_leaves_the_rest_as_the_backlog(
    store: IngestStore,
) -> None:
    responses = [a_response(response_id=f"resp-{n}") for n in range(3)]
    store.accept(
        [Inbound(topics.RESPONSES, r.customer_id, r.customer_id, r) for r in responses],
        None,
        datetime.now(UTC),
    )
    topic = ConfirmingTopic()
    registry = CollectorRegistry()
    relay = Relay(store, {topics.RESPONSES.name: topic}, registry, batch_size=2)  # type: ignore[dict-item]

    async def rounds() -> list[tuple[int, int, float | None]]:
        seen = []
        for _ in range(3):
            sent = await relay.publish_once()
            seen.append((sent, relay.backlog, registry.get_sample_value("npsloop_journal_backlog")))
        return seen

    assert run(rounds()) == [(2, 1, 1.0), (1, 0, 0.0), (0, 0, 0.0)]
    assert topic.values == [encode(r) for r in responses]
    assert store.backlog() == 0
    assert (
        registry.get_sample_value(
            "npsloop_journal_published_total", {"topic": topics.RESPONSES.name}
        )
        == 3.0
    )
