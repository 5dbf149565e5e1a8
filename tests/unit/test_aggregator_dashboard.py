"""The dashboard: a view built from the ledgers by the domain functions, rendered as HTML."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.aggregator.dashboard import (
    CATEGORY_COLOURS,
    INK,
    LINE,
    MAX_SERIES,
    MUTED,
    PAGE,
    PAPER,
    ChangeView,
    DashboardQuery,
    DashboardView,
    Score,
    Series,
    Verdict,
    WeekPoint,
    band_points,
    change_sentence,
    dashboard_view,
    render_bad_query,
    render_dashboard,
    scale_for,
    score_text,
)
from services.aggregator.domain import ROLLING_30D, Rules
from services.aggregator.figures import segment_figures
from services.aggregator.loop_health import CaseLedger, CaseStep
from services.aggregator.money import PurchaseFact
from services.aggregator.responses import ResponseFact, ResponseLedger
from services.aggregator.segments import SegmentBuckets, SegmentPolicy
from shared.events import CaseAction, SurveyKind
from shared.nps import Category
from tests.unit.builders import a_fast_classified_response

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
ZONE = ZoneInfo("Europe/Copenhagen")
STORES = SegmentPolicy(dimensions=("store", "region"), max_values=5)
NBSP = "\u00a0"


def fact(score: int, number: int, **fields: Any) -> ResponseFact:
    fields.setdefault("responded_at", NOW - timedelta(days=1))
    fields.setdefault("customer_id", f"cust-{number}")
    return ResponseFact.of(
        a_fast_classified_response(score, response_id=f"resp-{number}", **fields)
    )


def ledger(*facts: ResponseFact) -> tuple[ResponseLedger, SegmentBuckets]:
    buckets = SegmentBuckets(STORES)
    for one in facts:
        buckets = buckets.admit(one.segment)
    return ResponseLedger(facts), buckets


def many(scores: list[int], start: int = 0, **fields: Any) -> list[ResponseFact]:
    return [fact(score, start + i, **fields) for i, score in enumerate(scores)]


def view_of(
    responses: ResponseLedger,
    buckets: SegmentBuckets,
    query: DashboardQuery | None = None,
    cases: CaseLedger | None = None,
    purchases: list[PurchaseFact] | None = None,
    **kwargs: Any,
) -> DashboardView:
    return dashboard_view(
        responses=responses,
        cases=(cases or CaseLedger()).histories(),
        purchases=purchases or [],
        buckets=buckets,
        now=NOW,
        zone=ZONE,
        query=query or DashboardQuery(),
        currency="DKK",
        **kwargs,
    )


def text_of(page: str) -> str:
    """The page's text as a reader sees it: no tags, entities and spaces collapsed."""
    inline = re.sub(r"</?(strong|span)\b[^>]*>", "", page)
    without_tags = re.sub(r"<[^>]+>", " ", inline)
    return re.sub(r"\s+", " ", without_tags.replace("&amp;", "&").replace(NBSP, " "))


# --- the builder ------------------------------------------------------------------------------


def test_the_headline_is_the_windows_figures_of_the_whole() -> None:
    facts = many([10] * 40 + [8] * 20 + [3] * 20) + many(
        [10] * 20 + [3] * 20, 100, responded_at=NOW - timedelta(days=40)
    )
    responses, buckets = ledger(*facts)
    view = view_of(responses, buckets)
    expected = segment_figures(facts, buckets, ROLLING_30D, NOW, SurveyKind.NPS)[0].trend
    assert view.headline.segment == "Whole business"
    assert view.headline.score == Score(
        expected.current.nps, expected.current.margin_of_error, 80, insufficient=False
    )
    assert (view.headline.split.promoters, view.headline.split.detractors) == (40, 20)
    assert view.headline.change.delta == pytest.approx(25.0)
    assert view.headline.change.previous is not None
    assert view.headline.change.previous.nps == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("now_scores", "before_scores", "verdict"),
    [
        ([10] * 60 + [3] * 20, [10] * 20 + [3] * 60, Verdict.SIGNIFICANT),
        ([10] * 42 + [3] * 38, [10] * 40 + [3] * 40, Verdict.NOT_SIGNIFICANT),
        ([10] * 10, [3] * 10, Verdict.TOO_FEW),
        ([10] * 40, [], Verdict.NO_PREVIOUS),
    ],
    ids=["significant", "noise", "too-few", "no-previous"],
)
def test_a_change_is_judged_significant_only_when_it_is_more_than_noise(
    now_scores: list[int], before_scores: list[int], verdict: Verdict
) -> None:
    responses, buckets = ledger(
        *many(now_scores),
        *many(before_scores, 1000, responded_at=NOW - timedelta(days=45)),
    )
    assert view_of(responses, buckets).headline.change.verdict == verdict


def test_the_weekly_series_has_twelve_iso_weeks_ending_with_this_one_so_far() -> None:
    responses, buckets = ledger(
        *many([10, 10, 3], responded_at=NOW - timedelta(hours=1)),
        *many([9] * 31, 100, responded_at=NOW - timedelta(days=7)),
        *many([3], 200, responded_at=NOW - timedelta(days=100)),
    )
    (whole,) = view_of(responses, buckets).series
    assert whole.segment == "Whole business"
    assert [point.week for point in whole.points] == [
        "2025-W51",
        "2025-W52",
        *(f"2026-W{week:02d}" for week in range(1, 11)),
    ]
    assert whole.points[-1].week == "2026-W10" and whole.points[-1].so_far
    assert whole.points[-2].week == "2026-W09" and not whole.points[-2].so_far
    assert whole.points[-1].score.n == 3 and whole.points[-1].score.insufficient
    assert whole.points[-2].score == Score(100.0, 0.0, 31, insufficient=False)
    assert [point.score.nps for point in whole.points[:-2]] == [None] * 10


def test_cut_by_a_dimension_each_bucket_gets_a_chart_the_largest_first() -> None:
    facts = [
        *many([10] * 5, 0, segment={"store": "Aarhus"}),
        *many([10] * 9, 100, segment={"store": "Odense"}),
        *many([3] * 2, 200, segment={"store": "Vejle"}),
    ]
    responses, buckets = ledger(*facts)
    view = view_of(responses, buckets, DashboardQuery(dimension="store"))
    assert [series.segment for series in view.series] == [
        "Whole business",
        "store: Odense",
        "store: Aarhus",
        "store: Vejle",
    ]
    assert [row.segment for row in view.segments] == ["Aarhus", "Odense", "Vejle"]
    assert view.headline.segment == "Whole business"
    assert [choice.value for choice in view.choices.segments] == [
        "all",
        "Aarhus",
        "Odense",
        "Vejle",
        "other",
        "unspecified",
    ]


def test_no_more_than_a_handful_of_charts_and_the_page_says_how_many_are_left_out() -> None:
    stores = [f"store-{i}" for i in range(8)]
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("store",), max_values=20))
    facts = [fact(9, i, segment={"store": store}) for i, store in enumerate(stores)]
    for one in facts:
        buckets = buckets.admit(one.segment)
    view = view_of(ResponseLedger(facts), buckets, DashboardQuery(dimension="store"))
    assert len(view.series) == MAX_SERIES
    assert view.series_left_out == len(stores) - (MAX_SERIES - 1)
    assert f"{view.series_left_out} smaller segments are not drawn" in render_dashboard(view)


def test_a_chosen_segment_cuts_the_headline_themes_and_loop_health() -> None:
    aarhus = many([3, 3, 10], 0, segment={"store": "Aarhus"}, themes=("price",))
    odense = many([3, 9], 100, segment={"store": "Odense"}, themes=("delivery",))
    responses, buckets = ledger(*aarhus, *odense)
    cases = CaseLedger(
        CaseStep(
            f"e-{one.response_id}",
            f"c-{one.response_id}",
            one.response_id,
            CaseAction.OPENED,
            NOW - timedelta(hours=20),
            NOW + timedelta(hours=4),
        )
        for one in (*aarhus, *odense)
        if one.category == Category.DETRACTOR
    )
    view = view_of(responses, buckets, DashboardQuery(dimension="store", segment="Aarhus"), cases)
    assert view.headline.segment == "store: Aarhus"
    assert view.headline.score.n == 3
    assert [series.segment for series in view.series] == ["Whole business", "store: Aarhus"]
    promoters, detractors = view.themes
    assert [(row.label, row.responses) for row in detractors.rows] == [("Price", 2)]
    assert [(row.label, row.responses) for row in promoters.rows] == [("Price", 1)]
    assert (view.loop.opened, view.loop.open_now, view.loop.pending) == (2, 2, 2)
    assert [row.chosen for row in view.segments] == [True, False]


def test_a_segment_that_is_not_a_bucket_shows_the_whole_dimension_and_says_so() -> None:
    responses, buckets = ledger(*many([10], segment={"store": "Aarhus"}))
    view = view_of(responses, buckets, DashboardQuery(dimension="region", segment="Aarhus"))
    assert view.query.segment == "all"
    assert view.notice is not None and "“Aarhus” is not a region" in view.notice
    assert "“Aarhus” is not a region" in text_of(render_dashboard(view))


def test_an_unknown_window_or_dimension_is_refused() -> None:
    responses, buckets = ledger()
    with pytest.raises(ValueError, match="unknown window 'fortnight'"):
        view_of(responses, buckets, DashboardQuery(window="fortnight"))
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        view_of(responses, buckets, DashboardQuery(dimension="colour"))


def test_the_money_view_nets_refunds_and_puts_customers_in_quadrants() -> None:
    responses, buckets = ledger(fact(10, 1), fact(10, 2), fact(2, 3), fact(2, 4), fact(8, 5))
    spent = {"cust-1": "900", "cust-2": "100", "cust-3": "800", "cust-4": "50", "cust-9": "70"}
    purchases = [
        PurchaseFact(
            f"p-{customer}",
            customer,
            f"o-{customer}",
            Decimal(amount),
            "DKK",
            NOW - timedelta(days=30),
        )
        for customer, amount in spent.items()
    ]
    purchases.append(
        PurchaseFact(
            "refund", "cust-3", "o-cust-3", Decimal("-300"), "DKK", NOW - timedelta(days=2)
        )
    )
    money = view_of(responses, buckets, purchases=purchases).money
    assert money is not None
    assert {row.name: (row.customers, row.revenue) for row in money.quadrants} == {
        "fans": (1, Decimal("900")),
        "habit": (1, Decimal("100")),
        "shoppers": (1, Decimal("500")),
        "last_chance": (1, Decimal("50")),
    }
    assert money.without_response.customers == 1
    assert money.median_revenue == Decimal("100")


def test_employee_nps_has_no_money_view_and_hides_the_themes_of_small_groups() -> None:
    responses, buckets = ledger(
        *many([10] * 6 + [3] * 2, survey_kind=SurveyKind.ENPS, themes=("price",))
    )
    view = view_of(responses, buckets, DashboardQuery(survey_kind=SurveyKind.ENPS))
    assert view.money is None
    promoters, detractors = view.themes
    assert promoters.rows and not promoters.withheld
    assert detractors.withheld and not detractors.rows
    page = text_of(render_dashboard(view))
    assert "Fewer than 5 detractors in this window: their themes are not shown." in page
    assert "The money view is about customers; employee NPS has none." in page


# --- the renderer -----------------------------------------------------------------------------


def test_an_empty_ledger_says_so_in_words() -> None:
    responses, buckets = ledger()
    page = text_of(render_dashboard(view_of(responses, buckets)))
    assert "No responses in this window yet." in page
    assert "No responses in the last 12 weeks yet." in page
    assert "No cases opened in this window." in page
    assert "No customer has answered yet" in page
    assert "No promoters in this window yet." in page


def test_the_band_is_drawn_from_nps_plus_and_minus_the_margin_of_error() -> None:
    points = (
        WeekPoint("2026-W08", Score(20.0, 10.0, 40, False)),
        WeekPoint("2026-W09", Score(40.0, 5.0, 90, False)),
        WeekPoint("2026-W10", Score(30.0, 15.0, 12, True), so_far=True),
    )
    scale = scale_for(points)
    (polygon,) = band_points(points, scale)
    corners = [tuple(map(float, corner.split(","))) for corner in polygon.split()]
    expected = [
        (scale.x(0), scale.y(30.0)),
        (scale.x(1), scale.y(45.0)),
        (scale.x(2), scale.y(45.0)),
        (scale.x(2), scale.y(15.0)),
        (scale.x(1), scale.y(35.0)),
        (scale.x(0), scale.y(10.0)),
    ]
    assert corners == [pytest.approx((round(x, 1), round(y, 1))) for x, y in expected]
    # Higher NPS is higher on the chart, and every band fits the chart's range.
    assert scale.y(45.0) < scale.y(10.0)
    assert scale.low <= 10.0 and scale.high >= 45.0


def test_the_rendered_chart_holds_the_band_the_line_and_a_hollow_point_for_a_small_week() -> None:
    points = (
        WeekPoint("2026-W09", Score(40.0, 5.0, 90, False)),
        WeekPoint("2026-W10", Score(30.0, 15.0, 12, True), so_far=True),
    )
    responses, buckets = ledger(*many([10] * 3))
    view = replace(view_of(responses, buckets), series=(Series("Whole business", points),))
    page = render_dashboard(view)
    (polygon,) = band_points(points, scale_for(points))
    assert f"<polygon class='band' points='{polygon}'" in page
    assert "<polyline class='line'" in page
    assert page.count(f"fill='{PAPER}' stroke='{LINE}'") == 1  # the week of 12 is hollow
    assert "<title id='series-0-t'>NPS week by week, Whole business</title>" in page
    assert "2026-W10 (so far)" in page


def test_a_band_breaks_where_a_week_has_no_responses() -> None:
    empty = Score(None, None, 0, True)
    points = (
        WeekPoint("W1", Score(10.0, 5.0, 50, False)),
        WeekPoint("W2", empty),
        WeekPoint("W3", Score(20.0, 5.0, 50, False)),
        WeekPoint("W4", Score(30.0, 5.0, 50, False)),
    )
    lone, pair = band_points(points, scale_for(points))
    assert len(lone.split()) == 4  # a lone week is a short bar
    assert len(pair.split()) == 4


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            ChangeView(Score(20.0, 8.0, 200, False), 12.4, Verdict.SIGNIFICANT),
            "Up 12 points from 20 in the previous period. "
            "Significant: more than the noise, at 95% confidence.",
        ),
        (
            ChangeView(Score(20.0, 8.0, 200, False), -1.0, Verdict.NOT_SIGNIFICANT),
            "Down 1 point from 20 in the previous period. "
            "Not significant: within the noise of the two samples.",
        ),
        (
            ChangeView(Score(-5.0, 30.0, 12, True), 0.3, Verdict.TOO_FEW),
            "Unchanged from the previous period (−5). "
            "Too few responses to tell: fewer than 30 responses in one of the two periods.",
        ),
        (
            ChangeView(None, None, Verdict.NO_PREVIOUS),
            "Nothing to compare with: the previous period has no responses to show.",
        ),
    ],
    ids=["significant", "not-significant", "too-few", "no-previous"],
)
def test_the_change_and_its_significance_are_said_in_words(change: ChangeView, words: str) -> None:
    assert change_sentence(change) == words


def test_the_headline_shows_nps_with_its_margin_and_the_verdict() -> None:
    responses, buckets = ledger(
        *many([10] * 60 + [3] * 20),
        *many([10] * 20 + [3] * 60, 1000, responded_at=NOW - timedelta(days=45)),
    )
    view = view_of(responses, buckets)
    page = text_of(render_dashboard(view))
    assert f"{score_text(view.headline.score)} NPS on 80 responses".replace(NBSP, " ") in page
    assert "Up 100 points from −50 in the previous period. Significant:" in page
    assert score_text(Score(50.0, 17.3, 80, False)) == f"50{NBSP}±{NBSP}17"


def test_everything_from_outside_is_escaped() -> None:
    hostile = "<script>alert('x')</script>&\"'"
    responses, buckets = ledger(
        *many([3] * 6, segment={"store": hostile}, themes=("price",)),
    )
    view = view_of(responses, buckets, DashboardQuery(dimension="store", segment=hostile))
    view = replace(view, notice=hostile)
    page = render_dashboard(view)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;&#x27;" in page
    bad = render_bad_query(f"There is no window “{hostile}”.")
    assert "<script" not in bad and "&lt;script&gt;" in bad


def test_the_page_is_a_whole_document_with_headings_and_a_form_of_labelled_lists() -> None:
    responses, buckets = ledger(*many([10, 9, 8, 3]))
    page = render_dashboard(view_of(responses, buckets))
    assert page.startswith("<!doctype html><html lang='en'>")
    assert "<meta name='viewport' content='width=device-width,initial-scale=1'>" in page
    assert "<script" not in page
    assert re.findall(r"<h2 id='(\w[\w-]*)'>", page) == [
        "now",
        "weekly",
        "split",
        "themes",
        "loop",
        "money",
    ]
    assert "<form method='get'" in page
    for name in ("window", "kind", "dimension", "segment"):
        assert f"<label for='{name}'>" in page and f"<select id='{name}' name='{name}'>" in page
    assert "<option value='30d' selected>Last 30 days</option>" in page


def contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_colour_of_text_and_of_the_charts_has_a_contrast_of_at_least_4_5() -> None:
    pairs = [(INK, PAPER), (INK, PAGE), (MUTED, PAPER), (MUTED, PAGE), (PAPER, LINE)]
    pairs += [(colour, PAPER) for colour in CATEGORY_COLOURS.values()]
    assert [pair for pair in pairs if contrast(*pair) < 4.5] == []


def test_the_rules_minimum_sample_is_the_one_the_page_names() -> None:
    responses, buckets = ledger(*many([10] * 12))
    view = view_of(responses, buckets, rules=Rules(min_sample=10))
    assert not view.headline.score.insufficient
    view = view_of(responses, buckets, rules=Rules(min_sample=50))
    assert "Fewer than 50 responses" in text_of(render_dashboard(view))
