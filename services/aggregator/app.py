"""The aggregator worker: `npsloop worker aggregator`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from services.aggregator import agents
from services.aggregator.adapters import NpsGauges, SqlReadModel
from shared import topics
from shared.db import make_engine, migrate, session_factory
from shared.metrics import StreamMetrics
from shared.settings import Settings
from shared.streams import EventLoop, add_health_routes, consumer_ready, dlq_topic, make_app, topic


def create_app(settings: Settings) -> faust.App:
    app = make_app("aggregator", settings)
    registry = CollectorRegistry()
    url = settings.database_url_of("aggregator")
    if settings.migrate_on_start:
        migrate(url)
    read_model = SqlReadModel(session_factory(make_engine(url)))
    agents.register(
        app,
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        read_model=read_model,
        refresher=agents.WindowRefresher(read_model, NpsGauges(registry)),
        loop=EventLoop("aggregator", dlq_topic(app, settings), StreamMetrics.create(registry)),
        refresh_seconds=settings.aggregate_refresh_seconds,
    )
    add_health_routes(app, "aggregator", registry, ready=lambda: consumer_ready(app))
    return app
