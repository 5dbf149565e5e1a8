"""The notifier worker: `npsloop worker notifier`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.notifier import agents, bootstrap
from services.notifier.web import CaseRoutes
from shared import topics
from shared.metrics import StreamMetrics
from shared.settings import Settings
from shared.signing import TokenSigner
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
    app = make_app("notifier", settings)
    registry = CollectorRegistry()
    invitations = topic(app, topics.INVITATIONS, settings)
    dlq = dlq_topic(app, settings)
    cases = topic(app, topics.CASES, settings)
    dispatcher = bootstrap.dispatcher(settings, registry, invitations, dlq, cases)
    agents.register(
        app,
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        invitations=invitations,
        preferences=topic(app, topics.CONTACT_PREFERENCES, settings),
        digests=topic(app, topics.DIGESTS, settings),
        cases=cases,
        dispatcher=dispatcher,
        loop=EventLoop("notifier", dlq, StreamMetrics.create(registry)),
    )

    @app.on_before_shutdown.connect
    async def close_senders(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Attempts under way get a moment to end; any cut short is attempted again later.
        await dispatcher.settle(grace=settings.delivery_timeout_seconds)
        await bootstrap.close_senders(dispatcher.senders)

    if dispatcher.cases is not None:
        signer = TokenSigner(settings.require_secret("token_secret").encode())
        CaseRoutes(dispatcher.cases, signer, lambda: datetime.now(UTC)).register(web_router(app))
    add_health_routes(app, "notifier", registry, ready=lambda: consumer_ready(app))
    watch_for_wedges(app, registry, settings.consumer_stall_seconds)
    return app
