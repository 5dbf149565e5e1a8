"""The aggregator's adapters: the response read model (SQLAlchemy) and the Prometheus gauges."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.aggregator.domain import WINDOWS, Figures, Window
from shared.db import Base, UtcDateTime, upsert
from shared.events import ClassifiedResponse, SurveyKind
from shared.nps import Category, Counts


class ResponseRow(Base):
    __tablename__ = "aggregator_responses"

    response_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    survey_kind: Mapped[str] = mapped_column(String(10))
    score: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(10))
    responded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReadModel(Protocol):
    """Every response once, by response id: an update replaces, it never adds."""

    def record(self, classified: ClassifiedResponse) -> None: ...

    def counts(self, survey_kind: SurveyKind, since: datetime) -> Counts: ...


class SqlReadModel:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, classified: ClassifiedResponse) -> None:
        response = classified.response
        with self._sessions.begin() as session:
            upsert(
                session,
                ResponseRow.__table__,
                {
                    "response_id": response.response_id,
                    "survey_kind": response.survey_kind.value,
                    "score": response.score,
                    "category": classified.category.value,
                    "responded_at": response.responded_at.astimezone(UTC),
                    "event_id": str(classified.event_id),
                    "updated_at": datetime.now(UTC),
                },
                keys=["response_id"],
            )

    def counts(self, survey_kind: SurveyKind, since: datetime) -> Counts:
        with self._sessions() as session:
            rows = session.execute(
                select(ResponseRow.category, func.count())
                .where(
                    ResponseRow.survey_kind == survey_kind.value,
                    ResponseRow.responded_at >= since.astimezone(UTC),
                )
                .group_by(ResponseRow.category)
            ).all()
        by_category = {category: count for category, count in rows}
        return Counts(
            promoters=by_category.get(Category.PROMOTER.value, 0),
            passives=by_category.get(Category.PASSIVE.value, 0),
            detractors=by_category.get(Category.DETRACTOR.value, 0),
        )


class NpsGauges:
    """The window figures as Prometheus gauges, every label set present from the start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["survey_kind", "window"]
        self.responses = Gauge(
            "npsloop_responses",
            "Responses in the rolling window, by NPS category (each response counted once).",
            [*labels, "category"],
            registry=registry,
        )
        self.nps = Gauge(
            "npsloop_nps",
            "Net Promoter Score in the window, -100..100 (NaN without responses).",
            labels,
            registry=registry,
        )
        self.standard_error = Gauge(
            "npsloop_nps_standard_error",
            "Standard error of the window's NPS, in points.",
            labels,
            registry=registry,
        )
        self.margin_of_error = Gauge(
            "npsloop_nps_margin_of_error",
            "Half-width of the 95% confidence interval of the window's NPS, in points.",
            labels,
            registry=registry,
        )
        for kind in SurveyKind:
            for window in WINDOWS:
                self.show(kind, window, Figures.of(Counts()))

    def show(self, survey_kind: SurveyKind, window: Window, figures: Figures) -> None:
        labels = (survey_kind.value, window.name)
        for category in Category:
            self.responses.labels(*labels, category.value).set(figures.counts.of(category))
        self.nps.labels(*labels).set(_or_nan(figures.nps))
        self.standard_error.labels(*labels).set(_or_nan(figures.standard_error))
        self.margin_of_error.labels(*labels).set(_or_nan(figures.margin_of_error))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
