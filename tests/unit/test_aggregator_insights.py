"""Response rate, how customers heard of us, and the themes of promoters and detractors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.aggregator.domain import Period, Rules
from services.aggregator.insights import (
    UNANSWERED,
    acquisition,
    response_rate,
    themes_by_category,
)
from services.aggregator.responses import InvitationFact, InvitationLedger, ResponseFact
from shared.events import Invitation, InvitationStatus, SurveyKind
from shared.nps import Category
from tests.unit.builders import a_fast_classified_response

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
LAST_WEEK = Period(NOW - timedelta(days=7), NOW)
NPS, ENPS = SurveyKind.NPS, SurveyKind.ENPS


def fact(score: int, **fields: object) -> ResponseFact:
    fields.setdefault("responded_at", NOW - timedelta(days=1))
    return ResponseFact.of(a_fast_classified_response(score, **fields))  # type: ignore[arg-type]


def invitation(invitation_id: str, status: InvitationStatus, days_ago: float) -> Invitation:
    return Invitation(
        event_id=uuid.uuid4(),
        occurred_at=NOW - timedelta(days=days_ago),
        invitation_id=invitation_id,
        customer_id="c",
        status=status,
    )


# --- response rate --------------------------------------------------------------------------


def test_only_sent_invitations_are_the_denominator_of_the_response_rate() -> None:
    assert InvitationFact.of(invitation("i", InvitationStatus.SCHEDULED, 1)) is None
    assert InvitationFact.of(invitation("i", InvitationStatus.SENT, 1)) is not None


def test_an_invitation_said_sent_twice_counts_once_at_its_first_time() -> None:
    ledger = InvitationLedger()
    later = InvitationFact.of(invitation("i", InvitationStatus.SENT, 1))
    earlier = InvitationFact.of(invitation("i", InvitationStatus.SENT, 9))
    assert later is not None and earlier is not None
    assert ledger.record(later)
    assert ledger.record(earlier)
    assert not ledger.record(later)
    assert [fact.sent_at for fact in ledger] == [earlier.sent_at]


def test_the_response_rate_is_the_share_of_the_periods_invitations_answered() -> None:
    sent = [
        InvitationFact(f"i-{n}", "c", NPS, NOW - timedelta(days=days))
        for n, days in enumerate((1, 2, 3, 4, 10))
    ]
    responses = [
        fact(9, response_id="a", invitation_id="i-0"),
        fact(3, response_id="b", invitation_id="i-1"),
        # Answered, but its invitation went out before the period: not in this cohort.
        fact(9, response_id="c", invitation_id="i-4"),
        # No invitation (a webhook response): in no cohort.
        fact(9, response_id="d"),
    ]
    rate = response_rate(sent, responses, LAST_WEEK, NPS)
    assert (rate.sent, rate.answered) == (4, 2)
    assert rate.rate == pytest.approx(0.5)


def test_without_invitations_there_is_no_response_rate() -> None:
    assert response_rate([], [], LAST_WEEK, NPS).rate is None


# --- how did you hear about us --------------------------------------------------------------


def test_new_customers_by_source_and_the_share_who_came_by_recommendation() -> None:
    responses = [
        fact(10, response_id="1", customer_id="ann", heard_from="recommendation"),
        fact(9, response_id="2", customer_id="bob", heard_from="recommendation"),
        fact(4, response_id="3", customer_id="cy", heard_from="google"),
        # Dee told us long ago: not a new customer of this week, but her response counts
        # in the NPS of her source.
        fact(
            9,
            response_id="4",
            customer_id="dee",
            heard_from="google",
            responded_at=NOW - timedelta(days=60),
        ),
        fact(7, response_id="5", customer_id="dee"),
        fact(2, response_id="6", customer_id="eve"),
    ]
    result = acquisition(responses, LAST_WEEK)
    assert result.new_customers == 3
    assert result.by_recommendation == 2
    assert result.recommendation_share == pytest.approx(2 / 3)
    rows = {row.source: row for row in result.sources}
    assert list(rows) == ["recommendation", "google", UNANSWERED]
    assert rows["recommendation"].figures.nps == pytest.approx(100.0)
    # google: cy (4, detractor) and dee (7, passive) this week: NPS = 100 (0 - 1) / 2 = -50
    assert rows["google"].new_customers == 1
    assert rows["google"].figures.nps == pytest.approx(-50.0)
    assert rows[UNANSWERED].figures.counts.n == 1


def test_a_customers_source_is_their_first_answer() -> None:
    responses = [
        fact(9, response_id="1", customer_id="ann", heard_from="ads"),
        fact(
            9,
            response_id="0",
            customer_id="ann",
            heard_from="recommendation",
            responded_at=NOW - timedelta(days=3),
        ),
    ]
    result = acquisition(responses, LAST_WEEK)
    assert [(row.source, row.new_customers) for row in result.sources] == [("recommendation", 1)]


# --- themes ---------------------------------------------------------------------------------


def test_the_top_themes_of_each_category_with_counts_and_shares() -> None:
    responses = [
        fact(2, response_id="1", themes=("delivery", "price")),
        fact(3, response_id="2", themes=("delivery",)),
        fact(1, response_id="3", themes=("staff",)),
        fact(5, response_id="4"),
        fact(10, response_id="5", themes=("staff",)),
    ]
    by_category = {
        row.category: row for row in themes_by_category(responses, LAST_WEEK, NPS, top=2)
    }
    detractors = by_category[Category.DETRACTOR]
    assert detractors.responses == 4
    # delivery: 2 of 4 detractors = 0.5; price and staff 1 each (0.25), by id: price first.
    assert [(row.theme.id, row.responses, row.share) for row in detractors.top] == [
        ("delivery", 2, 0.5),
        ("price", 1, 0.25),
    ]
    assert [row.theme.label for row in by_category[Category.PROMOTER].top] == ["Staff"]
    assert by_category[Category.PASSIVE].top == ()


def test_enps_themes_of_fewer_than_k_people_are_not_shown() -> None:
    responses = [fact(2, response_id=f"{n}", survey_kind=ENPS, themes=("pay",)) for n in range(4)]
    by_category = {row.category: row for row in themes_by_category(responses, LAST_WEEK, ENPS)}
    assert by_category[Category.DETRACTOR].top == ()
    shown = themes_by_category(responses, LAST_WEEK, ENPS, rules=Rules(enps_min_group=4))
    assert [row.theme.id for row in shown[2].top] == ["pay"]
