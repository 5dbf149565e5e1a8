"""Segments: which dimensions NPS is cut by, and which of their values get a bucket of their own.

Pure: no Faust, no I/O. Every bucket becomes a label value and so a time series, which
is why their number is bounded by configuration and why a value, once it has its own
bucket, keeps it: a series that comes and goes with the traffic cannot be graphed.

The policy is *first seen, kept for good*: per dimension, the first ``max_values``
distinct values seen get their own bucket, in the order they were admitted; every
later value goes to ``other``. The admitted values are state: the read model stores
them (dimension, value, position) and hands them back on start, so a restart or a
rebalance keeps every series. Top-N by count was the alternative; it would move values
in and out of ``other`` as counts shift, breaking the series it is meant to protect.
Which values come first depends on arrival order when more than ``max_values`` exist;
the figures of the values admitted do not.

A response that names no value for a dimension counts in ``unspecified``; no response
is ever dropped from a dimension, so each dimension's buckets add up to the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

DIMENSIONS: Final[tuple[str, ...]] = (
    "region",
    "business_unit",
    "department",
    "product",
    "store",
    "channel",
)
"""The dimensions of ``shared.events.Segment``, in its order."""

OTHER: Final = "other"
UNSPECIFIED: Final = "unspecified"
RESERVED: Final = frozenset({OTHER, UNSPECIFIED})


@dataclass(frozen=True)
class SegmentPolicy:
    """Which dimensions to cut by (an allow-list) and how many values each may show."""

    dimensions: tuple[str, ...] = DIMENSIONS
    max_values: int = 20

    def __post_init__(self) -> None:
        unknown = [name for name in self.dimensions if name not in DIMENSIONS]
        if unknown:
            raise ValueError(f"{unknown} are not segment dimensions; they are {DIMENSIONS}")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"a dimension is named twice: {self.dimensions}")
        if self.max_values < 0:
            raise ValueError(f"max_values cannot be negative: {self.max_values}")


@dataclass(frozen=True)
class SegmentBuckets:
    """The values that have a bucket of their own, per dimension, in the order admitted."""

    policy: SegmentPolicy = SegmentPolicy()
    admitted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Stored values are loaded as given, then held to today's policy: a dimension
        # no longer allowed is dropped, a lowered cap keeps the earliest admitted.
        held = {
            dimension: tuple(
                value for value in self.admitted.get(dimension, ()) if value not in RESERVED
            )[: self.policy.max_values]
            for dimension in self.policy.dimensions
        }
        object.__setattr__(self, "admitted", MappingProxyType(held))

    def admit(self, segment: Mapping[str, str | None]) -> SegmentBuckets:
        """These buckets after seeing a segment: new values admitted while there is room."""
        grown = dict(self.admitted)
        for dimension in self.policy.dimensions:
            value = segment.get(dimension)
            values = grown[dimension]
            if (
                value is not None
                and value not in RESERVED
                and value not in values
                and len(values) < self.policy.max_values
            ):
                grown[dimension] = (*values, value)
        if grown == dict(self.admitted):
            return self
        return SegmentBuckets(self.policy, grown)

    def bucket(self, dimension: str, value: str | None) -> str:
        """The label a value counts under: itself, ``other`` or ``unspecified``."""
        if value is None:
            return UNSPECIFIED
        return value if value in self.admitted.get(dimension, ()) else OTHER

    def labels(self, dimension: str) -> tuple[str, ...]:
        """Every bucket of a dimension, to initialise its label sets up front."""
        return (*self.admitted.get(dimension, ()), OTHER, UNSPECIFIED)
