"""CPU the notifier spends on one Slack post, client side (not a test).

The real ``SlackSender`` (slack-sdk's AsyncWebClient on a kept-alive aiohttp session) posts
a detractor's alert, as the notifier plans it, ``--posts`` times to the fake Slack, which
runs on a thread of its own. The figure is the CPU time of the posting thread alone
(``time.thread_time``), so the fake's work is not counted. It is part of what a response
costs the pipeline whatever npsloop's own code does (docs/PERFORMANCE.md). The last line is
one JSON object.

    PYTHONPATH=. .venv/bin/python bench/slack_client.py --posts 1500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from services.notifier.adapters import OutboxEntry, SlackSender
from services.notifier.domain import Channel, DeliveryKind, LoopConfig, plan
from tests.fakes import FakeSlack
from tests.unit.builders import a_classified_response

CHANNEL = "#customer-feedback"


def an_alert(index: int) -> OutboxEntry:
    classified = a_classified_response(
        3, comment="Leveringen var en uge forsinket og ingen svarede på min mail"
    )
    alert = next(
        d
        for d in plan(classified, LoopConfig(slack_channel=CHANNEL, company_name="Our Shop"))
        if d.kind == DeliveryKind.ALERT
    )
    return OutboxEntry(
        idempotency_key=f"{alert.idempotency_key}:{index}",
        channel=Channel.SLACK,
        kind=alert.kind.value,
        recipient=alert.recipient,
        payload=alert.payload,
        attempts=0,
    )


async def post(slack: FakeSlack, posts: int) -> float:
    """Microseconds of the posting thread's CPU a post."""
    sender = SlackSender("xoxb-test-token", slack.url + "/api/", timeout_seconds=5)
    entries = [an_alert(i) for i in range(posts)]
    for entry in entries[:50]:  # the session's connection and first imports
        await sender.send(entry)
    started = time.thread_time()
    for entry in entries:
        await sender.send(entry)
    used = time.thread_time() - started
    await sender.close()
    return used / posts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1500, help="posts a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept")
    args = parser.parse_args()
    slack = FakeSlack(channels=[CHANNEL]).start()
    try:
        rounds = [asyncio.run(post(slack, args.posts)) for _ in range(args.rounds)]
    finally:
        slack.stop()
    print(f"CPU a post, client side, per round (us): {[round(r) for r in rounds]}")
    print(json.dumps({"client_cpu_us_per_post": round(statistics.median(rounds), 1)}))


if __name__ == "__main__":
    main()
