"""Everything the aggregator reports at one moment, from the facts of its read model. Pure.

The refresh loads the facts of the longest window and the period before it (180 days of
responses), the sent invitations of the same span, every case event and a trailing year
of purchases, and folds them here: the figures of every survey kind, window and
segment, and per window the response rate, acquisition, loop health and themes, and
loyalty by value. The read model only selects rows; every number is the domain's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from services.aggregator.domain import ROLLING_WINDOWS, AnyWindow, Period, Rules, all_windows
from services.aggregator.figures import SegmentFigures, segment_figures
from services.aggregator.insights import (
    RECOMMENDATION,
    Acquisition,
    CategoryThemes,
    ResponseRate,
    acquisition,
    response_rate,
    themes_by_category,
)
from services.aggregator.loop_health import CaseHistory, CaseLedger, CaseStep, LoopHealth
from services.aggregator.loop_health import loop_health as fold_loop_health
from services.aggregator.money import TRAILING_YEAR, LoyaltyByValue, PurchaseFact, loyalty_by_value
from services.aggregator.responses import InvitationFact, ResponseFact
from services.aggregator.segments import SegmentBuckets, SegmentPolicy
from shared.events import SurveyKind
from shared.nps import Category

TOP_THEMES = 5

LONGEST: timedelta = max(window.length for window in ROLLING_WINDOWS)

HORIZON: timedelta = 2 * LONGEST
"""How far back the facts reach that the windows need: the longest window and the one before."""


@dataclass(frozen=True)
class ReportingConfig:
    """How the aggregator reports: its time zone, segments, sample rules, currency."""

    zone: tzinfo
    policy: SegmentPolicy = field(default_factory=SegmentPolicy)
    rules: Rules = field(default_factory=Rules)
    currency: str = "DKK"
    recommendation: frozenset[str] = frozenset({RECOMMENDATION})
    top_themes: int = TOP_THEMES

    @property
    def windows(self) -> tuple[AnyWindow, ...]:
        return all_windows(self.zone)

    def window(self, name: str) -> AnyWindow | None:
        return next((window for window in self.windows if window.name == name), None)


@dataclass(frozen=True)
class Facts:
    """What the read model hands the domain: each fact once, by its id."""

    responses: tuple[ResponseFact, ...] = ()
    buckets: SegmentBuckets = field(default_factory=SegmentBuckets)
    invitations: tuple[InvitationFact, ...] = ()
    case_steps: tuple[CaseStep, ...] = ()
    purchases: tuple[PurchaseFact, ...] = ()
    latest_categories: Mapping[str, Category] = field(default_factory=dict)
    """Each customer's category as of their latest NPS response, however old."""


def since(now: datetime) -> datetime:
    """The earliest response time the windows ending ``now`` look at."""
    return now - HORIZON


def purchases_since(now: datetime) -> datetime:
    return now - TRAILING_YEAR


@dataclass(frozen=True)
class WindowInsights:
    """What a window says beyond NPS: response rate, acquisition, loop health, themes."""

    window: str
    period: Period
    response_rates: Mapping[SurveyKind, ResponseRate]
    acquisition: Acquisition
    loop: LoopHealth
    themes: tuple[CategoryThemes, ...]


@dataclass(frozen=True)
class Report:
    """Everything reported at ``now``."""

    now: datetime
    buckets: SegmentBuckets
    figures: tuple[SegmentFigures, ...]
    insights: tuple[WindowInsights, ...]
    loop_now: LoopHealth
    loyalty: LoyaltyByValue


def histories(steps: Iterable[CaseStep]) -> list[CaseHistory]:
    return list(CaseLedger(steps).histories())


def window_insights(
    facts: Facts,
    cases: list[CaseHistory],
    window: AnyWindow,
    now: datetime,
    config: ReportingConfig,
) -> WindowInsights:
    period = window.period(now)
    return WindowInsights(
        window=window.name,
        period=period,
        response_rates={
            kind: response_rate(facts.invitations, facts.responses, period, kind)
            for kind in SurveyKind
        },
        acquisition=acquisition(facts.responses, period, config.recommendation, config.rules),
        loop=fold_loop_health(cases, period, now),
        themes=themes_by_category(
            facts.responses, period, SurveyKind.NPS, config.top_themes, config.rules
        ),
    )


def build_report(facts: Facts, now: datetime, config: ReportingConfig) -> Report:
    """Every figure the aggregator shows at ``now``."""
    figures = [
        row
        for kind in SurveyKind
        for window in config.windows
        for row in segment_figures(facts.responses, facts.buckets, window, now, kind, config.rules)
    ]
    cases = histories(facts.case_steps)
    return Report(
        now=now,
        buckets=facts.buckets,
        figures=tuple(figures),
        insights=tuple(
            window_insights(facts, cases, window, now, config) for window in config.windows
        ),
        # Open and breached are as of now, whenever the case was opened.
        loop_now=fold_loop_health(cases, Period(now, now), now),
        loyalty=loyalty_by_value(facts.purchases, facts.latest_categories, now, config.currency),
    )
