"""The OpenAPI document of ingest's HTTP edge, built from the same models that validate it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.ingest.domain import EnpsCampaign, PurchaseSubmission, ResponseSubmission

_JSON = "application/json"
_HTML = "text/html"


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_HTML: {"schema": {"type": "string"}}}}


_WEBHOOK_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }
    for name, description in (
        ("webhook-id", "Unique id of this delivery; a repeated id is refused as a replay."),
        ("webhook-timestamp", "Unix seconds when it was signed; at most 5 minutes old."),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> (Standard Webhooks)."),
    )
]

_WEBHOOK_ERRORS = {
    "401": _json("Problem", "Missing, wrong, stale or replayed signature; `error` says which."),
    "413": _json("Problem", "The body is over the configured limit (1 MiB by default)."),
    "422": _json("Invalid", "The body is not JSON or a field is invalid; `detail` names each."),
    "503": {
        "description": "Too many accepted events wait for the broker; retry after Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
}

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The signed token of the link in the email.",
    "schema": {"type": "string"},
}

_LINK_PROBLEMS = {
    "403": _html("The link is not genuine (altered or incomplete): a page says so."),
    "410": _html("The link has expired: a page says so and what to do."),
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every endpoint ingest serves."""
    models: list[type[BaseModel]] = [ResponseSubmission, PurchaseSubmission, EnpsCampaign]
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    components: dict[str, Any] = schema.get("$defs", {})
    components["Problem"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    components["Invalid"] = {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string"},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["loc", "field", "msg", "type"],
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
    components["ResponseAccepted"] = {
        "type": "object",
        "required": ["accepted", "event_id", "response_id"],
        "properties": {
            "accepted": {"type": "integer", "const": 1},
            "event_id": {"type": "string", "format": "uuid"},
            "response_id": {"type": "string"},
        },
    }
    components["PurchasesAccepted"] = {
        "type": "object",
        "required": ["accepted", "event_ids"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 1},
            "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        },
    }
    components["EnpsAccepted"] = {
        "type": "object",
        "required": ["accepted", "send_at"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 1},
            "send_at": {"type": "string", "format": "date-time"},
        },
    }
    purchase_ref = {"$ref": "#/components/schemas/PurchaseSubmission"}
    survey_form = {
        "type": "object",
        "properties": {
            "score": {"type": "string", "description": "0 to 10"},
            "reason": {"type": "string", "description": "The main reason for the score."},
            "improve": {"type": "string", "description": "What we could do better."},
            "heard_from": {"type": "string", "description": "One of the configured answers."},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "npsloop ingest",
            "version": "1",
            "description": "The edge of npsloop: signed webhooks for purchases and survey "
            "responses, the survey and unsubscribe pages, health and metrics.",
        },
        "paths": {
            "/v1/responses": {
                "post": {
                    "summary": "Submit a survey response (again, with a comment, to update it)",
                    "operationId": "postResponse",
                    "parameters": _WEBHOOK_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/ResponseSubmission"}}
                        },
                    },
                    "responses": {
                        "202": _json("ResponseAccepted", "Journaled; published to Kafka."),
                        **_WEBHOOK_ERRORS,
                    },
                }
            },
            "/v1/purchases": {
                "post": {
                    "summary": "Submit one purchase event, or a batch as a JSON array",
                    "operationId": "postPurchases",
                    "parameters": _WEBHOOK_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
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
                        "202": _json("PurchasesAccepted", "Journaled; published to Kafka."),
                        **_WEBHOOK_ERRORS,
                    },
                }
            },
            "/v1/enps/invitations": {
                "post": {
                    "summary": "Invite employees to an anonymous employee NPS round",
                    "operationId": "postEnpsInvitations",
                    "parameters": _WEBHOOK_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/EnpsCampaign"}}
                        },
                    },
                    "responses": {
                        "202": _json("EnpsAccepted", "Journaled; invitations go out at send_at."),
                        **_WEBHOOK_ERRORS,
                    },
                }
            },
            "/s/{token}": {
                "parameters": [_TOKEN],
                "get": {
                    "summary": "A score link: records the score and shows the follow-up page",
                    "operationId": "openSurvey",
                    "responses": {"200": _html("The survey page."), **_LINK_PROBLEMS},
                },
                "post": {
                    "summary": "The follow-up answers: update the same response",
                    "operationId": "answerSurvey",
                    "requestBody": {
                        "content": {"application/x-www-form-urlencoded": {"schema": survey_form}}
                    },
                    "responses": {
                        "200": _html("Thanks."),
                        "422": _html("The score is not 0 to 10: the page again."),
                        **_LINK_PROBLEMS,
                    },
                },
            },
            "/u/{token}": {
                "parameters": [_TOKEN],
                "get": {
                    "summary": "The unsubscribe page (asks; a GET never unsubscribes)",
                    "operationId": "openUnsubscribe",
                    "responses": {"200": _html("The question and one button."), **_LINK_PROBLEMS},
                },
                "post": {
                    "summary": "Unsubscribe (the page's button, or RFC 8058 one-click)",
                    "operationId": "unsubscribe",
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"List-Unsubscribe": {"type": "string"}},
                                }
                            }
                        }
                    },
                    "responses": {"200": _html("Unsubscribed."), **_LINK_PROBLEMS},
                },
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "health",
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: partitions assigned",
                    "operationId": "ready",
                    "responses": {
                        "200": {"description": "Ready."},
                        "503": {"description": "Not ready yet."},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {_JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": components},
    }
