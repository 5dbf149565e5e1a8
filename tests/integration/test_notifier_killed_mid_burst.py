"""The notifier killed (SIGKILL) again and again in the middle of a burst, while Slack answers
some calls with 429, 500 or not at all: afterwards every detractor has exactly one alert in
Slack (on its own or as a line of a summary) and exactly one case. Real workers, real broker,
PostgreSQL, the real slack-sdk against the fake Slack."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared import topics
from shared.events import CaseAction, CaseEvent, decode
from shared.ids import case_id_for
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.fakes import FakeSlack, Hang, RateLimited, ServerError
from tests.kafka_helpers import read_all
from tests.stack import Stack, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

RESPONSES = 60
KILLS = 3
CHANNEL = "#cx-alerts"


def alert_keys(slack: FakeSlack) -> Counter[str]:
    """Each alert key as often as a message in Slack carries it (on its own, or in a
    summary's list), counting a post that hung and landed after the client gave up: the
    next attempt finds it and does not post again. Updates in place are not counted."""
    seen: Counter[str] = Counter()
    for received in slack.landed("/api/chat.postMessage"):
        metadata = received.body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        named: dict[str, Any] = (metadata or {}).get("event_payload") or {}
        if named.get("keys"):
            seen.update(named["keys"])
        elif str(named.get("key", "")).startswith("alert:"):
            seen[named["key"]] += 1
    return seen


@pytest.fixture
def crashing(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, FakeSlack, str]]:
    database_url = create_postgres_database(postgres_admin_url)
    env = {
        "NPSLOOP_SLACK_CHANNEL": CHANNEL,
        "NPSLOOP_DELIVERY_TIMEOUT_SECONDS": "1",
        "NPSLOOP_DELIVERY_RETRY_MAX_SECONDS": "3",
        "NPSLOOP_SLACK_CHANNEL_INTERVAL_SECONDS": "0.3",
    }
    data_dir = tmp_path_factory.mktemp("killed-mid-burst")
    try:
        with stack_with_fakes(kafka_bootstrap, data_dir, env, database_url) as (stack, slack, _):
            yield stack, slack, database_url
    finally:
        drop_postgres_database(postgres_admin_url, database_url)


def test_a_notifier_killed_mid_burst_alerts_each_detractor_once_and_opens_each_case_once(
    crashing: tuple[Stack, FakeSlack, str],
) -> None:
    stack, slack, database_url = crashing
    chance = random.Random(20261123)
    slack.fail_randomly(
        0.15,
        (RateLimited(retry_after=1), ServerError(), Hang(1.5)),
        seed=7,
        path="chat.postMessage",
    )
    run = uuid.uuid4().hex[:6]
    expected = {f"alert:r{n}-{run}:slack:{CHANNEL}" for n in range(RESPONSES)}
    kill_at = sorted(chance.sample(range(5, RESPONSES), KILLS))
    for n in range(RESPONSES):
        body = {
            "response_id": f"r{n}-{run}",
            "customer_id": f"c{n}-{run}",
            "score": n % 7,
            "comment": f"Ventede {n} dage på svar" if n % 2 else None,
        }
        status, answer, _ = http_post(
            stack.url("ingest") + "/v1/responses", json.dumps(body).encode()
        )
        assert status == 202, answer
        if n in kill_at:
            time.sleep(chance.uniform(0.2, 2.0))
            stack.processes["notifier"].send_signal(signal.SIGKILL)
            stack.processes["notifier"].wait(10)
            stack.spawn("notifier")
    slack.fail_randomly(0)

    deadline = time.monotonic() + 150
    while set(alert_keys(slack)) < expected and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # anything sent twice would have arrived by now

    seen = alert_keys(slack)
    mine = {key: count for key, count in seen.items() if key in expected}
    missing = expected - set(mine)
    doubled = {key: count for key, count in mine.items() if count > 1}
    print(
        f"\n{RESPONSES} detractors, notifier killed {KILLS}x: {len(mine)} alerted, "
        f"{len(missing)} missing, {len(doubled)} twice; "
        f"{len(slack.accepted('/api/chat.postMessage'))} messages accepted, "
        f"{len(slack.received('/api/chat.postMessage'))} posts tried"
    )
    assert not missing, stack.tail("notifier", 80)
    assert not doubled

    engine = create_engine(database_url)
    with engine.connect() as connection:
        cases = connection.execute(
            text("SELECT response_id FROM notifier_cases WHERE response_id LIKE :run"),
            {"run": f"%-{run}"},
        ).scalars()
        assert sorted(cases) == sorted(f"r{n}-{run}" for n in range(RESPONSES))
    engine.dispose()
    opened = {
        event.event_id
        for _, value in read_all(stack.bootstrap, stack.topic(topics.CASES.name))
        for event in [decode(CaseEvent, value)]
        if event.action == CaseAction.OPENED and event.response_id.endswith(f"-{run}")
    }
    cases_opened = Counter(
        event.case_id
        for _, value in read_all(stack.bootstrap, stack.topic(topics.CASES.name))
        for event in [decode(CaseEvent, value)]
        if event.action == CaseAction.OPENED and event.response_id.endswith(f"-{run}")
    )
    # Every case announced; a repeat after a kill is the same event (one id per case).
    assert set(cases_opened) == {case_id_for(f"r{n}-{run}") for n in range(RESPONSES)}
    assert len(opened) == RESPONSES
