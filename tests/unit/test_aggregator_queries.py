"""The aggregator's questions and its JSON API: figures, history, loop, money and themes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator import queries
from services.aggregator.adapters import SqlReadModel
from services.aggregator.loop_health import CaseStep
from services.aggregator.money import PurchaseFact
from services.aggregator.queries import QueryError
from services.aggregator.report import ReportingConfig
from services.aggregator.responses import ResponseFact
from services.aggregator.segments import SegmentPolicy
from services.aggregator.web import AggregatorRoutes
from shared.events import CaseAction, SurveyKind
from shared.nps import Counts, margin_of_error
from tests.unit.builders import a_fast_classified_response, run

# A Wednesday: this ISO week began on Monday 2 March (Copenhagen).
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Copenhagen")
STORES = SegmentPolicy(dimensions=("store",), max_values=2)
CONFIG = ReportingConfig(zone=ZONE, policy=STORES)


def fact(score: int, **fields: object) -> ResponseFact:
    fields.setdefault("responded_at", NOW - timedelta(hours=2))
    return ResponseFact.of(a_fast_classified_response(score, **fields))  # type: ignore[arg-type]


@pytest.fixture
def read_model(sessions: sessionmaker[Session]) -> SqlReadModel:
    model = SqlReadModel(sessions, STORES, ZONE)
    answers = [(10, "Aarhus"), (9, "Aarhus"), (2, "Odense"), (7, None)]
    for index, (score, store) in enumerate(answers):
        segment = {"store": store} if store else {}
        model.record_response(fact(score, response_id=f"r-{index}", segment=segment))
    return model


def test_the_whole_in_a_window_with_its_counts_margin_and_period(
    read_model: SqlReadModel,
) -> None:
    answer = queries.nps_figures(read_model, CONFIG, NOW, window="7d")
    assert (answer.promoters, answer.passives, answer.detractors) == (2, 1, 1)
    assert answer.nps == 25.0
    assert answer.margin_of_error is not None and answer.margin_of_error > 50
    assert answer.insufficient_sample is True
    assert answer.period_start == NOW - timedelta(days=7) and answer.period_end == NOW
    assert answer.change is None and answer.significant is False


def test_one_segment_of_a_dimension(read_model: SqlReadModel) -> None:
    answer = queries.nps_figures(
        read_model, CONFIG, NOW, window="week", dimension="store", segment="Aarhus"
    )
    assert (answer.responses, answer.nps) == (2, 100.0)
    assert answer.period_start == datetime(2026, 3, 2, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("asked", "reason"),
    [
        ({"window": "2w"}, "unknown window '2w'"),
        ({"kind": "csat"}, "unknown survey kind 'csat'"),
        ({"dimension": "colour", "segment": "red"}, "unknown dimension 'colour'"),
        ({"dimension": "store", "segment": "Vejle"}, "unknown segment 'Vejle' of store"),
        ({"dimension": "store"}, "no segment of store"),
    ],
)
def test_a_question_that_cannot_be_answered_says_why(
    read_model: SqlReadModel, asked: dict[str, str], reason: str
) -> None:
    with pytest.raises(QueryError, match=reason):
        queries.nps_figures(read_model, CONFIG, NOW, **asked)


def test_an_enps_segment_under_k_is_withheld(sessions: sessionmaker[Session]) -> None:
    model = SqlReadModel(sessions, STORES, ZONE)
    for index, store in enumerate(["Aarhus"] * 5 + ["Odense"] + ["Vejle"] * 4):
        model.record_response(
            fact(9, response_id=f"e-{index}", survey_kind=SurveyKind.ENPS, segment={"store": store})
        )
    rows = {
        row.segment: row
        for row in queries.nps_by_segment(
            model, CONFIG, NOW, window="7d", kind="enps", dimension="store"
        )
    }
    assert rows["Aarhus"].responses == 5
    assert rows["Odense"].withheld and rows["Odense"].nps is None
    assert rows["other"].responses == 5


def test_history_is_nps_per_calendar_week_from_the_snapshots(
    sessions: sessionmaker[Session],
) -> None:
    model = SqlReadModel(sessions, STORES, ZONE)
    # Sunday evening in Copenhagen belongs to the week before, though it is Sunday in UTC too.
    sunday_evening = datetime(2026, 3, 1, 22, 30, tzinfo=ZONE)
    model.record_response(fact(10, response_id="a", responded_at=sunday_evening))
    model.record_response(fact(0, response_id="b", responded_at=sunday_evening))
    model.record_response(fact(10, response_id="c", responded_at=NOW - timedelta(hours=1)))
    model.record_response(fact(3, response_id="old", responded_at=NOW - timedelta(days=300)))
    weeks = queries.nps_history(model, CONFIG, NOW, weeks=3)
    assert [week.week for week in weeks] == ["2026-W08", "2026-W09", "2026-W10"]
    assert [week.responses for week in weeks] == [0, 2, 1]
    assert weeks[1].nps == 0.0
    assert weeks[1].margin_of_error == pytest.approx(margin_of_error(Counts(1, 0, 1)))
    assert weeks[2].nps == 100.0
    long = queries.nps_history(model, CONFIG, NOW, weeks=52)
    assert sum(week.responses or 0 for week in long) == 4


def test_history_refuses_a_silly_number_of_weeks(read_model: SqlReadModel) -> None:
    with pytest.raises(QueryError, match="weeks"):
        queries.nps_history(read_model, CONFIG, NOW, weeks=0)


def test_loop_money_and_themes_answer_as_plain_figures(read_model: SqlReadModel) -> None:
    opened = NOW - timedelta(days=1)
    read_model.record_case_step(
        CaseStep("o", "case", "r-2", CaseAction.OPENED, opened, opened + timedelta(hours=24))
    )
    read_model.record_case_step(
        CaseStep("c", "case", "r-2", CaseAction.CONTACTED, opened + timedelta(hours=1))
    )
    read_model.record_purchase(
        PurchaseFact("p", "cust-1", "o", Decimal(100), "DKK", NOW - timedelta(days=1))
    )
    loop = queries.loop(read_model, CONFIG, NOW, window="7d")
    assert (loop.opened, loop.within_sla, loop.share_within_sla) == (1, 1, 1.0)
    assert [step.median_seconds for step in loop.steps] == [3600.0, 3600.0, None]
    money = queries.money(read_model, CONFIG, NOW)
    assert money.currency == "DKK"
    assert sum(group.revenue for group in money.categories) == Decimal(100)
    themes = queries.themes(read_model, CONFIG, NOW, window="7d")
    assert [row.category for row in themes.categories] == ["promoter", "passive", "detractor"]


# --- the JSON API ----------------------------------------------------------------------------


async def _get(read_model: SqlReadModel, path: str) -> tuple[int, Any]:
    app = web.Application()
    AggregatorRoutes(read_model, CONFIG, lambda: NOW).register(app.router)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get(path)
        return answer.status, json.loads(await answer.text())


def test_get_nps_answers_the_figures_as_json(read_model: SqlReadModel) -> None:
    status, body = run(_get(read_model, "/v1/nps?window=7d&kind=nps"))
    assert status == 200
    assert body["nps"] == 25.0 and body["responses"] == 4
    assert body["period_end"] == NOW.isoformat()
    assert body["change"] is None and body["significant"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/v1/nps?window=fortnight",
        "/v1/nps?kind=csat",
        "/v1/nps?dimension=colour",
        "/v1/nps/history?weeks=many",
        "/v1/nps/history?weeks=0",
        "/v1/loop?window=2h",
        "/v1/themes?kind=x",
    ],
)
def test_an_unknown_window_kind_or_dimension_is_a_400_with_the_reason(
    read_model: SqlReadModel, path: str
) -> None:
    status, body = run(_get(read_model, path))
    assert status == 400
    assert body["error"]


def test_history_loop_money_and_themes_answer_json(read_model: SqlReadModel) -> None:
    status, weeks = run(_get(read_model, "/v1/nps/history?weeks=2&dimension=store&segment=Aarhus"))
    assert status == 200 and [week["responses"] for week in weeks] == [0, 2]
    for path in ("/v1/loop?window=7d", "/v1/money", "/v1/themes?window=30d"):
        status, _ = run(_get(read_model, path))
        assert status == 200, path
