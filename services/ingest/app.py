"""The ingest worker: `npsloop worker ingest`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from services.ingest.adapters import FaustPublisher
from services.ingest.web import IngestRoutes
from shared import topics
from shared.settings import Settings
from shared.streams import add_health_routes, make_app, topic, web_router


def create_app(settings: Settings) -> faust.App:
    app = make_app("ingest", settings)
    # Ingest consumes nothing yet: start the web server and the producer only.
    app.producer_only = True
    registry = CollectorRegistry()
    published = {
        spec.name: topic(app, spec, settings) for spec in (topics.RESPONSES, topics.PURCHASES)
    }
    IngestRoutes(FaustPublisher(published), registry).register(web_router(app))
    add_health_routes(app, "ingest", registry, ready=lambda: app.producer.started)
    return app
