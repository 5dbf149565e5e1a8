"""Slack interactivity: clicks on the alerts' case buttons, turned into case events.

Slack posts each click to ``POST /slack/actions`` as a form with a JSON ``payload``,
signed with the app's signing secret. A click is journaled as a case event (cases topic,
keyed by the response id) before Slack gets its 200; the notifier applies it to the case
and redraws the alert in place. Slack wants an answer within 3 seconds, so nothing else
happens here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import parse_qs

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from services.ingest.domain import now
from services.ingest.store import Inbound, JournalFull
from services.ingest.web import RETRY_AFTER_SECONDS, Journal, error_response
from shared import topics
from shared.events import CaseEvent
from shared.ids import event_id
from shared.signing import SignatureError
from shared.slack_actions import parse_action
from shared.slack_signing import verify_slack_request

# A click is a small form; anything much bigger is not from Slack.
MAX_BODY_BYTES = 64 * 1024
OUTCOMES = ("accepted", "unauthorized", "invalid", "too_large", "unavailable", "not_configured")


class SlackActionRoutes:
    def __init__(
        self,
        journal: Journal,
        signing_secret: str | None,
        on_accepted: Callable[[], None],
        registry: CollectorRegistry,
        max_backlog: int | None = None,
    ) -> None:
        self.journal = journal
        self.signing_secret = signing_secret
        self.on_accepted = on_accepted
        self.max_backlog = max_backlog
        self.clicks = Counter(
            "npsloop_slack_actions_total",
            "Case-button clicks posted by Slack, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.clicks.labels(outcome)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/slack/actions", self.post_action)

    async def post_action(self, request: web.Request) -> web.Response:
        outcome, answer = await self._action(request)
        self.clicks.labels(outcome).inc()
        return answer

    async def _action(self, request: web.Request) -> tuple[str, web.Response]:
        if not self.signing_secret:
            return "not_configured", error_response(
                503, "Slack interactivity is not configured: set NPSLOOP_SLACK_SIGNING_SECRET"
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return "too_large", error_response(413, f"the body is over {MAX_BODY_BYTES} bytes")
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return "too_large", error_response(413, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            verify_slack_request(self.signing_secret, request.headers, raw)
        except SignatureError as exc:
            return "unauthorized", error_response(401, f"signature refused: {exc}")
        try:
            form = {
                name: values[0]
                for name, values in parse_qs(
                    raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False
                ).items()
            }
            click = parse_action(form)
        except (UnicodeDecodeError, ValueError) as exc:
            return "invalid", error_response(400, f"not a case-button click: {exc}")
        received_at = now()
        # The same click delivered twice is the same event; two people clicking are two.
        stamp = click.action_ts or click.message_ts
        event = CaseEvent(
            event_id=event_id(
                "slack", f"{click.response_id}:{click.action}:{click.user_id}:{stamp}"
            ),
            occurred_at=received_at,
            case_id=click.case_id,
            response_id=click.response_id,
            action=click.action,
            # A Slack user id: the alert shows it as a mention, Slack shows the name.
            actor=click.user_id,
            note=f"by {click.user_name} in Slack",
        )
        inbound = Inbound(topics.CASES, click.response_id, None, event)
        try:
            await asyncio.to_thread(
                self.journal.accept, [inbound], None, received_at, self.max_backlog
            )
        except JournalFull:
            return "unavailable", error_response(
                503,
                "the broker is behind; nothing was accepted, try again",
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.on_accepted()
        # An empty 200: the notifier redraws the message itself once the step is applied.
        return "accepted", web.Response(status=200)
