"""The classifier worker: `npsloop worker classifier`."""

from __future__ import annotations

import asyncio
import hashlib
from importlib import resources
from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from services.classifier import agents
from services.classifier.domain import classify_response
from services.classifier.metrics import ClassifierMetrics
from services.classifier.text import Taxonomy, TaxonomyError, is_warm, load_taxonomy, warm_up
from services.classifier.text.taxonomy import DEFAULT_TAXONOMY, parse_taxonomy
from shared import topics
from shared.events import ClassifiedResponse, Response, ResponseContext
from shared.metrics import StreamMetrics
from shared.settings import Settings
from shared.streams import EventLoop, add_health_routes, consumer_ready, dlq_topic, make_app, topic
from shared.wedge import watch_for_wedges


def taxonomy_of(path: Path | None) -> tuple[Taxonomy, str]:
    """The taxonomy (the user's file or the default) and a version naming it."""
    try:
        if path is None:
            text = resources.files("services.classifier").joinpath(DEFAULT_TAXONOMY).read_text()
            taxonomy = parse_taxonomy(text, source=DEFAULT_TAXONOMY)
        else:
            text = path.read_text(encoding="utf-8")
            taxonomy = load_taxonomy(path)
    except (TaxonomyError, OSError) as exc:
        raise SystemExit(f"npsloop: the taxonomy cannot be used:\n{exc}") from exc
    return taxonomy, "taxonomy-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def create_app(settings: Settings) -> faust.App:
    taxonomy, version = taxonomy_of(settings.taxonomy_file)
    app = make_app("classifier", settings)
    registry = CollectorRegistry()
    contexts = app.Table("invitation-contexts", default=None, partitions=topics.CUSTOMER_PARTITIONS)
    seen = app.Table("responses-seen", default=None, partitions=topics.CUSTOMER_PARTITIONS)

    def classify(
        response: Response, context: ResponseContext | None, previous: str | None
    ) -> ClassifiedResponse:
        return classify_response(
            response,
            context=context,
            previous_event_id=previous,
            taxonomy=taxonomy,
            version=version,
        )

    agents.register(
        app,
        responses=topic(app, topics.RESPONSES, settings),
        invitations=topic(app, topics.INVITATIONS, settings),
        classified=topic(app, topics.RESPONSES_CLASSIFIED, settings),
        contexts=contexts,
        seen=seen,
        classify=classify,
        metrics=ClassifierMetrics.create(registry, taxonomy),
        loop=EventLoop("classifier", dlq_topic(app, settings), StreamMetrics.create(registry)),
        ready=is_warm,
    )

    @app.task
    async def build_language_detector() -> None:
        await asyncio.to_thread(warm_up)

    add_health_routes(app, "classifier", registry, ready=lambda: consumer_ready(app))
    watch_for_wedges(app, registry, settings.consumer_stall_seconds)
    return app
