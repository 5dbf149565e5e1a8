"""NPS per window and segment, with the change against the previous period. Pure: no I/O.

What a gauge, the JSON API and the digest show: for one survey kind and one window,
the figures of every segment bucket, each beside the previous period's. Counted from
the response facts when read, never kept as running totals, so an update or a
redelivered response can only replace what it said before.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.aggregator.domain import (
    DEFAULT_RULES,
    AnyWindow,
    Figures,
    Period,
    Rules,
    Trend,
    protect_small_groups,
)
from services.aggregator.responses import ResponseFact
from services.aggregator.segments import OTHER, SegmentBuckets
from shared.events import SurveyKind
from shared.nps import Category, Counts

ALL: str = "all"
"""The dimension and bucket of the whole, uncut."""


@dataclass(frozen=True)
class SegmentKey:
    """A cut of the responses: a dimension and one of its buckets (``all``/``all``: the whole)."""

    dimension: str
    bucket: str


WHOLE = SegmentKey(ALL, ALL)


@dataclass(frozen=True)
class SegmentFigures:
    """The figures of one segment in one window, beside the previous period's."""

    survey_kind: SurveyKind
    window: str
    period: Period
    previous_period: Period
    segment: SegmentKey
    trend: Trend


def count_by_segment(
    facts: Iterable[ResponseFact],
    buckets: SegmentBuckets,
    period: Period,
    survey_kind: SurveyKind,
) -> dict[SegmentKey, Counts]:
    """The counts of the whole and of every bucket of every allowed dimension in a period."""
    # Plain tuples in one Counter, Counts built once per segment at the end: this runs for
    # every window at every refresh, over every response of the last 180 days.
    tallies: Counter[tuple[str, str, Category]] = Counter()
    dimensions = buckets.policy.dimensions
    for fact in facts:
        if fact.survey_kind != survey_kind or fact.responded_at not in period:
            continue
        category = fact.category
        tallies[(ALL, ALL, category)] += 1
        for dimension in dimensions:
            bucket = buckets.bucket(dimension, fact.segment.get(dimension))
            tallies[(dimension, bucket, category)] += 1
    by_segment: dict[tuple[str, str], dict[Category, int]] = defaultdict(dict)
    for (dimension, bucket, category), count in tallies.items():
        by_segment[(dimension, bucket)][category] = count
    return {
        SegmentKey(dimension, bucket): Counts(
            promoters=by_category.get(Category.PROMOTER, 0),
            passives=by_category.get(Category.PASSIVE, 0),
            detractors=by_category.get(Category.DETRACTOR, 0),
        )
        for (dimension, bucket), by_category in by_segment.items()
    }


def shown(counts: dict[SegmentKey, Counts], k: int) -> dict[SegmentKey, Counts]:
    """The segments that may be shown when no group of fewer than ``k`` may be (eNPS)."""
    if k <= 1:
        return counts
    whole = counts.get(WHOLE, Counts())
    if whole.n < k:
        return {}
    by_dimension: dict[str, dict[str, Counts]] = defaultdict(dict)
    for key, value in counts.items():
        if key != WHOLE:
            by_dimension[key.dimension][key.bucket] = value
    result = {WHOLE: whole}
    for dimension, groups in by_dimension.items():
        for bucket, value in protect_small_groups(groups, k, OTHER).items():
            result[SegmentKey(dimension, bucket)] = value
    return result


def segment_figures(
    facts: Iterable[ResponseFact],
    buckets: SegmentBuckets,
    window: AnyWindow,
    now: datetime,
    survey_kind: SurveyKind,
    rules: Rules = DEFAULT_RULES,
) -> list[SegmentFigures]:
    """Every segment's figures in a window ending ``now``, with the change since the last.

    The whole comes first, then the dimensions in the policy's order, buckets by name.
    A segment with responses in either period is listed; an eNPS group too small to
    show is folded into ``other`` or left out (see ``protect_small_groups``).
    """
    facts = list(facts)
    period, previous_period = window.period(now), window.previous(now)
    k = rules.min_group(survey_kind)
    current = shown(count_by_segment(facts, buckets, period, survey_kind), k)
    previous = shown(count_by_segment(facts, buckets, previous_period, survey_kind), k)
    if k <= 1:
        keys = set(current) | set(previous)
    else:
        # A group shown only last period is not listed at 0 now: its responses this period
        # may sit in ``other``, and a 0 beside them would be false.
        keys = set(current)
    order = {dimension: index for index, dimension in enumerate(buckets.policy.dimensions)}

    def place(key: SegmentKey) -> tuple[bool, int, str]:
        return (key != WHOLE, order.get(key.dimension, -1), key.bucket)

    result = []
    for key in sorted(keys, key=place):
        before = previous.get(key, Counts() if k <= 1 else None)
        trend = Trend.of(
            Figures.of(current.get(key, Counts()), rules.min_sample),
            None if before is None else Figures.of(before, rules.min_sample),
        )
        result.append(SegmentFigures(survey_kind, window.name, period, previous_period, key, trend))
    return result
