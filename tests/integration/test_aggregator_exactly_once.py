"""The real aggregator worker on the embedded broker and PostgreSQL: each response counted
once, by id, whatever the repeats, updates and order, and still after it is killed.

Only the aggregator runs (spawned by ``tests/stack.py``); the test plays the classifier,
writing classified responses straight onto the topic, and computes what the figures must
be from what it sent, without the aggregator's code.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaProducer

from shared import topics
from shared.events import (
    CaseAction,
    CaseEvent,
    ClassifiedResponse,
    FollowUpAnswers,
    Invitation,
    InvitationStatus,
    Purchase,
    Response,
    Segment,
    SurveyKind,
    encode,
)
from shared.nps import classify
from shared.process import free_port
from shared.settings import SERVICES
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.stack import READY_TIMEOUT, Stack, http_get

pytestmark = pytest.mark.integration

STORES = ("Aarhus", "Odense", "Aalborg", None)


@dataclass
class Sent:
    """What the test put on the topic, and the truth it implies."""

    latest: dict[str, tuple[datetime, str, int, str | None]] = field(default_factory=dict)
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)

    def add(self, event: ClassifiedResponse) -> None:
        response = event.response
        version = (event.occurred_at, str(event.event_id))
        kept = self.latest.get(response.response_id)
        if kept is None or version > kept[:2]:
            self.latest[response.response_id] = (*version, response.score, response.segment.store)
        self.messages.append((response.customer_id.encode(), encode(event)))

    def truth(self, *stores: str | None) -> dict[str, float | int | None]:
        """The figures of the latest version of each response (of the stores named, if any)."""
        scores = [score for _, _, score, at in self.latest.values() if not stores or at in stores]
        promoters = sum(score >= 9 for score in scores)
        detractors = sum(score <= 6 for score in scores)
        n = len(scores)
        return {
            "responses": n,
            "promoters": promoters,
            "passives": n - promoters - detractors,
            "detractors": detractors,
            "nps": None if n == 0 else 100.0 * (promoters - detractors) / n,
        }


def classified(
    response_id: str, score: int, store: str | None, received: datetime
) -> ClassifiedResponse:
    response = Response(
        event_id=uuid.uuid4(),
        occurred_at=received,
        response_id=response_id,
        customer_id=f"c-{response_id}",
        survey_kind=SurveyKind.NPS,
        score=score,
        answers=FollowUpAnswers(),
        segment=Segment(store=store),
        responded_at=received - timedelta(days=2),
    )
    return ClassifiedResponse(
        event_id=uuid.uuid4(),
        occurred_at=received,
        response=response,
        category=classify(score),
    )


def traffic(rng: random.Random, prefix: str, count: int, sent: Sent) -> list[ClassifiedResponse]:
    """``count`` responses, a third of them updated later, some repeated, some out of order."""
    now = datetime.now(UTC)
    events = []
    for index in range(count):
        response_id = f"{prefix}-{index}"
        store = rng.choice(STORES)
        first = classified(response_id, rng.randint(0, 10), store, now - timedelta(hours=3))
        events.append(first)
        if index % 3 == 0:
            # A comment added later: same response, new score; sometimes it arrives first.
            update = classified(response_id, rng.randint(0, 10), store, now - timedelta(hours=1))
            events.insert(rng.randrange(len(events) + 1), update)
        if index % 5 == 0:
            events.append(first)
    for event in events:
        sent.add(event)
    return events


def publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def figures(
    stack: Stack, worker: str = "aggregator", wait: float = 5.0, **query: str
) -> dict[str, object]:
    """The figures that one aggregator worker (by default the first) answers within
    ``wait`` seconds."""
    params = "&".join(f"{name}={value}" for name, value in {"window": "30d", **query}.items())
    status, text = http_get(f"{stack.worker_url(worker)}/v1/nps?{params}", timeout=wait)
    assert status == 200, text
    answer: dict[str, object] = json.loads(text)
    return answer


def counted(answer: dict[str, object]) -> dict[str, object]:
    return {
        name: answer[name] for name in ("responses", "promoters", "passives", "detractors", "nps")
    }


def wait_for_truth(
    stack: Stack, sent: Sent, timeout: float = 30.0, worker: str = "aggregator"
) -> None:
    deadline = time.monotonic() + timeout
    while counted(figures(stack, worker)) != sent.truth() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert counted(figures(stack, worker)) == sent.truth()
    for store in ("Aarhus", "Odense"):
        by_store = figures(stack, worker, dimension="store", segment=store)
        assert counted(by_store) == sent.truth(store)
    unspecified = figures(stack, worker, dimension="store", segment="unspecified")
    assert counted(unspecified) == sent.truth(None)


def wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while http_get(stack.url("aggregator") + "/ready", timeout=1.0)[0] != 200:
        process = stack.processes["aggregator"]
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(stack.tail("aggregator"))
        time.sleep(0.2)


@pytest.fixture(scope="module")
def aggregator(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One aggregator for the module; the first test kills and restarts it."""
    database_url = create_postgres_database(postgres_admin_url)
    stack = Stack(
        bootstrap=kafka_bootstrap,
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("aggregator"),
    )
    stack.ports = {service: free_port() for service in SERVICES}
    try:
        stack.spawn("aggregator")
        wait_ready(stack)
        yield stack
    finally:
        stack.stop()
        drop_postgres_database(postgres_admin_url, database_url)


def test_figures_equal_the_truth_with_repeats_and_updates_before_and_after_a_kill(
    aggregator: Stack,
) -> None:
    rng = random.Random(2026)
    sent = Sent()
    topic = aggregator.topic(topics.RESPONSES_CLASSIFIED.name)
    publish(aggregator.bootstrap, topic, _messages(traffic(rng, "a", 200, sent)))
    assert len(sent.messages) > 300
    wait_for_truth(aggregator, sent)

    # Killed mid-stream: what it had consumed but not committed comes again on restart.
    more = traffic(rng, "b", 60, sent)
    publish(aggregator.bootstrap, topic, _messages(more[: len(more) // 2]))
    aggregator.processes["aggregator"].kill()
    aggregator.processes["aggregator"].wait()
    publish(aggregator.bootstrap, topic, _messages(more[len(more) // 2 :]))
    # And everything sent so far redelivered once more, as a replay would.
    publish(aggregator.bootstrap, topic, sent.messages[:100])
    aggregator.spawn("aggregator")
    wait_ready(aggregator)
    wait_for_truth(aggregator, sent, timeout=40.0)


def _messages(events: list[ClassifiedResponse]) -> list[tuple[bytes, bytes]]:
    return [(event.response.customer_id.encode(), encode(event)) for event in events]


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed on this machine (Debian package prometheus; "
    "scripts/setup.sh installs it)",
)
def test_promtool_finds_nothing_to_say_about_the_real_metrics(aggregator: Stack) -> None:
    status, text = http_get(aggregator.url("aggregator") + "/metrics")
    assert status == 200 and "npsloop_nps_change_significant" in text
    promtool = shutil.which("promtool")
    assert promtool is not None
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, b"")


def test_invitations_purchases_and_cases_reach_the_api_refunds_and_all(
    aggregator: Stack,
) -> None:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    customer = f"c-money-{run}"
    invitation = Invitation(
        event_id=uuid.uuid4(),
        occurred_at=now - timedelta(hours=5),
        invitation_id=f"i-{run}",
        customer_id=customer,
        status=InvitationStatus.SENT,
    )
    purchase = Purchase(
        event_id=uuid.uuid4(),
        occurred_at=now - timedelta(days=3),
        order_id=f"o-{run}",
        customer_id=customer,
        amount=Decimal("100.00"),
        currency="DKK",
    )
    # A refund as an older producer writes it: a negative amount.
    refund = json.loads(encode(purchase)) | {"event_id": str(uuid.uuid4()), "amount": "-30"}
    opened = CaseEvent(
        event_id=uuid.uuid4(),
        occurred_at=now - timedelta(hours=4),
        case_id=f"case-{run}",
        response_id=f"r-{run}",
        action=CaseAction.OPENED,
        sla_due_at=now + timedelta(hours=20),
    )
    contacted = opened.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "occurred_at": now - timedelta(hours=2),
            "action": CaseAction.CONTACTED,
        }
    )
    key = customer.encode()
    publish(
        aggregator.bootstrap, aggregator.topic(topics.INVITATIONS.name), [(key, encode(invitation))]
    )
    publish(
        aggregator.bootstrap,
        aggregator.topic(topics.PURCHASES.name),
        [(key, encode(purchase)), (key, json.dumps(refund).encode()), (key, encode(purchase))],
    )
    cases = aggregator.topic(topics.CASES.name)
    publish(aggregator.bootstrap, cases, [(b"r", encode(contacted)), (b"r", encode(opened))])
    response = classified(f"r-{run}", 10, "Aarhus", now)
    answered = response.model_copy(
        update={
            "response": response.response.model_copy(
                update={"customer_id": customer, "invitation_id": f"i-{run}"}
            )
        }
    )
    publish(
        aggregator.bootstrap,
        aggregator.topic(topics.RESPONSES_CLASSIFIED.name),
        [(key, encode(answered))],
    )

    def api(path: str) -> dict[str, Any]:
        status, text = http_get(aggregator.url("aggregator") + path)
        assert status == 200, text
        answer: dict[str, Any] = json.loads(text)
        return answer

    def arrived() -> bool:
        loop, money = api("/v1/loop?window=24h"), api("/v1/money")
        promoters = next(c for c in money["categories"] if c["name"] == "promoter")
        return bool(loop["opened"] == 1 and promoters["revenue"] == 70.0)

    deadline = time.monotonic() + 30
    while not arrived() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert arrived()
    loop = api("/v1/loop?window=24h")
    assert (loop["within_sla"], loop["share_within_sla"]) == (1, 1.0)
    contact = next(step for step in loop["steps"] if step["step"] == "contact")
    assert contact["median_seconds"] == pytest.approx(7200, abs=1)
    rate = 'npsloop_response_rate_ratio{survey_kind="nps",window="24h"} 1.0'
    deadline = time.monotonic() + 10
    while rate not in http_get(aggregator.url("aggregator") + "/metrics")[1]:
        assert time.monotonic() < deadline, "the response rate never reached /metrics"
        time.sleep(0.3)


def test_the_running_aggregator_serves_its_dashboard_from_the_same_figures(
    aggregator: Stack,
) -> None:
    whole = figures(aggregator)
    status, page = http_get(aggregator.url("aggregator") + "/dashboard?window=30d&kind=nps")
    assert status == 200
    assert "<svg" in page and "Loop health" in page
    assert f"Categories of the {whole['responses']} responses" in page
    assert http_get(aggregator.url("aggregator") + "/dashboard?window=2w")[0] == 400
