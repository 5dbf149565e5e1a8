"""A case nobody claims within its SLA is escalated once, to the escalation channel."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters import Sender
from services.notifier.case_store import SqlCases
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, LoopConfig
from shared.events import CaseAction, CaseEvent
from tests.unit.builders import FakeClock, a_classified_response, run
from tests.unit.test_notifier import FakeOutbox, FakeSender

CONFIG = LoopConfig(
    slack_channel="#nps-alerts", company_name="Our Shop", escalation_channel="#cx-escalations"
)


class Escalating:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.slack = FakeSender()
        self.cases = SqlCases(sessions)
        self.events: list[CaseEvent] = []
        senders: dict[Channel, Sender] = {Channel.SLACK: self.slack, Channel.EMAIL: FakeSender()}

        async def record(event: CaseEvent) -> None:
            self.events.append(event)

        self.dispatcher = Dispatcher(
            FakeOutbox(),
            senders,
            CONFIG,
            DeliveryMetrics.create(self.registry),
            clock=self.clock,
            cases=self.cases,
            on_case=record,
        )

    def escalations_posted(self) -> list[str]:
        return [entry.recipient for entry in self.slack.sent if entry.kind == "escalation"]


def test_a_detractor_opens_a_case_that_escalates_once_when_nobody_claims_it(
    sessions: sessionmaker[Session],
) -> None:
    loop = Escalating(sessions)
    classified = a_classified_response(2, comment="Ingen svarede")
    loop.clock.now = classified.response.occurred_at
    run(loop.dispatcher.handle(classified))
    assert [event.action for event in loop.events] == [CaseAction.OPENED]

    loop.clock.advance(timedelta(hours=47).total_seconds())
    assert run(loop.dispatcher.escalate_due()) == 0
    loop.clock.advance(timedelta(hours=2).total_seconds())
    assert run(loop.dispatcher.escalate_due()) == 1
    assert run(loop.dispatcher.escalate_due()) == 0
    assert loop.escalations_posted() == ["#cx-escalations"]
    assert [event.action for event in loop.events] == [CaseAction.OPENED, CaseAction.ESCALATED]
    assert loop.registry.get_sample_value("npsloop_escalations_total") == 1.0


def test_the_opened_event_says_when_the_case_must_be_claimed_by(
    sessions: sessionmaker[Session],
) -> None:
    loop = Escalating(sessions)
    classified = a_classified_response(2)
    loop.clock.now = classified.response.occurred_at
    run(loop.dispatcher.handle(classified))
    (opened,) = loop.events
    # The rules give a detractor 48 hours (see the escalation after 47 + 2 hours above).
    assert opened.sla_due_at == classified.response.occurred_at + timedelta(hours=48)


def test_a_claimed_case_is_never_escalated(sessions: sessionmaker[Session]) -> None:
    loop = Escalating(sessions)
    classified = a_classified_response(3)
    loop.clock.now = classified.response.occurred_at
    run(loop.dispatcher.handle(classified))
    [opened] = loop.events
    case = loop.cases.get(opened.case_id)
    assert case is not None
    loop.cases.save(case.apply(CaseAction.CLAIMED, "U123", loop.clock()), loop.clock())
    loop.clock.advance(timedelta(days=10).total_seconds())
    assert run(loop.dispatcher.escalate_due()) == 0
    assert loop.escalations_posted() == []


def test_an_erased_customer_is_forgotten_by_their_case(sessions: sessionmaker[Session]) -> None:
    import uuid

    from shared.events import ContactPreference

    loop = Escalating(sessions)
    classified = a_classified_response(2, customer_id="c-erased")
    loop.clock.now = classified.response.occurred_at
    run(loop.dispatcher.handle(classified))
    [opened] = loop.events
    erased = ContactPreference(
        event_id=uuid.uuid4(), occurred_at=loop.clock(), customer_id="c-erased", action="erased"
    )
    run(loop.dispatcher.handle_preference(erased))
    case = loop.cases.get(opened.case_id)
    assert case is not None and case.customer_id is None


def test_a_case_opened_by_a_worker_that_died_before_publishing_is_published_on_redelivery(
    sessions: sessionmaker[Session],
) -> None:
    loop = Escalating(sessions)
    classified = a_classified_response(2, response_id="resp-died")
    loop.clock.now = classified.response.occurred_at
    run(loop.dispatcher.handle(classified))
    [opened] = loop.events
    # As if the worker died right after storing the case: nothing reached the topic.
    loop.events.clear()

    run(loop.dispatcher.handle(classified))
    [again] = loop.events
    assert again == opened

    # Once the notifier has read its own opened event back, redeliveries publish nothing.
    run(loop.dispatcher.handle_case_event(again))
    run(loop.dispatcher.handle(classified))
    assert loop.events == [again]
