"""Staff act from Slack: a click on Claim reaches ingest signed, the notifier applies it and
redraws the same alert; a comment after the score redraws it too; forged clicks change
nothing; a click about a case that does not exist is a dead letter. Real workers, real
broker, PostgreSQL, the real slack-sdk against the fake Slack."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from shared import topics
from shared.events import CaseAction, CaseEvent, DeadLetter, decode
from shared.slack_signing import slack_request_headers
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.fakes import FakeSlack
from tests.kafka_helpers import read_all, wait_for_records
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

SIGNING_SECRET = "the integration tests' Slack signing secret"
UPDATES = "/api/chat.update"
POSTS = "/api/chat.postMessage"


@dataclass
class Running:
    stack: Stack
    slack: FakeSlack

    def respond(self, **body: object) -> None:
        status, text, _ = http_post(
            self.stack.url("ingest") + "/v1/responses", json.dumps(body).encode()
        )
        assert status == 202, text

    def click(
        self, action_id: str, response_id: str, user: str = "U0KIM", secret: str = SIGNING_SECRET
    ) -> tuple[int, str]:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "kim"},
            "container": {"channel_id": "C0CXALERTS", "message_ts": "1700000000.000001"},
            "actions": [
                {
                    "action_id": action_id,
                    "value": response_id,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        request = urllib.request.Request(
            self.stack.url("ingest") + "/slack/actions",
            data=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **slack_request_headers(secret, body),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def running(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    database_url = create_postgres_database(postgres_admin_url)
    env = {"NPSLOOP_SLACK_CHANNEL": "#cx-alerts", "NPSLOOP_SLACK_SIGNING_SECRET": SIGNING_SECRET}
    data_dir: Path = tmp_path_factory.mktemp("case-buttons")
    try:
        with stack_with_fakes(kafka_bootstrap, data_dir, env, database_url) as (stack, slack, _):
            yield Running(stack, slack)
    finally:
        drop_postgres_database(postgres_admin_url, database_url)


def shown(message: dict[str, Any]) -> str:
    """The blocks as JSON text (slack-sdk may send them as a JSON string already)."""
    blocks = message.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return json.dumps(blocks, ensure_ascii=False)


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in json.loads(shown(message))
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


def test_a_claim_from_slack_redraws_the_alert_in_place_and_a_forged_one_changes_nothing(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    response_id = f"r-{run}"
    running.respond(response_id=response_id, customer_id=f"c-{run}", score=2)
    [alert] = running.slack.wait_for(1, POSTS)
    assert alert.status == 200
    assert buttons(alert.body) == [("case_claim", response_id)]
    [alert_ts] = [ts for ts, m in running.slack.messages.items() if response_id in shown(m)]

    # The customer adds a comment after the one-click score: the same alert shows it.
    running.respond(
        response_id=response_id, customer_id=f"c-{run}", score=2, comment=f"Ingen ringede {run}"
    )
    commented = wait_until(
        lambda: [
            u for u in running.slack.accepted(UPDATES) if f"Ingen ringede {run}" in shown(u.body)
        ]
    )
    assert commented and commented[0].body["ts"] == alert_ts

    # A click signed with the wrong secret: 401, and the alert stays as it is.
    status, text = running.click("case_claim", response_id, secret="a forged secret")
    assert status == 401 and "signature" in text
    time.sleep(3)
    assert not [u for u in running.slack.received(UPDATES) if "<@U0KIM>" in shown(u.body)]

    status, _ = running.click("case_claim", response_id)
    assert status == 200
    claimed = wait_until(
        lambda: [u for u in running.slack.accepted(UPDATES) if "<@U0KIM>" in shown(u.body)]
    )
    assert claimed, running.stack.tail("notifier")
    update = claimed[-1].body
    assert update["ts"] == alert_ts
    assert "Claimed" in shown(update) and f"Ingen ringede {run}" in shown(update)
    assert [action for action, _ in buttons(update)] == ["case_contacted", "case_resolve"]
    assert len(running.slack.accepted(POSTS)) == 1

    # The case page behind the alert's link shows the comment and who claimed it.
    [link] = re.findall(r"<(http://127\.0\.0\.1:\d+/cases/[^|>]+)\|Open the case>", shown(update))
    status, page = http_get(link)
    assert status == 200
    assert f"Ingen ringede {run}" in page and "U0KIM" in page and "Claimed" in page
    assert http_get(link[:-3] + "xyz")[0] == 403

    cases = running.stack.topic(topics.CASES.name)
    events = [decode(CaseEvent, value) for _, value in read_all(running.stack.bootstrap, cases)]
    # By event id: the comment's version of the response may come before the notifier has
    # read back its own opened event, and then publishes it again, the same event (its id
    # follows from the case), which every consumer of the topic takes once.
    mine = {event.event_id: event.action for event in events if event.response_id == response_id}
    assert list(mine.values()) == [CaseAction.OPENED, CaseAction.CLAIMED]


def test_a_click_about_a_case_that_does_not_exist_goes_to_the_dlq_with_its_reason(
    running: Running,
) -> None:
    dlq = running.stack.topic(topics.DLQ.name)
    before = len(read_all(running.stack.bootstrap, dlq))
    ghost = f"never-answered-{uuid.uuid4().hex[:8]}"

    status, _ = running.click("case_resolve", ghost)

    assert status == 200
    letters = wait_for_records(running.stack.bootstrap, dlq, before + 1)
    new = [decode(DeadLetter, value) for _, value in letters[before:]]
    [letter] = [letter for letter in new if ghost in letter.error]
    assert letter.service == "notifier" and "does not exist" in letter.error
