"""Questions asked of the aggregator, answered as plain dataclasses.

Used by the JSON API (``web.py``) and the dashboard page alike: each function takes the
read model, the reporting configuration and ``now``, loads the facts it needs and lets
the domain count them. A question that cannot be answered as asked (an unknown window,
survey kind, dimension or segment) raises ``QueryError`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.aggregator.adapters import ReadModel
from services.aggregator.dashboard import DashboardQuery, DashboardView, dashboard_view
from services.aggregator.domain import (
    AnyWindow,
    Figures,
    Period,
    Trend,
    iso_week,
    protect_small_groups,
    week_label,
)
from services.aggregator.figures import ALL, WHOLE, SegmentFigures, SegmentKey, segment_figures
from services.aggregator.insights import themes_by_category
from services.aggregator.loop_health import CaseLedger, Durations, loop_health
from services.aggregator.money import MoneyGroup, loyalty_by_value
from services.aggregator.report import (
    Facts,
    ReportingConfig,
    histories,
    purchases_since,
    since,
)
from services.aggregator.responses import ResponseLedger
from services.aggregator.segments import OTHER
from shared.events import SurveyKind
from shared.nps import Counts

MAX_HISTORY_WEEKS = 520


class QueryError(ValueError):
    """A question the aggregator cannot answer as asked; the message says why."""


def load_facts(read_model: ReadModel, now: datetime) -> Facts:
    """Every fact the report at ``now`` needs (see ``report.HORIZON``)."""
    return Facts(
        responses=tuple(read_model.responses(since(now))),
        buckets=read_model.buckets(),
        invitations=tuple(read_model.invitations(since(now))),
        case_steps=tuple(read_model.case_steps()),
        purchases=tuple(read_model.purchases(purchases_since(now))),
        latest_categories=read_model.latest_categories(),
    )


def window_named(config: ReportingConfig, name: str) -> AnyWindow:
    window = config.window(name)
    if window is None:
        names = ", ".join(w.name for w in config.windows)
        raise QueryError(f"unknown window {name!r}; the windows are {names}")
    return window


def kind_named(name: str) -> SurveyKind:
    try:
        return SurveyKind(name)
    except ValueError:
        kinds = ", ".join(kind.value for kind in SurveyKind)
        raise QueryError(f"unknown survey kind {name!r}; the kinds are {kinds}") from None


def cut_named(
    read_model: ReadModel, config: ReportingConfig, dimension: str, segment: str | None
) -> SegmentKey:
    if dimension == ALL:
        if segment not in (None, ALL):
            raise QueryError(f"the dimension {ALL!r} has only the segment {ALL!r}")
        return WHOLE
    if dimension not in config.policy.dimensions:
        names = ", ".join((ALL, *config.policy.dimensions))
        raise QueryError(f"unknown dimension {dimension!r}; the dimensions are {names}")
    labels = read_model.buckets().labels(dimension)
    if segment is None or segment not in labels:
        asked = "no segment" if segment is None else f"unknown segment {segment!r}"
        raise QueryError(f"{asked} of {dimension}; its segments are {', '.join(labels)}")
    return SegmentKey(dimension, segment)


@dataclass(frozen=True)
class NpsFigures:
    """One segment's NPS in one window, beside the previous period's.

    ``withheld``: an eNPS group too small to be shown alone; no figure is given.
    """

    survey_kind: str
    window: str
    dimension: str
    segment: str
    period_start: datetime
    period_end: datetime
    previous_start: datetime
    previous_end: datetime
    withheld: bool
    responses: int | None
    promoters: int | None
    passives: int | None
    detractors: int | None
    nps: float | None
    standard_error: float | None
    margin_of_error: float | None
    insufficient_sample: bool | None
    previous_responses: int | None
    previous_nps: float | None
    change: float | None
    z: float | None
    significant: bool


def _figures_of(row: SegmentFigures) -> NpsFigures:
    current, previous, change = row.trend.current, row.trend.previous, row.trend.change
    return NpsFigures(
        survey_kind=row.survey_kind.value,
        window=row.window,
        dimension=row.segment.dimension,
        segment=row.segment.bucket,
        period_start=row.period.start,
        period_end=row.period.end,
        previous_start=row.previous_period.start,
        previous_end=row.previous_period.end,
        withheld=False,
        responses=current.counts.n,
        promoters=current.counts.promoters,
        passives=current.counts.passives,
        detractors=current.counts.detractors,
        nps=current.nps,
        standard_error=current.standard_error,
        margin_of_error=current.margin_of_error,
        insufficient_sample=current.insufficient_sample,
        previous_responses=None if previous is None else previous.counts.n,
        previous_nps=None if previous is None else previous.nps,
        change=None if change is None else change.delta,
        z=None if change is None or abs(change.z) == float("inf") else change.z,
        significant=row.trend.significant,
    )


def nps_by_segment(
    read_model: ReadModel,
    config: ReportingConfig,
    now: datetime,
    *,
    window: str = "30d",
    kind: str = "nps",
    dimension: str = ALL,
) -> list[NpsFigures]:
    """Every segment of a dimension (or the whole) in a window; withheld ones marked so."""
    chosen, survey_kind = window_named(config, window), kind_named(kind)
    if dimension != ALL and dimension not in config.policy.dimensions:
        cut_named(read_model, config, dimension, None)
    facts = read_model.responses(chosen.previous(now).start)
    buckets = read_model.buckets()
    rows = {
        row.segment: row
        for row in segment_figures(facts, buckets, chosen, now, survey_kind, config.rules)
    }
    cuts = (
        [WHOLE]
        if dimension == ALL
        else [SegmentKey(dimension, bucket) for bucket in buckets.labels(dimension)]
    )
    period, previous = chosen.period(now), chosen.previous(now)
    answers = []
    for cut in cuts:
        if cut in rows:
            answers.append(_figures_of(rows[cut]))
        elif config.rules.min_group(survey_kind) <= 1:
            answers.append(
                _figures_of(
                    SegmentFigures(
                        survey_kind,
                        chosen.name,
                        period,
                        previous,
                        cut,
                        _empty_trend(config),
                    )
                )
            )
        else:
            answers.append(_withheld(survey_kind, chosen.name, cut, period, previous))
    return answers


def nps_figures(
    read_model: ReadModel,
    config: ReportingConfig,
    now: datetime,
    *,
    window: str = "30d",
    kind: str = "nps",
    dimension: str = ALL,
    segment: str | None = None,
) -> NpsFigures:
    """One segment's figures in a window (the whole unless a dimension and segment are named)."""
    cut = cut_named(read_model, config, dimension, segment)
    for answer in nps_by_segment(
        read_model, config, now, window=window, kind=kind, dimension=cut.dimension
    ):
        if answer.segment == cut.bucket:
            return answer
    raise QueryError(f"no segment {cut.bucket!r} of {cut.dimension}")  # pragma: no cover


def _empty_trend(config: ReportingConfig) -> Trend:
    empty = Figures.of(Counts(), config.rules.min_sample)
    return Trend.of(empty, empty)


def _withheld(
    kind: SurveyKind, window: str, cut: SegmentKey, period: Period, previous: Period
) -> NpsFigures:
    return NpsFigures(
        kind.value,
        window,
        cut.dimension,
        cut.bucket,
        period.start,
        period.end,
        previous.start,
        previous.end,
        withheld=True,
        responses=None,
        promoters=None,
        passives=None,
        detractors=None,
        nps=None,
        standard_error=None,
        margin_of_error=None,
        insufficient_sample=None,
        previous_responses=None,
        previous_nps=None,
        change=None,
        z=None,
        significant=False,
    )


@dataclass(frozen=True)
class WeekFigures:
    """NPS of one ISO week in the reporting zone, from the daily snapshots."""

    week: str
    period_start: datetime
    period_end: datetime
    withheld: bool
    responses: int | None
    promoters: int | None
    passives: int | None
    detractors: int | None
    nps: float | None
    margin_of_error: float | None
    insufficient_sample: bool | None


def nps_history(
    read_model: ReadModel,
    config: ReportingConfig,
    now: datetime,
    *,
    weeks: int = 12,
    kind: str = "nps",
    dimension: str = ALL,
    segment: str | None = None,
) -> list[WeekFigures]:
    """NPS per calendar week, oldest first, the last being this week so far."""
    if not 1 <= weeks <= MAX_HISTORY_WEEKS:
        raise QueryError(f"weeks is a whole number from 1 to {MAX_HISTORY_WEEKS}, not {weeks}")
    survey_kind = kind_named(kind)
    cut = cut_named(read_model, config, dimension, segment)
    periods = [iso_week(now, config.zone)]
    while len(periods) < weeks:
        periods.insert(0, iso_week(periods[0].start - timedelta(days=1), config.zone))
    first_day = periods[0].start.astimezone(config.zone).date()
    by_segment = read_model.snapshots(survey_kind, cut.dimension, first_day)
    k = config.rules.min_group(survey_kind)
    answers = []
    for period in periods:
        start = period.start.astimezone(config.zone).date()
        end = period.end.astimezone(config.zone).date()
        groups = {name: _sum_days(days, start, end) for name, days in by_segment.items()}
        counts: Counts | None
        if k <= 1:
            counts = groups.get(cut.bucket, Counts())
        elif cut == WHOLE:
            whole = groups.get(ALL, Counts())
            counts = None if 0 < whole.n < k else whole
        else:
            counts = protect_small_groups(groups, k, OTHER).get(cut.bucket)
        answers.append(_week(period, week_label(period, config.zone), counts, config))
    return answers


def _week(
    period: Period, label: str, counts: Counts | None, config: ReportingConfig
) -> WeekFigures:
    if counts is None:
        return WeekFigures(
            label,
            period.start,
            period.end,
            withheld=True,
            responses=None,
            promoters=None,
            passives=None,
            detractors=None,
            nps=None,
            margin_of_error=None,
            insufficient_sample=None,
        )
    figures = Figures.of(counts, config.rules.min_sample)
    return WeekFigures(
        label,
        period.start,
        period.end,
        withheld=False,
        responses=counts.n,
        promoters=counts.promoters,
        passives=counts.passives,
        detractors=counts.detractors,
        nps=figures.nps,
        margin_of_error=figures.margin_of_error,
        insufficient_sample=figures.insufficient_sample,
    )


def _sum_days(days: dict[date, Counts], start: date, end: date) -> Counts:
    return sum((counts for day, counts in days.items() if start <= day < end), start=Counts())


@dataclass(frozen=True)
class StepTimes:
    """How long a step of the loop took: cases that took it, median and 95th percentile."""

    step: str
    cases: int
    median_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class LoopFigures:
    """Loop health of the cases opened in a window; open and breached as of now."""

    window: str
    period_start: datetime
    period_end: datetime
    opened: int
    within_sla: int
    missed_sla: int
    pending: int
    share_within_sla: float | None
    steps: tuple[StepTimes, ...]
    open_now: int
    breached_now: int


def _step(step: str, durations: Durations) -> StepTimes:
    return StepTimes(
        step,
        durations.count,
        None if durations.median is None else durations.median.total_seconds(),
        None if durations.p95 is None else durations.p95.total_seconds(),
    )


def loop(
    read_model: ReadModel, config: ReportingConfig, now: datetime, *, window: str = "30d"
) -> LoopFigures:
    chosen = window_named(config, window)
    period = chosen.period(now)
    health = loop_health(histories(read_model.case_steps()), period, now)
    return LoopFigures(
        window=chosen.name,
        period_start=period.start,
        period_end=period.end,
        opened=health.opened,
        within_sla=health.within_sla,
        missed_sla=health.missed_sla,
        pending=health.pending,
        share_within_sla=health.share_within_sla,
        steps=(
            _step("claim", health.time_to_claim),
            _step("contact", health.time_to_contact),
            _step("resolve", health.time_to_resolve),
        ),
        open_now=health.open_now,
        breached_now=health.breached_now,
    )


@dataclass(frozen=True)
class MoneyFigures:
    """Trailing-twelve-month revenue by NPS category, and the quadrants of loyalty by value."""

    currency: str
    period_start: datetime
    period_end: datetime
    median_revenue: Decimal | None
    categories: tuple[MoneyGroup, ...]
    quadrants: tuple[MoneyGroup, ...]
    without_response: MoneyGroup
    other_currency_events: int


def money(read_model: ReadModel, config: ReportingConfig, now: datetime) -> MoneyFigures:
    loyalty = loyalty_by_value(
        read_model.purchases(purchases_since(now)),
        read_model.latest_categories(),
        now,
        config.currency,
    )
    return MoneyFigures(
        currency=loyalty.currency,
        period_start=loyalty.period.start,
        period_end=loyalty.period.end,
        median_revenue=loyalty.median_revenue,
        categories=tuple(
            MoneyGroup.of(category.value, group) for category, group in loyalty.by_category.items()
        ),
        quadrants=tuple(
            MoneyGroup.of(quadrant.value, group) for quadrant, group in loyalty.quadrants.items()
        ),
        without_response=MoneyGroup.of("without_response", loyalty.without_response),
        other_currency_events=loyalty.other_currency_events,
    )


@dataclass(frozen=True)
class ThemeFigures:
    theme: str
    label: str
    responses: int
    share: float


@dataclass(frozen=True)
class CategoryThemeFigures:
    category: str
    responses: int
    top: tuple[ThemeFigures, ...]


@dataclass(frozen=True)
class ThemesFigures:
    """The most named themes of each category's comments in a window."""

    survey_kind: str
    window: str
    period_start: datetime
    period_end: datetime
    categories: tuple[CategoryThemeFigures, ...]


def themes(
    read_model: ReadModel,
    config: ReportingConfig,
    now: datetime,
    *,
    window: str = "30d",
    kind: str = "nps",
) -> ThemesFigures:
    chosen, survey_kind = window_named(config, window), kind_named(kind)
    period = chosen.period(now)
    rows = themes_by_category(
        read_model.responses(period.start), period, survey_kind, config.top_themes, config.rules
    )
    return ThemesFigures(
        survey_kind=survey_kind.value,
        window=chosen.name,
        period_start=period.start,
        period_end=period.end,
        categories=tuple(
            CategoryThemeFigures(
                row.category.value,
                row.responses,
                tuple(
                    ThemeFigures(t.theme.id, t.theme.label, t.responses, t.share) for t in row.top
                ),
            )
            for row in rows
        ),
    )


def dashboard(
    read_model: ReadModel, config: ReportingConfig, now: datetime, query: DashboardQuery
) -> DashboardView:
    """The dashboard page's view of a query, from the same facts a refresh folds."""
    facts = load_facts(read_model, now)
    return dashboard_view(
        responses=ResponseLedger(facts.responses),
        cases=CaseLedger(facts.case_steps).histories(),
        purchases=facts.purchases,
        buckets=facts.buckets,
        now=now,
        zone=config.zone,
        query=query,
        currency=config.currency,
        rules=config.rules,
    )
