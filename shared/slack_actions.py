"""Clicks on an alert's case buttons: the vocabulary both ends share, and how a click is read.

The notifier draws the buttons (``services/notifier/alerts.py``); Slack posts the clicks to
ingest's ``POST /slack/actions``, which reads them here and publishes case events. Each
button's value is the response id: the case id follows from it (``shared.ids.case_id_for``)
and the case event is keyed by it, as every event on the cases topic is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.events import CaseAction
from shared.ids import case_id_for

# action_id of each button -> the step of the case it asks for.
CASE_BUTTONS: dict[str, CaseAction] = {
    "case_claim": CaseAction.CLAIMED,
    "case_contacted": CaseAction.CONTACTED,
    "case_resolve": CaseAction.RESOLVED,
    "case_reopen": CaseAction.REOPENED,
}

# Slack user ids (U...) and Enterprise Grid ids (W...): only these become mentions.
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
MESSAGE_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,8}$")
IDENTIFIER_MAX = 200


@dataclass(frozen=True)
class SlackAction:
    """A click on one of an alert's case buttons, as Slack reported it."""

    action: CaseAction
    response_id: str
    user_id: str
    user_name: str
    channel_id: str
    message_ts: str
    action_ts: str | None = None

    @property
    def case_id(self) -> str:
        return case_id_for(self.response_id)


def _text(value: object, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} is missing")
    if pattern is not None and not pattern.match(value):
        raise ValueError(f"{where} is not valid: {value!r:.60}")
    return value


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is missing")
    return value


def _optional_object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_action(payload: Mapping[str, Any]) -> SlackAction:
    """The case button click in a Slack interactivity payload; ValueError says what is wrong.

    Takes the decoded JSON of the ``payload`` form field, or the form itself (a mapping
    with ``payload`` as a JSON string). Verify the request's signature first
    (``shared.slack_signing``): this only reads what a genuine request says.
    """
    if "type" not in payload and isinstance(payload.get("payload"), str):
        try:
            decoded = json.loads(payload["payload"])
        except ValueError as exc:
            raise ValueError(f"the payload field is not JSON: {exc}") from exc
        payload = _object(decoded, "the payload object")
    kind = payload.get("type")
    if kind != "block_actions":
        raise ValueError(f"not a button click: type is {kind!r:.40}, expected 'block_actions'")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise ValueError("the payload has no actions")
    action = _object(actions[0], "actions[0]")
    action_id = _text(action.get("action_id"), "actions[0].action_id")
    if action_id not in CASE_BUTTONS:
        raise ValueError(f"unknown action_id {action_id!r:.60}: not a case button")
    response_id = _text(action.get("value"), "actions[0].value (the response id)")
    if len(response_id) > IDENTIFIER_MAX or any(not char.isprintable() for char in response_id):
        raise ValueError(f"actions[0].value is not a response id: {response_id!r:.60}")
    user = _object(payload.get("user"), "user")
    user_id = _text(user.get("id"), "user.id", USER_ID)
    name = user.get("username") or user.get("name")
    user_name = name if isinstance(name, str) and name.strip() else user_id
    container = _optional_object(payload.get("container"))
    channel = _optional_object(payload.get("channel"))
    message = _optional_object(payload.get("message"))
    channel_id = _text(
        container.get("channel_id") or channel.get("id"),
        "container.channel_id / channel.id",
        CHANNEL_ID,
    )
    message_ts = _text(
        container.get("message_ts") or message.get("ts"),
        "container.message_ts / message.ts",
        MESSAGE_TS,
    )
    action_ts = action.get("action_ts")
    return SlackAction(
        action=CASE_BUTTONS[action_id],
        response_id=response_id,
        user_id=user_id,
        # A display name is one line of at most 120 characters (a Label on the event).
        user_name=" ".join(user_name.split())[:120],
        channel_id=channel_id[:IDENTIFIER_MAX],
        message_ts=message_ts,
        action_ts=action_ts if isinstance(action_ts, str) and MESSAGE_TS.match(action_ts) else None,
    )
