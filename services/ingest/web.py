"""Ingest's webhooks: purchases and responses in, signed, journaled before they are acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from services.ingest.domain import (
    EnpsCampaign,
    PurchaseBatch,
    PurchaseSubmission,
    ResponseSubmission,
    now,
    validation_errors,
)
from services.ingest.openapi import openapi_document
from services.ingest.planning import Rules, in_window, timezone_for
from services.ingest.store import Inbound, JournalFull, ReplayedWebhook
from shared import topics
from shared.signing import SignatureError, verify_webhook
from shared.streams import is_transient

RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


class Journal(Protocol):
    """Where accepted events are written before the edge answers 2xx."""

    def accept(
        self,
        inbound: list[Inbound],
        webhook_id: str | None,
        now: datetime,
        max_backlog: int | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class EdgeConfig:
    webhook_secret: str
    max_body_bytes: int
    max_backlog: int
    rules: Rules


class NotJson(ValueError):
    """The request body is not JSON."""


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _unprocessable(errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"error": "invalid request", "detail": errors}, status=422)


def _not_json(exc: NotJson) -> web.Response:
    return _unprocessable(
        [{"loc": ["body"], "field": "body", "msg": str(exc), "type": "json_invalid"}]
    )


def _outcome(status: int) -> str:
    if status < 300:
        return "accepted"
    return {401: "unauthorized", 413: "too_large", 503: "unavailable"}.get(status, "invalid")


Parsed = tuple[list[Inbound], dict[str, Any]]


class IngestRoutes:
    """The webhook handlers; the journal is passed in, so tests can hand in a fake."""

    def __init__(
        self,
        journal: Journal,
        on_accepted: Callable[[], None],
        config: EdgeConfig,
        registry: CollectorRegistry,
    ) -> None:
        self.journal = journal
        self.on_accepted = on_accepted
        self.config = config
        self.requests = Counter(
            "npsloop_ingest_requests_total",
            "Webhook requests by endpoint and outcome "
            "(accepted, invalid, unauthorized, too_large, unavailable).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        for endpoint in ("responses", "purchases", "enps"):
            for outcome in ("accepted", "invalid", "unauthorized", "too_large", "unavailable"):
                self.requests.labels(endpoint, outcome)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/responses", self.post_response)
        router.add_post("/v1/purchases", self.post_purchases)
        router.add_post("/v1/enps/invitations", self.post_enps)
        router.add_get("/openapi.json", self.openapi)

    async def post_response(self, request: web.Request) -> web.Response:
        answer = await self._webhook(request, _parse_response)
        self.requests.labels("responses", _outcome(answer.status)).inc()
        return answer

    async def post_purchases(self, request: web.Request) -> web.Response:
        answer = await self._webhook(request, _parse_purchases)
        self.requests.labels("purchases", _outcome(answer.status)).inc()
        return answer

    async def post_enps(self, request: web.Request) -> web.Response:
        rules = self.config.rules

        def parse(body: Any, received_at: datetime) -> Parsed | web.Response:
            return _parse_enps(body, received_at, rules)

        answer = await self._webhook(request, parse)
        self.requests.labels("enps", _outcome(answer.status)).inc()
        return answer

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def _webhook(
        self, request: web.Request, parse: Callable[[Any, datetime], Parsed | web.Response]
    ) -> web.Response:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return error_response(413, f"the body is over {limit} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"the body is over {limit} bytes")
        if len(raw) > limit:
            return error_response(413, f"the body is over {limit} bytes")
        try:
            webhook_id = verify_webhook(self.config.webhook_secret, request.headers, raw)
        except SignatureError as exc:
            return error_response(401, f"signature refused: {exc}")
        try:
            body = _json(raw)
        except NotJson as exc:
            return _not_json(exc)
        received_at = now()
        parsed = parse(body, received_at)
        if isinstance(parsed, web.Response):
            return parsed
        inbound, answer = parsed
        try:
            await asyncio.to_thread(
                self.journal.accept, inbound, webhook_id, received_at, self.config.max_backlog
            )
        except JournalFull:
            return error_response(
                503,
                "the broker is behind; nothing was accepted, try again",
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except ReplayedWebhook:
            return error_response(
                401, f"signature refused: webhook-id {webhook_id!r} was already received"
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The database is away: nothing was journaled, so the sender must try again.
            log.warning("cannot journal a webhook, answering 503: %s", type(exc).__name__)
            return error_response(
                503,
                "the journal is unavailable; nothing was accepted, try again",
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.on_accepted()
        return web.json_response(answer, status=202)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJson(f"the body is not JSON: {exc}") from exc


def _parse_response(body: Any, received_at: datetime) -> Parsed | web.Response:
    try:
        submission = ResponseSubmission.model_validate(body)
    except ValidationError as exc:
        return _unprocessable(validation_errors(exc.errors(include_url=False)))
    event = submission.to_event(received_at)
    answer = {"accepted": 1, "event_id": str(event.event_id), "response_id": event.response_id}
    return [Inbound(topics.RESPONSES, event.customer_id, event.customer_id, event)], answer


def _parse_purchases(body: Any, received_at: datetime) -> Parsed | web.Response:
    try:
        if isinstance(body, list):
            submissions = PurchaseBatch.model_validate({"purchases": body}).purchases
        else:
            submissions = [PurchaseSubmission.model_validate(body)]
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False))
        if isinstance(body, list):
            # Name the item as the client sent it: 3.amount, not purchases.3.amount.
            for error in errors:
                error["loc"] = ["body", *error["loc"][2:]]
                error["field"] = ".".join(str(part) for part in error["loc"][1:]) or "body"
        return _unprocessable(errors)
    purchases = [submission.to_event(received_at) for submission in submissions]
    inbound = [Inbound(topics.PURCHASES, p.customer_id, p.customer_id, p) for p in purchases]
    answer = {"accepted": len(purchases), "event_ids": [str(p.event_id) for p in purchases]}
    return inbound, answer


def _parse_enps(body: Any, received_at: datetime, rules: Rules) -> Parsed | web.Response:
    try:
        campaign = EnpsCampaign.model_validate(body)
    except ValidationError as exc:
        return _unprocessable(validation_errors(exc.errors(include_url=False)))
    zone = timezone_for(campaign.timezone, None, rules.default_timezone)
    send_at = in_window(received_at, zone, rules.window)
    invitations = campaign.invitations(send_at, received_at)
    inbound = [Inbound(topics.INVITATIONS, i.customer_id, i.customer_id, i) for i in invitations]
    answer = {"accepted": len(invitations), "send_at": send_at.isoformat()}
    return inbound, answer
