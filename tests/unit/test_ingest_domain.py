"""The edge: what submissions it accepts, the events it makes of them, and its HTTP handlers."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.ingest.domain import PurchaseSubmission, ResponseSubmission, validation_errors
from services.ingest.openapi import openapi_document
from services.ingest.planning import Rules
from services.ingest.store import Inbound, IngestStore, JournalFull, ReplayedWebhook
from services.ingest.web import EdgeConfig, IngestRoutes, Journal
from shared import topics
from shared.db import make_engine, session_factory
from shared.events import Event, Purchase, Response
from shared.process import free_port
from shared.send_window import SendWindow
from shared.signing import webhook_headers
from shared.topics import TopicSpec
from tests.unit.builders import run

RECEIVED_AT = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)


def a_response_submission(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"invitation_id": "inv-1", "customer_id": "cust-1", "score": 3}
    body.update(overrides)
    return body


def a_purchase_submission(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": "ord-1",
        "customer_id": "cust-1",
        "amount": "129.95",
        "currency": "DKK",
        "segment": {"region": "Nordics", "store": "Aarhus"},
    }
    body.update(overrides)
    return body


# --- ResponseSubmission -------------------------------------------------------------------


def test_a_response_needs_a_response_id_or_an_invitation_id() -> None:
    with pytest.raises(ValidationError, match="response_id or invitation_id"):
        ResponseSubmission.model_validate({"customer_id": "cust-1", "score": 3})


def test_the_response_id_defaults_to_the_invitation_id() -> None:
    event = ResponseSubmission.model_validate(a_response_submission()).to_event(RECEIVED_AT)
    assert event.response_id == "inv-1"
    assert event.invitation_id == "inv-1"


def test_a_given_response_id_is_kept() -> None:
    submission = ResponseSubmission.model_validate(a_response_submission(response_id="r-9"))
    assert submission.to_event(RECEIVED_AT).response_id == "r-9"


def test_the_response_time_defaults_to_when_it_was_received() -> None:
    event = ResponseSubmission.model_validate(a_response_submission()).to_event(RECEIVED_AT)
    assert event.responded_at == RECEIVED_AT
    assert event.occurred_at == RECEIVED_AT


def test_the_same_submission_twice_is_the_same_event() -> None:
    first = ResponseSubmission.model_validate(a_response_submission(comment="meh"))
    again = ResponseSubmission.model_validate(a_response_submission(comment="meh"))
    later = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    assert first.to_event(RECEIVED_AT).event_id == again.to_event(later).event_id


def test_a_new_comment_is_a_new_event_about_the_same_response() -> None:
    without = ResponseSubmission.model_validate(a_response_submission()).to_event(RECEIVED_AT)
    commented = ResponseSubmission.model_validate(
        a_response_submission(comment="The app crashed at checkout")
    ).to_event(RECEIVED_AT)
    assert commented.event_id != without.event_id
    assert commented.response_id == without.response_id


def test_a_response_submission_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        ResponseSubmission.model_validate(a_response_submission(scroe=9))
    assert [error["type"] for error in raised.value.errors()] == ["extra_forbidden"]


# --- PurchaseSubmission -------------------------------------------------------------------


def test_a_purchase_event_keeps_amount_currency_and_segment() -> None:
    event = PurchaseSubmission.model_validate(a_purchase_submission()).to_event(RECEIVED_AT)
    assert isinstance(event, Purchase)
    assert event.amount == Decimal("129.95")
    assert event.currency == "DKK"
    assert event.segment.region == "Nordics"
    assert event.segment.store == "Aarhus"
    assert event.customer_id == "cust-1"
    assert event.purchased_at == RECEIVED_AT


@pytest.mark.parametrize("currency", ["dkk", "DK", "DKKK", "D1K", ""])
def test_a_currency_is_three_upper_case_letters(currency: str) -> None:
    with pytest.raises(ValidationError, match="currency"):
        PurchaseSubmission.model_validate(a_purchase_submission(currency=currency))


def test_validation_errors_are_located_in_the_body_and_name_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        PurchaseSubmission.model_validate(
            a_purchase_submission(amount="-1", contact={"email": "not-an-address"})
        )
    errors = validation_errors(raised.value.errors(include_url=False))
    assert {error["field"] for error in errors} == {"amount", "contact.email"}
    for error in errors:
        assert error["loc"][0] == "body"
        assert ".".join(str(part) for part in error["loc"][1:]) == error["field"]
        assert isinstance(error["msg"], str) and error["msg"]


# --- OpenAPI ------------------------------------------------------------------------------


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def test_the_openapi_document_describes_both_webhooks_with_their_422() -> None:
    document = openapi_document()
    for path in ("/v1/responses", "/v1/purchases"):
        responses = document["paths"][path]["post"]["responses"]
        assert "422" in responses
        assert "202" in responses


def test_every_reference_in_the_openapi_document_resolves() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    refs = all_refs(document)
    assert "#/components/schemas/ResponseSubmission" in refs
    prefix = "#/components/schemas/"
    for ref in refs:
        assert ref.startswith(prefix), ref
        assert ref.removeprefix(prefix) in schemas, ref


# --- HTTP handlers ------------------------------------------------------------------------


RULES = Rules(
    delay_service=timedelta(hours=24),
    delay_product=timedelta(days=14),
    window=SendWindow.parse("09:00-20:00"),
    default_timezone="Europe/Copenhagen",
    fatigue=timedelta(days=90),
)
SECRET = "whsec_" + base64.b64encode(b"a test secret of 24 bytes").decode()


class FakeJournal:
    """Records what was journaled; its backlog can be set to that of a broker that is away."""

    def __init__(self, *, backlog: int = 0) -> None:
        self.backlog = backlog
        self.published: list[tuple[TopicSpec, str, Event]] = []
        self.webhook_ids: set[str] = set()

    def accept(
        self,
        inbound: list[Inbound],
        webhook_id: str | None,
        now: datetime,
        max_backlog: int | None = None,
    ) -> int:
        if max_backlog is not None and self.backlog >= max_backlog:
            raise JournalFull(max_backlog)
        if webhook_id is not None:
            if webhook_id in self.webhook_ids:
                raise ReplayedWebhook(webhook_id)
            self.webhook_ids.add(webhook_id)
        self.published.extend((item.spec, item.key, item.event) for item in inbound)
        return len(inbound)


class Answer:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def routes_for(journal: Journal, registry: CollectorRegistry | None = None) -> IngestRoutes:
    return IngestRoutes(
        journal,
        on_accepted=lambda: None,
        config=EdgeConfig(SECRET, max_body_bytes=1024 * 1024, max_backlog=100, rules=RULES),
        registry=registry or CollectorRegistry(),
    )


def post(
    journal: FakeJournal,
    path: str,
    body: Any,
    routes: IngestRoutes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """POST a body (JSON-encoded unless already bytes/str), signed, to the routes, in process."""
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    raw = data.encode() if isinstance(data, str) else data
    handlers = routes or routes_for(journal)
    signed = webhook_headers(SECRET, f"msg_{uuid.uuid4().hex}", raw) if headers is None else headers

    async def exchange() -> Answer:
        app = web.Application()
        handlers.register(app.router)
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(
                path, data=raw, headers={"Content-Type": "application/json", **signed}
            )
            text = await answer.text()
            is_json = answer.content_type == "application/json"
            return Answer(
                answer.status, json.loads(text) if is_json else text, dict(answer.headers)
            )

    return run(exchange())


def fields_of(answer: Answer) -> list[str]:
    return [error["field"] for error in answer.body["detail"]]


def test_a_valid_response_is_accepted_and_published_once_keyed_by_customer() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/responses", a_response_submission(comment="Too slow"))
    assert answer.status == 202
    assert answer.body["accepted"] == 1
    assert answer.body["response_id"] == "inv-1"
    assert len(journal.published) == 1
    spec, key, event = journal.published[0]
    assert spec is topics.RESPONSES
    assert key == "cust-1"
    assert isinstance(event, Response)
    assert event.score == 3
    assert event.comment == "Too slow"
    assert answer.body["event_id"] == str(event.event_id)


def test_a_score_of_eleven_is_refused_naming_score_and_nothing_is_published() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/responses", a_response_submission(score=11))
    assert answer.status == 422
    assert fields_of(answer) == ["score"]
    assert journal.published == []


def test_a_response_without_a_customer_is_refused_naming_customer_id() -> None:
    journal = FakeJournal()
    body = a_response_submission()
    del body["customer_id"]
    answer = post(journal, "/v1/responses", body)
    assert answer.status == 422
    assert "customer_id" in fields_of(answer)
    assert journal.published == []


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/purchases"])
def test_a_body_that_is_not_json_is_refused_and_nothing_is_published(path: str) -> None:
    journal = FakeJournal()
    answer = post(journal, path, "not json")
    assert answer.status == 422
    assert answer.body["detail"][0]["type"] == "json_invalid"
    assert journal.published == []


def test_a_comment_with_a_control_character_is_refused_with_422() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/responses", a_response_submission(comment="ding\x07"))
    assert answer.status == 422
    assert fields_of(answer) == ["comment"]
    assert journal.published == []


def test_a_batch_of_purchases_is_accepted_and_each_one_published() -> None:
    journal = FakeJournal()
    batch = [
        a_purchase_submission(order_id="ord-1", customer_id="cust-1"),
        a_purchase_submission(order_id="ord-2", customer_id="cust-2"),
    ]
    answer = post(journal, "/v1/purchases", batch)
    assert answer.status == 202
    assert answer.body["accepted"] == 2
    assert [(spec, key) for spec, key, _ in journal.published] == [
        (topics.PURCHASES, "cust-1"),
        (topics.PURCHASES, "cust-2"),
    ]
    assert answer.body["event_ids"] == [str(event.event_id) for _, _, event in journal.published]


def test_a_single_purchase_object_is_accepted_too() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/purchases", a_purchase_submission())
    assert answer.status == 202
    assert answer.body["accepted"] == 1
    assert len(journal.published) == 1


def test_a_batch_with_a_bad_second_item_is_refused_whole_naming_the_item() -> None:
    journal = FakeJournal()
    batch = [a_purchase_submission(order_id="ord-1"), a_purchase_submission(amount="-5")]
    answer = post(journal, "/v1/purchases", batch)
    assert answer.status == 422
    assert fields_of(answer) == ["1.amount"]
    assert answer.body["detail"][0]["loc"] == ["body", 1, "amount"]
    assert journal.published == []


def test_an_empty_batch_is_refused_naming_the_body() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/purchases", [])
    assert answer.status == 422
    assert fields_of(answer) == ["body"]
    assert journal.published == []


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/responses", a_response_submission()), ("/v1/purchases", [a_purchase_submission()])],
)
def test_a_journal_too_far_behind_the_broker_answers_503_with_retry_after(
    path: str, body: Any
) -> None:
    answer = post(FakeJournal(backlog=100), path, body)
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "try again" in answer.body["error"]


def test_a_journal_whose_database_is_away_answers_503_with_retry_after_not_500() -> None:
    # A real store on a PostgreSQL port nobody listens on: connection refused, as while the
    # database restarts.
    away = make_engine(f"postgresql+psycopg2://npsloop@127.0.0.1:{free_port()}/npsloop")
    store = IngestStore(session_factory(away), webhook_memory=timedelta(minutes=10))
    answer = post(FakeJournal(), "/v1/responses", a_response_submission(), routes_for(store))
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "try again" in answer.body["error"]


def requests_counted(registry: CollectorRegistry, endpoint: str, outcome: str) -> float | None:
    return registry.get_sample_value(
        "npsloop_ingest_requests_total", {"endpoint": endpoint, "outcome": outcome}
    )


def test_every_request_is_counted_by_endpoint_and_outcome() -> None:
    registry = CollectorRegistry()
    journal = FakeJournal()
    routes = routes_for(journal, registry)
    post(journal, "/v1/responses", a_response_submission(), routes)
    post(journal, "/v1/responses", a_response_submission(score=11), routes)
    post(journal, "/v1/responses", "not json", routes)
    journal.backlog = 100
    post(journal, "/v1/purchases", a_purchase_submission(), routes)
    assert requests_counted(registry, "responses", "accepted") == 1.0
    assert requests_counted(registry, "responses", "invalid") == 2.0
    assert requests_counted(registry, "responses", "unavailable") == 0.0
    assert requests_counted(registry, "purchases", "unavailable") == 1.0
    assert requests_counted(registry, "purchases", "accepted") == 0.0


# --- signatures and size -------------------------------------------------------------------


def test_a_request_without_signature_headers_is_refused_with_401_naming_them() -> None:
    journal = FakeJournal()
    answer = post(journal, "/v1/responses", a_response_submission(), headers={})
    assert answer.status == 401
    assert "webhook-signature" in answer.body["error"]
    assert journal.published == []


def test_a_wrong_signature_is_refused_with_401() -> None:
    journal = FakeJournal()
    body = json.dumps(a_response_submission()).encode()
    headers = webhook_headers("another secret", "msg_wrong", body)
    answer = post(journal, "/v1/responses", body, headers=headers)
    assert answer.status == 401
    assert "does not match" in answer.body["error"]
    assert journal.published == []


def test_a_signature_over_another_body_is_refused_with_401() -> None:
    journal = FakeJournal()
    headers = webhook_headers(SECRET, "msg_tampered", json.dumps(a_response_submission()).encode())
    tampered = json.dumps(a_response_submission(score=10)).encode()
    answer = post(journal, "/v1/responses", tampered, headers=headers)
    assert answer.status == 401
    assert journal.published == []


def test_a_stale_timestamp_is_refused_with_401_saying_so() -> None:
    journal = FakeJournal()
    body = json.dumps(a_response_submission()).encode()
    headers = webhook_headers(SECRET, "msg_stale", body, timestamp=int(time.time()) - 6 * 60)
    answer = post(journal, "/v1/responses", body, headers=headers)
    assert answer.status == 401
    assert "stale" in answer.body["error"]
    assert journal.published == []


def test_a_replayed_webhook_id_is_refused_with_401_saying_so() -> None:
    journal = FakeJournal()
    routes = routes_for(journal)
    body = json.dumps(a_response_submission()).encode()
    headers = webhook_headers(SECRET, "msg_once", body)
    assert post(journal, "/v1/responses", body, routes=routes, headers=headers).status == 202
    again = post(journal, "/v1/responses", body, routes=routes, headers=headers)
    assert again.status == 401
    assert "already received" in again.body["error"]
    assert len(journal.published) == 1


def test_a_body_over_the_limit_is_refused_with_413() -> None:
    journal = FakeJournal()
    body = json.dumps(a_response_submission(comment="x" * 9_000)).encode() + b" " * (1024 * 1024)
    answer = post(journal, "/v1/responses", body)
    assert answer.status == 413
    assert journal.published == []
