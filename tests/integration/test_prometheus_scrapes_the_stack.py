"""A real Prometheus (Debian's package) scraping the four real workers, with the alert rules
of deploy/prometheus/rules.yml loaded: every query of the Grafana dashboard and every alert
expression parses and returns data; each worker reports its consumer lag, which rises while
the worker cannot process and falls back to 0 once it has caught up.

What "returns data" means here:

- a dashboard query (a panel's target, or a template variable's label_values as
  `group by (label) (selector)`), its variables filled in with survey_kind=nps, window=30d,
  dimension=all, segment=all and Grafana's intervals with a minute, must answer at least
  one series. A NaN value counts: an NPS without responses in its window is NaN by design.
- an alert expression must parse and evaluate (status success, and the rule's health in
  Prometheus is ok), but an alert returns series only while firing, so the data asked of
  it is that every metric selector it uses (the metric with its label matchers) returns
  series. The dead-letter alert is also checked whole: the stack made dead letters.
- when a query finds nothing, each of its selectors is looked at: one whose metric is not
  exposed at all, or not with the labels the selector matches on, is "not exposed". If
  that metric is one of AWAITED (the aggregator's figures being built on another branch)
  the query is reported in a warning instead of failing; anything else fails, naming the
  selectors that found nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import topics
from shared.settings import SERVICES, ServiceName
from tests.fakes import FakeServer
from tests.kafka_helpers import produce, wait_for_records
from tests.prometheus import (
    RULES,
    Prometheus,
    Query,
    load_dashboard,
    load_rules,
    panel_queries,
    rule_queries,
    running_prometheus,
    variable_queries,
)
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

VALUES = {"survey_kind": "nps", "window": "30d", "dimension": "all", "segment": "all"}

# The aggregator's figures of issue 6, fixed by name and labels, built on another branch.
# Until they are exposed (with the labels a query uses), queries of them are reported only.
AWAITED = frozenset(
    {
        "npsloop_responses",
        "npsloop_nps",
        "npsloop_nps_standard_error",
        "npsloop_nps_margin_of_error",
        "npsloop_nps_insufficient_sample",
        "npsloop_nps_change",
        "npsloop_nps_change_significant",
        "npsloop_response_rate_ratio",
        "npsloop_recommendation_share_ratio",
        "npsloop_nps_by_source",
        "npsloop_loop_contacted_within_sla_ratio",
        "npsloop_loop_duration_seconds",
        "npsloop_loop_cases",
        "npsloop_revenue_per_customer",
        "npsloop_loyalty_customers",
        "npsloop_loyalty_revenue",
        "npsloop_theme_responses",
    }
)


@dataclass
class Scraped:
    stack: Stack
    slack: FakeServer
    prometheus: Prometheus

    def post(self, path: str, **body: object) -> None:
        status, text, _ = http_post(self.stack.url("ingest") + path, json.dumps(body).encode())
        assert status == 202, text


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def scraped(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    data_dir = tmp_path_factory.mktemp("stack-prometheus")
    env = {
        "NPSLOOP_SLACK_CHANNEL": "#cx-alerts",
        "NPSLOOP_COMPANY_NAME": "Test Shop",
        # A review page, so the promoter's review request is sent (and its metrics move).
        "NPSLOOP_REVIEW_GOOGLE_URL": "https://g.page/r/test-shop/review",
    }
    with stack_with_fakes(kafka_bootstrap, data_dir, env) as (stack, slack, sendgrid):
        targets: dict[str, str] = {s: f"127.0.0.1:{stack.ports[s]}" for s in SERVICES}
        with running_prometheus(data_dir / "prometheus", targets, [RULES]) as prometheus:
            running = Scraped(stack, slack, prometheus)
            run = uuid.uuid4().hex[:8]
            # Purchases and segments give the aggregator its money and segment figures.
            segment = {"region": "North", "store": "Aarhus", "channel": "store"}
            for customer, amount in [("c-detractor", "120.00"), ("c-passive", "80.00")]:
                running.post(
                    "/v1/purchases",
                    order_id=f"o-{customer}-{run}",
                    customer_id=customer,
                    amount=amount,
                    currency="DKK",
                    experience="product",
                    segment=segment,
                )
            for customer, score, comment, contact in [
                ("c-detractor", 2, "The delivery was a week late", {}),
                ("c-passive", 8, "Fine but expensive", {}),
                ("c-promoter", 10, "Fantastic staff", {"email": "ann@example.com"}),
            ]:
                running.post(
                    "/v1/responses",
                    response_id=f"{customer}-{run}",
                    customer_id=customer,
                    score=score,
                    comment=f"{comment} {run}",
                    contact=contact,
                    segment=segment,
                    answers={"heard_from": "friend"},
                )
            # A poison message: the classifier and ingest each send it to the dlq.
            dlq = stack.topic(topics.DLQ.name)
            produce(stack.bootstrap, stack.topic(topics.RESPONSES.name), b"c-x", b"\xffnot json")
            slack.wait_for(3, "/api/chat.postMessage")
            assert sendgrid.wait_for(1, "/v3/mail/send"), "the review request was not sent"
            wait_for_records(stack.bootstrap, dlq, 2)
            wait_until(
                lambda: (prometheus.value("min(count_over_time(up[1m]))") or 0) >= 5,
                60,
                "five scrapes of every worker",
            )
            wait_until(
                lambda: (prometheus.value("sum(npsloop_dead_letters_total)") or 0) >= 2,
                60,
                "the dead letters in Prometheus",
            )
            yield running


def _no_data(prometheus: Prometheus, query: Query) -> tuple[list[str], list[str]]:
    """The selectors of ``query`` that find nothing: (awaited, failing)."""
    awaited, failing = [], []
    for selector in query.selectors():
        if prometheus.series_count(selector.text):
            continue
        exposed = prometheus.series_count(selector.shape()) > 0
        if not exposed and selector.name in AWAITED:
            awaited.append(selector.text)
        else:
            failing.append(selector.text + ("" if exposed else "  (not exposed)"))
    return awaited, failing


def _report(awaiting: dict[str, list[str]]) -> None:
    if awaiting:
        names = sorted({s.split("{")[0] for selectors in awaiting.values() for s in selectors})
        lines = "\n".join(f"  {where}: {', '.join(s)}" for where, s in awaiting.items())
        warnings.warn(
            f"{len(awaiting)} queries have no data yet, waiting for the aggregator's "
            f"{', '.join(names)}:\n{lines}",
            stacklevel=2,
        )


def test_prometheus_scrapes_all_four_workers_and_each_reports_its_consumer_lag(
    scraped: Scraped,
) -> None:
    health = {target["labels"]["job"]: target["health"] for target in scraped.prometheus.targets()}
    assert health == dict.fromkeys(SERVICES, "up")
    reporting = scraped.prometheus.query("group by (job, topic) (npsloop_consumer_lag_messages)")
    series = [s["metric"] for s in reporting["data"]["result"]]
    assert {s["job"] for s in series} == set(SERVICES)
    # The classifier's tables recover from changelogs its group never commits on: left out.
    assert [s for s in series if s["topic"].endswith("-changelog")] == []
    assert all(s["topic"].startswith(scraped.stack.namespace + ".") for s in series)


def test_every_alert_rule_is_loaded_and_evaluates_without_error(scraped: Scraped) -> None:
    wanted = {query.where.removeprefix("rule ") for query in rule_queries(load_rules())}

    def evaluated() -> bool:
        rules = scraped.prometheus.rules()
        return {rule["name"] for rule in rules} == wanted and all(
            not rule["lastEvaluation"].startswith("0001") for rule in rules
        )

    wait_until(evaluated, 30, "every rule evaluated once")
    broken = {
        rule["name"]: rule.get("lastError")
        for rule in scraped.prometheus.rules()
        if rule["health"] != "ok"
    }
    assert broken == {}


def test_every_dashboard_query_parses_and_returns_data(scraped: Scraped) -> None:
    dashboard = load_dashboard()
    queries = panel_queries(dashboard, VALUES) + variable_queries(dashboard, VALUES)
    errors, empty, awaiting = {}, {}, {}
    for query in queries:
        answer = scraped.prometheus.query(query.expr)
        if answer["status"] != "success":
            errors[query.where] = f"{query.expr}: {answer['error']}"
        elif not answer["data"]["result"]:
            awaited, failing = _no_data(scraped.prometheus, query)
            if failing or not awaited:
                empty[query.where] = f"{query.expr}  nothing from: {failing}"
            else:
                awaiting[query.where] = awaited
    _report(awaiting)
    assert errors == {}
    assert empty == {}


def test_every_alert_expression_parses_and_every_metric_it_reads_has_data(
    scraped: Scraped,
) -> None:
    errors, empty, awaiting = {}, {}, {}
    for query in rule_queries(load_rules()):
        answer = scraped.prometheus.query(query.expr)
        if answer["status"] != "success":
            errors[query.where] = f"{query.expr}: {answer['error']}"
            continue
        awaited, failing = _no_data(scraped.prometheus, query)
        if failing:
            empty[query.where] = f"nothing from: {failing}"
        elif awaited:
            awaiting[query.where] = awaited
    _report(awaiting)
    assert errors == {}
    assert empty == {}


def test_the_dead_letter_alert_expression_finds_the_poison_message(scraped: Scraped) -> None:
    (expr,) = [q.expr for q in rule_queries(load_rules()) if q.where == "rule NpsloopDeadLetters"]
    found = scraped.prometheus.query(expr)["data"]["result"]
    responses = scraped.stack.topic(topics.RESPONSES.name)
    assert {(s["metric"]["job"], s["metric"]["topic"]) for s in found} >= {
        ("classifier", responses),
        ("ingest", responses),
    }


def _lag_at_the_worker(stack: Stack, service: ServiceName, topic: str) -> float | None:
    status, text = http_get(stack.url(service) + "/metrics")
    assert status == 200
    samples = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "npsloop_consumer_lag_messages" and sample.labels["topic"] == topic
    ]
    return sum(samples) if samples else None


def test_a_worker_that_cannot_process_reports_its_lag_and_zero_once_caught_up(
    scraped: Scraped,
) -> None:
    stack, prometheus = scraped.stack, scraped.prometheus
    topic = stack.topic(topics.RESPONSES_CLASSIFIED.name)
    in_prometheus = f'sum(npsloop_consumer_lag_messages{{job="notifier",topic="{topic}"}})'
    wait_until(
        lambda: (
            _lag_at_the_worker(stack, "notifier", topic) == 0
            and prometheus.value(in_prometheus) == 0
        ),
        60,
        "the notifier caught up",
    )

    # Holding the write lock of the notifier's SQLite database: each event it takes fails
    # as transient and is retried, holding its partition, as during a database outage.
    run = uuid.uuid4().hex[:8]
    lock = sqlite3.connect(Path(stack.data_dir) / "notifier.sqlite3", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        for number in range(3):
            scraped.post(
                "/v1/responses",
                response_id=f"lag-{run}-{number}",
                customer_id=f"c-lag-{run}-{number}",
                score=1,
                comment=f"Nobody answers {run}",
            )
        wait_until(
            lambda: (_lag_at_the_worker(stack, "notifier", topic) or 0) >= 3,
            90,
            "the notifier's lag to show the three responses it cannot process",
        )
        wait_until(lambda: (prometheus.value(in_prometheus) or 0) >= 3, 30, "Prometheus")
        alerts = scraped.slack.accepted("/api/chat.postMessage")
        assert not [a for a in alerts if run in json.dumps(a.body)]
    finally:
        lock.rollback()
        lock.close()

    wait_until(
        lambda: (
            sum(run in json.dumps(a.body) for a in scraped.slack.accepted("/api/chat.postMessage"))
            >= 3
        ),
        120,
        "the three alerts once the database is back",
    )
    wait_until(
        lambda: (
            _lag_at_the_worker(stack, "notifier", topic) == 0
            and prometheus.value(in_prometheus) == 0
        ),
        60,
        "the notifier's lag back to 0",
    )
