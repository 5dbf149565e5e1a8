"""Publish purchase events straight onto npsloop's purchases topic, from your own code.

    from services.ingest.publisher import PurchasePublisher

    with PurchasePublisher("kafka1:9092,kafka2:9092") as publisher:
        publisher.publish({
            "order_id": "A-1001", "customer_id": "C-77", "amount": "499.00",
            "currency": "DKK", "contact": {"email": "kim@example.com", "name": "Kim"},
            "locale": "da", "experience": "product", "segment": {"store": "Aarhus C"},
        })

Each purchase is validated exactly as the HTTP webhook validates it (a
``pydantic.ValidationError`` names the field), gets the same deterministic event id
(so publishing a file twice does not invite twice), and is keyed by customer.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from services.ingest.domain import PurchaseSubmission, now
from shared.events import encode
from shared.topics import PURCHASES

# CSV columns beyond the purchase's own fields: where they go in the submission.
_CSV_CONTACT = {"email", "name"}
_CSV_SEGMENT = {"region", "business_unit", "department", "product", "store", "channel"}


class PurchasePublisher:
    """A kafka-python producer for purchase events; use it as a context manager."""

    def __init__(
        self, bootstrap_servers: str, namespace: str = "", timeout_seconds: float = 30.0
    ) -> None:
        self.topic = PURCHASES.qualified(namespace)
        self.timeout = timeout_seconds
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            acks="all",
            linger_ms=5,
            client_id="npsloop-publisher",
        )

    def publish(self, purchase: Mapping[str, Any] | PurchaseSubmission) -> str:
        """Validate and send one purchase; returns its event id. Call flush() to wait for all."""
        submission = (
            purchase
            if isinstance(purchase, PurchaseSubmission)
            else PurchaseSubmission.model_validate(purchase)
        )
        event = submission.to_event(now())
        self._producer.send(self.topic, key=event.customer_id.encode(), value=encode(event))
        return str(event.event_id)

    def flush(self) -> None:
        self._producer.flush(timeout=self.timeout)

    def close(self) -> None:
        self._producer.close(timeout=self.timeout)

    def __enter__(self) -> PurchasePublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        self.close()


@dataclass(frozen=True)
class Line:
    number: int
    fields: dict[str, Any] | None
    problem: str | None = None


def read_purchases(path: Path) -> Iterator[Line]:
    """The purchases of a JSON Lines or CSV file, line by line, with what is wrong with each."""
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    else:
        yield from _read_json_lines(path)


def _read_json_lines(path: Path) -> Iterator[Line]:
    with path.open(encoding="utf-8") as file:
        for number, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                fields = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Line(number, None, f"not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(fields, dict):
                yield Line(number, None, "not a JSON object")
                continue
            yield Line(number, fields)


def _read_csv(path: Path) -> Iterator[Line]:
    with path.open(encoding="utf-8", newline="") as file:
        for number, row in enumerate(csv.DictReader(file), start=2):
            fields: dict[str, Any] = {}
            contact: dict[str, str] = {}
            segment: dict[str, str] = {}
            for column, value in row.items():
                if column is None or value is None or value == "":
                    continue
                column = column.strip()
                if column in _CSV_CONTACT:
                    contact[column] = value
                elif column in _CSV_SEGMENT:
                    segment[column] = value
                elif column == "products":
                    fields["products"] = [p.strip() for p in value.split(";") if p.strip()]
                else:
                    fields[column] = value
            if contact:
                fields["contact"] = contact
            if segment:
                fields["segment"] = segment
            yield Line(number, fields)
