"""Ingest's POST /slack/actions: a signed click becomes one case event; anything else, nothing."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.ingest.slack import SlackActionRoutes
from shared import topics
from shared.events import CaseAction, CaseEvent
from shared.ids import case_id_for
from shared.slack_signing import slack_request_headers
from tests.unit.builders import run
from tests.unit.test_ingest_domain import FakeJournal
from tests.unit.test_slack_actions import click

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def form(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def post_click(
    journal: FakeJournal,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    secret: str | None = SIGNING_SECRET,
    registry: CollectorRegistry | None = None,
) -> tuple[int, str]:
    routes = SlackActionRoutes(
        journal, secret, on_accepted=lambda: None, registry=registry or CollectorRegistry()
    )
    signed = slack_request_headers(SIGNING_SECRET, body) if headers is None else headers

    async def exchange() -> tuple[int, str]:
        app = web.Application()
        routes.register(app.router)
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(
                "/slack/actions",
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", **signed},
            )
            return answer.status, await answer.text()

    return run(exchange())


def test_a_signed_claim_is_journaled_as_a_case_event_keyed_by_the_response() -> None:
    journal = FakeJournal()
    registry = CollectorRegistry()

    status, _ = post_click(journal, form(click("case_claim")), registry=registry)

    assert status == 200
    [(spec, key, event)] = journal.published
    assert spec == topics.CASES and key == "resp-7"
    assert isinstance(event, CaseEvent)
    assert (event.action, event.case_id, event.response_id, event.actor) == (
        CaseAction.CLAIMED,
        case_id_for("resp-7"),
        "resp-7",
        "U123ABC",
    )
    assert registry.get_sample_value("npsloop_slack_actions_total", {"outcome": "accepted"}) == 1


def test_the_same_click_delivered_twice_is_the_same_event_and_two_clicks_are_two() -> None:
    journal = FakeJournal()
    body = form(click("case_resolve"))
    post_click(journal, body)
    post_click(journal, body)
    other = click("case_resolve", user={"id": "U999ZZZ", "name": "sam"})
    post_click(journal, form(other))

    ids = [event.event_id for _, _, event in journal.published]
    assert ids[0] == ids[1] != ids[2]


def test_a_click_with_a_bad_signature_is_refused_with_401_and_changes_nothing() -> None:
    journal = FakeJournal()
    body = form(click())
    forged = slack_request_headers("not the signing secret", body)

    status, text = post_click(journal, body, headers=forged)

    assert status == 401 and "does not match" in text
    assert journal.published == []


def test_a_stale_click_is_refused_even_with_a_genuine_signature() -> None:
    journal = FakeJournal()
    body = form(click())
    replayed = slack_request_headers(SIGNING_SECRET, body, int(time.time()) - 6 * 60)

    status, text = post_click(journal, body, headers=replayed)

    assert status == 401 and "stale" in text
    assert journal.published == []


def test_a_signed_body_that_is_not_a_case_click_gets_400_with_the_reason() -> None:
    journal = FakeJournal()

    status, text = post_click(journal, form(click("case_delete")))

    assert status == 400 and "unknown action_id" in text
    assert journal.published == []


def test_without_a_signing_secret_the_buttons_answer_503_naming_the_setting() -> None:
    journal = FakeJournal()

    status, text = post_click(journal, form(click()), secret=None)

    assert status == 503 and "NPSLOOP_SLACK_SIGNING_SECRET" in text
    assert journal.published == []


def test_while_the_broker_is_away_a_click_gets_503_and_retry_after() -> None:
    journal = FakeJournal(backlog=10)
    routes_backlog = 5
    body = form(click())

    async def exchange() -> tuple[int, str | None]:
        app = web.Application()
        SlackActionRoutes(
            journal, SIGNING_SECRET, lambda: None, CollectorRegistry(), routes_backlog
        ).register(app.router)
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(
                "/slack/actions", data=body, headers=slack_request_headers(SIGNING_SECRET, body)
            )
            return answer.status, answer.headers.get("Retry-After")

    assert run(exchange()) == (503, "5")
    assert journal.published == []
