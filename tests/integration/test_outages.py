"""Outages: Slack down for two minutes, and within them the broker frozen (SIGSTOP) for 30 s
and PostgreSQL stopped for 20 s, while responses keep coming in through ingest's webhook.

Nothing accepted is lost and nothing needs a hand: after each outage the stack resumes by
itself (the broker's backlog is published and counted, new responses are counted again once
the database is back, every alert and review request goes out once Slack is back), and no
worker exits at any moment. While the broker is frozen ingest keeps journaling what it
accepts, until its backlog is full; then it answers 503 with Retry-After, and the client
sends again. Real workers, their own broker and PostgreSQL, the real slack-sdk and sendgrid
clients against the fakes.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared import topics
from shared.broker import EmbeddedBroker
from shared.events import DeadLetter, decode
from shared.nps import Category, classify
from shared.settings import ServiceName
from tests.fakes import FakeServer, FakeSlack
from tests.integration.test_notifier_killed_mid_burst import alert_keys
from tests.kafka_helpers import read_all
from tests.postgres import PrivatePostgres, postgres_bin
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

# Seconds from the moment Slack goes down.
SLACK_DOWN = 120.0
BROKER_FROZEN = (5.0, 35.0)
DATABASE_DOWN = (50.0, 70.0)
SEND_EVERY = 0.4
# Generous: how long a resumption may take before it counts as not happening by itself.
RESUME_DEADLINE = 60.0
CHANNEL = "#cx-alerts"
SCORES = (0, 3, 6, 7, 8, 9, 10)
RULES = """
version: 1
rules:
  - name: detractors
    when: {category: detractor}
    then: [slack_alert, open_case: {sla_hours: 48}]
  - name: passives
    when: {category: passive}
    then: [slack_alert]
  - name: promoters
    when: {category: promoter}
    then: [review_request]
"""


@dataclass
class Customers:
    """A client of ingest's webhook that sends a response every SEND_EVERY seconds and, like
    a well-behaved client, sends it again after the Retry-After of a 503."""

    stack: Stack
    run: str
    accepted: dict[str, int] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._send_all, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def accepted_since(self, moment: float) -> int:
        with self._lock:
            return sum(at >= moment for at in self.accepted_at.values())

    def refused(self) -> int:
        with self._lock:
            return sum(self.refusals.values())

    def scores(self) -> dict[str, int]:
        with self._lock:
            return dict(self.accepted)

    def _send_all(self) -> None:
        number = 0
        while not self._stop.is_set():
            response_id = f"r{number}-{self.run}"
            score = SCORES[number % len(SCORES)]
            while not self._stop.is_set() and not self._send(response_id, score):
                pass
            number += 1
            self._stop.wait(SEND_EVERY)

    def _send(self, response_id: str, score: int) -> bool:
        body = {
            "response_id": response_id,
            "customer_id": f"c-{response_id}",
            "score": score,
            "comment": f"Order {response_id}: the delivery took a week"
            if score <= 6
            else f"Order {response_id}: friendly staff, quick delivery",
            "contact": {"email": f"{response_id}@example.com", "name": "Kim"},
            "segment": {"store": "Aarhus C"},
        }
        try:
            status, _, headers = http_post(
                self.stack.url("ingest") + "/v1/responses", json.dumps(body).encode(), timeout=10
            )
        except OSError:  # no answer in time, or the connection refused
            status, headers = 0, {}
        if status == 202:
            with self._lock:
                self.accepted[response_id] = score
                self.accepted_at[response_id] = time.monotonic()
            return True
        retry_after = headers.get("Retry-After")
        with self._lock:
            self.refusals[f"{status} retry-after={retry_after}" if status else "no answer"] += 1
        self._stop.wait(float(retry_after) if retry_after else 1.0)
        return False


@dataclass
class Watch:
    """Waits, and meanwhile checks that no worker has exited."""

    stack: Stack
    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.started

    def check_alive(self) -> None:
        for service, process in self.stack.processes.items():
            assert process.poll() is None, (
                f"{service} exited ({process.returncode}) at t={self.now():.0f}s:\n"
                + self.stack.tail(service, 80)
            )

    def until(self, moment: float) -> None:
        while self.now() < moment:
            self.check_alive()
            time.sleep(min(0.5, max(moment - self.now(), 0.0)))

    def until_true(self, what: str, condition: Callable[[], bool]) -> float:
        """Seconds it took for the condition to hold; fails after RESUME_DEADLINE."""
        began = self.now()
        while not condition():
            self.check_alive()
            assert self.now() - began < RESUME_DEADLINE, f"{what}: not by t={self.now():.0f}s"
            time.sleep(0.5)
        print(f"t={self.now():.0f}s: {what}, {self.now() - began:.1f}s after")
        return self.now() - began


def counted(stack: Stack) -> dict[str, int] | None:
    status, text = http_get(stack.url("aggregator") + "/v1/nps?window=30d")
    if status != 200:
        return None
    answer = json.loads(text)
    return {name: answer[name] for name in ("responses", "promoters", "passives", "detractors")}


def counted_at_least(stack: Stack, count: int) -> bool:
    figures = counted(stack)
    return figures is not None and figures["responses"] >= count


def metric(stack: Stack, service: ServiceName, name: str) -> float | None:
    _, text = http_get(stack.url(service) + "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def review_requests(sendgrid: FakeServer) -> Counter[str]:
    return Counter(
        str(mail.body["personalizations"][0]["to"][0]["email"])
        for mail in sendgrid.accepted("/v3/mail/send")
    )


@dataclass
class Outages:
    stack: Stack
    slack: FakeSlack
    sendgrid: FakeServer
    broker_pid: int
    postgres: PrivatePostgres


@pytest.fixture
def outages(tmp_path: Path) -> Iterator[Outages]:
    """The stack on a broker and a PostgreSQL of its own, which the test takes away."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql to start a private server")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    env = {
        "NPSLOOP_RULES_FILE": str(rules),
        "NPSLOOP_SLACK_CHANNEL": CHANNEL,
        "NPSLOOP_REVIEW_GOOGLE_URL": "https://g.page/r/test-shop/review",
        # Room for about ten seconds of responses: the frozen broker fills it.
        "NPSLOOP_JOURNAL_MAX_BACKLOG": "25",
        # The default backoff (up to 300 s, 12 attempts) outlasts a two-minute outage by far,
        # and takes minutes to notice the end of it; this one keeps the same proportions
        # (attempts spread over about four times the outage) at a test's pace.
        "NPSLOOP_DELIVERY_TIMEOUT_SECONDS": "2",
        "NPSLOOP_DELIVERY_RETRY_MAX_SECONDS": "4",
        "NPSLOOP_DELIVERY_MAX_ATTEMPTS": "160",
        "NPSLOOP_SLACK_CHANNEL_INTERVAL_SECONDS": "0.3",
    }
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    postgres = PrivatePostgres(bin_dir)
    try:
        postgres.start()
        assert broker.pid is not None
        with stack_with_fakes(broker.bootstrap_servers, tmp_path / "stack", env, postgres.url) as (
            stack,
            slack,
            sendgrid,
        ):
            yield Outages(stack, slack, sendgrid, broker.pid, postgres)
    finally:
        if broker.pid is not None:
            os.kill(broker.pid, signal.SIGCONT)
        broker.stop()
        postgres.remove()


def test_the_stack_rides_out_a_frozen_broker_a_stopped_database_and_slack_down_for_two_minutes(
    outages: Outages,
) -> None:
    stack, slack, sendgrid = outages.stack, outages.slack, outages.sendgrid
    broker_pid, postgres = outages.broker_pid, outages.postgres
    customers = Customers(stack, uuid.uuid4().hex[:6])
    timings: dict[str, float] = {}

    slack.stop()
    watch = Watch(stack)
    customers.start()
    try:
        watch.until(BROKER_FROZEN[0])
        os.kill(broker_pid, signal.SIGSTOP)
        try:
            frozen, refusals_before = time.monotonic(), customers.refused()
            watch.until(BROKER_FROZEN[1])
            refused_while_frozen = customers.refused() - refusals_before
            accepted_while_frozen = customers.accepted_since(frozen)
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        # Ingest journals without the broker, until its backlog is full.
        assert accepted_while_frozen > 0
        assert refused_while_frozen > 0, "the frozen broker never filled ingest's backlog"
        accepted_by_thaw = customers.count()
        timings["broker backlog counted"] = watch.until_true(
            "the journal published and counted after the broker came back",
            lambda: counted_at_least(stack, accepted_by_thaw),
        )

        watch.until(DATABASE_DOWN[0])
        postgres.stop()
        try:
            watch.until(DATABASE_DOWN[1])
        finally:
            postgres.start()
        back = time.monotonic()
        watch.until_true("ingest accepting again", lambda: customers.accepted_since(back) >= 5)
        accepted_after_restart = customers.count()
        timings["new responses counted"] = watch.until_true(
            "responses after the database came back counted",
            lambda: counted_at_least(stack, accepted_after_restart),
        )

        watch.until(SLACK_DOWN)
        # What Slack could not take waits in the outbox, neither lost nor given up on.
        waiting = metric(stack, "notifier", "npsloop_outbox_pending")
        assert waiting, "no delivery waited for Slack"
        assert metric(stack, "notifier", "npsloop_outbox_dead") == 0
    finally:
        customers.stop()
        slack.start()

    scores = customers.scores()
    alerted = {r for r, s in scores.items() if classify(s) != Category.PROMOTER}
    promoters = {r for r, s in scores.items() if classify(s) == Category.PROMOTER}
    expected_alerts = {f"alert:{r}:slack:{CHANNEL}" for r in alerted}
    expected_mails = {f"{r}@example.com" for r in promoters}
    timings["every alert delivered"] = watch.until_true(
        "every detractor and passive alerted once Slack was back",
        lambda: set(alert_keys(slack)) >= expected_alerts,
    )
    watch.until_true(
        "every promoter asked for a review",
        lambda: set(review_requests(sendgrid)) >= expected_mails,
    )
    watch.until_true(
        "every accepted response counted",
        lambda: (counted(stack) or {}).get("responses") == len(scores),
    )
    watch.until(watch.now() + 5)  # anything sent twice would have arrived by now

    truth = Counter(classify(score).value for score in scores.values())
    figures = counted(stack)
    alerts, mails = alert_keys(slack), review_requests(sendgrid)
    print(
        f"\n{len(scores)} responses accepted ({truth['detractor']} detractors, "
        f"{truth['passive']} passives, {truth['promoter']} promoters); refused meanwhile: "
        f"{dict(customers.refusals)} ({refused_while_frozen} while the broker was frozen, "
        f"when {accepted_while_frozen} were accepted); "
        f"{waiting:.0f} deliveries waiting for Slack at the end of its outage, "
        f"{len(alerts)} alerts in {len(slack.accepted('/api/chat.postMessage'))} Slack messages "
        f"({len(slack.received('/api/chat.postMessage'))} posts tried), "
        f"{sum(mails.values())} review requests; counted {figures}; "
        + ", ".join(f"{what} {seconds:.1f}s after" for what, seconds in timings.items())
        + f"; whole run {watch.now():.0f}s"
    )
    assert figures == {
        "responses": len(scores),
        "promoters": truth["promoter"],
        "passives": truth["passive"],
        "detractors": truth["detractor"],
    }
    assert dict(alerts) == dict.fromkeys(expected_alerts, 1)
    assert dict(mails) == dict.fromkeys(expected_mails, 1)
    assert set(customers.refusals) <= {f"503 retry-after={5}"}, customers.refusals
    letters = [
        decode(DeadLetter, value)
        for _, value in read_all(stack.bootstrap, stack.topic(topics.DLQ.name))
    ]
    assert letters == [], [(letter.service, letter.error) for letter in letters]
    assert metric(stack, "ingest", "npsloop_journal_backlog") == 0
    assert metric(stack, "notifier", "npsloop_outbox_dead") == 0
    watch.check_alive()
    for service in stack.processes:
        assert http_get(stack.url(service) + "/ready")[0] == 200, stack.tail(service)
