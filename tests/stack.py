"""The four real workers as subprocesses, wired to a broker, a database and fake providers."""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.process import die_with_parent, free_port
from shared.settings import SERVICES, ServiceName
from shared.signing import webhook_headers
from tests.fakes import SLACK_TEST_TOKEN, FakeServer, FakeSlack, fake_sendgrid, fake_slack

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
class Stack:
    bootstrap: str
    database_url: str | None
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    ports: dict[ServiceName, int] = field(default_factory=dict)
    processes: dict[ServiceName, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: ServiceName) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def worker_env(self, service: ServiceName) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NPSLOOP_")}
        env.update(
            {
                "NPSLOOP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "NPSLOOP_NAMESPACE": self.namespace,
                "NPSLOOP_DATA_DIR": str(self.data_dir),
                "NPSLOOP_WEB_PORT": str(self.ports[service]),
                "NPSLOOP_BROKER_SESSION_TIMEOUT_SECONDS": "6",
                "NPSLOOP_AGGREGATE_REFRESH_SECONDS": "0.5",
                "NPSLOOP_LOG_LEVEL": "info",
                "NPSLOOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "NPSLOOP_TOKEN_SECRET": TOKEN_SECRET,
                "NPSLOOP_PUBLIC_URL": self.url("ingest"),
            }
        )
        if self.database_url:
            env["NPSLOOP_DATABASE_URL"] = self.database_url
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
        log = open(self.log_path(service), "ab")  # noqa: SIM115 - handed to the child
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "services", "worker", service],
            env=self.worker_env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()

    def log_path(self, service: ServiceName) -> Path:
        return self.data_dir / f"{service}.log"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = set(SERVICES)
        while waiting:
            for service in sorted(waiting):
                process = self.processes[service]
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited:\n{self.tail(service)}")
                if http_get(self.url(service) + "/ready", timeout=1.0)[0] == 200:
                    waiting.discard(service)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready: {waiting}\n" + "\n".join(self.tail(s) for s in waiting)
                )
            time.sleep(0.2)

    def tail(self, service: ServiceName, lines: int = 40) -> str:
        path = self.log_path(service)
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {service} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def stack_with_fakes(
    bootstrap: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[tuple[Stack, FakeSlack, FakeServer]]:
    """The four workers, their Slack and SendGrid clients pointed at fresh fake servers."""
    slack, sendgrid = fake_slack(), fake_sendgrid()
    stack = Stack(
        bootstrap=bootstrap,
        database_url=database_url,
        data_dir=data_dir,
        env={
            "NPSLOOP_SLACK_API_URL": slack.url + "/api/",
            "NPSLOOP_SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
            "NPSLOOP_SENDGRID_API_URL": sendgrid.url,
            "NPSLOOP_SENDGRID_API_KEY": "SG.test-key",
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
