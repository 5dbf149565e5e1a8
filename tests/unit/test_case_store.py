"""Cases and posted alerts stored in the notifier's database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from services.notifier.case_store import SqlCases
from services.notifier.cases import Case, CaseState
from shared.events import CaseAction

OPENED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_response_gets_one_case_however_often_it_is_opened(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    case = Case.open("resp-1", "c-1", OPENED, sla_hours=48, question="What one thing?")
    assert cases.open(case, {"store": "Aarhus C"}, OPENED)
    assert not cases.open(case, {"store": "Aarhus C"}, OPENED)
    assert cases.get(case.case_id) == case


def test_a_saved_step_reads_back_with_who_and_when_in_utc(sessions: sessionmaker[Session]) -> None:
    cases = SqlCases(sessions)
    case = Case.open("resp-2", "c-2", OPENED, sla_hours=48)
    cases.open(case, {}, OPENED)
    claimed = case.apply(CaseAction.CLAIMED, "U123", OPENED + timedelta(hours=2))
    cases.save(claimed, OPENED + timedelta(hours=2))
    stored = cases.get(case.case_id)
    assert stored is not None and stored.state == CaseState.CLAIMED
    assert stored.claimed_by == "U123" and stored.claimed_at == OPENED + timedelta(hours=2)


def test_only_open_unescalated_cases_past_their_sla_are_due_for_escalation(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    late = Case.open("late", None, OPENED, sla_hours=1)
    early = Case.open("early", None, OPENED, sla_hours=100)
    claimed = Case.open("claimed", None, OPENED, sla_hours=1)
    for case in (late, early, claimed):
        cases.open(case, {}, OPENED)
    cases.save(claimed.apply(CaseAction.CLAIMED, "U1", OPENED), OPENED)
    now = OPENED + timedelta(hours=2)
    assert [case.response_id for case in cases.due_for_escalation(now)] == ["late"]
    cases.save(late.apply(CaseAction.ESCALATED, None, now), now)
    assert cases.due_for_escalation(now) == []


def test_an_alert_is_remembered_with_where_it_was_posted(sessions: sessionmaker[Session]) -> None:
    cases = SqlCases(sessions)
    cases.remember_alert("resp-3", {"category": "detractor"}, OPENED)
    cases.alert_posted("resp-3", "C123", "1700000000.000100", OPENED)
    alert = cases.alert("resp-3")
    assert alert is not None and (alert.channel, alert.ts) == ("C123", "1700000000.000100")
    assert alert.classified == {"category": "detractor"}
    assert cases.alert("unknown") is None


def test_erasure_keeps_what_staff_did_but_not_who_the_customer_was(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    case = Case.open("resp-4", "c-erase", OPENED, sla_hours=48)
    cases.open(case, {}, OPENED)
    cases.forget_customer("c-erase")
    stored = cases.get(case.case_id)
    assert stored is not None and stored.customer_id is None and stored.state == CaseState.OPEN
