"""Nothing accepted is lost: with the broker frozen, ingest keeps accepting into its journal
(until the configured backlog, then 503 with Retry-After) and publishes it all once the
broker is back."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from shared.broker import EmbeddedBroker
from tests.fakes import fake_slack
from tests.stack import Stack, http_get, http_post

pytestmark = pytest.mark.integration

FROZEN_SECONDS = 15


def test_ingest_accepts_while_the_broker_is_frozen_and_publishes_the_backlog_after(
    tmp_path: Path,
) -> None:
    slack = fake_slack()
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    stack = Stack(
        bootstrap=broker.bootstrap_servers,
        database_url=None,
        data_dir=tmp_path / "stack",
        env={
            "NPSLOOP_SLACK_API_URL": slack.url + "/api/",
            "NPSLOOP_SLACK_BOT_TOKEN": "xoxb-test-token",
            "NPSLOOP_JOURNAL_MAX_BACKLOG": "4",
        },
    )
    run = uuid.uuid4().hex[:8]
    try:
        stack.start()
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            for number in range(4):
                body = {
                    "response_id": f"outage-{run}-{number}",
                    "customer_id": f"c-{run}-{number}",
                    "score": 2,
                    "comment": f"Broker away {run} #{number}",
                }
                status, text, _ = http_post(
                    stack.url("ingest") + "/v1/responses", json.dumps(body).encode()
                )
                assert status == 202, text
            status, text, headers = http_post(
                stack.url("ingest") + "/v1/responses",
                json.dumps(
                    {"response_id": f"outage-{run}-x", "customer_id": "c", "score": 1}
                ).encode(),
            )
            assert status == 503, text
            assert int(headers["Retry-After"]) > 0
            time.sleep(max(FROZEN_SECONDS - (time.monotonic() - frozen_at), 0))
            assert slack.accepted("/api/chat.postMessage") == []
        finally:
            os.kill(broker.pid, signal.SIGCONT)

        deadline = time.monotonic() + 120
        mine: list[object] = []
        while time.monotonic() < deadline:
            mine = [a for a in slack.accepted("/api/chat.postMessage") if run in json.dumps(a.body)]
            if len(mine) >= 4:
                break
            time.sleep(0.5)
        assert len(mine) == 4, f"{len(mine)} of 4 alerts arrived after the outage"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, metrics = http_get(stack.url("ingest") + "/metrics")
            if "npsloop_journal_backlog 0.0" in metrics:
                break
            time.sleep(0.5)
        assert "npsloop_journal_backlog 0.0" in metrics
        for service, process in stack.processes.items():
            assert process.poll() is None, (
                f"{service} died during the outage:\n{stack.tail(service)}"
            )
    finally:
        stack.stop()
        broker.stop()
        slack.stop()
