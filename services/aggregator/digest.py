"""The weekly digest: last week's NPS in words, for the notifier to post. Pure.

It covers the last complete ISO week in the reporting zone and is due once this week's
scheduled moment (a weekday and a local time) has passed. Its event id is derived from
the week, so a digest published twice is one digest downstream (the notifier's outbox
is keyed by it), and the aggregator also stores the weeks it has published.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from services.aggregator.domain import CalendarWeek, Figures, Period, Trend, iso_week, week_label
from services.aggregator.figures import WHOLE, SegmentFigures, segment_figures
from services.aggregator.insights import CategoryThemes, themes_by_category
from services.aggregator.loop_health import LoopHealth, loop_health
from services.aggregator.report import Facts, ReportingConfig, histories
from shared.events import Digest, SurveyKind
from shared.nps import Category

DIGEST_NAMESPACE = uuid.UUID("2f0c5a55-9d7e-4a4e-8d43-3c1d6f1e9b20")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MOVERS = 3
THEMES_NAMED = 3
_SCHEDULE = re.compile(r"^\s*([A-Za-z]+)\s+([01]?[0-9]|2[0-3]):([0-5][0-9])\s*$")


@dataclass(frozen=True)
class DigestSchedule:
    """When the digest is due each week: a weekday (0 is Monday) and a local time."""

    weekday: int
    at: time

    @classmethod
    def parse(cls, text: str) -> DigestSchedule:
        """``Monday 08:00``: a weekday in English and a 24-hour time."""
        match = _SCHEDULE.match(text)
        if match is None or match.group(1).lower() not in WEEKDAYS:
            raise ValueError(
                f"a digest schedule is a weekday and a time, e.g. 'Monday 08:00': {text!r}"
            )
        return cls(
            WEEKDAYS.index(match.group(1).lower()),
            time(int(match.group(2)), int(match.group(3))),
        )

    def due(self, now: datetime, zone: tzinfo) -> Period | None:
        """The last complete week, once this week's moment has passed; None before it."""
        this_week = iso_week(now, zone)
        monday = this_week.start.astimezone(zone).date()
        moment = datetime.combine(monday + timedelta(days=self.weekday), self.at, tzinfo=zone)
        if now < moment:
            return None
        return iso_week(this_week.start - timedelta(days=1), zone)


def digest_id(period: Period) -> uuid.UUID:
    """The same week, the same digest: its id is derived from the period alone."""
    return uuid.uuid5(DIGEST_NAMESPACE, f"digest:{period.start.isoformat()}")


def build_digest(facts: Facts, now: datetime, config: ReportingConfig) -> Digest:
    """The digest of the last complete week before ``now``."""
    week = CalendarWeek("last_week", config.zone, complete=True)
    period = week.period(now)
    rows = segment_figures(facts.responses, facts.buckets, week, now, SurveyKind.NPS, config.rules)
    whole = next((row.trend for row in rows if row.segment == WHOLE), None)
    themes = themes_by_category(facts.responses, period, SurveyKind.NPS, THEMES_NAMED, config.rules)
    loop = loop_health(histories(facts.case_steps), period, now)
    label = week_label(period, config.zone)
    lines = [
        _headline(label, whole, config.rules.min_sample),
        "",
        *_movers(rows),
        "",
        *_themes(themes),
        "",
        _loop(loop),
    ]
    return Digest(
        event_id=digest_id(period),
        occurred_at=now,
        period_start=period.start,
        period_end=period.end,
        title=f"NPS weekly digest {label}",
        text="\n".join(lines),
    )


def _score(figures: Figures) -> str:
    if figures.nps is None or figures.margin_of_error is None:
        return "no responses"
    n = figures.counts.n
    return (
        f"{figures.nps:+.0f} ± {figures.margin_of_error:.0f} on {n} response{'s' if n != 1 else ''}"
    )


def verdict(trend: Trend) -> str:
    """The change against the week before, in words."""
    if trend.change is None:
        return "nothing to compare it with"
    delta = trend.change.delta
    points = f"{delta:+.0f} point{'s' if round(abs(delta)) != 1 else ''}"
    if trend.significant:
        direction = "rise" if delta > 0 else "drop"
        return f"{points}: a significant {direction}, more than chance would explain"
    if trend.current.insufficient_sample or (
        trend.previous is not None and trend.previous.insufficient_sample
    ):
        return f"{points}: too few responses to tell a change from chance"
    return f"{points}: within the margin of error, not a significant change"


def _headline(label: str, whole: Trend | None, min_sample: int) -> str:
    if whole is None:
        return f"NPS in {label}: no responses."
    before = "no responses" if whole.previous is None else _score(whole.previous)
    lines = [
        f"NPS in {label}: {_score(whole.current)} (the week before: {before}).",
        f"Change: {verdict(whole)}.",
    ]
    if whole.current.insufficient_sample and whole.current.counts.n > 0:
        lines.append(f"Fewer than {min_sample} responses: read it as a hint, not a level.")
    return "\n".join(lines)


def biggest_movers(rows: list[SegmentFigures], count: int = MOVERS) -> list[SegmentFigures]:
    """The segments whose NPS moved most since the week before (both weeks with responses)."""
    moved = [row for row in rows if row.segment != WHOLE and row.trend.change is not None]

    def size(row: SegmentFigures) -> tuple[float, str, str]:
        assert row.trend.change is not None
        return (-abs(row.trend.change.delta), row.segment.dimension, row.segment.bucket)

    return sorted(moved, key=size)[:count]


def _movers(rows: list[SegmentFigures]) -> list[str]:
    movers = biggest_movers(rows)
    if not movers:
        return ["Biggest movers: no segment has responses in both weeks."]
    lines = ["Biggest movers:"]
    for row in movers:
        trend = row.trend
        assert trend.previous is not None and trend.previous.nps is not None
        assert trend.current.nps is not None
        lines.append(
            f"• {row.segment.dimension} {row.segment.bucket}: {trend.previous.nps:+.0f} → "
            f"{trend.current.nps:+.0f} ({verdict(trend)})"
        )
    return lines


def _themes(themes: tuple[CategoryThemes, ...]) -> list[str]:
    by_category = {row.category: row for row in themes}
    lines = []
    for category, who in ((Category.PROMOTER, "promoters"), (Category.DETRACTOR, "detractors")):
        row = by_category[category]
        named = ", ".join(f"{t.theme.label} ({t.share:.0%})" for t in row.top)
        lines.append(f"Top themes of {who}: {named or 'none named'}.")
    return lines


def _loop(loop: LoopHealth) -> str:
    if loop.opened == 0:
        text = "Loop: no cases opened."
    else:
        share = loop.share_within_sla
        within = (
            "none decided yet"
            if share is None
            else f"{loop.within_sla} of {loop.within_sla + loop.missed_sla} contacted within "
            f"SLA ({share:.0%})"
        )
        median = loop.time_to_contact.median
        contact = "" if median is None else f"; median time to contact {_hours(median)}"
        cases = "1 case" if loop.opened == 1 else f"{loop.opened} cases"
        text = f"Loop: {cases} opened; {within}{contact}."
    return f"{text} Now {loop.open_now} open, {loop.breached_now} past their SLA."


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
