"""Windows, periods and the figures shown for each. Pure: no Faust, no I/O.

Aggregates are stored as counts; NPS and its margin of error are derived when read.

Every period is half-open, ``[start, end)``, with its bounds in UTC: a response at the
very end of one period is the first of the next, never in both. A rolling window ends
at ``now`` (a response stamped in the future, a skewed clock, counts once its time
comes) and is compared with the window of the same length just before it. A calendar
week is an ISO week (Monday 00:00 to Monday 00:00) on the wall clock of the reporting
time zone, so 167 or 169 hours long across a DST change; the week so far is compared
with the whole week before, the last complete week with the one before it.

The reporting time zone is a parameter (a ``tzinfo``). The aggregator's wiring passes
``ZoneInfo(settings.default_timezone)`` (Europe/Copenhagen unless configured): the
business's own week, so that Sunday evening in Copenhagen is not counted in Monday's
week as it would be in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from shared.events import SurveyKind
from shared.nps import Change, Counts, change, margin_of_error, nps, standard_error

MIN_SAMPLE = 30
"""Fewer responses than this and a figure is flagged: its margin is wider than ±18 points."""

ENPS_MIN_GROUP = 5
"""eNPS of fewer people than this is never shown: it would tell who said what."""


@dataclass(frozen=True)
class Period:
    """A stretch of time, ``[start, end)``, its bounds in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Aware datetimes that share a tzinfo compare by wall clock, which is wrong
        # across a DST change: the bounds are kept in UTC so comparisons are instants.
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end < self.start:
            raise ValueError(f"a period ends after it starts: {self.start} .. {self.end}")

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Window:
    """A rolling window ending now, named as it appears in metric labels."""

    name: str
    length: timedelta

    def start(self, now: datetime) -> datetime:
        return now - self.length

    def period(self, now: datetime) -> Period:
        return Period(now - self.length, now)

    def previous(self, now: datetime) -> Period:
        """The window of the same length just before this one."""
        return Period(now - 2 * self.length, now - self.length)


@dataclass(frozen=True)
class CalendarWeek:
    """An ISO calendar week in the reporting time zone: the one so far, or the last complete."""

    name: str
    zone: tzinfo
    complete: bool = False

    def period(self, now: datetime) -> Period:
        this_week = iso_week(now, self.zone)
        if self.complete:
            return iso_week(this_week.start - timedelta(days=1), self.zone)
        return Period(this_week.start, now)

    def previous(self, now: datetime) -> Period:
        """The whole ISO week before this one."""
        return iso_week(self.period(now).start - timedelta(days=1), self.zone)


AnyWindow = Window | CalendarWeek


def iso_week(at: datetime, zone: tzinfo) -> Period:
    """The ISO week (Monday 00:00 to the next Monday 00:00, local time) that ``at`` falls in."""
    local = at.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(0), tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone)
    return Period(start, end)


def week_label(period: Period, zone: tzinfo) -> str:
    """An ISO week as people write it, e.g. ``2026-W05``."""
    year, week, _ = period.start.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


ROLLING_1H = Window("1h", timedelta(hours=1))
ROLLING_24H = Window("24h", timedelta(hours=24))
ROLLING_7D = Window("7d", timedelta(days=7))
ROLLING_30D = Window("30d", timedelta(days=30))
ROLLING_90D = Window("90d", timedelta(days=90))
ROLLING_WINDOWS: tuple[Window, ...] = (
    ROLLING_1H,
    ROLLING_24H,
    ROLLING_7D,
    ROLLING_30D,
    ROLLING_90D,
)


def all_windows(zone: tzinfo) -> tuple[AnyWindow, ...]:
    """Every window the aggregator reports: the rolling ones, this week and last week."""
    return (
        *ROLLING_WINDOWS,
        CalendarWeek("week", zone),
        CalendarWeek("last_week", zone, complete=True),
    )


@dataclass(frozen=True)
class Figures:
    """What a period says: the counts, NPS, its standard error and 95% margin of error.

    ``insufficient_sample`` flags figures on fewer than the minimum number of responses:
    shown, but not to be read as a level.
    """

    counts: Counts
    nps: float | None
    standard_error: float | None
    margin_of_error: float | None
    insufficient_sample: bool

    @classmethod
    def of(cls, counts: Counts, min_sample: int = MIN_SAMPLE) -> Figures:
        return cls(
            counts,
            nps(counts),
            standard_error(counts),
            margin_of_error(counts),
            insufficient_sample=counts.n < min_sample,
        )


@dataclass(frozen=True)
class Trend:
    """A period's figures beside the previous period's, and whether the change is more than noise.

    ``significant`` needs both periods to have a sufficient sample as well as |z| >= 1.96:
    three promoters against three detractors have a standard error of 0 each and would
    otherwise be an infinitely significant change. ``previous`` is None when withheld
    (an eNPS group too small to show).
    """

    current: Figures
    previous: Figures | None
    change: Change | None
    significant: bool

    @classmethod
    def of(cls, current: Figures, previous: Figures | None) -> Trend:
        if previous is None:
            return cls(current, None, None, significant=False)
        difference = change(previous.counts, current.counts)
        significant = (
            difference is not None
            and difference.significant
            and not current.insufficient_sample
            and not previous.insufficient_sample
        )
        return cls(current, previous, difference, significant)


@dataclass(frozen=True)
class Rules:
    """How figures are reported: the minimum sample and the smallest eNPS group shown."""

    min_sample: int = MIN_SAMPLE
    enps_min_group: int = ENPS_MIN_GROUP

    def __post_init__(self) -> None:
        if self.min_sample < 1 or self.enps_min_group < 1:
            raise ValueError(f"minimum sizes are at least 1: {self}")

    def min_group(self, survey_kind: SurveyKind) -> int:
        """The smallest group shown on its own (1: any)."""
        return self.enps_min_group if survey_kind == SurveyKind.ENPS else 1


def protect_small_groups(groups: Mapping[str, Counts], k: int, other: str) -> dict[str, Counts]:
    """The groups that may be shown when none of fewer than ``k`` responses may be.

    Groups under ``k`` are folded into ``other``. Should ``other`` then still be under
    ``k`` (but not empty), the smallest shown group joins it, and so on: hiding ``other``
    alone would not do, as the total minus the shown groups would give it away. What
    stays under ``k`` after everything has been folded is hidden.
    """
    if k <= 1:
        return {name: counts for name, counts in groups.items() if counts.n > 0}
    shown = {name: counts for name, counts in groups.items() if name != other and counts.n >= k}
    folded = sum((counts for name, counts in groups.items() if name not in shown), start=Counts())
    while 0 < folded.n < k and shown:
        # Smallest first; by name among equals, so that the result does not depend on order.
        smallest = min(shown, key=lambda name: (shown[name].n, name))
        folded += shown.pop(smallest)
    if folded.n >= k:
        shown[other] = folded
    return shown


DEFAULT_RULES = Rules()
