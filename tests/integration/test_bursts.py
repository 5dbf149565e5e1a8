"""A burst of detractors for one store on the real stack: Slack gets a few messages, and
every response is in exactly one of them."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import DEFAULT_SLACK_CHANNELS, RateLimited
from tests.stack import http_post, stack_with_fakes

pytestmark = pytest.mark.integration

BURST = 15
SETTLE_SECONDS = 3.0


def test_a_burst_for_one_store_reaches_slack_as_a_few_messages_with_every_response_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    channels = (*DEFAULT_SLACK_CHANNELS, "store-aarhus")
    with stack_with_fakes(kafka_bootstrap, tmp_path, slack_channels=channels) as (stack, slack, _):
        # The store's first alert is rate-limited: Slack's Retry-After holds the channel,
        # and the rest of the burst waits for it in the outbox instead of being refused.
        slack.fail_next(1, RateLimited(retry_after=10), "chat.postMessage")
        run = uuid.uuid4().hex[:8]
        responses = [f"burst-{run}-{number:02d}" for number in range(BURST)]
        for number, response_id in enumerate(responses):
            body = {
                "response_id": response_id,
                "customer_id": f"c-{response_id}",
                "score": number % 7,
                "comment": "Lang kø ved kassen",
                "segment": {"store": "Aarhus"},
            }
            status, text, _ = http_post(
                stack.url("ingest") + "/v1/responses", json.dumps(body).encode()
            )
            assert status == 202, text

        def posted() -> list[dict[str, Any]]:
            bodies = [message.body for message in slack.accepted("/api/chat.postMessage")]
            return [body for body in bodies if run in json.dumps(body)]

        def times_posted(response_id: str) -> int:
            return sum(response_id in json.dumps(body) for body in posted())

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(map(times_posted, responses)):
            time.sleep(0.5)
        time.sleep(SETTLE_SECONDS)

        seen = {response_id: times_posted(response_id) for response_id in responses}
        assert seen == dict.fromkeys(responses, 1), "each response is in exactly one message"
        bodies = posted()
        assert len(bodies) <= 3, f"{len(bodies)} messages for a burst of {BURST}"
        assert any(
            " new detractors in #store-aarhus in the last" in body["text"] for body in bodies
        ), "the burst went out as a summary"
        assert {body["channel"] for body in bodies} == {"#store-aarhus"}
        assert all("summary_line" not in body for body in bodies)

        with sqlite3.connect(stack.data_dir / "notifier.sqlite3") as db:
            rows = db.execute(
                "SELECT response_id, status, provider_ref FROM notifier_deliveries "
                "WHERE kind = 'alert' AND response_id LIKE ?",
                (f"burst-{run}-%",),
            ).fetchall()
        assert sorted(response_id for response_id, _, _ in rows) == responses
        assert {status for _, status, _ in rows} == {"sent"}
        coalesced = [ref for _, _, ref in rows if ref.startswith("summary:")]
        assert len(coalesced) >= BURST - 2
