"""The aggregator worker: `npsloop worker aggregator`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry, Histogram

from services.aggregator import agents, bootstrap, queries
from services.aggregator.adapters import SqlReadModel
from services.aggregator.metrics import AggregatorGauges
from services.aggregator.service import DigestPublisher, Refresher, RefreshPace, utc_now
from services.aggregator.web import AggregatorRoutes, DashboardRoutes
from shared import topics
from shared.db import make_engine, migrate, session_factory
from shared.events import Digest, encode
from shared.metrics import StreamMetrics
from shared.settings import Settings
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


def create_app(settings: Settings) -> faust.App:
    config = bootstrap.reporting_config(settings)
    schedule = bootstrap.digest_schedule(settings)
    app = make_app("aggregator", settings)
    registry = CollectorRegistry()
    url = settings.database_url_of("aggregator")
    if settings.migrate_on_start:
        migrate(url)
    read_model = SqlReadModel(session_factory(make_engine(url)), config.policy, config.zone)
    digests = topic(app, topics.DIGESTS, settings)

    async def send_digest(digest: Digest) -> None:
        # Sent when the broker has it: only then is the week stored as published.
        delivered = await digests.send(key=None, value=encode(digest))
        await delivered

    agents.register(
        app,
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        invitations=topic(app, topics.INVITATIONS, settings),
        purchases=topic(app, topics.PURCHASES, settings),
        cases=topic(app, topics.CASES, settings),
        read_model=read_model,
        refresher=Refresher(read_model, AggregatorGauges(registry, config), config),
        digests=DigestPublisher(read_model, config, schedule, send_digest),
        loop=EventLoop("aggregator", dlq_topic(app, settings), StreamMetrics.create(registry)),
        pace=RefreshPace(settings.aggregate_refresh_seconds),
        refresh_durations=Histogram(
            "npsloop_aggregator_refresh_seconds",
            "How long a refresh of every window took. Refreshes start every "
            "NPSLOOP_AGGREGATE_REFRESH_SECONDS, spaced further when they would take more than "
            "a quarter of the worker's time.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        ),
        batch_size=settings.aggregator_batch_size,
    )
    AggregatorRoutes(read_model, config).register(web_router(app))
    DashboardRoutes(
        lambda query: queries.dashboard(read_model, config, utc_now(), query),
        windows=[window.name for window in config.windows],
        dimensions=config.policy.dimensions,
    ).register(web_router(app))
    add_health_routes(app, "aggregator", registry, ready=lambda: consumer_ready(app))
    watch_for_wedges(app, registry, settings.consumer_stall_seconds)
    return app
