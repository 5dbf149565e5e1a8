"""The fake Slack and SendGrid servers, driven by the real slack-sdk and sendgrid clients.

The fakes stand in for the real services in every integration test, so they are tested
too: a fake that accepts what Slack refuses would hide the bug it is there to catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import (
    SLACK_TEST_TOKEN,
    FakeServer,
    FakeSlack,
    Hang,
    RateLimited,
    Received,
    ServerError,
    fake_sendgrid,
    fake_slack,
)

POST = "/api/chat.postMessage"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = fake_slack()
    yield server
    server.stop()


@pytest.fixture
def sendgrid() -> Iterator[FakeServer]:
    server = fake_sendgrid()
    yield server
    server.stop()


def client(server: FakeServer, token: str | None = SLACK_TEST_TOKEN, timeout: int = 5) -> WebClient:
    return WebClient(token=token, base_url=server.url + "/api/", timeout=timeout)


def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        call()
    return raised.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# --- Slack: what works ---------------------------------------------------------------------


def test_a_message_is_posted_with_a_ts_and_recorded(slack: FakeSlack) -> None:
    posted = client(slack).chat_postMessage(channel="#customer-feedback", text="Detractor 2/10")

    assert posted["ok"] is True
    assert posted["channel"] == slack.channel_id("customer-feedback")
    assert re.fullmatch(r"[0-9]{10}\.000001", posted["ts"])
    [received] = slack.received(POST)
    assert received.body["text"] == "Detractor 2/10"
    assert (received.answered_with, received.status, received.error) == ("normal", 200, None)


@pytest.mark.parametrize("channel", ["customer-feedback", "#customer-feedback", "C-ID"])
def test_a_channel_is_found_by_name_with_or_without_hash_or_by_id(
    slack: FakeSlack, channel: str
) -> None:
    if channel == "C-ID":
        channel = slack.channel_id("customer-feedback")

    assert client(slack).chat_postMessage(channel=channel, text="hi")["ok"] is True


def test_an_update_keeps_the_ts_and_replaces_the_message(slack: FakeSlack) -> None:
    web = client(slack)
    posted = web.chat_postMessage(
        channel="#customer-feedback", text="Open", blocks=[section("Open")]
    )

    updated = web.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="Claimed", blocks=[section("Claimed")]
    )

    assert updated["ts"] == posted["ts"]
    assert slack.messages[posted["ts"]]["blocks"] == [section("Claimed")]
    assert [r.body["text"] for r in slack.received("/api/chat.update")] == ["Claimed"]


def test_an_update_of_a_message_never_posted_is_not_found(slack: FakeSlack) -> None:
    error = slack_error(
        lambda: client(slack).chat_update(channel="#kudos", ts="1.000001", text="x")
    )

    assert error.response["error"] == "message_not_found"


def test_auth_test_says_who_the_bot_is(slack: FakeSlack) -> None:
    assert client(slack).auth_test()["user_id"] == "U0NPSLOOP"


def test_conversations_are_listed_a_page_at_a_time_with_a_cursor() -> None:
    server = fake_slack(channels=[f"store-{n}" for n in range(5)])
    try:
        web = client(server)
        first = web.conversations_list(limit=2)
        pages = [[c["name"] for c in page["channels"]] for page in web.conversations_list(limit=2)]
    finally:
        server.stop()

    assert first["response_metadata"]["next_cursor"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(name for page in pages for name in page) == [f"store-{n}" for n in range(5)]


def test_the_default_channels_are_those_npsloop_posts_to(slack: FakeSlack) -> None:
    names = {c["name"] for c in client(slack).conversations_list()["channels"]}

    assert {"customer-feedback", "kudos", "cx-escalations"} <= names


def test_a_cursor_slack_never_gave_is_refused(slack: FakeSlack) -> None:
    error = slack_error(lambda: client(slack).conversations_list(cursor="bm9wZQ=="))

    assert error.response["error"] == "invalid_cursor"


def test_history_is_paged_newest_first_between_oldest_and_latest(slack: FakeSlack) -> None:
    """As Slack pages conversations.history: a look that reads too few pages misses what
    lies behind them, so the fake must not hand over the whole channel at once."""
    channel = slack.channel_id("customer-feedback")
    slack.clock = lambda: 1_700_000_000.0
    early = [slack.add_message(channel, f"early {n}") for n in range(3)]
    slack.clock = lambda: 1_700_000_100.0
    later = [slack.add_message(channel, f"later {n}") for n in range(250)]
    slack.clock = lambda: 1_700_000_200.0
    slack.add_message(channel, "last")
    web = client(slack)

    first = web.conversations_history(channel=channel, oldest="1700000050", latest="1700000150")
    assert [m["ts"] for m in first["messages"]] == later[::-1][:100]
    assert first["has_more"] is True
    pages = [first]
    while pages[-1]["has_more"]:
        cursor = pages[-1]["response_metadata"]["next_cursor"]
        pages.append(
            web.conversations_history(
                channel=channel, oldest="1700000050", latest="1700000150", cursor=cursor
            )
        )
    assert [len(page["messages"]) for page in pages] == [100, 100, 50]
    assert [m["ts"] for page in pages for m in page["messages"]] == later[::-1]
    everything = web.conversations_history(channel=channel, limit=999)["messages"]
    assert [m["text"] for m in everything][-3:] == ["early 2", "early 1", "early 0"]
    assert len(everything) == 254 and everything[-1]["ts"] == early[0]
    inclusive = web.conversations_history(
        channel=channel, oldest=early[1], latest=early[2], inclusive=True
    )
    assert [m["ts"] for m in inclusive["messages"]] == [early[2], early[1]]
    between = web.conversations_history(channel=channel, oldest=early[0], latest=early[2])
    assert [m["ts"] for m in between["messages"]] == [early[1]]


# --- Slack: what Slack refuses --------------------------------------------------------------


def test_a_channel_not_in_the_workspace_is_not_found(slack: FakeSlack) -> None:
    error = slack_error(lambda: client(slack).chat_postMessage(channel="#nowhere", text="hi"))

    assert error.response["error"] == "channel_not_found"
    assert slack.received(POST)[0].error == "channel_not_found"


def test_without_a_token_slack_says_not_authed(slack: FakeSlack) -> None:
    error = slack_error(
        lambda: client(slack, token=None).chat_postMessage(channel="#kudos", text="x")
    )

    assert error.response["error"] == "not_authed"


def test_a_wrong_token_is_invalid_auth(slack: FakeSlack) -> None:
    error = slack_error(
        lambda: client(slack, token="xoxb-stolen").chat_postMessage(channel="#kudos", text="x")
    )

    assert error.response["error"] == "invalid_auth"


def test_a_fake_without_an_expected_token_takes_any() -> None:
    server = fake_slack(token=None)
    try:
        assert client(server, token="xoxb-anything").auth_test()["ok"] is True
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section("x")] * 51, "/blocks"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "/blocks/0/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/text"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}], "/fields/0"),
        ([{"type": "actions", "elements": []}], "/blocks/0/elements"),
    ],
)
def test_blocks_over_slacks_limits_are_invalid_blocks(
    slack: FakeSlack, blocks: list[dict[str, Any]], pointer: str
) -> None:
    error = slack_error(
        lambda: client(slack).chat_postMessage(channel="#kudos", text="x", blocks=blocks)
    )

    assert error.response["error"] == "invalid_blocks"
    assert pointer in " ".join(error.response["response_metadata"]["messages"])


def test_blocks_at_slacks_limits_are_accepted(slack: FakeSlack) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}]
    blocks += [section("x" * 3000)] * 49

    assert client(slack).chat_postMessage(channel="#kudos", text="x", blocks=blocks)["ok"]


def test_an_update_is_checked_like_a_post(slack: FakeSlack) -> None:
    web = client(slack)
    posted = web.chat_postMessage(channel="#kudos", text="x")

    error = slack_error(
        lambda: web.chat_update(
            channel=posted["channel"], ts=posted["ts"], text="x", blocks=[section("x" * 3001)]
        )
    )

    assert error.response["error"] == "invalid_blocks"


# --- Slack: failures on command -----------------------------------------------------------


def test_rate_limiting_surfaces_as_a_429_with_retry_after(slack: FakeSlack) -> None:
    slack.fail_next(1, RateLimited(retry_after=2), path="chat.postMessage")

    error = slack_error(lambda: client(slack).chat_postMessage(channel="#kudos", text="x"))

    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "2"
    assert error.response["error"] == "ratelimited"
    assert [(r.answered_with, r.error) for r in slack.received(POST)] == [
        ("rate_limited", "ratelimited")
    ]


def test_a_server_error_surfaces_as_a_500(slack: FakeSlack) -> None:
    slack.fail_next(1, ServerError())

    error = slack_error(lambda: client(slack).chat_postMessage(channel="#kudos", text="x"))

    assert error.response.status_code == 500
    assert slack.received(POST)[0].status == 500


def test_a_hang_longer_than_the_client_timeout_times_out(slack: FakeSlack) -> None:
    slack.fail_next(1, Hang(5))
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        client(slack, timeout=1).chat_postMessage(channel="#kudos", text="x")

    assert time.monotonic() - started < 4
    assert slack.received(POST)[0].answered_with == "hang"


def test_a_short_hang_is_answered_normally_afterwards(slack: FakeSlack) -> None:
    slack.fail_next(1, Hang(0.3))
    started = time.monotonic()

    assert client(slack).chat_postMessage(channel="#kudos", text="x")["ok"] is True
    assert time.monotonic() - started >= 0.3


def test_a_post_that_hung_past_the_clients_timeout_landed_all_the_same(slack: FakeSlack) -> None:
    slack.fail_next(1, Hang(1.5))
    slack.fail_next(1, ServerError())
    with pytest.raises(TimeoutError):
        client(slack, timeout=1).chat_postMessage(channel="#kudos", text="late")
    slack_error(lambda: client(slack).chat_postMessage(channel="#kudos", text="refused"))
    client(slack).chat_postMessage(channel="#kudos", text="at once")
    deadline = time.monotonic() + 10
    while len(slack.landed(POST)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert sorted(r.body["text"] for r in slack.landed(POST)) == ["at once", "late"]
    assert [r.body["text"] for r in slack.accepted(POST)] == ["at once"]


def test_failures_apply_to_the_next_n_requests_of_their_path_only(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next(2, ServerError(), path="chat.postMessage")

    assert web.auth_test()["ok"] is True
    for _ in range(2):
        slack_error(lambda: web.chat_postMessage(channel="#kudos", text="x"))
    assert web.chat_postMessage(channel="#kudos", text="x")["ok"] is True

    assert [r.answered_with for r in slack.received(POST)] == [
        "server_error",
        "server_error",
        "normal",
    ]
    assert len(slack.received(POST, answered_with="normal")) == 1


def test_failures_queue_up_in_order(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next(1, RateLimited(retry_after=1))
    slack.fail_next(1, ServerError(status=503))

    statuses = []
    for _ in range(3):
        try:
            web.auth_test()
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)

    assert statuses == [429, 503, 200]


def chaos_run(seed: int) -> list[str]:
    server = fake_slack()
    try:
        server.fail_randomly(0.5, [ServerError(), RateLimited(retry_after=1)], seed=seed)
        web = client(server)
        for _ in range(30):
            with contextlib.suppress(SlackApiError):
                web.auth_test()
        return [r.answered_with for r in server.received()]
    finally:
        server.stop()


def test_random_failures_follow_their_seed() -> None:
    outcomes = chaos_run(seed=7)

    assert outcomes == chaos_run(seed=7)
    assert {"normal", "server_error", "rate_limited"} == set(outcomes)


def test_random_failures_stop_at_rate_zero(slack: FakeSlack) -> None:
    slack.fail_randomly(1.0, [ServerError()], seed=1)
    slack_error(lambda: client(slack).auth_test())

    slack.fail_randomly(0)

    assert client(slack).auth_test()["ok"] is True


def test_concurrent_posts_are_all_recorded_with_distinct_timestamps(slack: FakeSlack) -> None:
    web = client(slack)
    timestamps: list[str] = []
    lock = threading.Lock()

    def post() -> None:
        for _ in range(10):
            ts = web.chat_postMessage(channel="#kudos", text="x")["ts"]
            with lock:
                timestamps.append(ts)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(slack.received(POST)) == 80
    assert len(set(timestamps)) == 80


# --- SendGrid ----------------------------------------------------------------------------


def mail_client(server: FakeServer, timeout: float = 5) -> SendGridAPIClient:
    sendgrid_client = SendGridAPIClient(api_key="SG.test-key", host=server.url)
    sendgrid_client.client.timeout = timeout
    return sendgrid_client


def a_mail() -> Mail:
    return Mail(
        from_email="feedback@example.com",
        to_emails="kim@example.com",
        subject="Thank you!",
        plain_text_content="Thank you for your answer.",
    )


def test_sendgrid_accepts_a_mail_with_a_message_id(sendgrid: FakeServer) -> None:
    sent = mail_client(sendgrid).send(a_mail())

    assert sent.status_code == 202
    assert sent.headers["X-Message-Id"] == "fake-message-1"


def test_sendgrid_rate_limiting_surfaces_as_a_429_with_retry_after(sendgrid: FakeServer) -> None:
    sendgrid.fail_next(1, RateLimited(retry_after=7), path="/v3/mail/send")

    with pytest.raises(HTTPError) as raised:
        mail_client(sendgrid).send(a_mail())

    assert raised.value.status_code == 429
    assert raised.value.headers["Retry-After"] == "7"
    assert sendgrid.received("/v3/mail/send")[0].answered_with == "rate_limited"


def test_a_sendgrid_server_error_surfaces_as_a_500_then_it_recovers(sendgrid: FakeServer) -> None:
    sendgrid.fail_next(1, ServerError())

    with pytest.raises(HTTPError) as raised:
        mail_client(sendgrid).send(a_mail())

    assert raised.value.status_code == 500
    assert mail_client(sendgrid).send(a_mail()).status_code == 202


def test_a_sendgrid_hang_times_the_client_out(sendgrid: FakeServer) -> None:
    sendgrid.fail_next(1, Hang(5))

    with pytest.raises(TimeoutError):
        mail_client(sendgrid, timeout=0.5).send(a_mail())


# --- HTTP/1.1 keep-alive ------------------------------------------------------------------
# The real services keep connections alive and the clients reuse them: a fake that closed
# every connection would charge each request a connection (and a thread) it does not cost.

MAIL = json.dumps({"personalizations": [{"to": [{"email": "kim@example.com"}]}]})
BEARER = {"Authorization": f"Bearer {SLACK_TEST_TOKEN}"}


def port(server: FakeServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connection(server: FakeServer, timeout: float = 5) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port(server), timeout=timeout)


def ask(web: http.client.HTTPConnection, server: FakeServer) -> http.client.HTTPResponse:
    """One request of the fake's kind, answered and read to its end, as a client reads."""
    if isinstance(server, FakeSlack):
        web.request("POST", "/api/auth.test", headers=BEARER)
    else:
        web.request("POST", "/v3/mail/send", MAIL, {"Content-Type": "application/json"})
    answer = web.getresponse()
    answer.read()
    return answer


def local_port(web: http.client.HTTPConnection) -> int:
    assert web.sock is not None, "the connection was closed after the answer"
    return int(web.sock.getsockname()[1])


@pytest.fixture(params=["slack", "sendgrid"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    server = fake_slack() if request.param == "slack" else fake_sendgrid()
    yield server
    server.stop()


def test_requests_share_one_kept_alive_connection(fake: FakeServer) -> None:
    web = connection(fake)

    first = ask(web, fake)
    used = local_port(web)
    second = ask(web, fake)

    assert (first.version, second.version) == (11, 11)
    assert first.status == second.status and first.status in (200, 202)
    assert local_port(web) == used
    assert len(fake.received()) == 2
    web.close()


def test_failure_answers_are_framed_and_keep_the_connection(fake: FakeServer) -> None:
    fake.fail_next(1, RateLimited(retry_after=3))
    fake.fail_next(1, ServerError(status=503))
    web = connection(fake)

    limited = ask(web, fake)
    used = local_port(web)
    failed = ask(web, fake)
    then = ask(web, fake)

    assert (limited.status, failed.status) == (429, 503)
    assert then.status in (200, 202)
    assert limited.headers["Retry-After"] == "3"
    assert all(a.headers["Content-Length"] for a in (limited, failed, then))
    assert local_port(web) == used
    assert [r.answered_with for r in fake.received()] == ["rate_limited", "server_error", "normal"]
    web.close()


def test_the_async_slack_client_reuses_its_connection(slack: FakeSlack) -> None:
    """As the notifier calls Slack: AsyncWebClient on one aiohttp session."""
    opened: list[object] = []
    reused: list[object] = []

    async def calls() -> None:
        trace = aiohttp.TraceConfig()

        async def on_create(*args: Any) -> None:
            opened.append(args)

        async def on_reuse(*args: Any) -> None:
            reused.append(args)

        trace.on_connection_create_end.append(on_create)
        trace.on_connection_reuseconn.append(on_reuse)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            web = AsyncWebClient(SLACK_TEST_TOKEN, slack.url + "/api/", session=session)
            slack.fail_next(1, RateLimited(retry_after=1))
            with contextlib.suppress(SlackApiError):
                await web.auth_test()
            for _ in range(3):
                await web.chat_postMessage(channel="#kudos", text="x")

    asyncio.run(calls())

    assert (len(opened), len(reused)) == (1, 3)
    assert len(slack.accepted(POST)) == 3


def test_after_a_hang_the_connection_is_answered_then_closed(slack: FakeSlack) -> None:
    """A client that gave up on a hang may have sent more on the connection: nothing more
    is read from it, and the answer says so."""
    slack.fail_next(1, Hang(0.3))
    request = (
        f"POST /api/auth.test HTTP/1.1\r\nHost: fake\r\n"
        f"Authorization: Bearer {SLACK_TEST_TOKEN}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port(slack)), 5) as raw:
        raw.sendall(request + request)  # the second waits behind the hang
        got = b""
        while chunk := raw.recv(65536):
            got += chunk

    assert got.count(b"HTTP/1.1 ") == 1
    assert b"\r\nConnection: close\r\n" in got
    assert len(slack.received()) == 1


def test_a_short_hang_is_answered_and_the_client_opens_a_new_connection(slack: FakeSlack) -> None:
    slack.fail_next(1, Hang(0.2))
    web = connection(slack)

    hung = ask(web, slack)
    assert web.sock is None  # the answer said Connection: close
    after = ask(web, slack)

    assert (hung.status, after.status) == (200, 200)
    assert hung.headers["Connection"] == "close"
    assert local_port(web)
    web.close()


def test_stopping_closes_an_idle_kept_alive_connection(fake: FakeServer) -> None:
    web = connection(fake)
    ask(web, fake)
    assert web.sock is not None
    stopped = threading.Event()

    def stop() -> None:
        fake.stop()
        stopped.set()

    threading.Thread(target=stop, daemon=True).start()

    assert stopped.wait(2), "stop() hung on a kept-alive connection"
    web.sock.settimeout(2)
    assert web.sock.recv(1) == b""  # the fake closed it
    with pytest.raises(OSError):
        ask(web, fake)
    web.close()


def test_stopping_answers_a_request_that_hangs_then_closes_its_connection() -> None:
    server = fake_slack()
    server.fail_next(1, Hang(60))
    web = connection(server, timeout=30)
    answers: list[http.client.HTTPResponse] = []
    thread = threading.Thread(target=lambda: answers.append(ask(web, server)), daemon=True)
    thread.start()
    server.wait_for(1, timeout=2)

    server.stop()
    thread.join(5)

    assert [a.status for a in answers] == [200]
    assert answers[0].headers["Connection"] == "close"
    assert server.landed() and not server.accepted()
    web.close()


# --- what the integration tests already rely on --------------------------------------------


def test_the_existing_interface_still_works(slack: FakeSlack) -> None:
    client(slack).chat_postMessage(channel="#cx-alerts", text="x")

    got = slack.wait_for(1, POST, timeout=2)

    assert isinstance(slack, FakeServer)
    assert [(r.path, r.body["channel"]) for r in got] == [(POST, "#cx-alerts")]
    assert slack.url.startswith("http://127.0.0.1:")
    assert Received("/p", {}, {}).answered_with == "normal"


def test_stopping_releases_a_request_that_hangs() -> None:
    server = fake_slack()
    server.fail_next(1, Hang(60))
    done = threading.Event()

    def post() -> None:
        with contextlib.suppress(Exception):
            client(server, timeout=30).auth_test()
        done.set()

    threading.Thread(target=post, daemon=True).start()
    server.wait_for(1, timeout=2)
    server.stop()

    assert done.wait(5)


def test_a_stopped_fake_refuses_connections_and_started_again_answers_on_the_same_port(
    slack: FakeSlack,
) -> None:
    client(slack).chat_postMessage(channel="#cx-alerts", text="before")
    url = slack.url

    slack.stop()
    with pytest.raises(OSError):
        client(slack, timeout=2).chat_postMessage(channel="#cx-alerts", text="while down")
    slack.start()
    client(slack).chat_postMessage(channel="#cx-alerts", text="after")

    assert slack.url == url
    assert [r.body["text"] for r in slack.accepted(POST)] == ["before", "after"]
