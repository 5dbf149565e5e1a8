"""Clicks on an alert's case buttons, as ingest reads them from Slack's interactivity payload."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.notifier.alerts import CaseView, alert_message
from shared.events import CaseAction
from shared.ids import case_id_for
from shared.slack_actions import CASE_BUTTONS, SlackAction, parse_action
from tests.unit.test_alerts import CASE_URL, classified


def click(action_id: str = "case_claim", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U123ABC", "username": "kim", "name": "kim", "team_id": "T1"},
        "container": {
            "type": "message",
            "channel_id": "C0CUSTFB",
            "message_ts": "1700000000.000001",
        },
        "channel": {"id": "C0CUSTFB", "name": "customer-feedback"},
        "message": {"ts": "1700000000.000001", "text": "Detractor 2/10"},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "case_actions",
                "value": "resp-7",
                "action_ts": "1700000100.000200",
            }
        ],
    }
    payload.update(overrides)
    return payload


@pytest.mark.parametrize(
    ("action_id", "case_action"),
    [
        ("case_claim", CaseAction.CLAIMED),
        ("case_contacted", CaseAction.CONTACTED),
        ("case_resolve", CaseAction.RESOLVED),
        ("case_reopen", CaseAction.REOPENED),
    ],
)
def test_a_click_on_a_case_button_is_read(action_id: str, case_action: CaseAction) -> None:
    parsed = parse_action(click(action_id))

    assert parsed == SlackAction(
        action=case_action,
        response_id="resp-7",
        user_id="U123ABC",
        user_name="kim",
        channel_id="C0CUSTFB",
        message_ts="1700000000.000001",
        action_ts="1700000100.000200",
    )
    assert parsed.case_id == case_id_for("resp-7")


def test_the_form_slack_posts_is_read_as_well() -> None:
    form = {"payload": json.dumps(click("case_resolve"))}

    assert parse_action(form).action == CaseAction.RESOLVED


def test_without_a_container_the_channel_and_message_are_read() -> None:
    payload = click(container=None, user={"id": "W0GRID1", "name": "Kim Ø"})

    parsed = parse_action(payload)

    assert (parsed.channel_id, parsed.message_ts, parsed.user_name) == (
        "C0CUSTFB",
        "1700000000.000001",
        "Kim Ø",
    )


def test_a_display_name_is_one_short_line() -> None:
    parsed = parse_action(click(user={"id": "U123ABC", "name": "Kim\n<!channel> " + "x" * 300}))

    assert "\n" not in parsed.user_name
    assert len(parsed.user_name) == 120


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (click(type="view_submission"), "not a button click"),
        (click(actions=[]), "no actions"),
        (click("case_delete"), "unknown action_id"),
        (click(actions=[{"action_id": "case_claim"}]), "value"),
        (click(actions=[{"action_id": "case_claim", "value": "resp\n7"}]), "not a response id"),
        (click(user={"id": "<!channel>"}), "user.id"),
        (click(user=None), "user"),
        (click(container={}, channel={}), "channel"),
        (click(container={}, channel={"id": "#general"}), "channel"),
        (click(container={}, message={"ts": "yesterday"}), "message_ts"),
        ({"payload": "{not json"}, "not JSON"),
        ({}, "not a button click"),
    ],
)
def test_anything_but_a_case_button_click_is_refused_with_the_reason(
    payload: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_action(payload)


@pytest.mark.parametrize("state", ["open", "claimed", "contacted", "resolved"])
def test_every_button_an_alert_draws_is_one_ingest_reads_back(state: Any) -> None:
    detractor = classified(2)
    message = alert_message(detractor, "#customer-feedback", CaseView("case-7", state, CASE_URL))
    buttons = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]

    assert buttons
    for button in buttons:
        assert button["action_id"] in CASE_BUTTONS
        clicked = parse_action(
            click(button["action_id"], actions=[{**button, "action_ts": "1700000100.000200"}])
        )
        assert clicked.response_id == detractor.response.response_id
