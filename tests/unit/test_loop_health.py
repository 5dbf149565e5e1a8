"""Loop health: how fast cases are claimed, contacted and resolved, folded from case events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.domain import Period
from services.aggregator.loop_health import (
    CaseLedger,
    CaseStep,
    Durations,
    history,
    loop_health,
    quantile,
)
from shared.events import CaseAction, CaseEvent
from shared.nps import Category

OPENED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
THIS_WEEK = Period(datetime(2026, 3, 2, tzinfo=UTC), NOW)
SLA = timedelta(hours=24)
OPENED, CLAIMED, CONTACTED = CaseAction.OPENED, CaseAction.CLAIMED, CaseAction.CONTACTED
RESOLVED, REOPENED, ESCALATED = CaseAction.RESOLVED, CaseAction.REOPENED, CaseAction.ESCALATED


def step(
    action: CaseAction, hours: float, case: str = "case-1", sla: timedelta | None = SLA
) -> CaseStep:
    """A case event ``hours`` after the case opened; the opened event carries the SLA."""
    return CaseStep(
        event_id=f"{case}:{action}:{hours}",
        case_id=case,
        response_id=f"resp-of-{case}",
        action=action,
        at=OPENED_AT + timedelta(hours=hours),
        sla_due_at=OPENED_AT + sla if action == OPENED and sla is not None else None,
    )


def test_a_case_event_becomes_a_step_with_its_sla() -> None:
    event = CaseEvent(
        event_id=uuid.uuid4(),
        occurred_at=OPENED_AT,
        case_id="c",
        response_id="r",
        action=OPENED,
        sla_due_at=OPENED_AT + SLA,
    )
    assert CaseStep.of(event).sla_due_at == OPENED_AT + SLA


def test_a_history_says_when_a_case_was_claimed_contacted_and_resolved() -> None:
    case = history([step(OPENED, 0), step(CLAIMED, 2), step(CONTACTED, 5), step(RESOLVED, 30)])
    assert case.claimed_at == OPENED_AT + timedelta(hours=2)
    assert case.contacted_at == OPENED_AT + timedelta(hours=5)
    assert case.resolved_at == OPENED_AT + timedelta(hours=30)
    assert not case.is_open
    assert case.contacted_within_sla(NOW) is True


def test_contacting_an_unclaimed_case_claims_it() -> None:
    case = history([step(OPENED, 0), step(CONTACTED, 3)])
    assert case.claimed_at == case.contacted_at == OPENED_AT + timedelta(hours=3)


def test_a_reopened_case_is_open_until_resolved_again() -> None:
    steps = [step(OPENED, 0), step(CONTACTED, 1), step(RESOLVED, 2), step(REOPENED, 3)]
    assert history(steps).is_open
    resolved_again = history([*steps, step(RESOLVED, 10)])
    assert resolved_again.resolved_at == OPENED_AT + timedelta(hours=10)
    assert resolved_again.reopened == 1


def test_an_open_case_past_its_sla_is_breached_and_missed_it() -> None:
    case = history([step(OPENED, 0), step(CLAIMED, 1), step(ESCALATED, 25)])
    assert case.breached(NOW)
    assert case.escalated
    assert case.contacted_within_sla(NOW) is False


def test_whether_a_young_case_meets_its_sla_is_not_known_yet() -> None:
    case = history([step(OPENED, 0)])
    assert case.contacted_within_sla(OPENED_AT + timedelta(hours=1)) is None


def test_a_case_opened_without_an_sla_is_left_out_of_the_sla_share() -> None:
    case = history([step(OPENED, 0, sla=None), step(CONTACTED, 100)])
    assert case.contacted_within_sla(NOW) is None
    assert not case.breached(NOW)


def test_the_ledger_keeps_each_case_event_once() -> None:
    ledger = CaseLedger()
    assert ledger.record(step(OPENED, 0))
    assert not ledger.record(step(OPENED, 0))
    assert len(list(ledger.histories())) == 1


# --- percentiles, worked by hand ------------------------------------------------------------


def test_the_median_and_95th_percentile_interpolate_between_ranks() -> None:
    hours = [1.0, 2.0, 3.0, 4.0, 10.0]
    # median: position (5 - 1) x 0.5 = 2, the third value: 3
    assert quantile(hours, 0.5) == 3.0
    # p95: position (5 - 1) x 0.95 = 3.8, between 4 (rank 3) and 10 (rank 4):
    # 4 + 0.8 x (10 - 4) = 8.8
    assert quantile(hours, 0.95) == pytest.approx(8.8)
    # an even count: position (4 - 1) x 0.5 = 1.5, halfway between 2 and 3
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.5
    assert quantile([7.0], 0.95) == 7.0
    assert quantile([], 0.5) is None


def test_durations_are_reported_as_median_and_95th_percentile() -> None:
    durations = Durations.of(timedelta(hours=h) for h in (1, 2, 3, 4, 10))
    assert durations == Durations(5, timedelta(hours=3), timedelta(hours=8.8))


# --- the report -----------------------------------------------------------------------------


def five_cases() -> CaseLedger:
    ledger = CaseLedger()
    claims = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 10}
    for case, hours in claims.items():
        ledger.record(step(OPENED, 0, case))
        ledger.record(step(CLAIMED, hours, case))
    # a and b contacted within the 24 h SLA, c after it; d and e never.
    for case, hours in {"a": 2, "b": 20, "c": 30}.items():
        ledger.record(step(CONTACTED, hours, case))
    ledger.record(step(RESOLVED, 40, "a"))
    return ledger


def test_loop_health_of_the_cases_opened_this_week() -> None:
    health = loop_health(five_cases().histories(), THIS_WEEK, NOW)
    assert health.opened == 5
    # within: a, b; missed: c (late), d and e (past their SLA uncontacted)
    assert (health.within_sla, health.missed_sla, health.pending) == (2, 3, 0)
    assert health.share_within_sla == 0.4
    assert health.time_to_claim == Durations(5, timedelta(hours=3), timedelta(hours=8.8))
    # contacts after 2, 20 and 30 hours: median 20, p95 = 20 + 0.9 x 10 = 29
    assert health.time_to_contact == Durations(3, timedelta(hours=20), timedelta(hours=29))
    assert health.time_to_resolve == Durations(1, timedelta(hours=40), timedelta(hours=40))
    assert (health.open_now, health.breached_now) == (4, 4)


def test_loop_health_of_the_detractors_alone() -> None:
    categories = {f"resp-of-{case}": Category.DETRACTOR for case in "ab"}
    categories["resp-of-c"] = Category.PASSIVE
    health = loop_health(
        five_cases().histories(), THIS_WEEK, NOW, categories, category=Category.DETRACTOR
    )
    assert health.opened == 2
    assert health.share_within_sla == 1.0


def test_a_case_opened_before_the_period_counts_only_in_the_open_cases_now() -> None:
    ledger = CaseLedger([step(OPENED, -200, "old")])
    health = loop_health(ledger.histories(), THIS_WEEK, NOW)
    assert health.opened == 0
    assert health.open_now == 1 and health.breached_now == 1


case_steps = st.lists(
    st.builds(
        step,
        action=st.sampled_from(list(CaseAction)),
        hours=st.integers(0, 50),
        case=st.sampled_from(["a", "b", "c"]),
        sla=st.just(SLA),
    ),
    max_size=20,
    unique_by=lambda case_step: case_step.event_id,
)


@settings(database=None, max_examples=200)
@given(steps=case_steps, data=st.data())
def test_any_order_with_any_repeats_gives_the_same_loop_health(
    steps: list[CaseStep], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(steps), max_size=10)) if steps else []
    delivered = data.draw(st.permutations([*steps, *repeats]))

    def report(of: list[CaseStep]) -> object:
        ledger = CaseLedger(of)
        histories = sorted(ledger.histories(), key=lambda case: case.case_id)
        return histories, loop_health(histories, THIS_WEEK, NOW)

    assert report(delivered) == report(steps)
