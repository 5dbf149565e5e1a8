"""Loop health: are detractors called back, and how fast. A pure fold over case events.

Each case's history is rebuilt from the set of its events, deduplicated by event id and
replayed in time order, so the same event twice changes nothing and events that arrive
out of order give the same history as in order. Replay is lenient where the notifier's
``Case.apply`` is strict: the aggregator reports what happened, it does not refuse it.

- time to claim, contact and resolve run from the opened event; the first claim and
  the first contact count (contacting claims an unclaimed case, as in the notifier);
  a case resolved, reopened and resolved again was resolved at its last resolution.
- contacted within SLA: first contact at or before ``sla_due_at``. A case whose outcome
  is not known yet (not contacted, SLA not yet past) is pending, in neither count; one
  without an SLA (an opened event from before ``sla_due_at`` existed) is left out.
- open cases are those not resolved now; breached are open cases past their SLA, the
  notifier's ``Case.breached`` for an open case.
- percentiles interpolate linearly between the nearest ranks (numpy's default), so the
  95th percentile of few cases is not simply the slowest one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.aggregator.domain import Period
from shared.events import CaseAction, CaseEvent
from shared.nps import Category

# Steps at the same instant replay in the order they can happen in.
_STEP_ORDER = {
    CaseAction.OPENED: 0,
    CaseAction.CLAIMED: 1,
    CaseAction.CONTACTED: 2,
    CaseAction.ESCALATED: 3,
    CaseAction.RESOLVED: 4,
    CaseAction.REOPENED: 5,
}


@dataclass(frozen=True)
class CaseStep:
    """One case event as the aggregator keeps it: a row of its case-event table."""

    event_id: str
    case_id: str
    response_id: str
    action: CaseAction
    at: datetime
    sla_due_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", self.at.astimezone(UTC))
        if self.sla_due_at is not None:
            object.__setattr__(self, "sla_due_at", self.sla_due_at.astimezone(UTC))

    @classmethod
    def of(cls, event: CaseEvent) -> CaseStep:
        return cls(
            str(event.event_id),
            event.case_id,
            event.response_id,
            event.action,
            event.occurred_at,
            event.sla_due_at,
        )

    @property
    def replay_order(self) -> tuple[datetime, int, str]:
        return (self.at, _STEP_ORDER[self.action], self.event_id)


@dataclass(frozen=True)
class CaseHistory:
    """What happened to one case, as far as its events tell."""

    case_id: str
    response_id: str
    opened_at: datetime | None
    sla_due_at: datetime | None
    claimed_at: datetime | None
    contacted_at: datetime | None
    resolved_at: datetime | None
    escalated: bool
    reopened: int

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.resolved_at is None

    def breached(self, now: datetime) -> bool:
        """Open and past its SLA."""
        return self.is_open and self.sla_due_at is not None and now > self.sla_due_at

    def contacted_within_sla(self, now: datetime) -> bool | None:
        """Whether the first contact met the SLA; None while not known, or without an SLA."""
        if self.sla_due_at is None:
            return None
        if self.contacted_at is not None:
            return self.contacted_at <= self.sla_due_at
        return False if now > self.sla_due_at else None


def history(steps: Iterable[CaseStep]) -> CaseHistory:
    """A case's history from its events, in any order and with repeats."""
    unique = {step.event_id: step for step in steps}
    if not unique:
        raise ValueError("a case history needs at least one event")
    ordered = sorted(unique.values(), key=lambda step: step.replay_order)
    opened_at = sla_due_at = claimed_at = contacted_at = resolved_at = None
    escalated, reopened = False, 0
    for step in ordered:
        if step.action == CaseAction.OPENED:
            if opened_at is None:
                opened_at, sla_due_at = step.at, step.sla_due_at
        elif step.action == CaseAction.CLAIMED:
            claimed_at = claimed_at or step.at
        elif step.action == CaseAction.CONTACTED:
            claimed_at = claimed_at or step.at
            contacted_at = contacted_at or step.at
        elif step.action == CaseAction.RESOLVED:
            resolved_at = step.at
        elif step.action == CaseAction.REOPENED:
            if resolved_at is not None:
                reopened += 1
            resolved_at = None
        elif step.action == CaseAction.ESCALATED:
            escalated = True
    first = ordered[0]
    return CaseHistory(
        first.case_id,
        first.response_id,
        opened_at,
        sla_due_at,
        claimed_at,
        contacted_at,
        resolved_at,
        escalated,
        reopened,
    )


class CaseLedger:
    """Every case event once, by event id, grouped by case: the state of the fold."""

    def __init__(self, steps: Iterable[CaseStep] = ()) -> None:
        self._steps: dict[str, dict[str, CaseStep]] = {}
        for step in steps:
            self.record(step)

    def record(self, step: CaseStep) -> bool:
        """Keep a case event; False when it was kept already."""
        of_case = self._steps.setdefault(step.case_id, {})
        if step.event_id in of_case:
            return False
        of_case[step.event_id] = step
        return True

    def histories(self) -> Iterator[CaseHistory]:
        for steps in self._steps.values():
            yield history(steps.values())


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks; None if empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


@dataclass(frozen=True)
class Durations:
    """How long a step took: how many cases took it, the median and the 95th percentile."""

    count: int
    median: timedelta | None
    p95: timedelta | None

    @classmethod
    def of(cls, durations: Iterable[timedelta]) -> Durations:
        # Clocks of different systems may put a step a moment before its opening.
        seconds = [max(duration.total_seconds(), 0.0) for duration in durations]
        median, p95 = quantile(seconds, 0.5), quantile(seconds, 0.95)
        return cls(
            len(seconds),
            None if median is None else timedelta(seconds=median),
            None if p95 is None else timedelta(seconds=p95),
        )


@dataclass(frozen=True)
class LoopHealth:
    """How the follow-up loop does for the cases opened in a period, and its state now."""

    opened: int
    within_sla: int
    missed_sla: int
    pending: int
    time_to_claim: Durations
    time_to_contact: Durations
    time_to_resolve: Durations
    open_now: int
    breached_now: int

    @property
    def share_within_sla(self) -> float | None:
        """Contacted within SLA among the cases whose outcome is known."""
        decided = self.within_sla + self.missed_sla
        return None if decided == 0 else self.within_sla / decided


def loop_health(
    histories: Iterable[CaseHistory],
    period: Period,
    now: datetime,
    categories: Mapping[str, Category] | None = None,
    category: Category | None = None,
) -> LoopHealth:
    """Loop health of the cases opened in ``period``; open and breached counts are as of ``now``.

    With ``category`` (e.g. detractors), only cases whose response has that category in
    ``categories`` (response id to category, from the response ledger) are counted.
    """
    chosen = [
        case
        for case in histories
        if category is None or (categories or {}).get(case.response_id) == category
    ]
    cohort = [case for case in chosen if case.opened_at is not None and case.opened_at in period]
    outcomes = [case.contacted_within_sla(now) for case in cohort]

    def took(step: Callable[[CaseHistory], datetime | None]) -> Durations:
        spans = []
        for case in cohort:
            at = step(case)
            if at is not None and case.opened_at is not None:
                spans.append(at - case.opened_at)
        return Durations.of(spans)

    return LoopHealth(
        opened=len(cohort),
        within_sla=outcomes.count(True),
        missed_sla=outcomes.count(False),
        pending=sum(
            1
            for case, outcome in zip(cohort, outcomes, strict=True)
            if outcome is None and case.sla_due_at is not None
        ),
        time_to_claim=took(lambda case: case.claimed_at),
        time_to_contact=took(lambda case: case.contacted_at),
        time_to_resolve=took(lambda case: case.resolved_at),
        open_now=sum(1 for case in chosen if case.is_open),
        breached_now=sum(1 for case in chosen if case.breached(now)),
    )
