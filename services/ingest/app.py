"""The ingest worker: `npsloop worker ingest`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import faust
from prometheus_client import CollectorRegistry

from services.ingest import agents
from services.ingest.adapters import Relay
from services.ingest.planning import Rules
from services.ingest.slack import SlackActionRoutes
from services.ingest.store import IngestStore
from services.ingest.survey import SurveyConfig, SurveyRoutes
from services.ingest.web import EdgeConfig, IngestRoutes
from shared import topics
from shared.db import make_engine, migrate, session_factory
from shared.i18n import HEARD_FROM_KEYS
from shared.metrics import StreamMetrics
from shared.send_window import SendWindow
from shared.settings import Settings
from shared.signing import WEBHOOK_TOLERANCE_SECONDS, TokenSigner
from shared.streams import (
    EventLoop,
    add_health_routes,
    consumer_ready,
    dlq_topic,
    make_app,
    topic,
    web_router,
)
from shared.wedge import watch_for_wedges

JOURNALED = (
    topics.PURCHASES,
    topics.RESPONSES,
    topics.INVITATIONS,
    topics.CONTACT_PREFERENCES,
    topics.CASES,
)


def planning_rules(settings: Settings) -> Rules:
    return Rules(
        delay_service=timedelta(hours=settings.delay_service_hours),
        delay_product=timedelta(hours=settings.delay_product_hours),
        window=SendWindow.parse(settings.send_window),
        default_timezone=settings.default_timezone,
        fatigue=timedelta(days=settings.fatigue_days),
        default_sampling_rate=settings.default_sampling_rate,
        sampling=Rules.parse_sampling(settings.sampling_rates),
    )


def heard_from_options(settings: Settings) -> tuple[str, ...]:
    unknown = [key for key in settings.heard_from_options if key not in HEARD_FROM_KEYS]
    if unknown:
        raise SystemExit(
            f"NPSLOOP_HEARD_FROM_OPTIONS has unknown answers {unknown}; "
            f"choose from {', '.join(HEARD_FROM_KEYS)}"
        )
    return tuple(settings.heard_from_options)


def create_app(settings: Settings) -> faust.App:
    webhook_secret = settings.require_secret("webhook_secret")
    rules = planning_rules(settings)
    app = make_app("ingest", settings)
    registry = CollectorRegistry()
    url = settings.database_url_of("ingest")
    if settings.migrate_on_start:
        migrate(url)
    # A webhook id is remembered for twice the signature tolerance: a replay older than
    # that fails the timestamp check instead.
    store = IngestStore(
        session_factory(make_engine(url)),
        webhook_memory=timedelta(seconds=2 * WEBHOOK_TOLERANCE_SECONDS),
    )
    journaled = {spec.name: topic(app, spec, settings) for spec in JOURNALED}
    relay = Relay(store, journaled, registry)
    IngestRoutes(
        store,
        on_accepted=relay.wake,
        config=EdgeConfig(
            webhook_secret, settings.max_body_bytes, settings.journal_max_backlog, rules
        ),
        registry=registry,
    ).register(web_router(app))
    secret = settings.slack_signing_secret
    SlackActionRoutes(
        store,
        secret.get_secret_value() if secret is not None else None,
        on_accepted=relay.wake,
        registry=registry,
        max_backlog=settings.journal_max_backlog,
    ).register(web_router(app))
    SurveyRoutes(
        store,
        TokenSigner(settings.require_secret("token_secret").encode()),
        SurveyConfig(settings.company_name, heard_from_options(settings)),
        on_accepted=relay.wake,
    ).register(web_router(app))
    agents.register(
        app,
        purchases=journaled[topics.PURCHASES.name],
        invitations=journaled[topics.INVITATIONS.name],
        responses=journaled[topics.RESPONSES.name],
        preferences=journaled[topics.CONTACT_PREFERENCES.name],
        store=store,
        rules=rules,
        loop=EventLoop("ingest", dlq_topic(app, settings), StreamMetrics.create(registry)),
        on_journaled=relay.wake,
    )

    @app.task
    async def publish_journal() -> None:
        await relay.run()

    @app.timer(60.0)
    async def forget_old_webhook_ids() -> None:
        try:
            await asyncio.to_thread(store.forget_old_webhook_ids, datetime.now(UTC))
        except Exception:
            # The database may be away; the next tick forgets them. Raised, it would crash
            # the worker (Faust stops a worker whose timer raises).
            app.log.exception("forgetting old webhook ids failed")

    add_health_routes(app, "ingest", registry, ready=lambda: consumer_ready(app))
    watch_for_wedges(app, registry, settings.consumer_stall_seconds)
    return app
