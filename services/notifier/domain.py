"""Which deliveries a classified response calls for. Pure: no Faust, no I/O.

Each delivery carries an idempotency key made of what it is about (the
response), its channel and its recipient; the outbox refuses a second delivery
with the same key, so a redelivered or replayed event never sends twice, and a
later update of the same response does not alert again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.notifier import messages
from services.notifier.alerts import alert_message, kudos_message
from services.notifier.invitation_email import invitation_email
from services.notifier.rules import (
    Action,
    EmailOwner,
    Kudos,
    ReviewRequest,
    SlackAlert,
    default_rules,
)
from shared.events import ClassifiedResponse, Digest, Invitation, InvitationStatus
from shared.links import SurveyLinks


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


class DeliveryKind(StrEnum):
    ALERT = "alert"
    REVIEW_REQUEST = "review_request"
    INVITATION = "invitation"
    DIGEST = "digest"
    KUDOS = "kudos"
    OWNER_EMAIL = "owner_email"
    ESCALATION = "escalation"


@dataclass(frozen=True)
class LoopConfig:
    """How the loops are set up: where alerts go and what promoters are asked."""

    slack_channel: str
    company_name: str
    review_links: dict[str, str] = field(default_factory=dict)
    digest_channel: str = "#customer-feedback"
    escalation_channel: str = "#customer-feedback"


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient on one channel, about one response or invitation.

    ``subject_id`` is what the message is about: the response id of an alert or review
    request, the invitation id of an invitation. ``send_at`` delays it (an invitation).
    """

    kind: DeliveryKind
    channel: Channel
    recipient: str
    subject_id: str
    payload: dict[str, Any]
    customer_id: str | None = None
    send_at: datetime | None = None
    origin_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.kind, self.subject_id, self.channel, self.recipient)


def idempotency_key(kind: DeliveryKind, subject_id: str, channel: Channel, recipient: str) -> str:
    return f"{kind}:{subject_id}:{channel}:{recipient}"


def plan(
    classified: ClassifiedResponse, config: LoopConfig, actions: Sequence[Action] | None = None
) -> list[Delivery]:
    """The deliveries the routing rules ask for (the shipped rules when none are given).

    An eNPS response is anonymous by design: the rules never route it, so it never alerts,
    opens a follow-up or asks anything of anyone; it only counts.
    """
    if actions is None:
        actions = default_rules(config.slack_channel).evaluate(classified).actions
    response = classified.response
    deliveries: list[Delivery] = []
    for action in actions:
        if isinstance(action, SlackAlert | Kudos):
            if isinstance(action, SlackAlert):
                kind = DeliveryKind.ALERT
                payload = alert_message(classified, action.channel, None)
            else:
                kind = DeliveryKind.KUDOS
                payload = kudos_message(classified, action.channel)
            if action.fallback_channel and action.fallback_channel != action.channel:
                payload["fallback_channel"] = action.fallback_channel
            deliveries.append(
                Delivery(
                    kind=kind,
                    channel=Channel.SLACK,
                    recipient=action.channel,
                    subject_id=response.response_id,
                    payload=payload,
                    origin_at=response.occurred_at,
                )
            )
        elif isinstance(action, EmailOwner):
            deliveries.append(
                Delivery(
                    kind=DeliveryKind.OWNER_EMAIL,
                    channel=Channel.EMAIL,
                    recipient=action.to,
                    subject_id=response.response_id,
                    payload=messages.owner_email(classified, action.to),
                    origin_at=response.occurred_at,
                )
            )
        elif isinstance(action, ReviewRequest) and response.contact.email and config.review_links:
            deliveries.append(
                Delivery(
                    kind=DeliveryKind.REVIEW_REQUEST,
                    channel=Channel.EMAIL,
                    recipient=response.contact.email,
                    subject_id=response.response_id,
                    payload=messages.review_request(
                        classified, config.company_name, config.review_links
                    ),
                    customer_id=response.customer_id,
                    origin_at=response.occurred_at,
                )
            )
    return deliveries


def plan_invitation(
    invitation: Invitation, config: LoopConfig, links: SurveyLinks
) -> Delivery | None:
    """The invitation email of a scheduled invitation, due at its send time."""
    email = invitation.contact.email
    if invitation.status != InvitationStatus.SCHEDULED or not email:
        return None
    content = invitation_email(
        invitation.locale,
        config.company_name,
        invitation.contact.name,
        invitation.survey_kind,
        links.scores,
        links.unsubscribe,
    )
    return Delivery(
        kind=DeliveryKind.INVITATION,
        channel=Channel.EMAIL,
        recipient=email,
        subject_id=invitation.invitation_id,
        payload={
            "to_email": email,
            "to_name": invitation.contact.name,
            "subject": content.subject,
            "text": content.text,
            "html": content.html,
            "headers": content.headers,
            "links": {"scores": list(links.scores), "unsubscribe": links.unsubscribe},
            "invitation": invitation.model_dump(mode="json"),
        },
        customer_id=invitation.customer_id,
        send_at=invitation.send_at,
        origin_at=invitation.send_at,
    )


def plan_digest(digest: Digest, channel: str) -> Delivery:
    """The weekly results, shared with everyone in the digest channel, once."""
    return Delivery(
        kind=DeliveryKind.DIGEST,
        channel=Channel.SLACK,
        recipient=channel,
        subject_id=str(digest.event_id),
        payload=messages.digest_message(digest, channel),
        origin_at=digest.occurred_at,
    )
