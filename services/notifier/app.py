"""The notifier worker: `npsloop worker notifier`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from services.notifier import agents, bootstrap
from shared import topics
from shared.metrics import StreamMetrics
from shared.settings import Settings
from shared.streams import EventLoop, add_health_routes, consumer_ready, dlq_topic, make_app, topic


def create_app(settings: Settings) -> faust.App:
    app = make_app("notifier", settings)
    registry = CollectorRegistry()
    invitations = topic(app, topics.INVITATIONS, settings)
    dlq = dlq_topic(app, settings)
    agents.register(
        app,
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        invitations=invitations,
        preferences=topic(app, topics.CONTACT_PREFERENCES, settings),
        digests=topic(app, topics.DIGESTS, settings),
        dispatcher=bootstrap.dispatcher(
            settings, registry, invitations, dlq, topic(app, topics.CASES, settings)
        ),
        loop=EventLoop("notifier", dlq, StreamMetrics.create(registry)),
    )
    add_health_routes(app, "notifier", registry, ready=lambda: consumer_ready(app))
    return app
