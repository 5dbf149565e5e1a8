"""GET /dashboard: the query parsed, the view asked for, the page or a 400 that says why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.aggregator.dashboard import DashboardQuery, DashboardView, dashboard_view
from services.aggregator.responses import ResponseLedger
from services.aggregator.segments import SegmentBuckets
from services.aggregator.web import BadQuery, DashboardRoutes, parse_query
from shared.events import SurveyKind
from tests.unit.builders import run

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


class RecordingViews:
    """Builds an empty dashboard and remembers every query it was asked for."""

    def __init__(self) -> None:
        self.asked: list[DashboardQuery] = []

    def __call__(self, query: DashboardQuery) -> DashboardView:
        self.asked.append(query)
        return dashboard_view(
            responses=ResponseLedger(),
            cases=[],
            purchases=[],
            buckets=SegmentBuckets(),
            now=NOW,
            zone=UTC,
            query=query,
            currency="DKK",
        )


async def get(views: RecordingViews, path: str) -> tuple[int, str, dict[str, str]]:
    app = web.Application()
    DashboardRoutes(views).register(app.router)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, await response.text(), dict(response.headers)


def test_the_dashboard_is_a_page_of_the_query_asked_for() -> None:
    views = RecordingViews()
    status, page, headers = run(
        get(views, "/dashboard?window=7d&kind=enps&dimension=store&segment=Aarhus")
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert views.asked == [DashboardQuery("7d", SurveyKind.ENPS, "store", "Aarhus")]
    assert "<h1>NPS dashboard</h1>" in page


def test_without_parameters_it_is_the_last_30_days_of_customer_nps_for_the_whole_business() -> None:
    views = RecordingViews()
    status, _, _ = run(get(views, "/dashboard"))
    assert status == 200
    assert views.asked == [DashboardQuery("30d", SurveyKind.NPS, "all", "all")]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("window=fortnight", "There is no window “fortnight”. The windows are 1h, 24h, 7d,"),
        ("kind=csat", "There is no survey kind “csat”. The kinds are nps, enps."),
        ("dimension=colour", "There is no dimension “colour”. The dimensions are all, region,"),
        ("segment=" + "x" * 201, "The segment is longer than 200 characters."),
    ],
    ids=["window", "kind", "dimension", "too-long"],
)
def test_an_unknown_choice_is_a_400_page_that_says_why(query: str, reason: str) -> None:
    views = RecordingViews()
    status, page, headers = run(get(views, f"/dashboard?{query}"))
    assert status == 400
    assert headers["Content-Type"].startswith("text/html")
    assert reason in page
    assert views.asked == []


def test_a_reason_never_carries_markup_from_the_request() -> None:
    status, page, _ = run(get(RecordingViews(), "/dashboard?window=%3Cscript%3Ex%3C/script%3E"))
    assert status == 400
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_the_dimensions_offered_are_those_the_read_model_cuts_by() -> None:
    with pytest.raises(BadQuery, match="The dimensions are all, store"):
        parse_query({"dimension": "region"}, dimensions=("store",))
    assert parse_query({"dimension": "store"}, dimensions=("store",)).dimension == "store"
