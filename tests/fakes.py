"""Fake Slack and SendGrid servers that the real slack-sdk and sendgrid clients talk HTTP to.

Both record every request, including the ones they failed on purpose, and can be told to
fail: ``server.fail_next(2, RateLimited(retry_after=2), path="chat.postMessage")`` or, for
chaos tests, ``server.fail_randomly(0.2, [ServerError(), Hang(1.0)], seed=7)``.

The fake Slack answers like the Web API does: it checks the bot token, knows its channels
(``channel_not_found`` for others), refuses blocks over Slack's limits with
``invalid_blocks``, and pages ``conversations.list`` with ``response_metadata.next_cursor``.

Both speak HTTP/1.1 and keep connections alive, as Slack and SendGrid do: a client that
reuses its connections pays for a connection once, not per request.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_SLACK_CHANNELS",
    "SLACK_TEST_TOKEN",
    "FailureMode",
    "FakeServer",
    "FakeSlack",
    "Hang",
    "RateLimited",
    "Received",
    "ServerError",
    "fake_sendgrid",
    "fake_slack",
]

Answer = tuple[int, dict[str, str], bytes]
AnsweredWith = Literal["normal", "rate_limited", "server_error", "hang"]

# The token the integration tests give the notifier (NPSLOOP_SLACK_BOT_TOKEN).
SLACK_TEST_TOKEN = "xoxb-test-token"
# cx-alerts: the channel the walking-skeleton test sends its alerts to.
DEFAULT_SLACK_CHANNELS = ("customer-feedback", "kudos", "cx-escalations", "cx-alerts")


@dataclass(frozen=True)
class RateLimited:
    """HTTP 429 with a Retry-After header, as both APIs answer when called too often."""

    retry_after: int = 2


@dataclass(frozen=True)
class ServerError:
    """An HTTP 5xx: the service is having a bad day."""

    status: int = 500


@dataclass(frozen=True)
class Hang:
    """Wait this long before answering (normally): long enough and the client times out."""

    seconds: float


FailureMode = RateLimited | ServerError | Hang


@dataclass
class Received:
    """One request as the fake saw it, and how it was answered.

    ``body`` is the JSON or form body, or for a GET the query parameters. ``status`` is
    set once the answer is decided (0 before); ``error`` is the error code of an answer
    that refused the request (Slack's ``invalid_blocks``, ``ratelimited``...); ``at`` is
    when it arrived.
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"
    answered_with: AnsweredWith = "normal"
    status: int = 0
    error: str | None = None
    # When the request arrived (time.time()), for latency measured from another clock.
    at: float = field(default_factory=time.time)


@dataclass
class _Rule:
    remaining: int
    mode: FailureMode
    path: str | None


def _matches(path: str, wanted: str | None) -> bool:
    # "chat.postMessage" matches "/api/chat.postMessage"; a full path matches itself.
    return wanted is None or path == wanted or path.endswith("/" + wanted.lstrip("/"))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


def _generic_failure(mode: FailureMode) -> Answer:
    if isinstance(mode, RateLimited):
        return _json(429, {"error": "rate limited"}, {"Retry-After": str(mode.retry_after)})
    status = mode.status if isinstance(mode, ServerError) else 500
    return _json(status, {"error": "server error"})


_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    """Keeps track of the connections that wait for their next request, to close them on
    stop: shutdown() stops accepting but leaves their threads blocked on a read."""

    # The default backlog of 5 makes a burst of concurrent clients wait for a SYN retry
    # (a second each), which looks like a slow service and is only a slow fake.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections_lock = threading.Lock()
        # Connections between requests. One in the middle of a request is left to finish
        # its answer, as before keep-alive, and closes after it.
        self._idle: set[_Request] = set()
        self.closing = False

    def process_request(self, request: _Request, client_address: Any) -> None:
        with self._connections_lock:
            self._idle.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        with self._connections_lock:
            self._idle.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        if not self.closing:  # a connection closed under its thread by stop() is no error
            super().handle_error(request, client_address)

    def busy(self, connection: _Request) -> None:
        with self._connections_lock:
            self._idle.discard(connection)

    def idle(self, connection: _Request) -> bool:
        """Mark a connection as waiting for its next request; False once closing."""
        with self._connections_lock:
            if not self.closing:
                self._idle.add(connection)
            return not self.closing

    def close_connections(self) -> None:
        with self._connections_lock:
            self.closing = True
            idle, self._idle = self._idle, set()
        for connection in idle:
            assert isinstance(connection, socket.socket)
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, like the real services: answers are framed by their Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def parse_request(self) -> bool:
        # A request line arrived: the connection is busy until its answer is out.
        cast(_Server, self.server).busy(self.request)
        return super().parse_request()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if not cast(_Server, self.server).idle(self.request):
            self.close_connection = True

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class FakeServer:
    """An HTTP server in a thread that records every request it answers."""

    name: str
    answer: Callable[[Received, int], Answer]
    requests: list[Received] = field(default_factory=list)
    render_failure: Callable[[FailureMode], Answer] = _generic_failure
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Answers are computed one at a time, so an answer function may keep state unlocked.
    _answer_lock: threading.Lock = field(default_factory=threading.Lock)
    _rules: list[_Rule] = field(default_factory=list)
    _chaos: tuple[float, tuple[FailureMode, ...], str | None] | None = None
    _random: random.Random = field(default_factory=random.Random)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: _Server | None = None
    # 0 until the first start picks a free port; a restart listens on the same one.
    _port: int = 0

    def start(self) -> FakeServer:
        fake = self
        self._stopping.clear()

        class Handler(_Handler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        # A short poll keeps stop() quick: shutdown() waits for the loop's next poll.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    @property
    def url(self) -> str:
        assert self._port, "the server was never started"
        return f"http://127.0.0.1:{self._port}"

    def stop(self) -> None:
        """Stop listening: from now on connections are refused, as by a provider that is down.

        ``start()`` again listens on the same port, keeping what was received before.
        Kept-alive connections are closed; one in the middle of a request closes after
        its answer.
        """
        self._stopping.set()  # releases requests that hang
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    # --- what was received ---------------------------------------------------------------

    def received(
        self, path: str | None = None, *, answered_with: AnsweredWith | None = None
    ) -> list[Received]:
        """Requests so far, of one path if given, optionally only those answered one way."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path)
                and (answered_with is None or r.answered_with == answered_with)
            ]

    def accepted(self, path: str | None = None) -> list[Received]:
        """Requests the fake answered with success: what actually reached Slack or SendGrid."""
        return [
            r
            for r in self.received(path)
            if r.answered_with == "normal" and r.error is None and r.status < 300
        ]

    def landed(self, path: str | None = None) -> list[Received]:
        """Requests that took effect: those answered with success, and those that hung and
        were answered after the client gave up (a post is in the channel all the same)."""
        return [
            r
            for r in self.received(path)
            if r.answered_with in ("normal", "hang") and r.error is None and r.status < 300
        ]

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

    # --- failures on command --------------------------------------------------------------

    def fail_next(self, n: int, mode: FailureMode, path: str | None = None) -> None:
        """Answer the next ``n`` requests (of ``path``, or any) with ``mode``.

        ``path`` is a full path ("/api/chat.postMessage") or its last part
        ("chat.postMessage"). Rules queue up: a request takes the first that matches.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._rules.append(_Rule(n, mode, path))

    def fail_randomly(
        self,
        rate: float,
        modes: Sequence[FailureMode] = (ServerError(),),
        seed: int | None = None,
        path: str | None = None,
    ) -> None:
        """Fail a share ``rate`` of requests with a mode drawn from ``modes``; 0 stops it.

        With a seed the draws repeat from run to run (given the same order of requests).
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate is a share from 0 to 1")
        if rate > 0 and not modes:
            raise ValueError("give at least one failure mode")
        with self._lock:
            self._random = random.Random(seed)
            self._chaos = (rate, tuple(modes), path) if rate > 0 else None

    def _failure_for(self, path: str) -> FailureMode | None:
        # Called with the lock held.
        for rule in self._rules:
            if _matches(path, rule.path):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return rule.mode
        if self._chaos is not None:
            rate, modes, wanted = self._chaos
            if _matches(path, wanted) and self._random.random() < rate:
                return self._random.choice(modes)
        return None

    # --- answering ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        body: dict[str, Any] = {k: v[0] for k, v in parse_qs(split.query).items()}
        # Read even a GET's body, if it has one: left unread it would be taken for the
        # next request on the connection.
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        if method == "POST":
            if "json" in handler.headers.get("Content-Type", ""):
                body.update(json.loads(raw or b"{}"))
            else:
                body.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        received = Received(split.path, dict(handler.headers.items()), body, method)
        with self._lock:
            self.requests.append(received)
            number = len(self.requests)
            failure = self._failure_for(received.path)
            received.answered_with = _answered_with(failure)
        if isinstance(failure, Hang):
            self._stopping.wait(failure.seconds)
        if failure is None or isinstance(failure, Hang):
            with self._answer_lock:
                status, headers, payload = self.answer(received, number)
        else:
            status, headers, payload = self.render_failure(failure)
        with self._lock:
            received.status = status
            received.error = _error_of(payload)
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            if isinstance(failure, Hang) or self._stopping.is_set():
                # A client that gave up on a hang may still send on the connection, and
                # a stopping server takes no more: neither is used again.
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            # The client gave up waiting (a Hang past its timeout), or stop() closed the
            # connection: as intended.
            handler.close_connection = True


def _error_of(payload: bytes) -> str | None:
    try:
        answer = json.loads(payload) if payload else None
    except ValueError:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])
    return None


def _answered_with(failure: FailureMode | None) -> AnsweredWith:
    if isinstance(failure, RateLimited):
        return "rate_limited"
    if isinstance(failure, ServerError):
        return "server_error"
    if isinstance(failure, Hang):
        return "hang"
    return "normal"


# --- Slack ----------------------------------------------------------------------------------

_SLACK_MAX_BLOCKS = 50
_SLACK_SECTION_TEXT = 3000
_SLACK_SECTION_FIELD = 2000
_SLACK_SECTION_FIELDS = 10
_SLACK_HEADER_TEXT = 150
_SLACK_CONTEXT_ELEMENTS = 10
_SLACK_ACTIONS_ELEMENTS = 25


def _channel_id(name: str) -> str:
    # Stable across runs, shaped like Slack's (C + upper-case letters and digits).
    return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()


def _block_errors(blocks: Any) -> list[str]:
    """What Slack would say is wrong with these blocks, with its json-pointer style."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["[ERROR] blocks is not valid JSON"]
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    errors = []
    if len(blocks) > _SLACK_MAX_BLOCKS:
        errors.append(
            f"[ERROR] no more than {_SLACK_MAX_BLOCKS} items allowed [json-pointer:/blocks]"
        )
    for number, block in enumerate(blocks):
        where = f"/blocks/{number}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
            continue
        kind = block["type"]
        text = block.get("text")
        text_value = text.get("text") if isinstance(text, dict) else None
        if kind == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"[ERROR] must be plain_text [json-pointer:{where}/text]")
            elif not isinstance(text_value, str) or len(text_value) > _SLACK_HEADER_TEXT:
                errors.append(
                    f"[ERROR] must be less than {_SLACK_HEADER_TEXT + 1} characters "
                    f"[json-pointer:{where}/text/text]"
                )
        elif kind == "section":
            fields = block.get("fields")
            if text is None and not fields:
                errors.append(f"[ERROR] must provide text or fields [json-pointer:{where}]")
            if text is not None and (
                not isinstance(text_value, str)
                or not text_value
                or len(text_value) > _SLACK_SECTION_TEXT
            ):
                errors.append(
                    f"[ERROR] must be 1 to {_SLACK_SECTION_TEXT} characters "
                    f"[json-pointer:{where}/text/text]"
                )
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > _SLACK_SECTION_FIELDS:
                    errors.append(
                        f"[ERROR] no more than {_SLACK_SECTION_FIELDS} items allowed "
                        f"[json-pointer:{where}/fields]"
                    )
                else:
                    for index, item in enumerate(fields):
                        value = item.get("text") if isinstance(item, dict) else None
                        if not isinstance(value, str) or len(value) > _SLACK_SECTION_FIELD:
                            errors.append(
                                f"[ERROR] must be less than {_SLACK_SECTION_FIELD + 1} "
                                f"characters [json-pointer:{where}/fields/{index}/text]"
                            )
        elif kind in ("context", "actions"):
            limit = _SLACK_CONTEXT_ELEMENTS if kind == "context" else _SLACK_ACTIONS_ELEMENTS
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
                errors.append(
                    f"[ERROR] must have 1 to {limit} items [json-pointer:{where}/elements]"
                )
    return errors


class FakeSlack(FakeServer):
    """The Slack Web API as far as npsloop uses it, strict where Slack is strict."""

    def __init__(
        self,
        channels: Iterable[str] = DEFAULT_SLACK_CHANNELS,
        token: str | None = SLACK_TEST_TOKEN,
    ) -> None:
        super().__init__("slack", self._answer, render_failure=_slack_failure)
        names = [name.lstrip("#") for name in channels]
        self.channels: dict[str, str] = {_channel_id(name): name for name in names}
        # None accepts any bearer token: for tests that do not care which.
        self.token = token
        # ts -> the message as last posted or updated (channel id, text, blocks).
        self.messages: dict[str, dict[str, Any]] = {}
        # channel id -> its messages' ts as numbers, oldest first: a page of history is a
        # slice, not a sort of every message (at 20,000 responses, the chaos test's looks
        # held up every post while the fake sorted tens of thousands).
        self._timeline: dict[str, list[tuple[float, str]]] = {}
        # Slack's clock, which stamps each message's ts: a test may set it back.
        self.clock: Callable[[], float] = time.time
        self._posted = 0

    def add_message(self, channel: str, text: str, metadata: dict[str, Any] | None = None) -> str:
        """Post as someone else would (another app, a person): returns its ts."""
        body = {"channel": channel, "text": text, "metadata": metadata}
        with self._answer_lock:
            answer = self._post_or_update("chat.postMessage", body)
        return str(json.loads(answer[2])["ts"])

    def channel_id(self, name: str) -> str:
        """The id the fake gives a channel of its list."""
        return _channel_id(name.lstrip("#"))

    def _find_channel(self, channel: object) -> str | None:
        if not isinstance(channel, str) or not channel:
            return None
        if channel in self.channels:
            return channel
        wanted = channel.lstrip("#")
        return next((cid for cid, name in self.channels.items() if name == wanted), None)

    def _answer(self, received: Received, number: int) -> Answer:
        method = received.path.rsplit("/", 1)[-1]
        auth = received.headers.get("Authorization") or received.headers.get("authorization")
        # Slack answers auth failures with HTTP 200 and ok: false, like every API error.
        if not auth or not auth.startswith("Bearer ") or not auth.removeprefix("Bearer "):
            return _json(200, {"ok": False, "error": "not_authed"})
        if self.token is not None and auth.removeprefix("Bearer ") != self.token:
            return _json(200, {"ok": False, "error": "invalid_auth"})
        if method in ("chat.postMessage", "chat.update"):
            return self._post_or_update(method, received.body)
        if method == "conversations.list":
            return self._conversations(received.body)
        if method == "conversations.history":
            return self._history(received.body)
        if method == "auth.test":
            return _json(
                200,
                {
                    "ok": True,
                    "url": "https://npsloop-test.slack.com/",
                    "team": "npsloop test",
                    "user": "npsloop",
                    "team_id": "T0NPSLOOP",
                    "user_id": "U0NPSLOOP",
                    "bot_id": "B0NPSLOOP",
                },
            )
        return _json(200, {"ok": False, "error": "unknown_method"})

    def _post_or_update(self, method: str, body: dict[str, Any]) -> Answer:
        # Called with the answer lock held.
        channel = self._find_channel(body.get("channel"))
        if channel is None:
            return _json(200, {"ok": False, "error": "channel_not_found"})
        blocks = body.get("blocks")
        if blocks is not None:
            errors = _block_errors(blocks)
            if errors:
                return _json(
                    200,
                    {
                        "ok": False,
                        "error": "invalid_blocks",
                        "response_metadata": {"messages": errors},
                    },
                )
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
        elif not body.get("text"):
            return _json(200, {"ok": False, "error": "no_text"})
        if method == "chat.update":
            ts = body.get("ts")
            if not isinstance(ts, str) or ts not in self.messages:
                return _json(200, {"ok": False, "error": "message_not_found"})
            if self.messages[ts]["channel"] != channel:
                return _json(200, {"ok": False, "error": "message_not_found"})
        else:
            # Like Slack: the time it was posted, unique in the channel.
            self._posted += 1
            ts = f"{int(self.clock())}.{self._posted:06d}"
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if method == "chat.update":
            metadata = self.messages[ts].get("metadata")
        message = {
            "channel": channel,
            "ts": ts,
            "text": body.get("text", ""),
            "blocks": blocks,
            "metadata": metadata,
        }
        if ts not in self.messages:
            bisect.insort(self._timeline.setdefault(channel, []), (float(ts), ts))
        self.messages[ts] = message
        return _json(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "text": message["text"],
                "message": {"type": "message", "text": message["text"], "ts": ts},
            },
        )

    def _history(self, body: dict[str, Any]) -> Answer:
        """conversations.history as Slack pages it: newest first, at most ``limit`` (100
        unless asked, 999 at most) between ``oldest`` and ``latest`` (both left out unless
        ``inclusive``), the rest behind a cursor; with message metadata only when
        include_all_metadata is asked for."""
        channel = body.get("channel")
        if channel not in self.channels:
            return _json(200, {"ok": False, "error": "channel_not_found"})
        try:
            oldest = float(body.get("oldest") or 0)
            latest = float(body.get("latest") or "inf")
            limit = max(1, min(int(body.get("limit") or 100), 999))
        except ValueError:
            return _json(200, {"ok": False, "error": "invalid_arguments"})
        inclusive = str(body.get("inclusive")).lower() in ("1", "true")
        with_metadata = str(body.get("include_all_metadata")).lower() in ("1", "true")
        timeline = self._timeline.get(channel, [])
        # The first message past the window's end, counting back from it.
        end = (
            bisect.bisect_right(timeline, (latest, "~"))
            if inclusive
            else (bisect.bisect_left(timeline, (latest, "")))
        )
        cursor = body.get("cursor")
        if cursor:
            try:
                end = int(base64.b64decode(cursor, validate=True).decode().removeprefix("at:"))
            except ValueError:
                return _json(200, {"ok": False, "error": "invalid_cursor"})
        start = (
            bisect.bisect_left(timeline, (oldest, ""))
            if inclusive
            else (bisect.bisect_right(timeline, (oldest, "~")))
        )
        page = timeline[max(start, end - limit) : end][::-1]
        found = []
        for _, ts in page:
            message = self.messages[ts]
            shown = {"type": "message", "ts": ts, "text": message["text"]}
            if with_metadata and message.get("metadata"):
                shown["metadata"] = message["metadata"]
            found.append(shown)
        more = end - limit > start
        answer: dict[str, Any] = {"ok": True, "messages": found, "has_more": more}
        if more:
            next_cursor = base64.b64encode(f"at:{end - limit}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return _json(200, answer)

    def _conversations(self, body: dict[str, Any]) -> Answer:
        try:
            limit = int(body.get("limit") or 100)
        except ValueError:
            return _json(200, {"ok": False, "error": "invalid_limit"})
        # Slack caps a page at 1000 and, like here, may return fewer than asked for.
        limit = max(1, min(limit, 1000))
        ids = sorted(self.channels)
        start = 0
        cursor = body.get("cursor")
        if cursor:
            try:
                after = base64.b64decode(cursor, validate=True).decode().removeprefix("next:")
                start = ids.index(after)
            except ValueError:
                return _json(200, {"ok": False, "error": "invalid_cursor"})
        page = ids[start : start + limit]
        rest = ids[start + limit :]
        next_cursor = base64.b64encode(f"next:{rest[0]}".encode()).decode() if rest else ""
        return _json(
            200,
            {
                "ok": True,
                "channels": [
                    {
                        "id": cid,
                        "name": self.channels[cid],
                        "name_normalized": self.channels[cid],
                        "is_channel": True,
                        "is_private": False,
                        "is_archived": False,
                        "is_member": True,
                    }
                    for cid in page
                ],
                "response_metadata": {"next_cursor": next_cursor},
            },
        )


def _slack_failure(mode: FailureMode) -> Answer:
    if isinstance(mode, RateLimited):
        return _json(
            429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(mode.retry_after)}
        )
    status = mode.status if isinstance(mode, ServerError) else 500
    return _json(status, {"ok": False, "error": "fatal_error"})


# --- SendGrid -------------------------------------------------------------------------------


def _sendgrid_answer(received: Received, number: int) -> Answer:
    if received.path == "/v3/mail/send":
        return 202, {"X-Message-Id": f"fake-message-{number}"}, b""
    return 404, {"Content-Type": "application/json"}, b'{"errors":[{"message":"not found"}]}'


def _sendgrid_failure(mode: FailureMode) -> Answer:
    if isinstance(mode, RateLimited):
        return _json(
            429,
            {"errors": [{"field": None, "message": "too many requests"}]},
            {"Retry-After": str(mode.retry_after)},
        )
    status = mode.status if isinstance(mode, ServerError) else 500
    return _json(status, {"errors": [{"field": None, "message": "internal server error"}]})


def fake_slack(
    channels: Iterable[str] = DEFAULT_SLACK_CHANNELS, token: str | None = SLACK_TEST_TOKEN
) -> FakeSlack:
    """Answers the Web API like Slack does (chat.postMessage, chat.update,
    conversations.list, auth.test), for these channels and this bot token."""
    server = FakeSlack(channels, token)
    server.start()
    return server


def fake_sendgrid() -> FakeServer:
    """Answers v3/mail/send like SendGrid does: 202 with an X-Message-Id."""
    return FakeServer("sendgrid", _sendgrid_answer, render_failure=_sendgrid_failure).start()
