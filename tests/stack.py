"""The four real workers as subprocesses, wired to a broker, a database and fake providers.

Each service runs one worker, named by the service; ``spawn_extra`` adds more workers of a
service to its consumer group, each named ``{service}-{n}`` and on a port of its own.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.broker import EMBEDDED_BROKER_SETTINGS
from shared.process import die_with_parent, free_port
from shared.settings import SERVICES, ServiceName
from shared.signing import webhook_headers
from tests.conftest import choose_broker, docker_available
from tests.fakes import (
    DEFAULT_SLACK_CHANNELS,
    SLACK_TEST_TOKEN,
    FakeServer,
    FakeSlack,
    fake_sendgrid,
    fake_slack,
)

READY_TIMEOUT = 120.0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"the integration tests' webhook key").decode()
TOKEN_SECRET = "the integration tests' link key"


def http_post(
    url: str, body: bytes, timeout: float = 15.0, signed: bool = True
) -> tuple[int, str, dict[str, str]]:
    """POST JSON, signed as a Standard Webhook with the stack's secret unless told otherwise."""
    headers = {"Content-Type": "application/json"}
    if signed:
        headers.update(webhook_headers(WEBHOOK_SECRET, f"msg_{uuid.uuid4().hex}", body))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers.items())


@dataclass
class ExtraWorker:
    """Another worker of a service, in the same consumer group as the first."""

    service: ServiceName
    port: int
    process: subprocess.Popen[bytes]


@dataclass
class Stack:
    bootstrap: str
    database_url: str | None
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    ports: dict[ServiceName, int] = field(default_factory=dict)
    processes: dict[ServiceName, subprocess.Popen[bytes]] = field(default_factory=dict)
    extras: dict[str, ExtraWorker] = field(default_factory=dict)

    def url(self, service: ServiceName) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def worker_url(self, worker: str) -> str:
        """The URL of a worker: a service's first worker by its name, or an extra one."""
        if worker in self.extras:
            return f"http://127.0.0.1:{self.extras[worker].port}"
        return self.url(_service(worker))

    def process_of(self, worker: str) -> subprocess.Popen[bytes]:
        if worker in self.extras:
            return self.extras[worker].process
        return self.processes[_service(worker)]

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def worker_env(self, service: ServiceName, port: int | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NPSLOOP_")}
        env.update(
            {
                "NPSLOOP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "NPSLOOP_NAMESPACE": self.namespace,
                "NPSLOOP_DATA_DIR": str(self.data_dir),
                "NPSLOOP_WEB_PORT": str(port or self.ports[service]),
                "NPSLOOP_BROKER_SESSION_TIMEOUT_SECONDS": "6",
                # Short, like the session timeout: a wedged partition is read again sooner.
                "NPSLOOP_CONSUMER_STALL_SECONDS": "10",
                "NPSLOOP_AGGREGATE_REFRESH_SECONDS": "0.5",
                "NPSLOOP_LOG_LEVEL": "info",
                "NPSLOOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "NPSLOOP_TOKEN_SECRET": TOKEN_SECRET,
                "NPSLOOP_PUBLIC_URL": self.url("ingest"),
            }
        )
        if self.database_url:
            env["NPSLOOP_DATABASE_URL"] = self.database_url
        if choose_broker(os.environ, docker_available) == "embedded":
            # As `npsloop up` does for its embedded broker (see the settings).
            env.update(EMBEDDED_BROKER_SETTINGS)
        env.update(self.env)
        return env

    def start(self) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            self.ports[service] = free_port()
        for service in SERVICES:
            self.spawn(service)
        self.wait_ready()
        return self

    def spawn(self, service: ServiceName) -> None:
        self.processes[service] = self._popen(service, service, self.ports[service])

    def spawn_extra(self, service: ServiceName) -> str:
        """Start one more worker of a service, on a free port; returns its name."""
        number = 2 + sum(extra.service == service for extra in self.extras.values())
        name, port = f"{service}-{number}", free_port()
        self.extras[name] = ExtraWorker(service, port, self._popen(name, service, port))
        return name

    def _popen(self, worker: str, service: ServiceName, port: int) -> subprocess.Popen[bytes]:
        log = open(self.log_path(worker), "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "services", "worker", service],
                env=self.worker_env(service, port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    def log_path(self, worker: str) -> Path:
        return self.data_dir / f"{worker}.log"

    def wait_ready(self, workers: Iterable[str] = SERVICES) -> None:
        """Wait until each worker named (by default the first of each service) is ready."""
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = set(workers)
        while waiting:
            for worker in sorted(waiting):
                if self.process_of(worker).poll() is not None:
                    raise RuntimeError(f"{worker} exited:\n{self.tail(worker)}")
                if http_get(self.worker_url(worker) + "/ready", timeout=1.0)[0] == 200:
                    waiting.discard(worker)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready: {waiting}\n" + "\n".join(self.tail(w) for w in waiting)
                )
            time.sleep(0.2)

    def tail(self, worker: str, lines: int = 40) -> str:
        path = self.log_path(worker)
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {worker} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        processes = [*self.processes.values(), *(extra.process for extra in self.extras.values())]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _service(worker: str) -> ServiceName:
    for service in SERVICES:
        if worker == service:
            return service
    raise KeyError(f"no worker named {worker!r}")


@contextlib.contextmanager
def stack_with_fakes(
    bootstrap: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    slack_channels: Iterable[str] = DEFAULT_SLACK_CHANNELS,
) -> Iterator[tuple[Stack, FakeSlack, FakeServer]]:
    """The four workers, their Slack and SendGrid clients pointed at fresh fake servers
    (a Slack with these channels)."""
    slack, sendgrid = fake_slack(slack_channels), fake_sendgrid()
    stack = Stack(
        bootstrap=bootstrap,
        database_url=database_url,
        data_dir=data_dir,
        env={
            "NPSLOOP_SLACK_API_URL": slack.url + "/api/",
            "NPSLOOP_SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
            "NPSLOOP_SENDGRID_API_URL": sendgrid.url,
            "NPSLOOP_SENDGRID_API_KEY": "SG.test-key",
            # Emails go when planned, whatever the hour the suite runs at; the send window
            # itself is tested where it is the point (tests that set their own).
            "NPSLOOP_SEND_WINDOW": "00:00-24:00",
            **(env or {}),
        },
    )
    try:
        stack.start()
        yield stack, slack, sendgrid
    finally:
        stack.stop()
        slack.stop()
        sendgrid.stop()
