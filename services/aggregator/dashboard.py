"""The dashboard page: what the figures say, in one server-rendered HTML document. Pure.

Two steps, both without I/O. ``dashboard_view`` reads the aggregator's ledgers through
the domain functions (``segment_figures``, ``themes_by_category``, ``loop_health``,
``loyalty_by_value``) into a ``DashboardView``, a tree of frozen records of plain data.
``render_dashboard`` turns a view into HTML: charts are inline SVG drawn on the server,
each with a title, a description and a table of the same figures, so the page needs no
JavaScript and reads the same to a screen reader. Everything from outside (segment
values, theme labels, the currency) is HTML-escaped where it is interpolated.

A chart of weekly NPS draws each week's 95% margin of error as a shaded band around the
line: a week whose band overlaps the next one's may differ by noise alone. A hollow
point marks a week on fewer responses than the minimum sample.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum

from services.aggregator.domain import (
    DEFAULT_RULES,
    MIN_SAMPLE,
    AnyWindow,
    Figures,
    Period,
    Rules,
    Trend,
    all_windows,
    iso_week,
    week_label,
)
from services.aggregator.figures import (
    ALL,
    WHOLE,
    SegmentKey,
    count_by_segment,
    segment_figures,
    shown,
)
from services.aggregator.insights import CategoryThemes, themes_by_category
from services.aggregator.loop_health import CaseHistory, LoopHealth, loop_health
from services.aggregator.money import LoyaltyByValue, MoneyGroup, PurchaseFact, loyalty_by_value
from services.aggregator.responses import ResponseFact, ResponseLedger
from services.aggregator.segments import OTHER, UNSPECIFIED, SegmentBuckets
from shared.events import SurveyKind
from shared.nps import Category, Counts

WEEKS = 12
"""How many ISO weeks the NPS chart covers, the current one (so far) the last."""

MAX_SERIES = 6
"""Charts drawn at most: the whole and the largest segments of the chosen dimension."""

DEFAULT_WINDOW = "30d"

WINDOW_LABELS = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "week": "This week so far",
    "last_week": "Last week",
}

SURVEY_KIND_LABELS = {
    SurveyKind.NPS: "Customers (NPS)",
    SurveyKind.ENPS: "Employees (eNPS)",
}


# --- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardQuery:
    """What the page is asked to show: a window, a survey kind and a cut of the responses.

    ``dimension`` ``all`` is the whole business; with a dimension, ``segment`` ``all``
    shows each of its buckets side by side, a bucket shows that bucket alone.
    """

    window: str = DEFAULT_WINDOW
    survey_kind: SurveyKind = SurveyKind.NPS
    dimension: str = ALL
    segment: str = ALL


@dataclass(frozen=True)
class Score:
    """NPS as shown: the score, its 95% margin of error, on how many responses."""

    nps: float | None
    margin_of_error: float | None
    n: int
    insufficient: bool

    @classmethod
    def of(cls, figures: Figures) -> Score:
        return cls(
            figures.nps, figures.margin_of_error, figures.counts.n, figures.insufficient_sample
        )


class Verdict(StrEnum):
    """Whether a change since the previous period is more than noise."""

    SIGNIFICANT = "significant"
    NOT_SIGNIFICANT = "not_significant"
    TOO_FEW = "too_few"
    NO_PREVIOUS = "no_previous"


@dataclass(frozen=True)
class ChangeView:
    """The previous period's score, the change in points and the verdict on it."""

    previous: Score | None
    delta: float | None
    verdict: Verdict

    @classmethod
    def of(cls, trend: Trend) -> ChangeView:
        previous = None if trend.previous is None else Score.of(trend.previous)
        if trend.previous is None or trend.change is None:
            return cls(previous, None, Verdict.NO_PREVIOUS)
        if trend.significant:
            verdict = Verdict.SIGNIFICANT
        elif trend.current.insufficient_sample or trend.previous.insufficient_sample:
            verdict = Verdict.TOO_FEW
        else:
            verdict = Verdict.NOT_SIGNIFICANT
        return cls(previous, trend.change.delta, verdict)


@dataclass(frozen=True)
class Headline:
    """The chosen cut in the chosen window: its NPS, the change and the category split."""

    segment: str
    score: Score
    change: ChangeView
    split: Counts


@dataclass(frozen=True)
class WeekPoint:
    """One ISO week of a series; ``so_far`` for the week still running."""

    week: str
    score: Score
    so_far: bool = False


@dataclass(frozen=True)
class Series:
    """A segment's NPS week by week, oldest first."""

    segment: str
    points: tuple[WeekPoint, ...]


@dataclass(frozen=True)
class SegmentRow:
    """One bucket of the chosen dimension in the chosen window."""

    segment: str
    score: Score
    change: ChangeView
    chosen: bool = False


@dataclass(frozen=True)
class ThemeRow:
    label: str
    responses: int
    share: float


@dataclass(frozen=True)
class ThemeList:
    """The most named themes of one category; ``withheld`` when the group is too small to show."""

    category: Category
    responses: int
    rows: tuple[ThemeRow, ...]
    withheld: bool = False


@dataclass(frozen=True)
class Timing:
    """How long one step of the loop took: the cases that took it, median and 95th percentile."""

    step: str
    cases: int
    median: timedelta | None
    p95: timedelta | None


@dataclass(frozen=True)
class LoopView:
    """Loop health of the cases opened in the window, and the open and breached cases now."""

    opened: int = 0
    within_sla: int = 0
    missed_sla: int = 0
    pending: int = 0
    open_now: int = 0
    breached_now: int = 0
    timings: tuple[Timing, ...] = ()

    @property
    def share_within_sla(self) -> float | None:
        decided = self.within_sla + self.missed_sla
        return None if decided == 0 else self.within_sla / decided


@dataclass(frozen=True)
class MoneyView:
    """Trailing-year revenue by category and the quadrants of loyalty by value."""

    currency: str
    median_revenue: Decimal | None
    by_category: tuple[MoneyGroup, ...]
    quadrants: tuple[MoneyGroup, ...]
    without_response: MoneyGroup
    other_currency_events: int = 0


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Choices:
    """The options of the form's four lists."""

    windows: tuple[Choice, ...]
    survey_kinds: tuple[Choice, ...]
    dimensions: tuple[Choice, ...]
    segments: tuple[Choice, ...]


@dataclass(frozen=True)
class DashboardView:
    """Everything the dashboard page shows, as plain data."""

    query: DashboardQuery
    choices: Choices
    as_of: datetime
    period: Period
    zone_name: str
    headline: Headline
    series: tuple[Series, ...]
    themes: tuple[ThemeList, ThemeList]
    loop: LoopView
    money: MoneyView | None
    segments: tuple[SegmentRow, ...] = ()
    series_left_out: int = 0
    notice: str | None = None
    min_sample: int = DEFAULT_RULES.min_sample
    min_group: int = 1


# --- from the domain to the view -------------------------------------------------------------


def window_named(name: str, zone: tzinfo) -> AnyWindow:
    """The reported window of that name; ValueError naming the known ones otherwise."""
    windows = {window.name: window for window in all_windows(zone)}
    if name not in windows:
        raise ValueError(f"unknown window {name!r}; the windows are {', '.join(windows)}")
    return windows[name]


def weeks_until(now: datetime, zone: tzinfo, weeks: int = WEEKS) -> tuple[Period, ...]:
    """The last ``weeks`` ISO weeks, oldest first; the current one ends at ``now``."""
    current = iso_week(now, zone)
    periods = [Period(current.start, now)]
    while len(periods) < weeks:
        periods.append(iso_week(periods[-1].start - timedelta(days=1), zone))
    return tuple(reversed(periods))


def weekly_counts(
    facts: Iterable[ResponseFact],
    buckets: SegmentBuckets,
    weeks: Sequence[Period],
    survey_kind: SurveyKind,
    rules: Rules = DEFAULT_RULES,
) -> list[dict[SegmentKey, Counts]]:
    """Each week's counts by segment, with the groups too small to show left out (eNPS)."""
    facts = list(facts)
    k = rules.min_group(survey_kind)
    return [shown(count_by_segment(facts, buckets, week, survey_kind), k) for week in weeks]


def segment_name(key: SegmentKey) -> str:
    """A segment as a person reads it: ``Whole business``, ``store: Aarhus``."""
    if key == WHOLE:
        return "Whole business"
    return f"{dimension_label(key.dimension).lower()}: {bucket_label(key.bucket)}"


def dimension_label(dimension: str) -> str:
    return "Whole business" if dimension == ALL else dimension.replace("_", " ").capitalize()


def bucket_label(bucket: str) -> str:
    return {OTHER: "other (all the rest)", UNSPECIFIED: "not specified"}.get(bucket, bucket)


def _in_segment(fact: ResponseFact, buckets: SegmentBuckets, key: SegmentKey) -> bool:
    return key == WHOLE or buckets.bucket(key.dimension, fact.segment.get(key.dimension)) == (
        key.bucket
    )


def _theme_list(themes: CategoryThemes, k: int) -> ThemeList:
    return ThemeList(
        themes.category,
        themes.responses,
        tuple(ThemeRow(row.theme.label, row.responses, row.share) for row in themes.top),
        withheld=0 < themes.responses < k,
    )


def _chosen(query: DashboardQuery, buckets: SegmentBuckets) -> tuple[SegmentKey, str | None]:
    """The segment the page is about, and a notice when the one asked for has no bucket."""
    if query.dimension == ALL or query.segment == ALL:
        return WHOLE, None
    if query.segment in buckets.labels(query.dimension):
        return SegmentKey(query.dimension, query.segment), None
    dimension = dimension_label(query.dimension).lower()
    return WHOLE, (
        f"“{query.segment}” is not a {dimension} with figures of its own; "
        f"showing every {dimension}."
    )


def _weekly_series(
    facts: Sequence[ResponseFact],
    buckets: SegmentBuckets,
    query: DashboardQuery,
    chosen: SegmentKey,
    periods: Sequence[Period],
    zone: tzinfo,
    rules: Rules,
) -> tuple[tuple[Series, ...], int]:
    """The weekly series to draw, and how many segments of the dimension are left out.

    The whole always; beside it the chosen segment, or with a dimension and no segment
    chosen, its largest buckets over the weeks shown.
    """
    by_week = weekly_counts(facts, buckets, periods, query.survey_kind, rules)
    left_out = 0
    if query.dimension == ALL:
        keys = [WHOLE]
    elif chosen != WHOLE:
        keys = [WHOLE, chosen]
    else:
        seen: dict[SegmentKey, int] = {}
        for week in by_week:
            for key, value in week.items():
                if key.dimension == query.dimension:
                    seen[key] = seen.get(key, 0) + value.n
        # The largest first; by name among equals, so that the page does not depend on order.
        ranked = sorted(seen, key=lambda key: (-seen[key], key.bucket))
        keys = [WHOLE, *ranked[: MAX_SERIES - 1]]
        left_out = len(ranked) - (len(keys) - 1)
    series = tuple(
        Series(
            segment_name(key),
            tuple(
                WeekPoint(
                    week_label(period, zone),
                    Score.of(Figures.of(week.get(key, Counts()), rules.min_sample)),
                    # The last week is the one still running: it ends now.
                    so_far=index == len(periods) - 1,
                )
                for index, (period, week) in enumerate(zip(periods, by_week, strict=True))
            ),
        )
        for key in keys
    )
    return series, left_out


def _loop_view(health: LoopHealth) -> LoopView:
    return LoopView(
        opened=health.opened,
        within_sla=health.within_sla,
        missed_sla=health.missed_sla,
        pending=health.pending,
        open_now=health.open_now,
        breached_now=health.breached_now,
        timings=tuple(
            Timing(step, durations.count, durations.median, durations.p95)
            for step, durations in (
                ("Claimed", health.time_to_claim),
                ("Contacted", health.time_to_contact),
                ("Resolved", health.time_to_resolve),
            )
        ),
    )


def _money_view(loyalty: LoyaltyByValue) -> MoneyView:
    return MoneyView(
        currency=loyalty.currency,
        median_revenue=loyalty.median_revenue,
        by_category=tuple(
            MoneyGroup.of(category.value, group) for category, group in loyalty.by_category.items()
        ),
        quadrants=tuple(
            MoneyGroup.of(quadrant.value, group) for quadrant, group in loyalty.quadrants.items()
        ),
        without_response=MoneyGroup.of("without_response", loyalty.without_response),
        other_currency_events=loyalty.other_currency_events,
    )


def _choices(query: DashboardQuery, buckets: SegmentBuckets, zone: tzinfo) -> Choices:
    segments = [Choice(ALL, "All")]
    if query.dimension != ALL:
        segments += [Choice(b, bucket_label(b)) for b in buckets.labels(query.dimension)]
    return Choices(
        windows=tuple(
            Choice(window.name, WINDOW_LABELS.get(window.name, window.name))
            for window in all_windows(zone)
        ),
        survey_kinds=tuple(Choice(kind.value, SURVEY_KIND_LABELS[kind]) for kind in SurveyKind),
        dimensions=(
            Choice(ALL, dimension_label(ALL)),
            *(Choice(name, dimension_label(name)) for name in buckets.policy.dimensions),
        ),
        segments=tuple(segments),
    )


def dashboard_view(
    *,
    responses: ResponseLedger,
    cases: Iterable[CaseHistory],
    purchases: Iterable[PurchaseFact],
    buckets: SegmentBuckets,
    now: datetime,
    zone: tzinfo,
    query: DashboardQuery,
    currency: str,
    rules: Rules = DEFAULT_RULES,
    weeks: int = WEEKS,
) -> DashboardView:
    """The dashboard of a window, survey kind and cut, from the aggregator's ledgers.

    ``cases`` are the case histories (``CaseLedger.histories()``); loop health counts the
    cases of responses in the chosen cut that were opened in the window. The money view is
    of every customer over the trailing year, whatever the cut, and only for NPS.
    A segment that is not a bucket of the dimension shows the whole dimension, with a
    notice that says so. Raises ValueError for an unknown window or dimension.
    """
    window = window_named(query.window, zone)
    kind = query.survey_kind
    if query.dimension != ALL and query.dimension not in buckets.policy.dimensions:
        raise ValueError(
            f"unknown dimension {query.dimension!r}; "
            f"the dimensions are {', '.join(buckets.policy.dimensions)}"
        )
    chosen, notice = _chosen(query, buckets)
    facts = [fact for fact in responses if fact.survey_kind == kind]
    period = window.period(now)

    figures = segment_figures(facts, buckets, window, now, kind, rules)
    trend = next(
        (row.trend for row in figures if row.segment == chosen),
        Trend.of(Figures.of(Counts(), rules.min_sample), None),
    )
    headline = Headline(
        segment_name(chosen), Score.of(trend.current), ChangeView.of(trend), trend.current.counts
    )
    segments = tuple(
        SegmentRow(
            bucket_label(row.segment.bucket),
            Score.of(row.trend.current),
            ChangeView.of(row.trend),
            chosen=row.segment == chosen,
        )
        for row in figures
        if query.dimension != ALL and row.segment.dimension == query.dimension
    )
    series, left_out = _weekly_series(
        facts, buckets, query, chosen, weeks_until(now, zone, weeks), zone, rules
    )

    cut = [fact for fact in facts if _in_segment(fact, buckets, chosen)]
    k = rules.min_group(kind)
    themes = {
        row.category: _theme_list(row, k) for row in themes_by_category(cut, period, kind, 5, rules)
    }
    in_cut = {fact.response_id for fact in cut}
    health = loop_health((case for case in cases if case.response_id in in_cut), period, now)
    money = None
    if kind == SurveyKind.NPS:
        categories = responses.latest_by_customer(SurveyKind.NPS)
        money = _money_view(loyalty_by_value(purchases, categories, now, currency))

    return DashboardView(
        query=DashboardQuery(query.window, kind, query.dimension, chosen.bucket),
        choices=_choices(query, buckets, zone),
        as_of=now.astimezone(zone),
        period=period,
        zone_name=str(zone),
        headline=headline,
        series=series,
        themes=(themes[Category.PROMOTER], themes[Category.DETRACTOR]),
        loop=_loop_view(health),
        money=money,
        segments=segments,
        series_left_out=left_out,
        notice=notice,
        min_sample=rules.min_sample,
        min_group=k,
    )


# --- the chart's geometry --------------------------------------------------------------------

CHART_WIDTH = 480
CHART_HEIGHT = 240


@dataclass(frozen=True)
class Scale:
    """Where a week and an NPS fall on a chart: week index to x, points to y (SVG units)."""

    count: int
    low: float
    high: float
    left: float = 52.0
    right: float = 28.0
    top: float = 12.0
    bottom: float = 40.0

    def x(self, index: int) -> float:
        width = CHART_WIDTH - self.left - self.right
        if self.count <= 1:
            return self.left + width / 2
        return self.left + index * width / (self.count - 1)

    def y(self, value: float) -> float:
        height = CHART_HEIGHT - self.top - self.bottom
        return self.top + (self.high - value) / (self.high - self.low) * height

    def ticks(self) -> tuple[int, ...]:
        span = self.high - self.low
        step = 10 if span <= 60 else 20 if span <= 120 else 50
        first = math.ceil(self.low / step) * step
        return tuple(range(int(first), int(self.high) + 1, step))


def _bounds(score: Score) -> tuple[float, float] | None:
    """The band of a point: NPS minus and plus its margin of error, within -100..100."""
    if score.nps is None:
        return None
    margin = score.margin_of_error or 0.0
    return max(score.nps - margin, -100.0), min(score.nps + margin, 100.0)


def scale_for(points: Sequence[WeekPoint]) -> Scale:
    """A y range that holds every band, in tens, at least 40 points tall, within -100..100."""
    bands = [band for band in (_bounds(point.score) for point in points) if band is not None]
    if not bands:
        return Scale(len(points), -100.0, 100.0)
    low = max(math.floor(min(band[0] for band in bands) / 10) * 10, -100)
    high = min(math.ceil(max(band[1] for band in bands) / 10) * 10, 100)
    while high - low < 40:
        low, high = max(low - 10, -100), min(high + 10, 100)
    return Scale(len(points), float(low), float(high))


def _runs(points: Sequence[WeekPoint]) -> list[list[int]]:
    """Consecutive weeks with a score: a week without one breaks the line and the band."""
    runs: list[list[int]] = []
    current: list[int] = []
    for index, point in enumerate(points):
        if point.score.nps is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(index)
    if current:
        runs.append(current)
    return runs


def _xy(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


def band_points(points: Sequence[WeekPoint], scale: Scale) -> list[str]:
    """The polygons of the margin-of-error band: along NPS+MoE, then back along NPS-MoE."""
    polygons = []
    for run in _runs(points):
        upper, lower = [], []
        for index in run:
            bounds = _bounds(points[index].score)
            assert bounds is not None
            # A lone week is a short bar, so that its band is still seen.
            xs = [scale.x(index)] if len(run) > 1 else [scale.x(index) - 5, scale.x(index) + 5]
            upper += [_xy(x, scale.y(bounds[1])) for x in xs]
            lower += [_xy(x, scale.y(bounds[0])) for x in xs]
        polygons.append(" ".join(upper + lower[::-1]))
    return polygons


# --- rendering -------------------------------------------------------------------------------

INK = "#1b1f24"
MUTED = "#4b5563"
PAPER = "#ffffff"
PAGE = "#eef1f5"
LINE = "#0b5cad"
BAND = "#cfe2ff"
CATEGORY_COLOURS = {
    Category.PROMOTER: "#116329",
    Category.PASSIVE: "#5c6670",
    Category.DETRACTOR: "#b42318",
}
CATEGORY_NAMES = {
    Category.PROMOTER: "Promoters",
    Category.PASSIVE: "Passives",
    Category.DETRACTOR: "Detractors",
}
QUADRANTS = {
    "fans": ("Fans", "promoters who spend more than the median"),
    "habit": ("Habit", "promoters who spend the median or less"),
    "shoppers": ("Shoppers", "detractors who spend more than the median"),
    "last_chance": ("Last chance", "detractors who spend the median or less"),
}

_CSS = (
    f"*{{box-sizing:border-box}}body{{font:16px/1.5 system-ui,sans-serif;color:{INK};"
    f"background:{PAGE};margin:0}}"
    "main{max-width:72rem;margin:0 auto;padding:1rem}"
    "h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.25rem;margin:0 0 .5rem}"
    "h3{font-size:1.05rem;margin:.75rem 0 .25rem}"
    f"section,form{{background:{PAPER};border-radius:.5rem;padding:1rem;margin:0 0 1rem}}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr));"
    "gap:1rem}.grid>*{min-width:0}"
    "form{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,11rem),1fr));"
    "gap:.75rem;align-items:end}"
    "label{display:block;font-weight:600}"
    f"select,button{{font:inherit;min-height:44px;width:100%;padding:.4rem;color:{INK};"
    f"background:{PAPER};border:1px solid {MUTED};border-radius:.35rem}}"
    f"button{{background:{LINE};color:{PAPER};border-color:{LINE};font-weight:600}}"
    f":focus-visible{{outline:3px solid {LINE};outline-offset:2px}}"
    f".muted{{color:{MUTED}}}.big{{font-size:2.4rem;font-weight:700;line-height:1.1}}"
    ".verdict{font-weight:700}"
    "figure{margin:0}svg{display:block;width:100%;height:auto;max-width:40rem}"
    "svg.bar{max-width:none;height:2.5rem;margin:0 0 .5rem}"
    "caption{text-align:left}"
    ".swatch{display:inline-block;width:.9rem;height:.9rem;margin-right:.4rem;"
    "vertical-align:-.1rem;border-radius:.15rem}"
    + "".join(f".swatch.{c.value}{{background:{colour}}}" for c, colour in CATEGORY_COLOURS.items())
    + "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #d1d5db;"
    "overflow-wrap:break-word;vertical-align:top}"
    # A segment's name may break anywhere, but only once it is longer than the column's
    # minimum: a long name must not push the page sideways on a phone.
    "td.n,th.n{text-align:right}.segments th[scope=row]{min-width:7rem;overflow-wrap:anywhere}"
    "@media (max-width:30rem){main{padding:.5rem}section,form{padding:.75rem}"
    "table{font-size:.9rem}th,td{padding:.3rem .25rem}}"
    "tr.chosen th,tr.chosen td{font-weight:700}"
    "summary{cursor:pointer;min-height:44px;padding:.6rem 0}"
    "ol,ul{padding-left:1.25rem;margin:.25rem 0}"
    ".quadrants{list-style:none;padding:0;display:grid;"
    "grid-template-columns:repeat(auto-fit,minmax(min(100%,14rem),1fr));gap:.75rem}"
    ".quadrants li{border:1px solid #d1d5db;border-radius:.35rem;padding:.6rem}"
    f"[role=status]{{border-left:4px solid {LINE};padding:.5rem .75rem;background:{PAPER};"
    "margin:0 0 1rem}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _points(value: float) -> str:
    """NPS in whole points; never ``-0``."""
    return str(round(value)).replace("-", "−")


def _signed(value: float) -> str:
    whole = round(value)
    return "±0" if whole == 0 else (f"+{whole}" if whole > 0 else f"−{-whole}")


def _share(value: float | None) -> str:
    return "–" if value is None else f"{round(100 * value)}%"


def _money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "–"
    return f"{amount:,.0f} {currency}".replace("-", "−")


def _duration(span: timedelta | None) -> str:
    if span is None:
        return "–"
    minutes = round(span.total_seconds() / 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    # Two units at most, the largest first; a number and its unit never wrap apart.
    shown = [f"{amount}\u00a0{unit}" for amount, unit in parts if amount][:2]
    return " ".join(shown)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def score_text(score: Score) -> str:
    """``32 ± 6`` (the margin of error in points), or a dash without responses."""
    if score.nps is None:
        return "–"
    # No-break spaces: a score and its margin never wrap apart.
    margin = "" if score.margin_of_error is None else f"\u00a0±\u00a0{round(score.margin_of_error)}"
    return f"{_points(score.nps)}{margin}"


def verdict_words(change: ChangeView) -> str:
    """The verdict in a few words, as the page prints it beside the change."""
    return {
        Verdict.SIGNIFICANT: "significant",
        Verdict.NOT_SIGNIFICANT: "not significant",
        Verdict.TOO_FEW: "too few responses to tell",
        Verdict.NO_PREVIOUS: "nothing to compare with",
    }[change.verdict]


def change_parts(change: ChangeView, min_sample: int = MIN_SAMPLE) -> tuple[str, str, str]:
    """The movement since the previous period, the verdict, and why, as three phrases."""
    why = {
        Verdict.SIGNIFICANT: "more than the noise, at 95% confidence.",
        Verdict.NOT_SIGNIFICANT: "within the noise of the two samples.",
        Verdict.TOO_FEW: f"fewer than {min_sample} responses in one of the two periods.",
        Verdict.NO_PREVIOUS: "the previous period has no responses to show.",
    }[change.verdict]
    if change.delta is None or change.previous is None or change.previous.nps is None:
        return ("", verdict_words(change), why)
    before = _points(change.previous.nps)
    whole = round(change.delta)
    if whole == 0:
        moved = f"Unchanged from the previous period ({before})."
    else:
        direction = "Up" if whole > 0 else "Down"
        unit = "point" if abs(whole) == 1 else "points"
        moved = f"{direction} {abs(whole)} {unit} from {before} in the previous period."
    return (moved, verdict_words(change), why)


def change_sentence(change: ChangeView, min_sample: int = MIN_SAMPLE) -> str:
    """The change since the previous period, and whether it is more than noise, in words."""
    moved, verdict, why = change_parts(change, min_sample)
    return f"{moved} {verdict.capitalize()}: {why}".strip()


def _select(name: str, label: str, options: Sequence[Choice], chosen: str) -> str:
    items = "".join(
        f"<option value='{_e(option.value)}'{' selected' if option.value == chosen else ''}>"
        f"{_e(option.label)}</option>"
        for option in options
    )
    return (
        f"<div><label for='{name}'>{_e(label)}</label>"
        f"<select id='{name}' name='{name}'>{items}</select></div>"
    )


def _form(view: DashboardView) -> str:
    query, choices = view.query, view.choices
    return (
        "<form method='get' aria-label='What to show'>"
        + _select("window", "Window", choices.windows, query.window)
        + _select("kind", "Survey", choices.survey_kinds, query.survey_kind.value)
        + _select("dimension", "Cut by", choices.dimensions, query.dimension)
        + _select("segment", "Segment", choices.segments, query.segment)
        + "<div><button type='submit'>Show</button></div></form>"
    )


def _headline(view: DashboardView) -> str:
    headline = view.headline
    window = WINDOW_LABELS.get(view.query.window, view.query.window)
    title = f"<h2 id='now'>NPS now: {_e(headline.segment)}, {_e(window.lower())}</h2>"
    if headline.score.n == 0:
        return (
            f"<section aria-labelledby='now'>{title}"
            "<p class='empty'>No responses in this window yet.</p></section>"
        )
    score = headline.score
    moved, verdict, why = change_parts(headline.change, view.min_sample)
    flag = (
        f"<p class='muted'>Fewer than {view.min_sample} responses: "
        "read this as a hint, not a level.</p>"
        if score.insufficient
        else ""
    )
    return (
        f"<section aria-labelledby='now'>{title}"
        f"<p><span class='big' id='nps'>{_e(score_text(score))}</span> "
        f"<span class='muted'>NPS on {score.n} responses; ± is the 95% margin of error</span></p>"
        f"{flag}<p id='change'>{_e(moved)} <strong class='verdict'>{_e(verdict.capitalize())}"
        f"</strong>: {_e(why)}</p></section>"
    )


def _figures_table(caption: str, head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    header = "".join(
        f"<th scope='col'{'' if i == 0 else ' class=n'}>{_e(h)}</th>" for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<th scope='row'>{_e(cell)}</th>" if i == 0 else f"<td class=n>{_e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><caption class='muted'>{_e(caption)}</caption><thead><tr>{header}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _week_chart(series: Series, index: int, min_sample: int) -> str:
    points = series.points
    chart_id = f"series-{index}"
    shown_points = [point for point in points if point.score.nps is not None]
    table = _figures_table(
        f"NPS week by week, {series.segment}",
        ("Week", "NPS", "± MoE", "Responses"),
        (
            (
                point.week + (" (so far)" if point.so_far else ""),
                "–" if point.score.nps is None else _points(point.score.nps),
                "–"
                if point.score.margin_of_error is None
                else f"{round(point.score.margin_of_error)}",
                str(point.score.n),
            )
            for point in points
        ),
    )
    heading = f"<h3 id='{chart_id}-h'>{_e(series.segment)}</h3>"
    if not shown_points:
        return (
            f"<figure aria-labelledby='{chart_id}-h' class='chart'>{heading}"
            f"<p class='empty'>No responses in the last {len(points)} weeks yet.</p></figure>"
        )
    scale = scale_for(points)
    last = shown_points[-1]
    description = (
        f"Weekly NPS from {points[0].week} to {points[-1].week}. "
        f"Latest week with responses, {last.week}: {score_text(last.score)} "
        f"on {last.score.n} responses. The shaded band is the 95% margin of error; "
        f"hollow points are weeks on fewer than {min_sample} responses."
    )
    grid = "".join(
        f"<line x1='{scale.left}' x2='{CHART_WIDTH - scale.right}' y1='{scale.y(tick):.1f}' "
        f"y2='{scale.y(tick):.1f}' stroke='{'#6b7280' if tick == 0 else '#d1d5db'}' "
        f"stroke-width='1'/>"
        f"<text x='{scale.left - 6}' y='{scale.y(tick) + 5:.1f}' text-anchor='end'>"
        f"{_points(tick)}</text>"
        for tick in scale.ticks()
    )
    every = 1 if len(points) <= 6 else 2
    labels = "".join(
        f"<text x='{scale.x(i):.1f}' y='{CHART_HEIGHT - 14}' text-anchor='middle'>"
        f"{_e(point.week.split('-')[-1])}</text>"
        for i, point in enumerate(points)
        if (len(points) - 1 - i) % every == 0
    )
    bands = "".join(
        f"<polygon class='band' points='{polygon}' fill='{BAND}' stroke='{LINE}' "
        "stroke-width='1' stroke-dasharray='3 3'/>"
        for polygon in band_points(points, scale)
    )
    lines = "".join(
        f"<polyline class='line' fill='none' stroke='{LINE}' stroke-width='2.5' points='"
        + " ".join(_xy(scale.x(i), scale.y(points[i].score.nps or 0.0)) for i in run)
        + "'/>"
        for run in _runs(points)
    )
    dots = "".join(
        f"<circle cx='{scale.x(i):.1f}' cy='{scale.y(point.score.nps):.1f}' r='4.5' "
        f"fill='{PAPER if point.score.insufficient else LINE}' stroke='{LINE}' stroke-width='2'>"
        f"<title>{_e(point.week)}: {_e(score_text(point.score))} on {point.score.n} responses"
        "</title></circle>"
        for i, point in enumerate(points)
        if point.score.nps is not None
    )
    svg = (
        f"<svg viewBox='0 0 {CHART_WIDTH} {CHART_HEIGHT}' role='img' "
        f"aria-labelledby='{chart_id}-t {chart_id}-d' font-size='18' fill='{MUTED}'>"
        f"<title id='{chart_id}-t'>NPS week by week, {_e(series.segment)}</title>"
        f"<desc id='{chart_id}-d'>{_e(description)}</desc>"
        f"{grid}{bands}{lines}{dots}{labels}</svg>"
    )
    return (
        f"<figure aria-labelledby='{chart_id}-h' class='chart'>{heading}{svg}"
        f"<details><summary>Table of the figures</summary>{table}</details></figure>"
    )


def _series(view: DashboardView) -> str:
    charts = "".join(
        _week_chart(series, index, view.min_sample) for index, series in enumerate(view.series)
    )
    left_out = (
        f"<p class='muted'>{view.series_left_out} smaller segments are not drawn; "
        "choose one above to see it.</p>"
        if view.series_left_out
        else ""
    )
    return (
        "<section aria-labelledby='weekly'><h2 id='weekly'>NPS week by week</h2>"
        "<p class='muted'>The line is each ISO week's NPS; the shaded band around it is its "
        "95% margin of error. Where two weeks' bands overlap, the difference may be noise.</p>"
        f"<div class='grid'>{charts}</div>{left_out}</section>"
    )


def _fraction(counts: Counts, category: Category) -> float | None:
    return None if counts.n == 0 else counts.of(category) / counts.n


def _split(view: DashboardView) -> str:
    split = view.headline.split
    title = "<h2 id='split'>Promoters, passives and detractors</h2>"
    if split.n == 0:
        return (
            f"<section aria-labelledby='split'>{title}"
            "<p class='empty'>No responses in this window yet.</p></section>"
        )
    x = 0.0
    bars = []
    for category in Category:
        # Drawn 1000 wide and stretched to the page: a bar has no text to distort.
        width = (_fraction(split, category) or 0.0) * 1000
        if width > 0:
            bars.append(
                f"<rect class='{category.value}' x='{x:.1f}' y='0' width='{width:.1f}' "
                f"height='40' fill='{CATEGORY_COLOURS[category]}'/>"
            )
        x += width
    description = ", ".join(
        f"{CATEGORY_NAMES[c].lower()} {_share(_fraction(split, c))} ({split.of(c)})"
        for c in Category
    )
    svg = (
        "<svg class='bar' viewBox='0 0 1000 40' preserveAspectRatio='none' role='img' "
        "aria-labelledby='split-t split-d'><title id='split-t'>Share of each category</title>"
        f"<desc id='split-d'>{_e(description)}</desc>{''.join(bars)}</svg>"
    )
    rows = "".join(
        f"<tr><th scope='row'><span class='swatch {c.value}' aria-hidden='true'></span>"
        f"{_e(CATEGORY_NAMES[c])}</th><td class=n>{split.of(c)}</td>"
        f"<td class=n>{_share(_fraction(split, c))}</td></tr>"
        for c in Category
    )
    table = (
        f"<table><caption class='muted'>Categories of the {split.n} responses</caption>"
        "<thead><tr><th scope='col'>Category</th><th scope='col' class=n>Responses</th>"
        f"<th scope='col' class=n>Share</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return f"<section aria-labelledby='split'>{title}{svg}{table}</section>"


def _segments(view: DashboardView) -> str:
    if not view.segments:
        return ""
    dimension = dimension_label(view.query.dimension)
    rows = "".join(
        f"<tr{' class=chosen' if row.chosen else ''}><th scope='row'>{_e(row.segment)}</th>"
        f"<td class=n>{_e(score_text(row.score))}</td><td class=n>{row.score.n}</td>"
        f"<td>{_e('' if row.change.delta is None else _signed(row.change.delta) + ', ')}"
        f"{_e(verdict_words(row.change))}</td></tr>"
        for row in view.segments
    )
    return (
        f"<section aria-labelledby='by-segment'><h2 id='by-segment'>By {_e(dimension.lower())}"
        "</h2><table class='segments'><thead><tr><th scope='col'>Segment</th>"
        "<th scope='col' class=n>NPS</th><th scope='col' class=n>Responses</th>"
        "<th scope='col'>Change</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _theme_block(themes: ThemeList, min_group: int) -> str:
    name = CATEGORY_NAMES[themes.category]
    heading = f"<h3>{_e(name)} talk about</h3>"
    if themes.withheld:
        body = (
            f"<p class='empty'>Fewer than {min_group} {_e(name.lower())} in this window: "
            "their themes are not shown.</p>"
        )
    elif themes.responses == 0:
        body = f"<p class='empty'>No {_e(name.lower())} in this window yet.</p>"
    elif not themes.rows:
        body = f"<p class='empty'>No comment of a {_e(name.lower()[:-1])} named a theme.</p>"
    else:
        items = "".join(
            f"<li><strong>{_e(row.label)}</strong>: {row.responses} "
            f"<span class='muted'>({_share(row.share)} of {themes.responses})</span></li>"
            for row in themes.rows
        )
        body = f"<ol class='{themes.category.value}-themes'>{items}</ol>"
    return f"<div>{heading}{body}</div>"


def _themes(view: DashboardView) -> str:
    promoters, detractors = view.themes
    return (
        "<section aria-labelledby='themes'><h2 id='themes'>Themes: promoters and detractors</h2>"
        "<p class='muted'>The most named themes of each group's comments; a share is of all "
        "the group's responses in the window.</p><div class='grid'>"
        f"{_theme_block(promoters, view.min_group)}{_theme_block(detractors, view.min_group)}"
        "</div></section>"
    )


def _loop(view: DashboardView) -> str:
    loop = view.loop
    title = "<h2 id='loop'>Loop health</h2>"
    now = (
        f"<p>Open cases now: <strong id='open-now'>{loop.open_now}</strong>; past their SLA: "
        f"<strong id='breached-now'>{loop.breached_now}</strong>.</p>"
    )
    if loop.opened == 0:
        return (
            f"<section aria-labelledby='loop'>{title}"
            f"<p class='empty'>No cases opened in this window.</p>{now}</section>"
        )
    decided = loop.within_sla + loop.missed_sla
    sla = (
        f"<p><span class='big' id='within-sla'>{_share(loop.share_within_sla)}</span> "
        f"<span class='muted'>contacted within SLA ({loop.within_sla} of {decided} "
        f"with a known outcome"
        + (f"; {loop.pending} pending, still within the SLA" if loop.pending else "")
        + f") of {loop.opened} cases opened in this window</span></p>"
        if decided
        else f"<p>{loop.opened} cases opened; none has reached its SLA yet.</p>"
    )
    table = _figures_table(
        "Time from a case's opening to each step",
        ("Step", "Cases", "Median", "95th percentile"),
        (
            (timing.step, str(timing.cases), _duration(timing.median), _duration(timing.p95))
            for timing in loop.timings
        ),
    )
    return f"<section aria-labelledby='loop'>{title}{sla}{now}{table}</section>"


def _money_section(view: DashboardView) -> str:
    money = view.money
    title = "<h2 id='money'>Money: loyalty by value</h2>"
    if money is None:
        return (
            f"<section aria-labelledby='money'>{title}<p class='empty'>The money view is about "
            "customers; employee NPS has none.</p></section>"
        )
    responding = sum(row.customers for row in money.by_category)
    if responding == 0:
        return (
            f"<section aria-labelledby='money'>{title}<p class='empty'>No customer has answered "
            "yet: there is nothing to split by loyalty.</p></section>"
        )
    currency = money.currency
    intro = (
        "<p class='muted'>Net revenue (refunds taken off) of every customer over the last 365 "
        "days, by their latest answer; not cut by window or segment. Median per responding "
        f"customer: {_e(_money(money.median_revenue, currency))}.</p>"
    )
    per = [row.per_customer or Decimal(0) for row in money.by_category]
    top = max([*per, Decimal(1)])
    bars = []
    for i, (row, value) in enumerate(zip(money.by_category, per, strict=True)):
        category = Category(row.name)
        width = float(max(value, Decimal(0)) / top) * 240
        y = i * 40
        bars.append(
            f"<text x='0' y='{y + 25}' fill='{INK}'>{_e(CATEGORY_NAMES[category])}</text>"
            f"<rect x='110' y='{y + 6}' width='{width:.1f}' height='26' "
            f"fill='{CATEGORY_COLOURS[category]}'/>"
            f"<text x='{116 + width:.1f}' y='{y + 25}' fill='{INK}'>"
            f"{_e(_money(row.per_customer, currency))}</text>"
        )
    description = "; ".join(
        f"{CATEGORY_NAMES[Category(row.name)].lower()}: "
        f"{_money(row.per_customer, currency)} per customer"
        for row in money.by_category
    )
    svg = (
        f"<svg viewBox='0 0 {CHART_WIDTH} 120' role='img' aria-labelledby='money-t money-d' "
        "font-size='16'><title id='money-t'>Revenue per customer by category</title>"
        f"<desc id='money-d'>{_e(description)}</desc>{''.join(bars)}</svg>"
    )
    table = _figures_table(
        f"Revenue by category, {currency}",
        ("Category", "Customers", "Revenue", "Per customer"),
        (
            (
                CATEGORY_NAMES[Category(row.name)],
                str(row.customers),
                _money(row.revenue, currency),
                _money(row.per_customer, currency),
            )
            for row in money.by_category
        ),
    )
    quadrants = "".join(
        f"<li class='{_e(row.name)}'><h3>{_e(QUADRANTS[row.name][0])}</h3>"
        f"<p class='muted'>{_e(QUADRANTS[row.name][1])}</p>"
        f"<p><strong>{row.customers}</strong> customers, "
        f"<strong>{_e(_money(row.revenue, currency))}</strong></p></li>"
        for row in money.quadrants
        if row.name in QUADRANTS
    )
    apart = (
        f"<p class='muted'>{money.without_response.customers} customers without an answer "
        f"spent {_e(_money(money.without_response.revenue, currency))}."
        + (
            f" {money.other_currency_events} purchase events in another currency are left out."
            if money.other_currency_events
            else ""
        )
        + "</p>"
    )
    return (
        f"<section aria-labelledby='money'>{title}{intro}{svg}{table}"
        f"<h3>The four quadrants</h3><ul class='quadrants'>{quadrants}</ul>{apart}</section>"
    )


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def render_dashboard(view: DashboardView) -> str:
    """The whole HTML document of the dashboard."""
    kind = SURVEY_KIND_LABELS[view.query.survey_kind]
    window = WINDOW_LABELS.get(view.query.window, view.query.window)
    period = f"{_when(view.period.start.astimezone(view.as_of.tzinfo))} to {_when(view.as_of)}"
    notice = f"<p role='status'>{_e(view.notice)}</p>" if view.notice else ""
    body = (
        f"<h1>NPS dashboard</h1><p class='muted'>{_e(kind)}, {_e(window.lower())}: "
        f"{_e(period)} ({_e(view.zone_name)})</p>"
        f"{_form(view)}{notice}{_headline(view)}{_series(view)}{_split(view)}"
        f"{_segments(view)}{_themes(view)}{_loop(view)}{_money_section(view)}"
    )
    return _document(f"NPS dashboard: {kind}, {window.lower()}", body)


def render_bad_query(reason: str) -> str:
    """The page of a request the dashboard cannot answer, with the reason and a way back."""
    return _document(
        "NPS dashboard: not shown",
        "<h1>This dashboard cannot be shown</h1>"
        f"<section><p role='alert'>{_e(reason)}</p>"
        "<p><a href='?'>Show the default dashboard</a></p></section>",
    )
