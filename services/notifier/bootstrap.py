"""Wires the notifier's real adapters from settings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.notifier.adapters import (
    LocalOutboxSender,
    Sender,
    SendGridSender,
    SlackSender,
    SqlOutbox,
)
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, LoopConfig
from shared.db import make_engine, migrate, session_factory
from shared.settings import Settings


def loop_config(settings: Settings) -> LoopConfig:
    links = {
        site: url
        for site, url in (
            ("google", settings.review_google_url),
            ("facebook", settings.review_facebook_url),
        )
        if url
    }
    return LoopConfig(
        slack_channel=settings.slack_channel,
        company_name=settings.company_name,
        review_links=links,
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


def dispatcher(settings: Settings, registry: CollectorRegistry) -> Dispatcher:
    url = settings.database_url_of("notifier")
    if settings.migrate_on_start:
        migrate(url)
    return Dispatcher(
        SqlOutbox(session_factory(make_engine(url))),
        senders(settings),
        loop_config(settings),
        DeliveryMetrics.create(registry),
        attempt_timeout_seconds=settings.delivery_timeout_seconds,
        retry_max_seconds=settings.delivery_retry_max_seconds,
    )
