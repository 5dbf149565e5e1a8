"""What the classifier counts: responses by category and language, themes, flags, latency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.classifier.text import SUPPORTED_LANGUAGES, Taxonomy
from shared.events import ClassifiedResponse
from shared.nps import Category

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class ClassifierMetrics:
    classified: Counter
    themes: Counter
    flags: Counter
    latency: Histogram
    contexts: Counter
    joins: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, taxonomy: Taxonomy) -> ClassifierMetrics:
        classified = Counter(
            "npsloop_classified_total",
            "Responses classified, by NPS category and comment language (unknown: none found).",
            ["category", "language"],
            registry=registry,
        )
        themes = Counter(
            "npsloop_themes_total",
            "Themes found in comments, by theme and NPS category.",
            ["theme", "category"],
            registry=registry,
        )
        flags = Counter(
            "npsloop_flags_total",
            "Flags raised on responses (score_comment_mismatch, urgent).",
            ["flag"],
            registry=registry,
        )
        latency = Histogram(
            "npsloop_classification_latency_seconds",
            "From a response's acceptance at the edge to its classification.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        contexts = Counter(
            "npsloop_invitation_contexts_total",
            "Scheduled invitations whose order context the classifier keeps for the join.",
            registry=registry,
        )
        joins = Counter(
            "npsloop_response_joins_total",
            "Responses classified with their invitation's context (joined) or without it.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("joined", "no_context"):
            joins.labels(outcome)
        for category in Category:
            for language in (*SUPPORTED_LANGUAGES, "unknown"):
                classified.labels(category.value, language)
            for theme in taxonomy.themes:
                themes.labels(theme.id, category.value)
        for flag in ("score_comment_mismatch", "urgent"):
            flags.labels(flag)
        return cls(classified, themes, flags, latency, contexts, joins)

    def count(self, result: ClassifiedResponse) -> None:
        category = result.category.value
        self.classified.labels(category, result.language or "unknown").inc()
        for hit in result.themes:
            self.themes.labels(hit.id, category).inc()
        for flag in result.flags:
            self.flags.labels(flag).inc()
        age = (datetime.now(UTC) - result.response.occurred_at).total_seconds()
        self.latency.observe(max(age, 0.0))
