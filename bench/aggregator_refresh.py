"""How long one aggregator refresh takes on 20,000 responses (not a test; prints figures).

    PYTHONPATH=. .venv/bin/python bench/aggregator_refresh.py [responses] [sqlite|postgresql-url]

Fills a fresh SQLite file (or the PostgreSQL database at the URL given) through the read
model's own writes: responses spread over the 180 days the windows look at, across 6
dimensions of 25 values each (so some land in ``other``), one sent invitation per
response, a case for every tenth and a purchase per customer. Then times the refresh
(load the facts, fold them into the report, set the gauges): the first, which reads the
whole horizon into the read model's memory, and then a few, each after 100 more responses
(with their other facts), which read only the rows written since the last.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from services.aggregator.adapters import SqlReadModel
from services.aggregator.loop_health import CaseStep
from services.aggregator.metrics import AggregatorGauges
from services.aggregator.money import PurchaseFact
from services.aggregator.queries import load_facts
from services.aggregator.report import ReportingConfig, build_report
from services.aggregator.responses import InvitationFact, ResponseFact, Theme
from services.aggregator.segments import DIMENSIONS
from shared.db import make_engine, migrate, session_factory
from shared.events import CaseAction, SurveyKind
from shared.metrics import render
from shared.nps import classify

THEMES = ("delivery", "price", "staff", "quality", "returns", "website", "stock")


def fill(model: SqlReadModel, responses: int, now: datetime, first: int = 0) -> float:
    rng = random.Random(7 + first)
    started = time.perf_counter()
    for index in range(first, first + responses):
        score = rng.choice((0, 2, 5, 6, 7, 8, 8, 9, 9, 10, 10, 10))
        at = now - timedelta(seconds=rng.uniform(0, 180 * 86400))
        customer = f"c-{index % max(1, responses // 2)}"
        model.record_response(
            ResponseFact(
                response_id=f"r-{index}",
                customer_id=customer,
                survey_kind=SurveyKind.NPS if index % 10 else SurveyKind.ENPS,
                score=score,
                category=classify(score),
                responded_at=at,
                segment={d: f"{d}-{rng.randrange(25)}" for d in DIMENSIONS},
                invitation_id=f"i-{index}",
                heard_from=rng.choice(("recommendation", "google", "ads", None)),
                themes=tuple(Theme(t, t.title()) for t in rng.sample(THEMES, 2)),
                received_at=at,
                event_id=str(uuid.uuid4()),
            )
        )
        model.record_invitation(
            InvitationFact(f"i-{index}", customer, SurveyKind.NPS, at - timedelta(days=1))
        )
        if index % 10 == 0:
            model.record_case_step(
                CaseStep(
                    f"o-{index}",
                    f"k-{index}",
                    f"r-{index}",
                    CaseAction.OPENED,
                    at,
                    at + timedelta(hours=24),
                )
            )
            model.record_case_step(
                CaseStep(
                    f"c-{index}",
                    f"k-{index}",
                    f"r-{index}",
                    CaseAction.CONTACTED,
                    at + timedelta(hours=rng.uniform(1, 48)),
                )
            )
        model.record_purchase(
            PurchaseFact(
                f"p-{index}", customer, f"o-{index}", Decimal(rng.randrange(50, 5000)), "DKK", at
            )
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "responses", type=int, nargs="?", default=20_000, help="responses to fill in first"
    )
    parser.add_argument(
        "url", nargs="?", help="a PostgreSQL database's URL (default: a fresh SQLite file)"
    )
    args = parser.parse_args()
    if args.responses < 1:
        parser.error(f"responses: {args.responses} is not a positive number")
    responses = args.responses
    with tempfile.TemporaryDirectory() as directory:
        url = args.url or f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        migrate(url)
        config = ReportingConfig(zone=ZoneInfo("Europe/Copenhagen"))
        model = SqlReadModel(session_factory(make_engine(url)), config.policy, config.zone)
        now = datetime.now(UTC)
        filled = fill(model, responses, now)
        print(
            f"{responses} responses (+ invitations, cases, purchases) written in {filled:.1f} s "
            f"({responses / filled:.0f} responses/s with their other facts)"
        )
        registry = CollectorRegistry()
        gauges = AggregatorGauges(registry, config)
        loads, folds, shows = [], [], []
        first = time.perf_counter()
        build_report(load_facts(model, now), now, config)
        print(f"first refresh (the horizon read into memory): {time.perf_counter() - first:.2f} s")
        for round_ in range(5):
            fill(model, 100, now, first=responses + 100 * round_)
            t0 = time.perf_counter()
            facts = load_facts(model, now)
            t1 = time.perf_counter()
            report = build_report(facts, now, config)
            t2 = time.perf_counter()
            gauges.show(report)
            t3 = time.perf_counter()
            loads.append(t1 - t0)
            folds.append(t2 - t1)
            shows.append(t3 - t2)
        total = [a + b + c for a, b, c in zip(loads, folds, shows, strict=True)]
        print(
            f"facts loaded per refresh: {len(facts.responses)} responses, "
            f"{len(facts.invitations)} invitations, {len(facts.case_steps)} case steps, "
            f"{len(facts.purchases)} purchases"
        )
        print(
            f"refresh after 100 new responses (median of 5): {statistics.median(total):.2f} s"
            f" = load {statistics.median(loads):.2f} s + fold {statistics.median(folds):.2f} s"
            f" + gauges {statistics.median(shows):.2f} s"
        )
        series = sum(1 for line in render(registry).splitlines() if not line.startswith(b"#"))
        print(f"series on /metrics: {series}")


if __name__ == "__main__":
    main()
