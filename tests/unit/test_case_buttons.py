"""Clicking an alert's buttons: each step applied once, shown in place, counted and timed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import DeliveryFailed, OutboxEntry, Sender
from services.notifier.case_page import render_case_page
from services.notifier.case_store import SqlCases, UnknownCase
from services.notifier.cases import Case
from services.notifier.dispatch import DeliveryMetrics, Dispatcher, cases_open_series
from services.notifier.domain import Channel, LoopConfig
from shared.events import CaseAction, CaseEvent, ClassifiedResponse
from shared.ids import case_id_for
from shared.links import case_link
from shared.signing import TokenSigner
from tests.unit.builders import FakeClock, a_classified_response, run
from tests.unit.test_notifier import FakeOutbox, FakeSender

CONFIG = LoopConfig(slack_channel="#nps-alerts", company_name="Our Shop")
SIGNER = TokenSigner(b"case link secret")


class SlackLike(FakeSender):
    """Answers like Slack: the channel id and the message's ts."""

    async def send(self, entry: OutboxEntry) -> str:
        await super().send(entry)
        ts = entry.payload.get("ts") or f"1700000000.{len(self.sent):06d}"
        return f"C0NPSALERT:{ts}"


class Following:
    def __init__(self, sessions: sessionmaker[Session], *failures: DeliveryFailed) -> None:
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.slack = SlackLike(*failures)
        self.cases = SqlCases(sessions)
        self.outbox = FakeOutbox()
        senders: dict[Channel, Sender] = {Channel.SLACK: self.slack, Channel.EMAIL: FakeSender()}
        self.dispatcher = Dispatcher(
            self.outbox,
            senders,
            CONFIG,
            DeliveryMetrics.create(self.registry),
            clock=self.clock,
            cases=self.cases,
            case_links=lambda case: case_link(
                SIGNER, "https://cx.example", case.case_id, case.opened_at
            ),
        )

    def respond(self, classified: ClassifiedResponse) -> None:
        self.clock.now = max(self.clock.now, classified.response.occurred_at)
        run(self.dispatcher.handle(classified))

    def click(self, action: CaseAction, user: str = "U0KIM", response_id: str = "resp-1") -> None:
        self.clock.advance(60)
        run(self.dispatcher.handle_case_event(step(action, user, response_id, self.clock())))

    def posted(self, kind: str) -> list[dict[str, Any]]:
        return [entry.payload for entry in self.slack.sent if entry.kind == kind]

    def steps(self, action: str, outcome: str) -> float | None:
        return self.registry.get_sample_value(
            "npsloop_case_steps_total", {"action": action, "outcome": outcome}
        )


def step(action: CaseAction, user: str, response_id: str, at: Any) -> CaseEvent:
    return CaseEvent(
        event_id=uuid.uuid4(),
        occurred_at=at,
        case_id=case_id_for(response_id),
        response_id=response_id,
        action=action,
        actor=user,
    )


def shown(payload: dict[str, Any]) -> str:
    return str(payload["blocks"])


def test_the_alert_carries_the_case_link_and_a_claim_button_naming_the_response(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(2))

    [alert] = loop.posted("alert")
    assert "https://cx.example/cases/" in shown(alert)
    [actions] = [block for block in alert["blocks"] if block["type"] == "actions"]
    assert [(b["action_id"], b["value"]) for b in actions["elements"]] == [("case_claim", "resp-1")]


def test_a_claim_is_applied_and_the_alert_is_redrawn_in_place_showing_who(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(2))
    [alert] = loop.posted("alert")

    loop.click(CaseAction.CLAIMED, "U0KIM")

    case = loop.cases.get(case_id_for("resp-1"))
    assert case is not None and case.state == "claimed" and case.claimed_by == "U0KIM"
    [update] = loop.posted("alert_update")
    assert update["channel"] == "C0NPSALERT" and update["ts"] == "1700000000.000001"
    assert "<@U0KIM>" in shown(update) and "*Claimed*" in shown(update)
    assert "case_contacted" in shown(update) and "case_claim" not in shown(update)
    assert len(loop.posted("alert")) == 1
    assert loop.steps("claimed", "applied") == 1
    assert loop.registry.get_sample_value("npsloop_case_time_to_claim_seconds_count") == 1
    assert alert["channel"] == "#nps-alerts"


def test_contacted_then_resolved_each_redraw_the_alert_and_time_the_contact(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(5))
    loop.click(CaseAction.CLAIMED)
    loop.click(CaseAction.CONTACTED, "U0SAM")
    loop.click(CaseAction.RESOLVED, "U0SAM")

    updates = loop.posted("alert_update")
    assert len(updates) == 3
    assert "*Resolved*" in shown(updates[-1]) and "case_reopen" in shown(updates[-1])
    assert loop.registry.get_sample_value("npsloop_case_time_to_contact_seconds_count") == 1
    assert [s.action for s in loop.cases.steps(case_id_for("resp-1"))] == [
        "claimed",
        "contacted",
        "resolved",
    ]


def test_the_same_click_delivered_twice_is_applied_once(sessions: sessionmaker[Session]) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(2))
    claim = step(CaseAction.CLAIMED, "U0KIM", "resp-1", loop.clock())

    run(loop.dispatcher.handle_case_event(claim))
    run(loop.dispatcher.handle_case_event(claim))

    assert len(loop.posted("alert_update")) == 1
    assert loop.steps("claimed", "applied") == 1
    assert loop.steps("claimed", "duplicate") == 1


def test_a_step_that_does_not_fit_the_case_is_refused_counted_and_kept_in_its_history(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(2))

    loop.click(CaseAction.REOPENED)

    case = loop.cases.get(case_id_for("resp-1"))
    assert case is not None and case.state == "open"
    assert loop.posted("alert_update") == []
    assert loop.steps("reopened", "refused") == 1
    [history] = loop.cases.steps(case_id_for("resp-1"))
    assert history.outcome == "refused" and "only a resolved case reopens" in (history.note or "")


def test_a_step_for_a_case_that_does_not_exist_raises_for_the_dlq(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)

    with pytest.raises(UnknownCase, match="does not exist"):
        loop.click(CaseAction.CLAIMED, response_id="never-seen")


def test_a_comment_after_the_one_click_score_redraws_the_alert_instead_of_a_second_one(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(3, comment=None))
    loop.respond(a_classified_response(3, comment="Pakken kom aldrig frem"))

    assert len(loop.posted("alert")) == 1
    [update] = loop.posted("alert_update")
    assert "Pakken kom aldrig frem" in shown(update)


def test_a_redelivered_version_redraws_nothing(sessions: sessionmaker[Session]) -> None:
    loop = Following(sessions)
    classified = a_classified_response(3)
    loop.respond(classified)
    loop.respond(classified)

    assert len(loop.posted("alert")) == 1
    assert loop.posted("alert_update") == []


def test_a_comment_that_arrives_while_the_alert_waits_for_slack_goes_into_that_alert(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions, DeliveryFailed("Slack answered 500"))
    loop.respond(a_classified_response(3, comment=None))
    assert loop.posted("alert") == []

    loop.respond(a_classified_response(3, comment="Ingen ringede tilbage"))
    loop.clock.advance(600)
    run(loop.dispatcher.retry_due())

    [alert] = loop.posted("alert")
    assert "Ingen ringede tilbage" in shown(alert)
    assert loop.posted("alert_update") == []


def test_open_cases_are_counted_by_state_and_segment_with_rare_values_as_other() -> None:
    open_cases = [
        ("open", {"store": "Aarhus C", "region": "Jylland"}),
        ("open", {"store": "Aarhus C"}),
        ("claimed", {"store": "Odense"}),
        ("open", {"store": "Vejle"}),
    ]

    series = cases_open_series(open_cases, max_values=1)

    assert series == {
        ("open", "all", "all"): 3,
        ("claimed", "all", "all"): 1,
        ("open", "store", "Aarhus C"): 2,
        ("open", "store", "other"): 1,
        ("claimed", "store", "other"): 1,
        ("open", "region", "Jylland"): 1,
    }


def test_the_gauge_shows_open_cases_after_a_refresh(sessions: sessionmaker[Session]) -> None:
    loop = Following(sessions)
    loop.respond(a_classified_response(2))
    loop.respond(a_classified_response(1, response_id="resp-2", customer_id="cust-2"))
    loop.click(CaseAction.CLAIMED, response_id="resp-2")

    run(loop.dispatcher.refresh_gauges())

    def gauge(state: str) -> float | None:
        return loop.registry.get_sample_value(
            "npsloop_cases_open", {"state": state, "dimension": "all", "value": "all"}
        )

    assert (gauge("open"), gauge("claimed")) == (1, 1)


def test_the_case_page_escapes_the_customer_and_lists_every_step(
    sessions: sessionmaker[Session],
) -> None:
    loop = Following(sessions)
    hostile = '<script>alert("x")</script> & <b>bold</b>'
    loop.respond(a_classified_response(2, comment=hostile))
    loop.click(CaseAction.CLAIMED, "U0KIM")
    loop.click(CaseAction.REOPENED, "U0KIM")
    case = loop.cases.get(case_id_for("resp-1"))
    assert case is not None
    posted = loop.cases.alert("resp-1")
    assert posted is not None

    page = render_case_page(
        case,
        loop.cases.steps(case.case_id),
        ClassifiedResponse.model_validate(posted.classified),
        loop.clock() + timedelta(days=3),
    )

    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Claimed" in page and "U0KIM" in page and "only a resolved case reopens" in page
    assert "breached" in page


def test_a_case_link_is_stable_and_signed() -> None:
    case = Case.open("resp-1", "cust-1", FakeClock()(), 48)
    link = case_link(SIGNER, "https://cx.example/", case.case_id, case.opened_at)

    assert link == case_link(SIGNER, "https://cx.example", case.case_id, case.opened_at)
    token = link.rsplit("/", 1)[1]
    assert SIGNER.verify(token)["case"] == case.case_id


def test_an_erased_customer_s_alert_is_redrawn_without_their_words_and_its_copies_scrubbed(
    sessions: sessionmaker[Session],
) -> None:
    from shared.events import ContactPreference

    loop = Following(sessions)
    said = "Ring mig på 12345678, Karen Jensen"
    loop.respond(a_classified_response(2, comment=said, email="karen@example.com"))
    [alert] = loop.posted("alert")
    assert said in shown(alert)

    erased = ContactPreference(
        event_id=uuid.uuid4(), occurred_at=loop.clock(), customer_id="cust-1", action="erased"
    )
    run(loop.dispatcher.handle_preference(erased))

    [update] = loop.posted("alert_update")
    assert said not in shown(update) and "erased at the customer" in shown(update)
    kept = loop.cases.alert("resp-1")
    assert kept is not None and said not in str(kept.classified)
    assert "karen@example.com" not in str(kept.classified)
    assert all(
        said not in str(row.delivery.payload)
        for row in loop.outbox.rows.values()
        if row.delivery.kind.value == "alert"
    )
