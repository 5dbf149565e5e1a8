"""The aggregator's report as Prometheus gauges, on the registry it is given.

Label sets exist from the start for every survey kind, window and segment bucket (a new
bucket's when it is admitted), so a series never appears out of nowhere. A value that
cannot be known is NaN: NPS without responses, a change without a previous period. An
eNPS segment that may not be shown alone (fewer than k people) shows NaN throughout,
never a 0 that would be false. Themes are the one exception: only the top themes of a
window have a series, and a theme that drops out of the top is removed.

Series: 2 survey kinds x 7 windows x (1 + the buckets: per dimension its admitted values,
``other`` and ``unspecified``) x 9 for the NPS families; bounded by
``NPSLOOP_SEGMENT_DIMENSIONS`` and ``NPSLOOP_SEGMENT_MAX_VALUES``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.aggregator.figures import WHOLE, SegmentFigures, SegmentKey
from services.aggregator.insights import UNANSWERED, Acquisition
from services.aggregator.loop_health import Durations
from services.aggregator.money import Quadrant
from services.aggregator.report import Report, ReportingConfig, WindowInsights
from services.aggregator.segments import SegmentBuckets
from shared.events import SurveyKind
from shared.i18n import HEARD_FROM_KEYS
from shared.nps import Category, Counts, nps

SOURCES: tuple[str, ...] = (*HEARD_FROM_KEYS, UNANSWERED)
"""The label values of ``source``: the answers an installation may offer, and none given."""
STEPS = ("claim", "contact", "resolve")
QUANTILES = ("0.5", "0.95")
CASE_STATES = ("open", "breached")


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _seconds(value: timedelta | None) -> float:
    return math.nan if value is None else value.total_seconds()


class AggregatorGauges:
    """Every figure of a report as a gauge."""

    def __init__(self, registry: CollectorRegistry, config: ReportingConfig) -> None:
        self.config = config
        cut = ["survey_kind", "window", "dimension", "segment"]
        self.responses = Gauge(
            "npsloop_responses",
            "Responses in the window, by NPS category; each response counted once, by id.",
            [*cut, "category"],
            registry=registry,
        )
        self.nps = Gauge(
            "npsloop_nps",
            "Net Promoter Score in the window, -100..100 (NaN without responses).",
            cut,
            registry=registry,
        )
        self.standard_error = Gauge(
            "npsloop_nps_standard_error",
            "Standard error of the window's NPS, in points.",
            cut,
            registry=registry,
        )
        self.margin_of_error = Gauge(
            "npsloop_nps_margin_of_error",
            "Half-width of the 95% confidence interval of the window's NPS, in points.",
            cut,
            registry=registry,
        )
        self.insufficient_sample = Gauge(
            "npsloop_nps_insufficient_sample",
            "1 when the window has fewer responses than the minimum sample: not to be read as "
            "a level.",
            cut,
            registry=registry,
        )
        self.change = Gauge(
            "npsloop_nps_change",
            "NPS points against the previous period of the same length (NaN when either is empty).",
            cut,
            registry=registry,
        )
        self.change_significant = Gauge(
            "npsloop_nps_change_significant",
            "1 when the change is more than noise (95%, both periods with a sufficient sample).",
            cut,
            registry=registry,
        )
        self.response_rate = Gauge(
            "npsloop_response_rate_ratio",
            "Share of the invitations sent in the window that were answered.",
            ["survey_kind", "window"],
            registry=registry,
        )
        self.recommendation_share = Gauge(
            "npsloop_recommendation_share_ratio",
            "Share of the window's new customers who heard of us by a recommendation.",
            ["window"],
            registry=registry,
        )
        self.nps_by_source = Gauge(
            "npsloop_nps_by_source",
            "NPS in the window of customers by how they first heard of us.",
            ["window", "source"],
            registry=registry,
        )
        self.within_sla = Gauge(
            "npsloop_loop_contacted_within_sla_ratio",
            "Share of the cases opened in the window whose customer was contacted within SLA "
            "(of those whose outcome is known).",
            ["window"],
            registry=registry,
        )
        self.loop_duration = LoopDurations(registry)
        self.loop_cases = Gauge(
            "npsloop_loop_cases",
            "Cases open now, and those of them past their SLA.",
            ["state"],
            registry=registry,
        )
        self.revenue_per_customer = Gauge(
            "npsloop_revenue_per_customer",
            "Trailing-twelve-month net revenue per customer, by their latest NPS category.",
            ["category", "currency"],
            registry=registry,
        )
        self.loyalty_customers = Gauge(
            "npsloop_loyalty_customers",
            "Responding customers in each quadrant of loyalty by value.",
            ["quadrant"],
            registry=registry,
        )
        self.loyalty_revenue = Gauge(
            "npsloop_loyalty_revenue",
            "Trailing-twelve-month net revenue of each quadrant of loyalty by value.",
            ["quadrant", "currency"],
            registry=registry,
        )
        self.theme_responses = Gauge(
            "npsloop_theme_responses",
            "Responses naming a theme in the window, for each category's top themes.",
            ["window", "category", "theme"],
            registry=registry,
        )
        self._cuts: set[SegmentKey] = set()
        self._themes: set[tuple[str, str, str]] = set()
        self._initialise_cuts(SegmentBuckets(config.policy))
        self._initialise_the_rest()

    def _windows(self) -> tuple[str, ...]:
        return tuple(window.name for window in self.config.windows)

    def _initialise_cuts(self, buckets: SegmentBuckets) -> None:
        cuts = {WHOLE} | {
            SegmentKey(dimension, bucket)
            for dimension in buckets.policy.dimensions
            for bucket in buckets.labels(dimension)
        }
        for cut in cuts - self._cuts:
            for kind in SurveyKind:
                for window in self._windows():
                    self._clear(kind, window, cut)
        self._cuts |= cuts

    def _initialise_the_rest(self) -> None:
        currency = self.config.currency
        for window in self._windows():
            for kind in SurveyKind:
                self.response_rate.labels(kind.value, window).set(math.nan)
            self.recommendation_share.labels(window).set(math.nan)
            for source in SOURCES:
                self.nps_by_source.labels(window, source).set(math.nan)
            self.within_sla.labels(window).set(math.nan)
            for step in STEPS:
                for quantile in QUANTILES:
                    self.loop_duration.set(window, step, quantile, math.nan)
        for state in CASE_STATES:
            self.loop_cases.labels(state).set(0)
        for category in Category:
            self.revenue_per_customer.labels(category.value, currency).set(math.nan)
        for quadrant in Quadrant:
            self.loyalty_customers.labels(quadrant.value).set(0)
            self.loyalty_revenue.labels(quadrant.value, currency).set(0)

    def _clear(self, kind: SurveyKind, window: str, cut: SegmentKey) -> None:
        """A segment with nothing to show: none counted for NPS; for eNPS, where it may be
        a group too small to show, no count at all."""
        labels = (kind.value, window, cut.dimension, cut.bucket)
        empty = 0.0 if self.config.rules.min_group(kind) <= 1 else math.nan
        for category in Category:
            self.responses.labels(*labels, category.value).set(empty)
        for gauge in (self.nps, self.standard_error, self.margin_of_error, self.change):
            gauge.labels(*labels).set(math.nan)
        self.insufficient_sample.labels(*labels).set(1)
        self.change_significant.labels(*labels).set(0)

    def show(self, report: Report) -> None:
        self._initialise_cuts(report.buckets)
        listed: dict[tuple[SurveyKind, str], set[SegmentKey]] = defaultdict(set)
        for row in report.figures:
            self._show_figures(row)
            listed[(row.survey_kind, row.window)].add(row.segment)
        for kind in SurveyKind:
            for window in self._windows():
                for cut in self._cuts - listed[(kind, window)]:
                    self._clear(kind, window, cut)
        themes: set[tuple[str, str, str]] = set()
        for insights in report.insights:
            self._show_insights(insights)
            themes |= self._show_themes(insights)
        for stale in self._themes - themes:
            self.theme_responses.remove(*stale)
        self._themes = themes
        self.loop_cases.labels("open").set(report.loop_now.open_now)
        self.loop_cases.labels("breached").set(report.loop_now.breached_now)
        loyalty, currency = report.loyalty, self.config.currency
        for category, group in loyalty.by_category.items():
            self.revenue_per_customer.labels(category.value, currency).set(
                _or_nan(None if group.per_customer is None else float(group.per_customer))
            )
        for quadrant, group in loyalty.quadrants.items():
            self.loyalty_customers.labels(quadrant.value).set(group.customers)
            self.loyalty_revenue.labels(quadrant.value, currency).set(float(group.revenue))

    def _show_figures(self, row: SegmentFigures) -> None:
        labels = (row.survey_kind.value, row.window, row.segment.dimension, row.segment.bucket)
        current = row.trend.current
        for category in Category:
            self.responses.labels(*labels, category.value).set(current.counts.of(category))
        self.nps.labels(*labels).set(_or_nan(current.nps))
        self.standard_error.labels(*labels).set(_or_nan(current.standard_error))
        self.margin_of_error.labels(*labels).set(_or_nan(current.margin_of_error))
        self.insufficient_sample.labels(*labels).set(int(current.insufficient_sample))
        change = row.trend.change
        self.change.labels(*labels).set(math.nan if change is None else change.delta)
        self.change_significant.labels(*labels).set(int(row.trend.significant))

    def _show_insights(self, insights: WindowInsights) -> None:
        window = insights.window
        for kind, rate in insights.response_rates.items():
            self.response_rate.labels(kind.value, window).set(_or_nan(rate.rate))
        self.recommendation_share.labels(window).set(
            _or_nan(insights.acquisition.recommendation_share)
        )
        for source, counts in by_source(insights.acquisition).items():
            self.nps_by_source.labels(window, source).set(_or_nan(nps(counts)))
        loop = insights.loop
        self.within_sla.labels(window).set(_or_nan(loop.share_within_sla))
        durations: dict[str, Durations] = {
            "claim": loop.time_to_claim,
            "contact": loop.time_to_contact,
            "resolve": loop.time_to_resolve,
        }
        for step, taken in durations.items():
            self.loop_duration.set(window, step, "0.5", _seconds(taken.median))
            self.loop_duration.set(window, step, "0.95", _seconds(taken.p95))

    def _show_themes(self, insights: WindowInsights) -> set[tuple[str, str, str]]:
        shown = set()
        for category in insights.themes:
            for count in category.top:
                labels = (insights.window, category.category.value, count.theme.id)
                self.theme_responses.labels(*labels).set(count.responses)
                shown.add(labels)
        return shown


class LoopDurations(Collector):
    """``npsloop_loop_duration_seconds{window,step,quantile}``: median and 95th percentile.

    Typed as a summary of quantiles only: ``quantile`` is the summary's own label, which
    Prometheus reserves (promtool refuses it on a gauge). There is no ``_sum`` or
    ``_count``: these figures are of a window, not running totals since start.
    """

    NAME = "npsloop_loop_duration_seconds"
    HELP = (
        "Time from a case opening to its first claim, first contact and resolution, for the "
        "cases opened in the window (median and 95th percentile)."
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self._values: dict[tuple[str, str, str], float] = {}
        registry.register(self)

    def set(self, window: str, step: str, quantile: str, seconds: float) -> None:
        self._values[(window, step, quantile)] = seconds

    def describe(self) -> list[Metric]:
        return [Metric(self.NAME, self.HELP, "summary")]

    def collect(self) -> list[Metric]:
        metric = Metric(self.NAME, self.HELP, "summary")
        for (window, step, quantile), seconds in sorted(self._values.items()):
            metric.add_sample(
                self.NAME, {"window": window, "step": step, "quantile": quantile}, seconds
            )
        return [metric]


def by_source(acquisition: Acquisition) -> dict[str, Counts]:
    """Counts per source label: an answer outside the known ones counts as ``other``."""
    counts: dict[str, Counts] = dict.fromkeys(SOURCES, Counts())
    for row in acquisition.sources:
        source = row.source if row.source in counts else "other"
        counts[source] += row.figures.counts
    return counts
