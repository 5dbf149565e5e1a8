"""The v1 event contract: what decode() accepts, what it refuses and why."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import Contact, DeadLetter, DecodeError, Response, decode, encode
from tests.unit.builders import a_response


def response_json(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "5b8f3c0e-7a55-4e2b-9a53-2f0a1d2c3b4a",
        "occurred_at": "2026-03-01T10:00:00Z",
        "response_id": "inv-42",
        "customer_id": "cust-7",
        "score": 4,
        "comment": "Slow delivery",
        "responded_at": "2026-03-01T09:59:00+01:00",
    }
    document.update(overrides)
    return document


def as_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_a_valid_response_decodes_into_its_fields() -> None:
    response = decode(Response, as_bytes(response_json()))
    assert response.event_id == uuid.UUID("5b8f3c0e-7a55-4e2b-9a53-2f0a1d2c3b4a")
    assert response.response_id == "inv-42"
    assert response.customer_id == "cust-7"
    assert response.score == 4
    assert response.comment == "Slow delivery"
    assert response.responded_at == datetime(2026, 3, 1, 8, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (response_json(score=11), "score"),
        (response_json(score="7"), "score"),
        ({k: v for k, v in response_json().items() if k != "customer_id"}, "customer_id"),
        (response_json(schema_version=2), "schema_version"),
        (response_json(occurred_at="2026-03-01T10:00:00"), "occurred_at"),
    ],
    ids=["score-11", "score-as-string", "no-customer-id", "schema-version-2", "naive-time"],
)
def test_an_invalid_response_is_a_decode_error_naming_the_field(
    document: dict[str, Any], field: str
) -> None:
    with pytest.raises(DecodeError) as raised:
        decode(Response, as_bytes(document))
    assert f"{field}:" in str(raised.value)


def test_bytes_that_are_not_json_are_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="Invalid JSON"):
        decode(Response, b"\xff\xfenot json at all")


@pytest.mark.parametrize(
    "value",
    [
        as_bytes(response_json(comment="late \ud800 again")),
        json.dumps(response_json(comment="\udc00"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        ),
    ],
    ids=["escaped", "encoded"],
)
def test_an_unpaired_surrogate_is_a_decode_error_that_says_so(value: bytes) -> None:
    with pytest.raises(DecodeError, match=r"Invalid JSON: .*surrogate"):
        decode(Response, value)


def test_a_message_without_a_value_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="no value"):
        decode(Response, None)


def test_an_encoded_response_decodes_to_an_equal_response() -> None:
    original = a_response(9, comment="Großartig — merci ✓", email="ana@example.com", name="Ana")
    assert decode(Response, encode(original)) == original


def test_unknown_fields_from_a_newer_producer_are_ignored() -> None:
    document = response_json(sentiment="negative", nested={"future": True})
    response = decode(Response, as_bytes(document))
    assert response.score == 4
    assert "sentiment" not in response.model_dump()


@pytest.mark.parametrize(
    "contact",
    [
        {"name": "Eve\r\nBcc: victims@example.com"},
        {"name": "Eve\nBcc: victims@example.com"},
        {"email": "eve@example.com\nBcc: victims@example.com"},
        # Every line break Python's str.splitlines() knows, as a mail library may split.
        *({"name": f"Eve{brk}Bcc: victims@example.com"} for brk in "\x0b\x0c\x1c\x85\u2028"),
    ],
)
def test_a_name_or_email_with_a_line_break_is_refused(contact: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Contact(**contact)
    with pytest.raises(DecodeError, match="contact"):
        decode(Response, as_bytes(response_json(contact=contact)))


def test_a_plain_name_and_email_are_accepted() -> None:
    contact = Contact(name="Ana Lima", email=" ana@example.com ")
    assert contact.email == "ana@example.com"
    assert contact.name == "Ana Lima"


def test_a_dead_letter_keeps_arbitrary_bytes_through_json() -> None:
    key = b"\xff\x00\xfe"
    value = bytes(range(256))
    letter = DeadLetter(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        service="classifier",
        topic="npsloop.responses.v1",
        partition=3,
        offset=1234,
        key=key,
        value=value,
        error_type="DecodeError",
        error="value: Invalid JSON",
        failed_at=datetime.now(UTC),
    )
    encoded = encode(letter)
    json.loads(encoded)  # the envelope itself is valid JSON, whatever the bytes were
    decoded = decode(DeadLetter, encoded)
    assert decoded.key == key
    assert decoded.value == value
    assert decoded == letter
