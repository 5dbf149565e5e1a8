"""Follow-up cases: who owns a detractor, until when, and what happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.cases import Case, CaseError, CaseState
from shared.events import CaseAction
from shared.ids import case_id_for

OPENED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def a_case() -> Case:
    return Case.open("resp-1", "c-1", OPENED, sla_hours=48)


def test_a_case_is_one_per_response_with_an_id_anyone_can_derive() -> None:
    assert a_case().case_id == case_id_for("resp-1") != case_id_for("resp-2")
    assert a_case().sla_due_at == OPENED + timedelta(hours=48)


def test_a_case_goes_from_open_to_claimed_to_contacted_to_resolved_saying_who_and_when() -> None:
    case = a_case()
    case = case.apply(CaseAction.CLAIMED, "U111", OPENED + timedelta(hours=1))
    case = case.apply(CaseAction.CONTACTED, "U111", OPENED + timedelta(hours=3))
    case = case.apply(CaseAction.RESOLVED, "U222", OPENED + timedelta(hours=5))
    assert case.state == CaseState.RESOLVED
    assert (case.claimed_by, case.contacted_by, case.resolved_by) == ("U111", "U111", "U222")
    assert case.contacted_at == OPENED + timedelta(hours=3)


def test_contacting_an_unclaimed_customer_claims_the_case_too() -> None:
    case = a_case().apply(CaseAction.CONTACTED, "U333", OPENED + timedelta(hours=2))
    assert case.state == CaseState.CONTACTED
    assert case.claimed_by == "U333" and case.claimed_at == OPENED + timedelta(hours=2)


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        ([CaseAction.CLAIMED], CaseAction.CLAIMED),
        ([CaseAction.RESOLVED], CaseAction.RESOLVED),
        ([CaseAction.RESOLVED], CaseAction.CONTACTED),
        ([], CaseAction.REOPENED),
        ([], CaseAction.OPENED),
    ],
)
def test_a_step_that_does_not_fit_the_case_is_refused_with_the_reason(
    steps: list[CaseAction], refused: CaseAction
) -> None:
    case = a_case()
    for step in steps:
        case = case.apply(step, "U1", OPENED)
    with pytest.raises(CaseError, match="case"):
        case.apply(refused, "U1", OPENED)


def test_a_resolved_case_reopens_as_open_and_forgets_its_resolution() -> None:
    case = (
        a_case().apply(CaseAction.RESOLVED, "U1", OPENED).apply(CaseAction.REOPENED, "U2", OPENED)
    )
    assert case.state == CaseState.OPEN and case.resolved_at is None


def test_an_unclaimed_case_is_due_for_escalation_at_its_sla_once() -> None:
    case = a_case()
    assert not case.due_for_escalation(OPENED + timedelta(hours=47))
    assert case.due_for_escalation(OPENED + timedelta(hours=48))
    escalated = case.apply(CaseAction.ESCALATED, None, OPENED + timedelta(hours=48))
    assert not escalated.due_for_escalation(OPENED + timedelta(hours=49))
    claimed = case.apply(CaseAction.CLAIMED, "U1", OPENED + timedelta(hours=1))
    assert not claimed.due_for_escalation(OPENED + timedelta(hours=100))


def test_a_case_past_its_sla_unresolved_is_breached_and_resolved_late_stays_breached() -> None:
    case = a_case()
    assert not case.breached(OPENED + timedelta(hours=47))
    assert case.breached(OPENED + timedelta(hours=49))
    on_time = case.apply(CaseAction.RESOLVED, "U1", OPENED + timedelta(hours=10))
    assert not on_time.breached(OPENED + timedelta(days=30))
    late = case.apply(CaseAction.RESOLVED, "U1", OPENED + timedelta(hours=60))
    assert late.breached(OPENED + timedelta(days=30))
