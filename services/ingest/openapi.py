"""The OpenAPI document of ingest's HTTP edge, built from the same models that validate it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.ingest.domain import PurchaseSubmission, ResponseSubmission


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
