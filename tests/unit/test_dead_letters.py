"""EventLoop's dead letters: every failed event gets one, and it always fits on the dlq."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from shared.db import make_engine
from shared.events import DeadLetter, Response, decode
from shared.metrics import StreamMetrics
from shared.streams import DEAD_LETTER_MAX_VALUE_BYTES, EventLoop, Handler
from tests.unit.builders import run

# The default limit of aiokafka's and Faust's producers (and near Kafka's message.max.bytes).
PRODUCER_LIMIT = 1_000_000


class FakeDlq:
    """A dlq topic that records what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def dead_letter_of(
    key: bytes | None, value: bytes | None, handle: Handler | None = None
) -> tuple[DeadLetter, int]:
    dlq = FakeDlq()
    loop = EventLoop("classifier", dlq, StreamMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]
    message = SimpleNamespace(
        topic="npsloop.responses.v1", partition=3, offset=41, key=key, value=value
    )

    async def decode_it(_key: bytes | None, data: bytes | None) -> None:
        decode(Response, data)

    run(loop.process(message, handle or decode_it))
    [(_, letter)] = dlq.sent
    return decode(DeadLetter, letter), len(letter)


def test_a_malformed_message_is_kept_whole_in_its_dead_letter_with_the_reason() -> None:
    letter, _ = dead_letter_of(b"c-1", b'{"score": "7"}')
    assert (letter.key, letter.value) == (b"c-1", b'{"score": "7"}')
    assert (letter.key_size, letter.value_size) == (None, None)
    assert "score" in letter.error and letter.error_type == "DecodeError"
    assert (letter.topic, letter.partition, letter.offset) == ("npsloop.responses.v1", 3, 41)


def test_a_message_too_big_for_a_letter_keeps_its_beginning_and_its_size() -> None:
    huge = b'{"comment": "' + b"x" * (1024 * 1024) + b'"}'
    letter, size = dead_letter_of(b"k" * 200_000, huge)
    assert size < PRODUCER_LIMIT
    assert letter.value == huge[:DEAD_LETTER_MAX_VALUE_BYTES]
    assert letter.value_size == len(huge)
    assert letter.key is not None and b"k" * 1000 in letter.key
    assert letter.key_size == 200_000
    assert "Invalid JSON" in letter.error or "comment" in letter.error


def test_a_database_error_names_no_customers_address_in_its_letter_or_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as db:
        db.execute(text("CREATE TABLE contacts (email TEXT UNIQUE)"))

    async def store_twice(_key: bytes | None, _data: bytes | None) -> None:
        with engine.begin() as db:
            for _ in range(2):
                db.execute(
                    text("INSERT INTO contacts VALUES (:email)"), {"email": "kim@example.com"}
                )

    with caplog.at_level(logging.INFO):
        letter, _ = dead_letter_of(b"c-1", b"{}", store_twice)

    assert letter.error_type == "IntegrityError" and "UNIQUE" in letter.error
    assert "kim@example.com" not in letter.error
    assert "kim@example.com" not in caplog.text
