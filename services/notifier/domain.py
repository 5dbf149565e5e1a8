"""Which deliveries a classified response calls for. Pure: no Faust, no I/O.

Each delivery carries an idempotency key made of what it is about (the
response), its channel and its recipient; the outbox refuses a second delivery
with the same key, so a redelivered or replayed event never sends twice, and a
later update of the same response does not alert again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.notifier import messages
from services.notifier.alerts import CaseView, alert_message, kudos_message
from services.notifier.bursts import SUMMARY_LINE, summary_line
from services.notifier.customer_emails import email_locale, follow_up_email, review_request_email
from services.notifier.email_layout import CustomerEmail
from services.notifier.invitation_email import invitation_email
from services.notifier.reviews import ReviewDecision, ReviewLinks, ReviewPolicy, decide_review
from services.notifier.rules import (
    Action,
    EmailOwner,
    FollowUpEmail,
    Kudos,
    OpenCase,
    SlackAlert,
    default_rules,
)
from shared.events import ClassifiedResponse, Digest, Invitation, InvitationStatus
from shared.links import SurveyLinks
from shared.send_window import SendWindow, in_window, timezone_for


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


class DeliveryKind(StrEnum):
    ALERT = "alert"
    REVIEW_REQUEST = "review_request"
    FOLLOW_UP = "follow_up"
    INVITATION = "invitation"
    DIGEST = "digest"
    KUDOS = "kudos"
    OWNER_EMAIL = "owner_email"
    ESCALATION = "escalation"
    # chat.update of a posted alert: the case moved, or the customer added a comment.
    ALERT_UPDATE = "alert_update"


UnsubscribeLink = Callable[[str, str | None, datetime], str]
"""The unsubscribe link of an email to a customer (customer id, locale, when it is sent)."""


@dataclass(frozen=True)
class LoopConfig:
    """How the loops are set up: where alerts go, whom customers' emails ask what, and when.

    Without a ``send_window`` customer emails go at once. Every email to a customer carries
    an unsubscribe link: planning one without ``unsubscribe_link`` is a ValueError.
    """

    slack_channel: str
    company_name: str
    review_links: ReviewLinks = field(default_factory=ReviewLinks)
    review_policy: ReviewPolicy = field(default_factory=ReviewPolicy)
    digest_channel: str = "#customer-feedback"
    escalation_channel: str = "#customer-feedback"
    send_window: SendWindow | None = None
    default_timezone: str = "Europe/Copenhagen"
    unsubscribe_link: UnsubscribeLink | None = None


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
    # What makes this one of several deliveries of a kind about one subject (an update
    # names the event that caused it); None for the kinds sent once.
    cause: str | None = None

    @property
    def idempotency_key(self) -> str:
        key = idempotency_key(self.kind, self.subject_id, self.channel, self.recipient)
        return key if self.cause is None else f"{key}:{self.cause}"


def idempotency_key(kind: DeliveryKind, subject_id: str, channel: Channel, recipient: str) -> str:
    return f"{kind}:{subject_id}:{channel}:{recipient}"


def plan(
    classified: ClassifiedResponse,
    config: LoopConfig,
    actions: Sequence[Action] | None = None,
    now: datetime | None = None,
    case: CaseView | None = None,
) -> list[Delivery]:
    """The deliveries the routing rules and the review policy ask for (the shipped rules when
    none are given), planned at ``now`` (the response's time when not given); an alert
    shows ``case``, the follow-up case the rules opened, with its buttons.

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
                payload = alert_message(classified, action.channel, case)
                payload[SUMMARY_LINE] = summary_line(classified, case.url if case else None)
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
        elif isinstance(action, FollowUpEmail):
            follow_up = plan_follow_up(classified, config, action, actions, now)
            if follow_up is not None:
                deliveries.append(follow_up)
    review = plan_review_request(
        classified, config, decide_review_for(classified, config, actions), now
    )
    if review is not None:
        deliveries.append(review)
    return deliveries


def decide_review_for(
    classified: ClassifiedResponse, config: LoopConfig, actions: Sequence[Action]
) -> ReviewDecision | None:
    """The review decision of a response under the configured policy and review pages."""
    return decide_review(classified, actions, config.review_policy, config.review_links)


def customer_send_at(
    classified: ClassifiedResponse, config: LoopConfig, now: datetime | None
) -> datetime | None:
    """When an email to the customer may go: now, or when the send window next opens in
    their local time (from their locale; else the default time zone)."""
    if config.send_window is None:
        return None
    zone = timezone_for(None, email_locale(classified), config.default_timezone)
    return in_window(now or classified.response.occurred_at, zone, config.send_window)


def _email_payload(email: str, name: str | None, content: CustomerEmail) -> dict[str, Any]:
    """What SendGridSender sends: the recipient and the email's parts and headers."""
    return {
        "to_email": email,
        "to_name": name,
        "subject": content.subject,
        "text": content.text,
        "html": content.html,
        "headers": content.headers,
    }


def _customer_delivery(
    kind: DeliveryKind,
    classified: ClassifiedResponse,
    content: CustomerEmail,
    send_at: datetime | None,
    **extra: Any,
) -> Delivery:
    response = classified.response
    email = response.contact.email
    assert email is not None
    return Delivery(
        kind=kind,
        channel=Channel.EMAIL,
        recipient=email,
        subject_id=response.response_id,
        payload={**_email_payload(email, response.contact.name, content), **extra},
        # The customer's: an unsubscribe stops it, an erasure scrubs it from the outbox.
        customer_id=response.customer_id,
        send_at=send_at,
        origin_at=response.occurred_at,
    )


def _unsubscribe_url(
    classified: ClassifiedResponse, config: LoopConfig, sent_at: datetime | None
) -> str:
    if config.unsubscribe_link is None:
        raise ValueError("an email to a customer needs an unsubscribe link: LoopConfig has none")
    response = classified.response
    return config.unsubscribe_link(
        response.customer_id, email_locale(classified), sent_at or response.occurred_at
    )


def plan_review_request(
    classified: ClassifiedResponse,
    config: LoopConfig,
    decision: ReviewDecision | None,
    now: datetime | None = None,
) -> Delivery | None:
    """The review request of a customer the review decision asks, in their language."""
    if decision is None or not decision.asked:
        return None
    send_at = customer_send_at(classified, config, now)
    unsubscribe_url = _unsubscribe_url(classified, config, send_at or now)
    response = classified.response
    content = review_request_email(
        email_locale(classified),
        config.company_name,
        response.contact.name,
        response.score,
        decision.links,
        unsubscribe_url,
    )
    return _customer_delivery(
        DeliveryKind.REVIEW_REQUEST,
        classified,
        content,
        send_at,
        review={"policy": decision.policy, "reason": decision.reason.value},
        links=dict(decision.links),
    )


def plan_follow_up(
    classified: ClassifiedResponse,
    config: LoopConfig,
    action: FollowUpEmail,
    actions: Sequence[Action],
    now: datetime | None = None,
) -> Delivery | None:
    """The follow-up email a rule asks for, when the customer gave an address."""
    response = classified.response
    if not response.contact.email:
        return None
    send_at = customer_send_at(classified, config, now)
    unsubscribe_url = _unsubscribe_url(classified, config, send_at or now)
    content = follow_up_email(
        email_locale(classified),
        config.company_name,
        response.contact.name,
        response.score,
        action.question,
        any(isinstance(other, OpenCase) for other in actions),
        unsubscribe_url,
    )
    return _customer_delivery(
        DeliveryKind.FOLLOW_UP, classified, content, send_at, question=action.question
    )


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
            **_email_payload(email, invitation.contact.name, content),
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


def plan_alert_update(
    classified: ClassifiedResponse,
    channel: str,
    ts: str,
    case: CaseView | None,
    cause: str,
    at: datetime,
) -> Delivery:
    """The posted alert redrawn in place (chat.update): its case moved, or the response
    changed. ``cause`` (the event behind it) makes each update its own delivery."""
    payload = alert_message(classified, channel, case)
    payload["ts"] = ts
    return Delivery(
        kind=DeliveryKind.ALERT_UPDATE,
        channel=Channel.SLACK,
        recipient=channel,
        subject_id=classified.response.response_id,
        payload=payload,
        origin_at=at,
        cause=cause,
    )
