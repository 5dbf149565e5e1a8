"""The Net Promoter Score, as plain functions.

A response is a draw of X in {+1 promoter, 0 passive, -1 detractor}; NPS is
100 times the mean of X. Its variance follows from the category shares, which
gives the standard error and the margin of error without any other input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

Z_95 = 1.959963984540054


class Category(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def classify(score: int) -> Category:
    """Promoters score 9-10, passives 7-8, detractors 0-6."""
    if isinstance(score, bool) or not isinstance(score, int):
        raise TypeError(f"a score is a whole number from 0 to 10, not {score!r}")
    if not 0 <= score <= 10:
        raise ValueError(f"a score is a whole number from 0 to 10, not {score}")
    if score >= 9:
        return Category.PROMOTER
    if score >= 7:
        return Category.PASSIVE
    return Category.DETRACTOR


@dataclass(frozen=True)
class Counts:
    """How many responses fell in each category."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    def __post_init__(self) -> None:
        if min(self.promoters, self.passives, self.detractors) < 0:
            raise ValueError(f"counts cannot be negative: {self}")

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    def of(self, category: Category) -> int:
        return {
            Category.PROMOTER: self.promoters,
            Category.PASSIVE: self.passives,
            Category.DETRACTOR: self.detractors,
        }[category]

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    @classmethod
    def tally(cls, categories: Iterable[Category]) -> Counts:
        """The counts of a collection of responses' categories."""
        seen = list(categories)
        return cls(
            promoters=seen.count(Category.PROMOTER),
            passives=seen.count(Category.PASSIVE),
            detractors=seen.count(Category.DETRACTOR),
        )


def nps(counts: Counts) -> float | None:
    """NPS in points (-100..100); None when there are no responses."""
    if counts.n == 0:
        return None
    return 100.0 * (counts.promoters - counts.detractors) / counts.n


def standard_error(counts: Counts) -> float | None:
    """Standard error of NPS in points; None when there are no responses."""
    n = counts.n
    if n == 0:
        return None
    p = counts.promoters / n
    d = counts.detractors / n
    variance = p + d - (p - d) ** 2
    return 100.0 * math.sqrt(max(variance, 0.0) / n)


def margin_of_error(counts: Counts, z: float = Z_95) -> float | None:
    """Half-width of the confidence interval of NPS (95% by default), in points."""
    se = standard_error(counts)
    return None if se is None else z * se


@dataclass(frozen=True)
class Change:
    """The difference between two periods' NPS and whether it is more than noise."""

    delta: float
    z: float
    significant: bool


def change(before: Counts, after: Counts, z_critical: float = Z_95) -> Change | None:
    """Two-sample z-test on NPS: z = (after - before) / sqrt(se_before² + se_after²).

    Significant when |z| reaches ``z_critical`` (1.96 for 95%). None when either period has
    no responses: there is nothing to compare. When both standard errors are 0 (each
    period unanimous) any difference is certain (z = ±inf) and no difference is z = 0;
    with so few responses that a period is unanimous by chance, callers should also look
    at the sample size (the aggregator does, with its insufficient-sample flag).
    """
    nps_before, nps_after = nps(before), nps(after)
    se_before, se_after = standard_error(before), standard_error(after)
    if nps_before is None or nps_after is None or se_before is None or se_after is None:
        return None
    delta = nps_after - nps_before
    pooled = math.hypot(se_before, se_after)
    if pooled == 0.0:
        z = 0.0 if delta == 0 else math.copysign(math.inf, delta)
    else:
        z = delta / pooled
    return Change(delta=delta, z=z, significant=abs(z) >= z_critical)
