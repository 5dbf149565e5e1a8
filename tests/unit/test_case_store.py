"""Cases and posted alerts stored in the notifier's database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from services.notifier.case_store import Intake, SqlCases
from services.notifier.cases import Case, CaseState
from shared.events import CaseAction, CaseEvent

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


def an_opened_step(case: Case) -> CaseEvent:
    return CaseEvent(
        event_id=uuid.uuid4(),
        occurred_at=OPENED,
        case_id=case.case_id,
        response_id=case.response_id,
        action=CaseAction.OPENED,
    )


def test_taking_in_a_response_remembers_its_version_opens_its_case_and_reads_it_back(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    case = Case.open("resp-5", "c-5", OPENED, sla_hours=48, question="What one thing?")
    version = {"event_id": "v1", "response": {"customer_id": "c-5"}}

    first = cases.take_in("resp-5", version, OPENED, (case, {"store": "Aarhus C"}))

    assert first == Intake(new_version=True, case=case, to_announce=case)
    alert = cases.alert("resp-5")
    assert alert is not None and alert.classified == version
    assert cases.open_by_segment() == [("open", {"store": "Aarhus C"})]


def test_a_redelivered_version_is_not_new_and_its_case_is_announced_until_its_event_came_back(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    case = Case.open("resp-6", "c-6", OPENED, sla_hours=48)
    version = {"event_id": "v1"}
    cases.take_in("resp-6", version, OPENED, (case, {}))

    # The worker died before its opened event came back: announced again.
    again = cases.take_in("resp-6", version, OPENED, (case, {}))
    assert again == Intake(new_version=False, case=case, to_announce=case)

    cases.apply_step(an_opened_step(case), OPENED)
    later = cases.take_in("resp-6", {"event_id": "v2"}, OPENED, (case, {}))
    assert later == Intake(new_version=True, case=case, to_announce=None)


def test_a_response_that_opens_no_case_is_taken_in_without_one(
    sessions: sessionmaker[Session],
) -> None:
    cases = SqlCases(sessions)
    assert cases.take_in("resp-7", {"event_id": "v1"}, OPENED) == Intake(True, None, None)
    assert cases.take_in("resp-7", {"event_id": "v1"}, OPENED) == Intake(False, None, None)
