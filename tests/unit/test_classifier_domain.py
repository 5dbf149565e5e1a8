"""The classifier's domain: category, context from the invitation, updates, reclassification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry

from services.classifier.domain import classify_response, context_of
from services.classifier.metrics import ClassifierMetrics
from services.classifier.text import default_taxonomy
from shared.events import Contact, Invitation, InvitationStatus, Response, Segment

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def a_response(
    score: int = 2,
    comment: str | None = None,
    locale: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Response:
    return Response(
        event_id=event_id or uuid.uuid4(),
        occurred_at=NOW,
        response_id="inv-1",
        invitation_id="inv-1",
        customer_id="c-1",
        score=score,
        comment=comment,
        locale=locale,
        responded_at=NOW,
    )


def an_invitation() -> Invitation:
    return Invitation(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        invitation_id="inv-1",
        customer_id="c-1",
        status=InvitationStatus.SCHEDULED,
        order_id="A-1",
        amount=Decimal("1499.00"),
        currency="DKK",
        products=["Kaffemaskine"],
        segment=Segment(store="Aarhus C", region="Midtjylland"),
        locale="da",
        contact=Contact(email="k@example.com", name="Karen"),
    )


def test_the_context_is_the_orders_as_frozen_in_the_invitation_without_the_contact() -> None:
    context = context_of(an_invitation())
    assert context.order_id == "A-1" and context.amount == Decimal("1499.00")
    assert context.segment.store == "Aarhus C" and context.locale == "da"
    assert "k@example.com" not in context.model_dump_json()


def test_a_short_comment_takes_its_language_from_the_invitations_locale() -> None:
    classified = classify_response(a_response(comment="ok"), context=context_of(an_invitation()))
    assert classified.language == "da" and classified.language_method == "locale"


def test_a_first_version_is_not_an_update_and_a_later_one_is() -> None:
    first = a_response(score=9)
    assert classify_response(first).is_update is False
    assert classify_response(first, previous_event_id=str(first.event_id)).is_update is False
    later = a_response(score=9, comment="Super service")
    assert classify_response(later, previous_event_id=str(first.event_id)).is_update is True


def test_a_reclassification_by_another_taxonomy_is_a_new_event_the_same_one_is_not() -> None:
    response = a_response(comment="Leveringen var for sen")
    assert classify_response(response).event_id == classify_response(response).event_id
    assert (
        classify_response(response, version="taxonomy-a").event_id
        != classify_response(response, version="taxonomy-b").event_id
    )


def test_an_urgent_danish_complaint_is_understood() -> None:
    classified = classify_response(
        a_response(comment="Leveringen tog tre uger. Jeg vil opsige mit abonnement.", locale="da")
    )
    assert classified.category == "detractor"
    assert classified.sentiment is not None and classified.sentiment.label == "negative"
    assert "delivery" in {hit.id for hit in classified.themes}
    assert classified.flags == ["urgent"] and classified.priority == "high"


def test_a_long_comment_is_analysed_truncated_and_kept_whole() -> None:
    comment = "Leveringen var forsinket. " * 1000
    classified = classify_response(a_response(comment=comment, locale="da"))
    assert classified.comment_truncated is True
    assert classified.response.comment == comment


def test_the_metrics_count_by_category_language_theme_and_flag() -> None:
    registry = CollectorRegistry()
    metrics = ClassifierMetrics.create(registry, default_taxonomy())
    assert (
        registry.get_sample_value(
            "npsloop_classified_total", {"category": "promoter", "language": "unknown"}
        )
        == 0.0
    )
    metrics.count(
        classify_response(
            a_response(comment="Leveringen tog tre uger. Jeg vil opsige.", locale="da")
        )
    )
    sample = registry.get_sample_value
    assert sample("npsloop_classified_total", {"category": "detractor", "language": "da"}) == 1.0
    assert sample("npsloop_themes_total", {"theme": "delivery", "category": "detractor"}) == 1.0
    assert sample("npsloop_flags_total", {"flag": "urgent"}) == 1.0
    assert sample("npsloop_classification_latency_seconds_count", {}) == 1.0
