"""The notifier emails customers what the loops ask: a review request under the review policy,
a follow-up where a rule asks for one; in their language, in their daytime, never to someone
who said no, each review decision recorded once with its reason."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.classifier.domain import classify_response
from services.notifier.adapters import CANCELLED, DeliveryRow, Sender, SqlOutbox
from services.notifier.bootstrap import loop_config
from services.notifier.dispatch import DeliveryMetrics, Dispatcher
from services.notifier.domain import Channel, DeliveryKind, LoopConfig, plan, plan_invitation
from services.notifier.review_store import (
    ReviewLedger,
    SqlReviewDecisions,
    review_decisions_counter,
)
from services.notifier.reviews import ReviewLinks, ReviewPolicy, ReviewReason
from services.notifier.rules import parse_rules
from shared.events import (
    ClassifiedResponse,
    Contact,
    ContactPreference,
    Invitation,
    InvitationStatus,
    ResponseContext,
    Segment,
)
from shared.links import survey_links
from shared.send_window import SendWindow
from shared.settings import Settings
from shared.signing import TokenSigner
from tests.unit.builders import FakeClock, a_response, run
from tests.unit.test_notifier import FakeSender

GOOGLE = "https://g.page/r/lund/review"
FACEBOOK = "https://www.facebook.com/lund/reviews"
AARHUS = {
    "google": "https://g.page/r/lund-aarhus-c/review",
    "facebook": "https://www.facebook.com/lund.aarhus.c/reviews",
    "trustpilot": "https://www.trustpilot.com/evaluate/lund.example",
}
LINKS = ReviewLinks({"google": GOOGLE, "facebook": FACEBOOK}, {"aarhus c": AARHUS})
SIGNER = TokenSigner(b"unit test link key")
# 23:30 in Copenhagen (UTC+1 in January): too late to email anyone.
LATE_EVENING = datetime(2026, 1, 15, 22, 30, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)  # 09:00 in Copenhagen
MIDDAY = datetime(2026, 1, 15, 11, 0, tzinfo=UTC)

FOLLOW_UP_RULES = """
version: 1
rules:
  - name: detractors
    when: {category: detractor}
    then: [open_case: {sla_hours: 48}, follow_up_email]
  - name: passives
    when: {category: passive}
    then: [follow_up_email]
  - name: promoters
    when: {category: promoter}
    then: [review_request]
"""


def unsubscribe_link(customer_id: str, locale: str | None, sent_at: datetime) -> str:
    return f"https://feedback.example.com/u/{customer_id}"


CONFIG = LoopConfig(
    slack_channel="#cx",
    company_name="Lund & Søn",
    review_links=LINKS,
    send_window=SendWindow.parse("09:00-20:00"),
    default_timezone="Europe/Copenhagen",
    unsubscribe_link=unsubscribe_link,
)


def an_answer(
    score: int,
    *,
    customer_id: str = "c-1",
    response_id: str = "resp-1",
    email: str | None = "freja@example.com",
    locale: str | None = "da",
    store: str | None = "Aarhus C",
) -> ClassifiedResponse:
    response = a_response(
        score,
        customer_id=customer_id,
        response_id=response_id,
        email=email,
        name="Freja",
        comment=None,
    )
    return classify_response(response).model_copy(
        update={"context": ResponseContext(segment=Segment(store=store), locale=locale)}
    )


class Loops:
    """A dispatcher on the real outbox and review decisions (SQLite), with fake senders."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: LoopConfig = CONFIG,
        rules: str = FOLLOW_UP_RULES,
        start: datetime = MIDDAY,
    ) -> None:
        self.sessions = sessions
        self.registry = CollectorRegistry()
        self.clock = FakeClock(start)
        self.outbox = SqlOutbox(sessions)
        self.decisions = SqlReviewDecisions(sessions)
        self.email = FakeSender()
        self.slack = FakeSender()
        senders: dict[Channel, Sender] = {Channel.SLACK: self.slack, Channel.EMAIL: self.email}
        self.dispatcher = Dispatcher(
            self.outbox,
            senders,
            config,
            DeliveryMetrics.create(self.registry),
            clock=self.clock,
            rules=parse_rules(rules, "rules.yaml", default_channel="#cx"),
            reviews=ReviewLedger(
                self.decisions,
                config,
                self.outbox.is_suppressed,
                review_decisions_counter(self.registry),
            ),
        )

    def handle(self, classified: ClassifiedResponse) -> None:
        run(self.dispatcher.handle(classified))

    def prefer(self, customer_id: str, action: str) -> None:
        preference = ContactPreference(
            event_id=uuid.uuid4(),
            occurred_at=self.clock(),
            customer_id=customer_id,
            action=action,  # type: ignore[arg-type]
        )
        run(self.dispatcher.handle_preference(preference))

    def at(self, moment: datetime) -> None:
        self.clock.now = moment
        run(self.dispatcher.retry_due())

    def emails(self, kind: DeliveryKind) -> list[dict[str, object]]:
        return [entry.payload for entry in self.email.sent if entry.kind == kind.value]

    def decided(self, decision: str, reason: ReviewReason) -> float | None:
        return self.registry.get_sample_value(
            "npsloop_review_decisions_total", {"decision": decision, "reason": reason.value}
        )

    def rows(self) -> list[DeliveryRow]:
        with self.sessions() as session:
            return list(session.execute(select(DeliveryRow)).scalars())


# --- review requests ----------------------------------------------------------------------


def test_a_danish_promoter_is_asked_in_danish_with_the_google_facebook_and_trustpilot_pages_of_their_store(  # noqa: E501
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.handle(an_answer(10))
    [mail] = loops.emails(DeliveryKind.REVIEW_REQUEST)
    assert mail["to_email"] == "freja@example.com"
    assert mail["subject"] == "Vil du fortælle andre om Lund & Søn?"
    text = str(mail["text"])
    assert "Tak, fordi du gav Lund & Søn 10 ud af 10." in text
    for url in AARHUS.values():
        assert url in text and f'href="{url}"' in str(mail["html"])
    assert GOOGLE not in text
    assert mail["headers"] == {
        "List-Unsubscribe": "<https://feedback.example.com/u/c-1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    stored = loops.decisions.decision("resp-1")
    assert stored is not None
    assert (stored.asked, stored.reason, stored.store, stored.policy) == (
        True,
        ReviewReason.PROMOTER,
        "Aarhus C",
        "promoters",
    )
    assert loops.decided("asked", ReviewReason.PROMOTER) == 1.0


def test_a_store_without_its_own_pages_gets_the_companys() -> None:
    [review] = [
        d
        for d in plan(an_answer(9, store="Vejle"), CONFIG, now=MIDDAY)
        if d.kind is DeliveryKind.REVIEW_REQUEST
    ]
    assert review.payload["links"] == {"google": GOOGLE, "facebook": FACEBOOK}


def test_a_promoter_answering_at_23_30_gets_the_review_request_when_the_window_opens(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, start=LATE_EVENING)
    loops.handle(an_answer(10))
    assert loops.email.sent == []
    [row] = [r for r in loops.rows() if r.kind == DeliveryKind.REVIEW_REQUEST]
    assert (row.status, row.next_attempt_at) == ("pending", NEXT_MORNING)
    loops.at(NEXT_MORNING - timedelta(minutes=1))
    assert loops.email.sent == []
    loops.at(NEXT_MORNING)
    assert len(loops.emails(DeliveryKind.REVIEW_REQUEST)) == 1


def test_the_window_opens_in_the_customers_own_time_zone() -> None:
    # 03:00 UTC is 22:00 the evening before in New York: the email waits for 09:00 there.
    [review] = [
        d
        for d in plan(
            an_answer(10, locale="en-US"), CONFIG, now=datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
        )
        if d.kind is DeliveryKind.REVIEW_REQUEST
    ]
    assert review.send_at == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert "Review us on Google" in review.payload["text"]


@pytest.mark.parametrize(("score", "category"), [(8, "passive"), (3, "detractor")])
def test_under_the_promoters_policy_others_are_not_asked_and_the_reason_is_recorded(
    sessions: sessionmaker[Session], score: int, category: str
) -> None:
    loops = Loops(sessions)
    loops.handle(an_answer(score))
    assert loops.emails(DeliveryKind.REVIEW_REQUEST) == []
    stored = loops.decisions.decision("resp-1")
    assert stored is not None and not stored.asked
    assert stored.detail == f"policy promoters: {category} not asked"
    assert loops.decided("not_asked", ReviewReason.NOT_A_PROMOTER) == 1.0


def test_under_the_everyone_policy_a_detractor_is_asked_too_without_praise(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, replace(CONFIG, review_policy=ReviewPolicy("everyone")))
    loops.handle(an_answer(3))
    [mail] = loops.emails(DeliveryKind.REVIEW_REQUEST)
    assert "Tak, fordi du tog dig tid til at svare Lund & Søn." in str(mail["text"])
    assert loops.decided("asked", ReviewReason.EVERYONE) == 1.0
    # The rules still ask their follow-up: the policy only widens who is asked for a review.
    assert len(loops.emails(DeliveryKind.FOLLOW_UP)) == 1


def test_a_sampled_policy_decides_the_same_way_when_a_response_is_replayed(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, replace(CONFIG, review_policy=ReviewPolicy("sample", 50)))
    answers = [an_answer(10, response_id=f"r-{n}", customer_id=f"c-{n}") for n in range(12)]
    for answer in answers:
        loops.handle(answer)

    def asked() -> set[str]:
        decisions = [loops.decisions.decision(a.response.response_id) for a in answers]
        return {d.response_id for d in decisions if d is not None and d.asked}

    first = asked()
    for answer in answers:
        loops.handle(answer)
    assert asked() == first
    assert 0 < len(first) < 12
    assert {e["to_email"] for e in loops.emails(DeliveryKind.REVIEW_REQUEST)} == {
        "freja@example.com"
    }
    assert len(loops.emails(DeliveryKind.REVIEW_REQUEST)) == len(first)
    sampled_in = loops.decided("asked", ReviewReason.SAMPLED_IN)
    sampled_out = loops.decided("not_asked", ReviewReason.SAMPLED_OUT)
    assert (sampled_in, sampled_out) == (len(first), 12 - len(first))


def test_a_decision_is_recorded_and_counted_once_however_often_the_response_comes(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    answer = an_answer(10)
    loops.handle(answer)
    loops.handle(answer.model_copy(update={"is_update": True}))
    assert loops.decided("asked", ReviewReason.PROMOTER) == 1.0
    assert len(loops.emails(DeliveryKind.REVIEW_REQUEST)) == 1


def test_a_score_raised_to_a_promoters_is_asked_after_all_and_asked_is_never_taken_back(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.handle(an_answer(8))
    loops.handle(an_answer(9))
    loops.handle(an_answer(6))
    stored = loops.decisions.decision("resp-1")
    assert stored is not None and (stored.asked, stored.reason) == (True, ReviewReason.PROMOTER)
    assert loops.decided("not_asked", ReviewReason.NOT_A_PROMOTER) == 1.0
    assert loops.decided("asked", ReviewReason.PROMOTER) == 1.0
    assert len(loops.emails(DeliveryKind.REVIEW_REQUEST)) == 1


def test_a_promoter_without_an_email_address_is_recorded_as_not_asked(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.handle(an_answer(10, email=None))
    assert loops.email.sent == []
    assert loops.decided("not_asked", ReviewReason.NO_EMAIL) == 1.0


def test_every_reason_is_counted_from_zero(sessions: sessionmaker[Session]) -> None:
    loops = Loops(sessions)
    for reason in ReviewReason:
        decision = "asked" if reason.asked else "not_asked"
        assert loops.decided(decision, reason) == 0.0


def test_a_customer_who_answered_through_the_invitation_is_emailed_where_it_was_sent(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    invitation = Invitation(
        event_id=uuid.uuid4(),
        occurred_at=MIDDAY,
        invitation_id="inv-7",
        customer_id="c-7",
        status=InvitationStatus.SCHEDULED,
        send_at=MIDDAY,
        locale="da",
        contact=Contact(email="karen@example.com", name="Karen"),
    )
    links = survey_links(SIGNER, "https://feedback.example.com", invitation, MIDDAY, 30)
    delivery = plan_invitation(invitation, CONFIG, links)
    assert delivery is not None
    loops.outbox.add(delivery, MIDDAY)
    # A click on a score link: the response knows the invitation, not the address.
    clicked = an_answer(10, customer_id="c-7", response_id="inv-7", email=None)
    clicked = clicked.model_copy(
        update={"response": clicked.response.model_copy(update={"invitation_id": "inv-7"})}
    )
    loops.handle(clicked)
    [mail] = loops.emails(DeliveryKind.REVIEW_REQUEST)
    assert (mail["to_email"], mail["to_name"]) == ("karen@example.com", "Karen")
    assert str(mail["text"]).startswith("Hej Karen")
    loops.prefer("c-7", "erased")
    assert loops.outbox.invitation_contact("inv-7") is None


# --- follow-ups ---------------------------------------------------------------------------


def test_a_passive_gets_the_follow_up_a_rule_asks_for_in_their_language(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.handle(an_answer(7, locale="sv"))
    [mail] = loops.emails(DeliveryKind.FOLLOW_UP)
    assert mail["subject"] == "Tack för ditt svar till Lund & Søn"
    assert "Vad skulle krävas för att du skulle ge oss 9 eller 10?" in str(mail["text"])
    assert "List-Unsubscribe" in mail["headers"]  # type: ignore[operator]


def test_a_detractor_whose_rule_opens_a_case_is_told_someone_will_get_in_touch() -> None:
    rules = parse_rules(FOLLOW_UP_RULES, "rules.yaml", default_channel="#cx")
    classified = an_answer(2)
    deliveries = plan(classified, CONFIG, rules.evaluate(classified).actions, MIDDAY)
    [follow_up] = [d for d in deliveries if d.kind is DeliveryKind.FOLLOW_UP]
    assert "En af vores medarbejdere kontakter dig snarest." in follow_up.payload["text"]
    assert follow_up.customer_id == "c-1"


def test_a_rules_question_is_the_one_asked() -> None:
    rules = parse_rules(
        "version: 1\nrules:\n  - name: ask\n    when: {category: passive}\n"
        '    then: [follow_up_email: {question: "Hvad manglede der?"}]\n',
        "rules.yaml",
    )
    classified = an_answer(8)
    [follow_up] = plan(classified, CONFIG, rules.evaluate(classified).actions, MIDDAY)
    assert "Hvad manglede der?" in follow_up.payload["text"]
    assert follow_up.payload["question"] == "Hvad manglede der?"


def test_a_follow_up_computed_at_night_waits_for_the_morning(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, start=LATE_EVENING)
    loops.handle(an_answer(7))
    loops.at(LATE_EVENING + timedelta(hours=2))
    assert loops.emails(DeliveryKind.FOLLOW_UP) == []
    loops.at(NEXT_MORNING)
    assert len(loops.emails(DeliveryKind.FOLLOW_UP)) == 1


def test_without_an_email_address_there_is_no_follow_up() -> None:
    rules = parse_rules(FOLLOW_UP_RULES, "rules.yaml", default_channel="#cx")
    classified = an_answer(7, email=None)
    assert plan(classified, CONFIG, rules.evaluate(classified).actions, MIDDAY) == []


def test_a_customer_email_without_an_unsubscribe_link_is_refused_not_sent_without_one() -> None:
    with pytest.raises(ValueError, match="unsubscribe link"):
        plan(an_answer(10), replace(CONFIG, unsubscribe_link=None), now=MIDDAY)


# --- suppression and erasure --------------------------------------------------------------


def test_an_unsubscribed_customer_gets_neither_review_request_nor_follow_up(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.prefer("c-1", "unsubscribed")
    loops.handle(an_answer(10, response_id="r-promoter"))
    loops.handle(an_answer(7, response_id="r-passive"))
    assert loops.email.sent == []
    stored = loops.decisions.decision("r-promoter")
    assert stored is not None and (stored.asked, stored.reason) == (False, ReviewReason.SUPPRESSED)
    assert loops.decided("not_asked", ReviewReason.SUPPRESSED) == 1.0


def test_an_unsubscribe_before_the_window_opens_cancels_the_waiting_emails(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, start=LATE_EVENING)
    loops.handle(an_answer(10, response_id="r-promoter"))
    loops.handle(an_answer(8, response_id="r-passive"))
    loops.prefer("c-1", "unsubscribed")
    loops.at(NEXT_MORNING)
    assert loops.email.sent == []
    assert {r.kind: r.status for r in loops.rows()} == {
        "review_request": CANCELLED,
        "follow_up": CANCELLED,
    }


def test_an_erased_customers_waiting_emails_and_review_decisions_forget_them(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions, start=LATE_EVENING)
    loops.handle(an_answer(10, response_id="r-promoter"))
    loops.handle(an_answer(8, response_id="r-passive"))
    loops.handle(an_answer(10, response_id="r-other", customer_id="c-2", email="ole@example.com"))
    loops.prefer("c-1", "erased")
    loops.at(NEXT_MORNING)
    assert [e.recipient for e in loops.email.sent] == ["ole@example.com"]
    erased = [r for r in loops.rows() if r.customer_id == "c-1"]
    assert len(erased) == 2
    for row in erased:
        assert (row.status, row.recipient, row.payload) == (CANCELLED, "erased", {"erased": True})
        assert "freja" not in json.dumps(row.payload).lower()
    for response_id in ("r-promoter", "r-passive"):
        stored = loops.decisions.decision(response_id)
        assert stored is not None and stored.customer_id is None
    other = loops.decisions.decision("r-other")
    assert other is not None and other.customer_id == "c-2"


def test_an_erased_customer_answering_again_is_recorded_as_suppressed(
    sessions: sessionmaker[Session],
) -> None:
    loops = Loops(sessions)
    loops.prefer("c-1", "erased")
    loops.handle(an_answer(10))
    assert loops.email.sent == []
    stored = loops.decisions.decision("resp-1")
    assert stored is not None and stored.reason is ReviewReason.SUPPRESSED


# --- configuration at start ---------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings(token_secret="a long random link key", **values)  # type: ignore[arg-type]


def test_the_configured_loops_ask_with_every_site_and_time_emails_by_the_send_window(
    tmp_path: Path,
) -> None:
    links = tmp_path / "reviews.yaml"
    links.write_text("stores:\n  Aarhus C:\n    google: https://g.page/r/aarhus/review\n")
    config = loop_config(
        settings(
            review_google_url=GOOGLE,
            review_facebook_url=FACEBOOK,
            review_trustpilot_url=AARHUS["trustpilot"],
            review_links_file=links,
            review_policy="sample:20",
            send_window="08:00-21:00",
            public_url="https://feedback.example.com",
        )
    )
    assert config.review_policy == ReviewPolicy("sample", 20)
    assert config.review_links.for_store("Aarhus C") == {
        "google": "https://g.page/r/aarhus/review",
        "facebook": FACEBOOK,
        "trustpilot": AARHUS["trustpilot"],
    }
    assert config.send_window == SendWindow.parse("08:00-21:00")
    assert config.unsubscribe_link is not None
    link = config.unsubscribe_link("c-1", "da", MIDDAY)
    assert link.startswith("https://feedback.example.com/u/")
    payload = TokenSigner(b"a long random link key").verify(
        link.rsplit("/", 1)[1], now=MIDDAY.timestamp()
    )
    assert (payload["u"], payload["l"]) == ("c-1", "da")


def test_the_default_policy_asks_promoters_with_the_settings_pages() -> None:
    config = loop_config(settings(review_google_url=GOOGLE))
    assert config.review_policy == ReviewPolicy("promoters")
    assert config.review_links.for_store("Anywhere") == {"google": GOOGLE}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"review_policy": "sample:0"}, "NPSLOOP_REVIEW_POLICY is 'sample:0': use 'promoters'"),
        ({"review_policy": "happy"}, "sample:N' (ask N percent"),
        ({"review_trustpilot_url": "trustpilot.com/x"}, "NPSLOOP_REVIEW_TRUSTPILOT_URL must be"),
        ({"review_links_file": Path("/nowhere/reviews.yaml")}, "no such review links file"),
    ],
)
def test_a_bad_review_configuration_stops_the_notifier_naming_what_to_fix(
    values: dict[str, object], expected: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        loop_config(settings(**values))
    message = str(stopped.value)
    assert message.startswith("npsloop: the review requests cannot be set up:")
    assert expected in message


def test_two_configuration_mistakes_are_both_named(tmp_path: Path) -> None:
    links = tmp_path / "reviews.yaml"
    links.write_text("stores:\n  Odense:\n    yelp: https://yelp.example/odense\n")
    with pytest.raises(SystemExit) as stopped:
        loop_config(settings(review_policy="all", review_links_file=links))
    assert "NPSLOOP_REVIEW_POLICY is 'all'" in str(stopped.value)
    assert f"{links}:3: store 'Odense': 'yelp' is not a review site" in str(stopped.value)


def test_with_the_shipped_rules_and_the_default_policy_only_promoters_are_asked() -> None:
    for score, asked in ((10, True), (8, False), (1, False)):
        kinds = [d.kind for d in plan(an_answer(score), CONFIG, now=MIDDAY)]
        assert (DeliveryKind.REVIEW_REQUEST in kinds) is asked
        assert DeliveryKind.FOLLOW_UP not in kinds
