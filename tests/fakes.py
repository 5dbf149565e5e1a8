"""Fake Slack and SendGrid servers that the real slack-sdk and sendgrid clients talk HTTP to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeServer:
    """An HTTP server in a thread that records every request it answers."""

    name: str
    answer: Callable[[Received, int], tuple[int, dict[str, str], bytes]]
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type:
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                received = Received(self.path, dict(self.headers.items()), body)
                with fake._lock:
                    fake.requests.append(received)
                    number = len(fake.requests)
                status, headers, payload = fake.answer(received, number)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 60.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.1)
        return self.received(path)


def _slack_answer(received: Received, number: int) -> tuple[int, dict[str, str], bytes]:
    if received.path.endswith("/chat.postMessage"):
        body = {
            "ok": True,
            "channel": received.body.get("channel"),
            "ts": f"1700000000.{number:06d}",
        }
    else:
        body = {"ok": False, "error": "unknown_method"}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _sendgrid_answer(received: Received, number: int) -> tuple[int, dict[str, str], bytes]:
    if received.path == "/v3/mail/send":
        return 202, {"X-Message-Id": f"fake-message-{number}"}, b""
    return 404, {"Content-Type": "application/json"}, b'{"errors":[{"message":"not found"}]}'


def fake_slack() -> FakeServer:
    """Answers the Web API like Slack does: chat.postMessage returns ok with a ts."""
    return FakeServer("slack", _slack_answer).start()


def fake_sendgrid() -> FakeServer:
    """Answers v3/mail/send like SendGrid does: 202 with an X-Message-Id."""
    return FakeServer("sendgrid", _sendgrid_answer).start()
