"""`npsloop up`: the embedded broker and the four workers on one machine, supervised.

Workers run in their own session so that Ctrl-C reaches only the supervisor,
which then stops them in order; each also dies with the supervisor if it is
killed outright, so nothing is left behind.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

from services.cli import format_outbox_line
from services.demo import DemoTraffic
from shared.broker import EMBEDDED_BROKER_SETTINGS, EmbeddedBroker
from shared.db import migrate
from shared.kafka_admin import ensure_topics
from shared.process import die_with_parent, free_port
from shared.settings import SERVICES, ServiceName, Settings

READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0
SUMMARY_EVERY_SECONDS = 10.0
# Promoters are asked for reviews only where review pages are configured; the demo
# shows that loop with placeholder pages unless real ones are set.
DEMO_REVIEW_LINKS = {
    "NPSLOOP_REVIEW_GOOGLE_URL": "https://g.page/r/npsloop-demo/review",
    "NPSLOOP_REVIEW_FACEBOOK_URL": "https://www.facebook.com/npsloop-demo/reviews",
    "NPSLOOP_REVIEW_TRUSTPILOT_URL": "https://www.trustpilot.com/evaluate/npsloop-demo.example",
}
# The demo shows invitations going out at once, day or night, unless timing is configured.
DEMO_TIMING = {
    "NPSLOOP_DELAY_PRODUCT_HOURS": "0",
    "NPSLOOP_DELAY_SERVICE_HOURS": "0",
    "NPSLOOP_SEND_WINDOW": "00:00-24:00",
    "NPSLOOP_HEARD_FROM_OPTIONS": '["recommendation", "google", "social_media", "ads", "other"]',
}


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything."""


@dataclass
class Worker:
    service: ServiceName
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


class Supervisor:
    def __init__(self, settings: Settings, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.broker: EmbeddedBroker | None = None
        self.workers: list[Worker] = []
        self.bootstrap = settings.kafka_bootstrap_servers or ""

    def start_broker(self) -> None:
        if self.bootstrap:
            print(f"  broker      {self.bootstrap} (NPSLOOP_KAFKA_BOOTSTRAP_SERVERS)")
            return
        self.broker = EmbeddedBroker(
            self.settings.embedded_broker_port, log_path=self.log_dir / "broker.log"
        ).start()
        self.bootstrap = self.broker.bootstrap_servers
        # Other commands (`npsloop publish`) find the embedded broker here while it runs.
        (self.data_dir / "runtime.json").write_text(
            json.dumps({"kafka_bootstrap_servers": self.bootstrap})
        )
        print(f"  broker      {self.bootstrap} (embedded Tansu, in memory)")

    def prepare(self) -> None:
        ensure_topics(
            self.bootstrap,
            self.settings.namespace,
            replication_factor=self.settings.kafka_replication_factor,
        )
        for url in sorted({self.settings.database_url_of(service) for service in SERVICES}):
            migrate(url)

    def start_workers(self) -> None:
        for service in SERVICES:
            port = self.settings.port_of(service)
            if not _port_is_free(port):
                taken, port = port, free_port()
                print(f"  (port {taken} is taken; {service} uses {port})")
            worker = Worker(service, port, self.log_dir / f"{service}.log")
            self.workers.append(worker)
            self.spawn(worker)

    def spawn(self, worker: Worker) -> None:
        embedded = EMBEDDED_BROKER_SETTINGS if self.broker else {}
        env = {
            **embedded,
            **os.environ,
            **self.extra_env,
            "NPSLOOP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "NPSLOOP_DATA_DIR": str(self.data_dir),
            "NPSLOOP_WEB_PORT": str(worker.port),
            "NPSLOOP_MIGRATE_ON_START": "false",
        }
        with open(worker.log_path, "ab") as log:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "services", "worker", worker.service],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        worker.started_at = time.monotonic()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        waiting = list(self.workers)
        while waiting:
            for worker in list(waiting):
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"the {worker.service} worker exited with code "
                        f"{worker.process.returncode}; see {worker.log_path}:\n"
                        + _tail(worker.log_path)
                    )
                if _get(worker.url + "/ready")[0] == 200:
                    waiting.remove(worker)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(w.service for w in waiting)
                raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS:.0f}s: {names}")
            time.sleep(0.25)

    def restart_crashed(self) -> None:
        for worker in self.workers:
            assert worker.process is not None
            code = worker.process.poll()
            if code is None:
                continue
            worker.restarts += 1
            print(
                f"  ! {worker.service} exited with code {code}; restarting (see {worker.log_path})"
            )
            self.spawn(worker)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        if self.broker:
            self.broker.stop()
            (self.data_dir / "runtime.json").unlink(missing_ok=True)

    def worker(self, service: ServiceName) -> Worker:
        return next(w for w in self.workers if w.service == service)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def nps_summary(metrics_text: str, survey_kind: str = "nps", window: str = "30d") -> str | None:
    """One line about the window, read back from the aggregator's /metrics."""
    values: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("survey_kind") != survey_kind or labels.get("window") != window:
                continue
            if labels.get("dimension", "all") != "all":
                continue
            if sample.name == "npsloop_responses":
                counts[labels["category"]] = sample.value
            elif sample.name in ("npsloop_nps", "npsloop_nps_margin_of_error"):
                values[sample.name] = sample.value
    n = int(sum(counts.values()))
    if n == 0:
        return None
    return (
        f"NPS {window}: {values.get('npsloop_nps', float('nan')):+.1f} "
        f"± {values.get('npsloop_nps_margin_of_error', float('nan')):.1f} (n={n}: "
        f"{int(counts.get('promoter', 0))} promoters, {int(counts.get('passive', 0))} passives, "
        f"{int(counts.get('detractor', 0))} detractors)"
    )


def embedded_secrets(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The webhook and link secrets: as configured, else made once and kept in the data dir."""
    path = data_dir / "secrets.json"
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    secrets_env = {}
    for name in ("webhook_secret", "token_secret"):
        configured = getattr(settings, name)
        if configured is not None and configured.get_secret_value():
            secrets_env[f"NPSLOOP_{name.upper()}"] = configured.get_secret_value()
            continue
        if name not in kept:
            raw = secrets.token_bytes(32)
            kept[name] = "whsec_" + base64.b64encode(raw).decode()
        secrets_env[f"NPSLOOP_{name.upper()}"] = kept[name]
    if kept:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept))
        path.chmod(0o600)
    return secrets_env


def run(settings: Settings, demo: bool = False, demo_rate: float = 2.0) -> int:
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise Stop

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    extra_env = embedded_secrets(settings, settings.data_dir.resolve())
    demo_links = demo and not (
        settings.review_google_url
        or settings.review_facebook_url
        or settings.review_trustpilot_url
        or settings.review_links_file
    )
    if demo_links:
        extra_env.update(DEMO_REVIEW_LINKS)
    if demo:
        extra_env.update({k: v for k, v in DEMO_TIMING.items() if k not in os.environ})
    supervisor = Supervisor(settings, extra_env)
    supervisor.log_dir.mkdir(parents=True, exist_ok=True)
    traffic: DemoTraffic | None = None
    outbox = OutboxTail(settings.local_outbox_path.resolve())
    code = 0
    print("npsloop: starting (Ctrl-C stops everything)")
    try:
        supervisor.start_broker()
        supervisor.prepare()
        supervisor.start_workers()
        supervisor.wait_ready()
        _print_urls(supervisor, settings)
        if demo:
            traffic = DemoTraffic(
                supervisor.worker("ingest").url, demo_rate, extra_env["NPSLOOP_WEBHOOK_SECRET"]
            ).start()
            languages = "Danish, Swedish, English"
            print(f"  demo        {demo_rate:g} responses/s with purchases, in {languages}")
            if extra_env:
                print(
                    "  reviews     placeholder Google, Facebook and Trustpilot pages "
                    "(set NPSLOOP_REVIEW_*_URL)"
                )
        print("", flush=True)
        _watch(supervisor, outbox)
    except Stop:
        print("\nnpsloop: stopping ...", flush=True)
    except (RuntimeError, ConnectionError) as exc:
        print(f"npsloop: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if traffic:
            traffic.stop()
        supervisor.stop()
        # What went out while stopping is shown too.
        outbox.show_new()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("npsloop: stopped", flush=True)
    return code


def _print_urls(supervisor: Supervisor, settings: Settings) -> None:
    ingest = supervisor.worker("ingest").url
    print(f"  ingest      {ingest}/v1/responses  {ingest}/v1/purchases  {ingest}/openapi.json")
    for worker in supervisor.workers:
        print(f"  {worker.service:<11} {worker.url}/metrics  {worker.url}/ready")
    outbox = settings.local_outbox_path.resolve()
    slack = "Slack" if settings.slack_bot_token else "local outbox"
    email = "SendGrid" if settings.sendgrid_api_key else "local outbox"
    print(f"  alerts to   {slack}; emails to {email}")
    print(f"  outbox      {outbox}  (npsloop outbox -f)")
    print(f"  logs        {supervisor.log_dir}")


class OutboxTail:
    """Prints the local outbox's new deliveries as a person reads them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    def show_new(self) -> None:
        if not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines()[self.shown :]:
            try:
                print("  " + format_outbox_line(json.loads(line)), flush=True)
            except (ValueError, KeyError):
                # A line being written right now; it is read whole next time.
                return
            self.shown += 1


def _watch(supervisor: Supervisor, outbox: OutboxTail) -> None:
    next_summary = time.monotonic() + SUMMARY_EVERY_SECONDS
    metrics_url = supervisor.worker("aggregator").url + "/metrics"
    while True:
        time.sleep(0.5)
        supervisor.restart_crashed()
        outbox.show_new()
        if time.monotonic() >= next_summary:
            next_summary = time.monotonic() + SUMMARY_EVERY_SECONDS
            status, text = _get(metrics_url)
            summary = nps_summary(text) if status == 200 else None
            if summary:
                print(f"  == {summary}", flush=True)
