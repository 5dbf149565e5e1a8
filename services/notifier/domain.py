"""Which deliveries a classified response calls for. Pure: no Faust, no I/O.

Each delivery carries an idempotency key made of what it is about (the
response), its channel and its recipient; the outbox refuses a second delivery
with the same key, so a redelivered or replayed event never sends twice, and a
later update of the same response does not alert again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.notifier import messages
from shared.events import ClassifiedResponse
from shared.nps import Category


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


class DeliveryKind(StrEnum):
    ALERT = "alert"
    REVIEW_REQUEST = "review_request"


@dataclass(frozen=True)
class LoopConfig:
    """How the loops are set up: where alerts go and what promoters are asked."""

    slack_channel: str
    company_name: str
    review_links: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient on one channel, about one response."""

    kind: DeliveryKind
    channel: Channel
    recipient: str
    response_id: str
    payload: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        return f"{self.kind}:{self.response_id}:{self.channel}:{self.recipient}"


def plan(classified: ClassifiedResponse, config: LoopConfig) -> list[Delivery]:
    """Detractors and passives alert staff on Slack; promoters with email get a review request."""
    response = classified.response
    if classified.category in (Category.DETRACTOR, Category.PASSIVE):
        return [
            Delivery(
                kind=DeliveryKind.ALERT,
                channel=Channel.SLACK,
                recipient=config.slack_channel,
                response_id=response.response_id,
                payload=messages.slack_alert(classified, config.slack_channel),
            )
        ]
    if response.contact.email and config.review_links:
        return [
            Delivery(
                kind=DeliveryKind.REVIEW_REQUEST,
                channel=Channel.EMAIL,
                recipient=response.contact.email,
                response_id=response.response_id,
                payload=messages.review_request(
                    classified, config.company_name, config.review_links
                ),
            )
        ]
    return []
