"""Alerts a second through the notifier's hot path alone (not a test).

The real dispatcher, case store, review ledger and outbox on a SQLite (or PostgreSQL)
database, a Slack that answers at once, no broker: ``--alerts`` detractors taken in by
batches of ``--batch`` (one transaction each), their alerts attempted ``--lanes`` at a time,
as the notifier's agent does. It measures what one alert costs the notifier (its round
trips to the database and hops to threads), without the rest of the pipeline's noise. The
last line is one JSON object.

    PYTHONPATH=. .venv/bin/python bench/notifier_hot_path.py --alerts 400 --batch 100 --lanes 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.notifier.adapters import SqlOutbox
from services.notifier.bursts import BurstPolicy
from services.notifier.case_store import SqlCases
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, LoopConfig
from services.notifier.review_store import (
    ReviewLedger,
    SqlReviewDecisions,
    review_decisions_counter,
)
from shared.db import make_engine, migrate, session_factory
from tests.unit.builders import InstantSlack, a_classified_response


async def alert(url: str, alerts: int, lanes: int, batch: int) -> dict[str, float]:
    sessions = session_factory(make_engine(url))
    config = LoopConfig(slack_channel="#customer-feedback", company_name="Our Shop")
    registry = CollectorRegistry()
    outbox = SqlOutbox(sessions)
    slack = InstantSlack()
    dispatcher = Dispatcher(
        outbox,
        {Channel.SLACK: slack, Channel.EMAIL: InstantSlack()},
        config,
        DeliveryMetrics.create(registry),
        cases=SqlCases(sessions),
        case_links=lambda case: f"https://cx.example/cases/{case.case_id}",
        # As the pipeline benchmark runs it: every detractor its own post.
        bursts=BurstPolicy(0, 1_000_000),
        reviews=ReviewLedger(
            SqlReviewDecisions(sessions),
            config,
            outbox.is_suppressed,
            review_decisions_counter(registry),
        ),
        together=sessions.together,
        attempts_at_once=lanes,
    )
    responses = [
        a_classified_response(number % 7, response_id=f"r{number}", customer_id=f"c{number}")
        for number in range(alerts)
    ]
    took: list[float] = []

    async def intake() -> None:
        # As the agent does: one batch after another, each returning once its alerts'
        # attempts have started.
        for start in range(0, alerts, batch):
            started = time.perf_counter()
            await dispatcher.handle_many(responses[start : start + batch])
            took.append((time.perf_counter() - started) * 1000)
        await dispatcher.settle()

    async def retry_timer() -> None:
        # Two lanes posting to one channel in the same instant: one waits for the other's
        # turn to end, and the retry timer sends it.
        while len(slack.sent) < alerts:
            await asyncio.sleep(0.05)
            await dispatcher.retry_due()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(retry_timer(), intake()), timeout=600)
    elapsed = time.perf_counter() - started
    took.sort()
    return {
        "alerts_per_s": round(alerts / elapsed, 1),
        "batch_ms_p50": round(statistics.median(took), 1),
        "batch_ms_max": round(took[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=400)
    parser.add_argument("--lanes", type=int, default=8, help="attempts at once")
    parser.add_argument("--batch", type=int, default=100, help="responses a transaction")
    parser.add_argument(
        "--postgres", help="admin URL of a PostgreSQL server to run on (else a SQLite file)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.postgres:
            url = stack.enter_context(fresh_database(args.postgres))
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(directory) / 'notifier.sqlite3'}"
        migrate(url)
        print(json.dumps(asyncio.run(alert(url, args.alerts, args.lanes, args.batch))))


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"notifier_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
