"""Wires the notifier's real adapters from settings."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import faust
from prometheus_client import CollectorRegistry
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from services.notifier.adapters import (
    LocalOutboxSender,
    OutboxEntry,
    Sender,
    SendGridSender,
    SlackSender,
    SqlOutbox,
)
from services.notifier.bursts import BurstPolicy
from services.notifier.case_store import SqlCases
from services.notifier.cases import Case
from services.notifier.dispatch import (
    CaseHook,
    CaseLinker,
    DeliveryMetrics,
    Dispatcher,
    LinkMaker,
    SentHook,
)
from services.notifier.domain import Channel, DeliveryKind, LoopConfig
from services.notifier.review_store import (
    ReviewLedger,
    SqlReviewDecisions,
    review_decisions_counter,
)
from services.notifier.reviews import ReviewConfigError, ReviewLinks, ReviewPolicy, review_links
from services.notifier.rules import RulesError, RuleSet, default_rules, load_rules
from shared.db import make_engine, migrate, session_factory
from shared.events import CaseEvent, Contact, DeadLetter, Invitation, InvitationStatus, encode
from shared.ids import derived_id
from shared.links import SurveyLinks, case_link, survey_links, unsubscribe_link
from shared.send_window import SendWindow
from shared.settings import Settings
from shared.signing import TokenSigner

# Listing the channels at start: tries, and the longest wait between two (Retry-After aside).
CHANNEL_CHECK_ATTEMPTS = 5
CHANNEL_CHECK_MAX_WAIT_SECONDS = 8.0

log = logging.getLogger(__name__)

DEAD_DELIVERY = uuid.UUID("d2f6a1c0-3b4e-4e1f-8c7d-9a0b1c2d3e4f")


def loop_config(settings: Settings) -> LoopConfig:
    """The loops as configured, checked: a bad review policy or review page stops the start,
    naming every setting or file line to fix."""
    problems: list[str] = []
    policy = ReviewPolicy()
    links = ReviewLinks()
    try:
        policy = ReviewPolicy.parse(settings.review_policy)
    except ReviewConfigError as exc:
        problems.extend(exc.problems)
    try:
        links = review_links(
            {
                "google": settings.review_google_url,
                "facebook": settings.review_facebook_url,
                "trustpilot": settings.review_trustpilot_url,
            },
            settings.review_links_file,
        )
    except ReviewConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SystemExit(
            "npsloop: the review requests cannot be set up:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
    signer = TokenSigner(settings.require_secret("token_secret").encode())

    def unsubscribe(customer_id: str, locale: str | None, sent_at: datetime) -> str:
        return unsubscribe_link(signer, settings.ingest_public_url, customer_id, locale, sent_at)

    return LoopConfig(
        slack_channel=settings.slack_channel,
        company_name=settings.company_name,
        review_links=links,
        review_policy=policy,
        digest_channel=settings.digest_channel,
        escalation_channel=settings.escalation_channel,
        send_window=SendWindow.parse(settings.send_window),
        default_timezone=settings.default_timezone,
        unsubscribe_link=unsubscribe,
    )


def senders(settings: Settings) -> dict[Channel, Sender]:
    local = LocalOutboxSender(settings.local_outbox_path)
    slack: Sender = local
    email: Sender = local
    if settings.slack_bot_token:
        slack = SlackSender(
            settings.slack_bot_token.get_secret_value(),
            settings.slack_api_url,
            settings.delivery_timeout_seconds,
        )
    if settings.sendgrid_api_key:
        email = SendGridSender(
            settings.sendgrid_api_key.get_secret_value(),
            settings.sendgrid_api_url,
            settings.email_from,
            settings.email_from_name,
            settings.delivery_timeout_seconds,
        )
    return {Channel.SLACK: slack, Channel.EMAIL: email}


async def close_senders(senders: Mapping[Channel, Sender]) -> None:
    """Close the connections the senders keep alive (Slack's HTTP session)."""
    for sender in set(senders.values()):
        if isinstance(sender, SlackSender):
            await sender.close()


def link_maker(settings: Settings) -> LinkMaker:
    signer = TokenSigner(settings.require_secret("token_secret").encode())

    def links(invitation: Invitation) -> SurveyLinks:
        sent_at = invitation.send_at or invitation.occurred_at
        return survey_links(
            signer, settings.ingest_public_url, invitation, sent_at, settings.survey_link_days
        )

    return links


def case_linker(settings: Settings) -> CaseLinker:
    signer = TokenSigner(settings.require_secret("token_secret").encode())

    def link(case: Case) -> str:
        return case_link(signer, settings.notifier_case_url, case.case_id, case.opened_at)

    return link


def sent_publisher(invitations: faust.TopicT) -> SentHook:
    """After an invitation email went out, say so on the invitations topic."""

    async def publish(entry: OutboxEntry, provider_ref: str) -> None:
        if entry.kind != DeliveryKind.INVITATION.value:
            return
        scheduled = Invitation.model_validate(entry.payload["invitation"])
        sent = scheduled.model_copy(
            update={
                "event_id": derived_id(scheduled.event_id, "sent"),
                "occurred_at": datetime.now(UTC),
                "status": InvitationStatus.SENT,
                "reason": None,
                "contact": Contact(),
            }
        )
        await invitations.send(key=sent.customer_id.encode(), value=encode(sent))

    return publish


def dead_letter_publisher(dlq: faust.TopicT) -> SentHook:
    """A delivery given up on becomes a dead letter, with the reason and what it would send."""

    async def publish(entry: OutboxEntry, reason: str) -> None:
        now = datetime.now(UTC)
        letter = DeadLetter(
            event_id=derived_id(DEAD_DELIVERY, entry.idempotency_key),
            occurred_at=now,
            service="notifier",
            topic="notifier.outbox",
            partition=-1,
            offset=entry.attempts,
            key=entry.idempotency_key.encode(),
            value=json.dumps(entry.payload).encode(),
            error_type="DeliveryDead",
            error=reason[:4000],
            failed_at=now,
        )
        await dlq.send(key=b"notifier", value=encode(letter))

    return publish


def configured_rules(settings: Settings) -> RuleSet:
    """NPSLOOP_RULES_FILE, else the shipped rules; RulesError or OSError when unusable."""
    if settings.rules_file:
        return load_rules(settings.rules_file, default_channel=settings.slack_channel)
    return default_rules(settings.slack_channel)


def rule_set(settings: Settings) -> RuleSet:
    """The routing rules, checked at start: a broken file or a missing channel stops here."""
    try:
        rules = configured_rules(settings)
    except (RulesError, OSError) as exc:
        raise SystemExit(f"npsloop: the routing rules cannot be used:\n{exc}") from exc
    if settings.slack_bot_token:
        known = slack_channels(settings)
        if known is None:
            # Slack is having a bad moment: a worker restarted now must not stop for it.
            # The check is for mistakes in the rules; a channel that is missing all the same
            # makes its alerts fall back or, refused, dead-letter with the reason.
            log.warning(
                "Slack did not list its channels after %d attempts; the routing rules' "
                "channels are not checked this time",
                CHANNEL_CHECK_ATTEMPTS,
            )
            return rules
        missing = sorted(rules.channels() - known)
        if missing:
            raise SystemExit(
                f"npsloop: the routing rules name Slack channels that do not exist or the bot "
                f"cannot see: {', '.join(missing)} (create them, invite the bot, or fix the rules)"
            )
    return rules


def slack_channels(
    settings: Settings,
    attempts: int = CHANNEL_CHECK_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> set[str] | None:
    """Every channel the bot can see, as #name and as id; None when Slack answered only
    429, 5xx or nothing at all ``attempts`` times. A refusal (a bad token, a missing
    scope) stops the worker: no retry would change it."""
    assert settings.slack_bot_token is not None
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=int(max(settings.delivery_timeout_seconds, 1)),
    )
    for attempt in range(1, attempts + 1):
        wait = min(2.0 ** (attempt - 1), CHANNEL_CHECK_MAX_WAIT_SECONDS)
        try:
            return _list_channels(client)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status != 429 and status < 500:
                raise SystemExit(
                    f"npsloop: Slack did not list the channels ({exc.response.get('error')}): "
                    "check NPSLOOP_SLACK_BOT_TOKEN and the channels:read scope"
                ) from exc
            retry_after = exc.response.headers.get("Retry-After")
            if retry_after is not None and retry_after.isdigit():
                wait = max(wait, float(retry_after))
            reason = f"Slack answered {status}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = f"Slack unreachable: {type(exc).__name__}"
        if attempt < attempts:
            log.warning("listing the Slack channels failed (%s); again in %.0fs", reason, wait)
            sleep(wait)
    return None


def _list_channels(client: WebClient) -> set[str]:
    known: set[str] = set()
    cursor = None
    while True:
        page = client.conversations_list(
            cursor=cursor, limit=1000, types="public_channel,private_channel"
        )
        channels: list[dict[str, str]] = page.get("channels", [])
        for channel in channels:
            known.update({f"#{channel['name']}", channel["id"]})
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return known


def case_publisher(cases_topic: faust.TopicT) -> CaseHook:
    async def publish(event: CaseEvent) -> None:
        await cases_topic.send(key=event.response_id.encode(), value=encode(event))

    return publish


def dispatcher(
    settings: Settings,
    registry: CollectorRegistry,
    invitations: faust.TopicT,
    dlq: faust.TopicT,
    cases_topic: faust.TopicT,
) -> Dispatcher:
    url = settings.database_url_of("notifier")
    if settings.migrate_on_start:
        migrate(url)
    sessions = session_factory(make_engine(url))
    config = loop_config(settings)
    outbox = SqlOutbox(sessions)
    return Dispatcher(
        outbox,
        senders(settings),
        config,
        DeliveryMetrics.create(registry),
        attempt_timeout_seconds=settings.delivery_timeout_seconds,
        retry_max_seconds=settings.delivery_retry_max_seconds,
        links=link_maker(settings),
        on_sent=sent_publisher(invitations),
        on_dead=dead_letter_publisher(dlq),
        max_attempts=settings.delivery_max_attempts,
        rules=rule_set(settings),
        cases=SqlCases(sessions),
        on_case=case_publisher(cases_topic),
        case_links=case_linker(settings),
        bursts=BurstPolicy(settings.slack_channel_interval_seconds, settings.burst_threshold),
        reviews=ReviewLedger(
            SqlReviewDecisions(sessions),
            config,
            outbox.is_suppressed,
            review_decisions_counter(registry),
        ),
        together=sessions.together,
        attempts_at_once=settings.notifier_lanes,
    )
