"""The whole loop on the real embedded broker: ingest -> classifier -> notifier and aggregator.

The four real Faust workers run as processes; slack-sdk and sendgrid talk HTTP to
fake servers; the database is SQLite or the local PostgreSQL. The first test
checks the stack's totals, so it runs first on a fresh stack; the others count
what they add.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import topics
from shared.events import DeadLetter, decode
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.fakes import FakeServer
from tests.kafka_helpers import produce, read_all, wait_for_records
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

GOOGLE = "https://g.page/r/test-shop/review"
FACEBOOK = "https://www.facebook.com/test-shop/reviews"
SETTLE_SECONDS = 3.0


@dataclass
class Running:
    stack: Stack
    slack: FakeServer
    sendgrid: FakeServer

    def post_response(self, **body: object) -> tuple[int, dict[str, object]]:
        status, text, _ = http_post(
            self.stack.url("ingest") + "/v1/responses", json.dumps(body).encode()
        )
        return status, json.loads(text)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = http_get(self.stack.url("aggregator") + "/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def _nps_sample(running: Running, name: str, **labels: str) -> float:
    whole = {"survey_kind": "nps", "window": "30d", "dimension": "all", "segment": "all"}
    key = (name, tuple(sorted({**whole, **labels}.items())))
    return running.metrics().get(key, math.nan)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    postgres_admin_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    database_url = None
    if request.param == "postgresql":
        database_url = create_postgres_database(postgres_admin_url)
    env = {
        "NPSLOOP_SLACK_CHANNEL": "#cx-alerts",
        "NPSLOOP_REVIEW_GOOGLE_URL": GOOGLE,
        "NPSLOOP_REVIEW_FACEBOOK_URL": FACEBOOK,
        "NPSLOOP_COMPANY_NAME": "Test Shop",
        # The promoter's review request goes at once, whenever the suite runs.
        "NPSLOOP_SEND_WINDOW": "00:00-24:00",
    }
    data_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    try:
        with stack_with_fakes(kafka_bootstrap, data_dir, env, database_url) as running:
            yield Running(*running)
    finally:
        if database_url:
            drop_postgres_database(postgres_admin_url, database_url)


def test_a_detractor_a_passive_and_a_promoter_make_two_alerts_one_review_email_and_nps_zero(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    for customer, score, comment, contact in [
        ("c-detractor", 2, f"Leveringen var en uge forsinket {run}", {}),
        ("c-passive", 8, f"Helt okej men dyrt {run}", {}),
        ("c-promoter", 10, f"Fantastic staff {run}", {"email": "ann@example.com", "name": "Ann"}),
    ]:
        status, answer = running.post_response(
            response_id=f"{customer}-{run}",
            customer_id=customer,
            score=score,
            comment=comment,
            contact=contact,
        )
        assert status == 202, answer

    running.slack.wait_for(3, "/api/chat.postMessage")
    emails = running.sendgrid.wait_for(1, "/v3/mail/send")
    deadline = time.monotonic() + 30
    while _nps_sample(running, "npsloop_nps") != 0.0 and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(SETTLE_SECONDS)

    posted = running.slack.accepted("/api/chat.postMessage")
    # Detractors and passives alert staff; the promoter's praise is shared with them too.
    alerts = [p for p in posted if p.body["text"].startswith(("Detractor", "Passive"))]
    kudos = [p for p in posted if p not in alerts]
    assert len(alerts) == 2
    assert len(kudos) == 1 and f"Fantastic staff {run}" in json.dumps(kudos[0].body)
    texts = sorted(json.dumps(alert.body, ensure_ascii=False) for alert in alerts)
    assert f"Helt okej men dyrt {run}" in texts[0] or f"Helt okej men dyrt {run}" in texts[1]
    assert any(f"Leveringen var en uge forsinket {run}" in text for text in texts)
    assert {alert.body["channel"] for alert in alerts} == {"#cx-alerts"}
    assert all(a.headers.get("Authorization") == "Bearer xoxb-test-token" for a in alerts)

    emails = running.sendgrid.received("/v3/mail/send")
    assert len(emails) == 1
    mail = emails[0].body
    assert mail["personalizations"][0]["to"][0]["email"] == "ann@example.com"
    contents = " ".join(part["value"] for part in mail["content"])
    assert GOOGLE in contents and FACEBOOK in contents

    assert _nps_sample(running, "npsloop_nps") == 0.0
    for category in ("promoter", "passive", "detractor"):
        assert _nps_sample(running, "npsloop_responses", category=category) == 1.0
    # The figures came from the refreshes, and SREs see what those cost.
    assert running.metrics()[("npsloop_aggregator_refresh_seconds_count", ())] >= 1


def test_the_same_response_delivered_twice_alerts_once(running: Running) -> None:
    run = uuid.uuid4().hex[:8]
    body = {
        "response_id": f"dup-{run}",
        "customer_id": f"c-{run}",
        "score": 1,
        "comment": f"Ingen svarede {run}",
    }
    assert running.post_response(**body)[0] == 202
    assert running.post_response(**body)[0] == 202

    def mine() -> list[object]:
        return [
            a
            for a in running.slack.accepted("/api/chat.postMessage")
            if f"Ingen svarede {run}" in json.dumps(a.body, ensure_ascii=False)
        ]

    deadline = time.monotonic() + 60
    while not mine() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(mine()) == 1

    # The classified event itself, redelivered as Kafka may after a crash: still one alert.
    classified = [
        value
        for key, value in read_all(
            running.stack.bootstrap, running.stack.topic(topics.RESPONSES_CLASSIFIED.name)
        )
        if value and f"dup-{run}".encode() in value
    ]
    # Ingest journals an event once by its id: the second post was accepted, not published again.
    assert len(classified) == 1
    produce(
        running.stack.bootstrap,
        running.stack.topic(topics.RESPONSES_CLASSIFIED.name),
        f"c-{run}".encode(),
        classified[0],
    )
    time.sleep(SETTLE_SECONDS)
    assert len(mine()) == 1


def test_a_malformed_message_goes_to_the_dlq_with_its_reason_and_the_worker_goes_on(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    dlq = running.stack.topic(topics.DLQ.name)
    before = len(read_all(running.stack.bootstrap, dlq))
    responses = running.stack.topic(topics.RESPONSES.name)
    produce(running.stack.bootstrap, responses, b"c-poison", b"\xff\xfenot json at all")
    produce(
        running.stack.bootstrap,
        responses,
        b"c-poison",
        json.dumps({"event_id": str(uuid.uuid4()), "score": "7"}).encode(),
    )

    # Both consumers of the responses topic, the classifier and ingest, dead-letter each one.
    letters = wait_for_records(running.stack.bootstrap, dlq, before + 4)
    time.sleep(SETTLE_SECONDS)
    letters = read_all(running.stack.bootstrap, dlq)
    new = [decode(DeadLetter, value) for _, value in letters[before:]]
    assert sorted(letter.service for letter in new) == ["classifier"] * 2 + ["ingest"] * 2
    for service in ("classifier", "ingest"):
        mine = [letter for letter in new if letter.service == service]
        assert b"\xff\xfenot json at all" in {letter.value for letter in mine}
        assert {letter.topic for letter in mine} == {responses}
        reasons = " | ".join(letter.error for letter in mine)
        assert "score" in reasons and "customer_id" in reasons

    status, _ = running.post_response(
        response_id=f"after-{run}", customer_id=f"c-{run}", score=0, comment=f"Still broken {run}"
    )
    assert status == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(
            f"Still broken {run}" in json.dumps(a.body)
            for a in running.slack.accepted("/api/chat.postMessage")
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the classifier stopped after the poison messages")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"response_id": "x", "customer_id": "c", "score": 11}', "score"),
        (b'{"response_id": "x", "customer_id": "c", "score": -1}', "score"),
        (b'{"response_id": "x", "score": 5}', "customer_id"),
        (b"this is not json", "body"),
    ],
)
def test_bad_input_gets_422_naming_the_field_and_nothing_is_published(
    running: Running, body: bytes, field: str
) -> None:
    responses = running.stack.topic(topics.RESPONSES.name)
    before = len(read_all(running.stack.bootstrap, responses))
    status, text, _ = http_post(running.stack.url("ingest") + "/v1/responses", body)
    assert status == 422
    assert field in {detail["field"] for detail in json.loads(text)["detail"]}
    assert len(read_all(running.stack.bootstrap, responses)) == before


def test_ingest_serves_its_openapi_document(running: Running) -> None:
    status, text = http_get(running.stack.url("ingest") + "/openapi.json")
    assert status == 200
    document = json.loads(text)
    assert document["openapi"].startswith("3.")
    assert {"/v1/responses", "/v1/purchases"} <= set(document["paths"])


def test_a_digest_on_the_topic_is_posted_to_slack_once(running: Running) -> None:
    from datetime import UTC, datetime

    from shared.events import Digest, encode

    title = f"Week 48 digest {uuid.uuid4().hex[:6]}"
    digest = Digest(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        period_start=datetime(2026, 11, 23, tzinfo=UTC),
        period_end=datetime(2026, 11, 30, tzinfo=UTC),
        title=title,
        text="NPS 30d: +23 ± 8 (n=412)",
    )
    name = running.stack.topic(topics.DIGESTS.name)
    produce(running.stack.bootstrap, name, None, encode(digest))
    produce(running.stack.bootstrap, name, None, encode(digest))

    def posted() -> int:
        return sum(
            title in json.dumps(a.body) for a in running.slack.accepted("/api/chat.postMessage")
        )

    deadline = time.monotonic() + 60
    while posted() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(SETTLE_SECONDS)
    assert posted() == 1
