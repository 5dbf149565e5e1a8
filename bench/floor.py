"""The floor of the design on this machine: the pipeline's hops with nothing else (not a test).

    PYTHONPATH=. .venv/bin/python bench/floor.py [--raw N] [--count N] [--threads]

``bench/pipeline.py``'s (b) divided by its (a) is the ``ratio`` issue 7 asks to reach 0.5.
This measures what no implementation of DESIGN.md on faust-streaming can beat here: the
same responses through the same hops on the same embedded broker, by Faust workers that
do only what the design and the stack cannot do without, and none of npsloop's own work:

- the classifier: a Faust agent that decodes each response, classifies it with
  ``classify_response`` (as the raw loop does), remembers its event id in a Faust table
  (the design's seen-response table, whose changelog the broker keeps) and produces it;
- the notifier: a Faust agent that posts each classified response to the fake Slack with
  slack-sdk (a line of text: no Block Kit, no routing rules), up to 16 at once, and
  publishes a case opened for each detractor; a second agent reads the cases topic back,
  as the notifier must (staff steps come on it);
- the aggregator: Faust agents that count classified responses and cases in memory.

No database, no outbox, no exactly-once, no metrics, no dead letters. The time is taken
as (b) takes it: from the first produce until every response is classified and counted
and every detractor posted (the count polled every 0.2 s, as (b) polls ``/v1/nps``). The
raw loop is (a) of ``bench/pipeline.py``, run first on the same broker.

The last line is one JSON object: raw_eps, floor_eps, floor_ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.pipeline import (
    SlackIds,
    classified_at,
    counted_and_routed,
    cpu_used,
    produce_responses,
    raw_loop,
    response,
)
from shared import topics
from shared.broker import EMBEDDED_BROKER_SETTINGS, EmbeddedBroker
from shared.ids import derived_id
from shared.kafka_admin import ensure_topics
from shared.process import die_with_parent, free_port
from shared.settings import ServiceName
from tests.fakes import SLACK_TEST_TOKEN, FakeSlack, fake_slack
from tests.stack import http_get

ROLES: tuple[ServiceName, ...] = ("classifier", "notifier", "aggregator")
CHANNEL = "#cx-alerts"
POSTS_AT_ONCE = 16
FLOOR_TOPICS = (topics.RESPONSES, topics.RESPONSES_CLASSIFIED, topics.CASES)


# --- the workers (run as `bench/floor.py worker ROLE`) ------------------------------------


def worker(role: ServiceName) -> None:
    import faust
    from slack_sdk.web.async_client import AsyncWebClient

    from services.classifier.domain import classify_response
    from shared.events import CaseAction, CaseEvent, ClassifiedResponse, Response, decode, encode
    from shared.settings import Settings
    from shared.streams import consumer_ready, make_app, run_worker, topic

    settings = Settings()
    app = make_app(role, settings)
    responses = topic(app, topics.RESPONSES, settings)
    classified = topic(app, topics.RESPONSES_CLASSIFIED, settings)
    cases = topic(app, topics.CASES, settings)
    counts: Counter[str] = Counter()

    @app.page("/count")
    async def count(view: Any, _request: Any) -> Any:
        return view.json({"ready": consumer_ready(app), **counts})

    if role == "classifier":
        seen = app.Table("responses-seen", default=None, partitions=topics.CUSTOMER_PARTITIONS)

        @app.agent(responses)
        async def classify(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                answer = decode(Response, event.value)
                seen[answer.response_id] = str(answer.event_id)
                await classified.send(key=event.key, value=encode(classify_response(answer)))

    elif role == "notifier":
        slack = AsyncWebClient(token=SLACK_TEST_TOKEN, base_url=os.environ["FLOOR_SLACK_URL"])

        async def post(message: ClassifiedResponse) -> None:
            answer = message.response
            await slack.chat_postMessage(
                channel=CHANNEL, text=f"{message.category}: {answer.response_id}"
            )
            if message.category == "detractor":
                opened = CaseEvent(
                    event_id=derived_id(answer.event_id, "opened"),
                    occurred_at=answer.responded_at,
                    case_id=str(derived_id(answer.event_id, "case")),
                    response_id=answer.response_id,
                    action=CaseAction.OPENED,
                )
                await cases.send(key=answer.response_id.encode(), value=encode(opened))

        @app.agent(classified)
        async def notify(stream: faust.StreamT[bytes]) -> None:
            slots = asyncio.Semaphore(POSTS_AT_ONCE)

            async def in_turn(value: bytes) -> None:
                async with slots:
                    await post(decode(ClassifiedResponse, value))

            async for batch in stream.take(100, within=0.01):
                await asyncio.gather(*(in_turn(value) for value in batch))

        @app.agent(cases)
        async def follow_cases(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                counts[decode(CaseEvent, value).action] += 1

    else:

        @app.agent(classified)
        async def count_responses(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                counts[decode(ClassifiedResponse, value).category] += 1
                counts["responses"] += 1

        @app.agent(cases)
        async def count_cases(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                counts[decode(CaseEvent, value).action] += 1

    run_worker(app, settings)


# --- the measurement ----------------------------------------------------------------------


def spawn(role: ServiceName, env: dict[str, str], data_dir: Path) -> subprocess.Popen[bytes]:
    log = open(data_dir / f"{role}.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, __file__, "worker", role],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    finally:
        log.close()


def counted(port: int) -> dict[str, Any]:
    status, text = http_get(f"http://127.0.0.1:{port}/count", timeout=10.0)
    return dict(json.loads(text)) if status == 200 else {}


def wait_ready(ports: dict[ServiceName, int], processes: Sequence[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    while not all(counted(port).get("ready") for port in ports.values()):
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a floor worker exited: see its log")
        if time.monotonic() > deadline:
            raise RuntimeError("the floor workers were not ready in 120 s")
        time.sleep(0.5)


def measure(
    bootstrap: str, namespace: str, slack: FakeSlack, aggregator_port: int, count: int
) -> float:
    """Responses a second through the floor workers, timed as (b) times the pipeline."""
    run = uuid.uuid4().hex[:6]
    events = [response(f"fl-{run}-{i}", i % 11, i) for i in range(count)]
    detractors = {e.response_id for e in events if e.score <= 6}
    at_slack = SlackIds(slack, re.compile(rf"fl-{run}-\d+"))
    counting = ThreadPoolExecutor(1).submit(
        asyncio.run,
        classified_at(
            bootstrap,
            topics.RESPONSES_CLASSIFIED.qualified(namespace),
            f'"fl-{run}-'.encode(),
            count,
        ),
    )
    counted_before = counted(aggregator_port).get("responses", 0)
    started = asyncio.run(
        produce_responses(bootstrap, topics.RESPONSES.qualified(namespace), events)
    )
    aggregated_at, routed_at = counted_and_routed(
        lambda: counted(aggregator_port).get("responses", 0) - counted_before >= count,
        at_slack,
        detractors,
        300,
    )
    classified = counting.result(timeout=300)
    print(
        f"floor: {count} responses ({len(detractors)} detractors); all classified after "
        f"{classified - started:.2f} s, all counted after {aggregated_at - started:.2f} s, "
        f"every detractor posted after {routed_at - started:.2f} s"
    )
    return count / (max(aggregated_at, routed_at, classified) - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=int, default=3000, help="responses for the raw loop")
    parser.add_argument("--count", type=int, default=1000, help="responses for the floor")
    parser.add_argument("--threads", action="store_true", help="CPU seconds by thread too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory, EmbeddedBroker() as broker:
        raw_eps = asyncio.run(raw_loop(broker.bootstrap_servers, args.raw))
        print(f"(a) raw_eps {raw_eps:.0f}")
        namespace = f"floor{uuid.uuid4().hex[:8]}"
        ensure_topics(broker.bootstrap_servers, namespace, FLOOR_TOPICS)
        slack = fake_slack()
        ports = {role: free_port() for role in ROLES}
        base = {k: v for k, v in os.environ.items() if not k.startswith("NPSLOOP_")}
        processes = {
            role: spawn(
                role,
                {
                    **base,
                    **EMBEDDED_BROKER_SETTINGS,
                    "NPSLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                    "NPSLOOP_NAMESPACE": namespace,
                    "NPSLOOP_DATA_DIR": directory,
                    "NPSLOOP_WEB_PORT": str(ports[role]),
                    "NPSLOOP_BROKER_SESSION_TIMEOUT_SECONDS": "6",
                    "NPSLOOP_LOG_LEVEL": "warning",
                    "FLOOR_SLACK_URL": slack.url + "/api/",
                },
                Path(directory),
            )
            for role in ROLES
        }
        try:
            wait_ready(ports, list(processes.values()))
            # A first round warms the workers up (connections, the language detector).
            measure(broker.bootstrap_servers, namespace, slack, ports["aggregator"], 100)
            pids: dict[str, int] = {role: process.pid for role, process in processes.items()}
            pids.update(broker=broker.pid or 0, bench=os.getpid())
            with cpu_used("floor", pids, args.threads):
                floor_eps = measure(
                    broker.bootstrap_servers, namespace, slack, ports["aggregator"], args.count
                )
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(timeout=30)
            slack.stop()
    print(f"floor_eps {floor_eps:.0f}")
    print(
        json.dumps(
            {
                "raw_eps": round(raw_eps, 1),
                "floor_eps": round(floor_eps, 1),
                "floor_ratio": round(floor_eps / raw_eps, 3),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])  # type: ignore[arg-type]
    else:
        main()
