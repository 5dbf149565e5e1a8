"""The classifier worker: `npsloop worker classifier`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from services.classifier import agents
from shared import topics
from shared.metrics import StreamMetrics
from shared.settings import Settings
from shared.streams import EventLoop, add_health_routes, consumer_ready, dlq_topic, make_app, topic


def create_app(settings: Settings) -> faust.App:
    app = make_app("classifier", settings)
    registry = CollectorRegistry()
    loop = EventLoop("classifier", dlq_topic(app, settings), StreamMetrics.create(registry))
    agents.register(
        app,
        responses=topic(app, topics.RESPONSES, settings),
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        loop=loop,
    )
    add_health_routes(app, "classifier", registry, ready=lambda: consumer_ready(app))
    return app
