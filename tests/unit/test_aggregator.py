"""The aggregator: each response counted once in its window, and the figures on the gauges."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import NpsGauges, SqlReadModel
from services.aggregator.agents import WindowRefresher
from services.aggregator.domain import ROLLING_30D, Figures
from shared.events import SurveyKind
from shared.nps import Counts
from tests.unit.builders import a_classified_response

NPS, ENPS = SurveyKind.NPS, SurveyKind.ENPS


def a_month_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=30)


@pytest.fixture
def read_model(sessions: sessionmaker[Session]) -> SqlReadModel:
    return SqlReadModel(sessions)


# --- SqlReadModel -------------------------------------------------------------------------


def test_the_same_response_recorded_twice_counts_once(read_model: SqlReadModel) -> None:
    classified = a_classified_response(10, response_id="r-1")
    read_model.record(classified)
    read_model.record(classified)
    assert read_model.counts(NPS, a_month_ago()) == Counts(promoters=1)


def test_an_update_moves_a_response_to_its_new_category(read_model: SqlReadModel) -> None:
    read_model.record(a_classified_response(3, response_id="r-1"))
    assert read_model.counts(NPS, a_month_ago()) == Counts(detractors=1)
    read_model.record(a_classified_response(9, response_id="r-1"))
    assert read_model.counts(NPS, a_month_ago()) == Counts(promoters=1)


def test_different_responses_each_count(read_model: SqlReadModel) -> None:
    for index, score in enumerate((10, 9, 8, 2, 0)):
        read_model.record(a_classified_response(score, response_id=f"r-{index}"))
    assert read_model.counts(NPS, a_month_ago()) == Counts(2, 1, 2)


def test_a_response_before_the_window_start_is_not_counted(read_model: SqlReadModel) -> None:
    now = datetime.now(UTC)
    since = now - timedelta(days=30)
    read_model.record(
        a_classified_response(9, response_id="old", responded_at=since - timedelta(hours=1))
    )
    read_model.record(a_classified_response(9, response_id="edge", responded_at=since))
    read_model.record(a_classified_response(2, response_id="new", responded_at=now))
    assert read_model.counts(NPS, since) == Counts(promoters=1, detractors=1)


def test_the_window_compares_instants_not_wall_clocks(read_model: SqlReadModel) -> None:
    copenhagen_summer = timezone(timedelta(hours=2))
    since = datetime(2026, 6, 1, 14, 0, tzinfo=copenhagen_summer)  # 12:00 UTC
    # 13:30 in UTC+2 is 11:30 UTC: before the window.
    before = datetime(2026, 6, 1, 13, 30, tzinfo=copenhagen_summer)
    # 12:30 UTC is inside the window, although its wall clock reads earlier than 14:00.
    inside = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    read_model.record(a_classified_response(9, response_id="before", responded_at=before))
    read_model.record(a_classified_response(2, response_id="inside", responded_at=inside))
    assert read_model.counts(NPS, since) == Counts(detractors=1)


def test_nps_and_enps_are_counted_separately(read_model: SqlReadModel) -> None:
    read_model.record(a_classified_response(10, response_id="c-1", survey_kind=NPS))
    read_model.record(a_classified_response(1, response_id="e-1", survey_kind=ENPS))
    read_model.record(a_classified_response(2, response_id="e-2", survey_kind=ENPS))
    assert read_model.counts(NPS, a_month_ago()) == Counts(promoters=1)
    assert read_model.counts(ENPS, a_month_ago()) == Counts(detractors=2)


def test_an_empty_read_model_counts_nothing(read_model: SqlReadModel) -> None:
    assert read_model.counts(NPS, a_month_ago()) == Counts()


# --- NpsGauges ----------------------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_gauge_exists_before_the_first_response() -> None:
    registry = CollectorRegistry()
    NpsGauges(registry)
    for kind in ("nps", "enps"):
        window = {"survey_kind": kind, "window": "30d"}
        for category in ("promoter", "passive", "detractor"):
            assert sample(registry, "npsloop_responses", **window, category=category) == 0.0
        for name in ("npsloop_nps", "npsloop_nps_standard_error", "npsloop_nps_margin_of_error"):
            value = sample(registry, name, **window)
            assert value is not None and math.isnan(value), name


def test_showing_one_of_each_category_gives_nps_zero() -> None:
    registry = CollectorRegistry()
    gauges = NpsGauges(registry)
    gauges.show(NPS, ROLLING_30D, Figures.of(Counts(1, 1, 1)))
    window = {"survey_kind": "nps", "window": "30d"}
    assert sample(registry, "npsloop_nps", **window) == 0.0
    for category in ("promoter", "passive", "detractor"):
        assert sample(registry, "npsloop_responses", **window, category=category) == 1.0
    margin = sample(registry, "npsloop_nps_margin_of_error", **window)
    assert margin == pytest.approx(1.96 * 100 * math.sqrt((2 / 3) / 3), abs=0.01)
    # The other survey kind is untouched.
    enps = sample(registry, "npsloop_nps", survey_kind="enps", window="30d")
    assert enps is not None and math.isnan(enps)


# --- WindowRefresher ----------------------------------------------------------------------


def test_refreshing_shows_the_read_models_window_on_the_gauges(read_model: SqlReadModel) -> None:
    registry = CollectorRegistry()
    refresher = WindowRefresher(read_model, NpsGauges(registry))
    for response_id, score in (("p", 10), ("n", 7), ("d", 3)):
        read_model.record(a_classified_response(score, response_id=response_id))
    read_model.record(
        a_classified_response(
            0, response_id="too-old", responded_at=datetime.now(UTC) - timedelta(days=31)
        )
    )
    refresher.refresh()
    window = {"survey_kind": "nps", "window": "30d"}
    assert sample(registry, "npsloop_nps", **window) == 0.0
    assert sample(registry, "npsloop_responses", **window, category="detractor") == 1.0
    enps = sample(registry, "npsloop_nps", survey_kind="enps", window="30d")
    assert enps is not None and math.isnan(enps)
