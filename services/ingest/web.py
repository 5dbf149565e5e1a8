"""Ingest's HTTP routes: the purchase and response webhooks and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from services.ingest.adapters import Publisher, PublishError
from services.ingest.domain import (
    PurchaseBatch,
    PurchaseSubmission,
    ResponseSubmission,
    now,
    validation_errors,
)
from shared import topics

RETRY_AFTER_SECONDS = 5


def _unprocessable(errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"error": "invalid request", "detail": errors}, status=422)


class NotJson(ValueError):
    """The request body is not JSON."""


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJson(f"the body is not JSON: {exc}") from exc


def _not_json(exc: NotJson) -> web.Response:
    return _unprocessable(
        [{"loc": ["body"], "field": "body", "msg": str(exc), "type": "json_invalid"}]
    )


def _outcome(status: int) -> str:
    if status < 300:
        return "accepted"
    return "unavailable" if status == 503 else "invalid"


def _unavailable(exc: PublishError) -> web.Response:
    return web.json_response(
        {"error": f"not accepted, try again: {exc}"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class IngestRoutes:
    """The edge's handlers; the publisher is passed in, so tests can hand in a fake."""

    def __init__(self, publisher: Publisher, registry: CollectorRegistry) -> None:
        self.publisher = publisher
        self.requests = Counter(
            "npsloop_ingest_requests_total",
            "Requests to the edge by endpoint and outcome (accepted, invalid, unavailable).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        for endpoint in ("responses", "purchases"):
            for outcome in ("accepted", "invalid", "unavailable"):
                self.requests.labels(endpoint, outcome)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/responses", self.post_response)
        router.add_post("/v1/purchases", self.post_purchases)
        router.add_get("/openapi.json", self.openapi)

    async def post_response(self, request: web.Request) -> web.Response:
        answer = await self._post_response(request)
        self.requests.labels("responses", _outcome(answer.status)).inc()
        return answer

    async def post_purchases(self, request: web.Request) -> web.Response:
        answer = await self._post_purchases(request)
        self.requests.labels("purchases", _outcome(answer.status)).inc()
        return answer

    async def _post_response(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
        except NotJson as exc:
            return _not_json(exc)
        try:
            submission = ResponseSubmission.model_validate(body)
        except ValidationError as exc:
            return _unprocessable(validation_errors(exc.errors(include_url=False)))
        event = submission.to_event(now())
        try:
            await self.publisher.publish(topics.RESPONSES, event.customer_id, event)
        except PublishError as exc:
            return _unavailable(exc)
        return web.json_response(
            {"accepted": 1, "event_id": str(event.event_id), "response_id": event.response_id},
            status=202,
        )

    async def _post_purchases(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
        except NotJson as exc:
            return _not_json(exc)
        try:
            if isinstance(body, list):
                submissions = PurchaseBatch.model_validate({"purchases": body}).purchases
            else:
                submissions = [PurchaseSubmission.model_validate(body)]
        except ValidationError as exc:
            errors = validation_errors(exc.errors(include_url=False))
            if isinstance(body, list):
                # Name the item as the client sent it: [3].amount, not purchases.3.amount.
                for error in errors:
                    error["loc"] = ["body", *error["loc"][2:]]
                    error["field"] = ".".join(str(part) for part in error["loc"][1:]) or "body"
            return _unprocessable(errors)
        received_at = now()
        purchases = [submission.to_event(received_at) for submission in submissions]
        try:
            for purchase in purchases:
                await self.publisher.publish(topics.PURCHASES, purchase.customer_id, purchase)
        except PublishError as exc:
            return _unavailable(exc)
        return web.json_response(
            {"accepted": len(purchases), "event_ids": [str(p.event_id) for p in purchases]},
            status=202,
        )

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the edge, built from the same models that validate it."""
    models: list[type[BaseModel]] = [ResponseSubmission, PurchaseSubmission]
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    components = schema.get("$defs", {})
    error = {
        "description": "The body is not JSON or a field is invalid; `detail` names each field.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    unavailable = {"description": "The broker is not reachable; retry after Retry-After seconds."}
    components["Error"] = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "field": {"type": "string"},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    }
    purchase_ref = {"$ref": "#/components/schemas/PurchaseSubmission"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "npsloop ingest", "version": "1"},
        "paths": {
            "/v1/responses": {
                "post": {
                    "summary": "Submit a survey response (again, with a comment, to update it)",
                    "operationId": "postResponse",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ResponseSubmission"}
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "Accepted and published."},
                        "422": error,
                        "503": unavailable,
                    },
                }
            },
            "/v1/purchases": {
                "post": {
                    "summary": "Submit one purchase event, or a batch as a JSON array",
                    "operationId": "postPurchases",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        purchase_ref,
                                        {
                                            "type": "array",
                                            "items": purchase_ref,
                                            "minItems": 1,
                                            "maxItems": 1000,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "Accepted and published."},
                        "422": error,
                        "503": unavailable,
                    },
                }
            },
        },
        "components": {"schemas": components},
    }
