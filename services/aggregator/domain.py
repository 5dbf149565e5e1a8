"""Rolling windows and the figures shown for each. Pure: no Faust, no I/O.

Aggregates are stored as counts; NPS and its margin of error are derived when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.nps import Counts, margin_of_error, nps, standard_error


@dataclass(frozen=True)
class Window:
    """A rolling window ending now, named as it appears in metric labels."""

    name: str
    length: timedelta

    def start(self, now: datetime) -> datetime:
        return now - self.length


ROLLING_30D = Window("30d", timedelta(days=30))
WINDOWS: tuple[Window, ...] = (ROLLING_30D,)


@dataclass(frozen=True)
class Figures:
    """What a window says: the counts, NPS, its standard error and 95% margin of error."""

    counts: Counts
    nps: float | None
    standard_error: float | None
    margin_of_error: float | None

    @classmethod
    def of(cls, counts: Counts) -> Figures:
        return cls(counts, nps(counts), standard_error(counts), margin_of_error(counts))
