"""schemathesis against ingest's own OpenAPI document: no 5xx, no response that breaks it.

Webhook cases are signed with the stack's secret (their generated signature headers are
replaced), so the fuzzing reaches validation and the journal rather than stopping at 401.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.schemas import APIOperation

from shared.signing import webhook_headers
from tests.stack import WEBHOOK_SECRET, Stack

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 40
WEBHOOKS = {"/v1/responses", "/v1/purchases", "/v1/enps/invitations"}


@pytest.fixture(scope="module")
def ingest_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(
        bootstrap=kafka_bootstrap, database_url=None, data_dir=tmp_path_factory.mktemp("fuzz")
    )
    try:
        stack.start()
        yield stack.url("ingest")
    finally:
        stack.stop()


def _send(case: schemathesis.Case, base_url: str) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {
        k: v
        for k, v in (kwargs.pop("headers", None) or {}).items()
        if not k.lower().startswith("webhook-")
    }
    if case.path in WEBHOOKS:
        if "json" in kwargs:
            body = json.dumps(kwargs.pop("json")).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = kwargs.pop("data", b"")
            body = data.encode() if isinstance(data, str) else (data or b"")
        kwargs["data"] = body
        headers.update(webhook_headers(WEBHOOK_SECRET, f"fuzz-{uuid.uuid4().hex}", body))
    return requests.request(headers=headers, timeout=30, **kwargs)


def _fuzz(operation: APIOperation, base_url: str, statuses: dict[str, set[int]]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        response = _send(case, base_url)
        statuses.setdefault(label, set()).add(response.status_code)
        assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
        # Every check: status code, content type, headers and body against the document.
        case.validate_response(response)

    check()


def test_no_operation_answers_5xx_or_breaks_its_own_schema(ingest_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{ingest_url}/openapi.json")
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        _fuzz(result.ok(), ingest_url, statuses)
    print("status codes seen:", {label: sorted(codes) for label, codes in statuses.items()})
    assert len(statuses) >= 9, statuses
    # The webhooks were reached past their signature: something was accepted.
    for path in WEBHOOKS:
        assert 202 in statuses[f"POST {path}"], statuses[f"POST {path}"]
