"""The Slack sender keeps its connections alive: one HTTP session per worker, not per call;
slack-sdk formats its debug lines only when they are logged."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web

from services.notifier.adapters import LevelInEffect, OutboxEntry, SlackSender
from services.notifier.domain import Channel
from tests.fakes import SLACK_TEST_TOKEN, fake_slack
from tests.unit.builders import run


def an_alert(number: int) -> OutboxEntry:
    return OutboxEntry(
        idempotency_key=f"alert:resp-{number}:slack:#customer-feedback",
        channel=Channel.SLACK,
        kind="alert",
        recipient="#customer-feedback",
        payload={"channel": "#customer-feedback", "text": f"Detractor {number}"},
        attempts=1,
        created_at=datetime.now(UTC),
    )


async def with_keep_alive_slack(
    use: Callable[[str, list[tuple[str, int]]], Awaitable[None]],
) -> None:
    """A Slack speaking HTTP/1.1, as the real one does, noting each post's client address."""
    peers: list[tuple[str, int]] = []

    async def post(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"ok": True, "channel": "C0FEEDBACK", "ts": f"1.{len(peers)}"})

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await use(f"http://127.0.0.1:{port}/api/", peers)
    finally:
        await runner.cleanup()


def test_posts_from_one_worker_reuse_one_connection_to_slack() -> None:
    async def post_three(url: str, peers: list[tuple[str, int]]) -> None:
        sender = SlackSender("xoxb-test", url, 5)
        refs = [await sender.send(an_alert(number)) for number in range(3)]
        await sender.close()
        assert refs == ["C0FEEDBACK:1.1", "C0FEEDBACK:1.2", "C0FEEDBACK:1.3"]
        assert len(peers) == 3
        assert len(set(peers)) == 1

    run(with_keep_alive_slack(post_three))


def test_a_closed_sender_posts_again_on_a_new_connection() -> None:
    async def post_close_post(url: str, peers: list[tuple[str, int]]) -> None:
        sender = SlackSender("xoxb-test", url, 5)
        await sender.send(an_alert(1))
        await sender.close()
        await sender.send(an_alert(2))
        await sender.close()
        assert len(peers) == 2
        assert peers[0] != peers[1]

    run(with_keep_alive_slack(post_close_post))


def test_a_sender_used_from_a_second_event_loop_posts_there_too() -> None:
    """aiohttp binds a session to the loop it was made in: each loop gets a session of its own."""
    slack = fake_slack()
    try:
        sender = SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 5)
        first = run(sender.send(an_alert(1)))
        second = run(sender.send(an_alert(2)))
        assert first != second
        assert len(slack.accepted("/api/chat.postMessage")) == 2
    finally:
        slack.stop()


def test_slack_sdk_is_told_the_level_in_effect(caplog: pytest.LogCaptureFixture) -> None:
    """slack-sdk formats a call's debug lines (payload and answer) when its logger's level is
    DEBUG or lower; its own loggers are left at NOTSET, which is 0."""
    stand_in = LevelInEffect(logging.getLogger("slack_sdk.web.async_base_client"))
    caplog.set_level(logging.INFO)
    assert stand_in.level == logging.INFO
    assert not stand_in.isEnabledFor(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    assert stand_in.level == logging.DEBUG
    assert stand_in.isEnabledFor(logging.DEBUG)


def test_slack_sdk_debug_lines_are_made_only_when_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def slack_sdk_debug_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("slack_sdk") and r.levelno == logging.DEBUG
        ]

    slack = fake_slack()
    try:
        sender = SlackSender(SLACK_TEST_TOKEN, slack.url + "/api/", 5)
        caplog.set_level(logging.INFO)
        run(sender.send(an_alert(1)))
        # What slack-sdk asks before it formats them (slack_sdk/web/async_internal_utils.py).
        assert sender._slack._logger.level > logging.DEBUG
        assert slack_sdk_debug_lines() == []
        caplog.set_level(logging.DEBUG, logger="slack_sdk")
        run(sender.send(an_alert(2)))
        assert any("Sending a request" in line for line in slack_sdk_debug_lines())
        assert any("Detractor 2" in line for line in slack_sdk_debug_lines())
    finally:
        slack.stop()
