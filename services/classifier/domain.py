"""What the classifier understands of a response. Pure: no Faust, no I/O.

The category comes from the score; the rest from the comment (language, sentiment,
themes, urgent words, flags) and from the invitation it answers (the order's context
and the customer's locale, the fallback language of a short comment).
"""

from __future__ import annotations

from services.classifier.text import Taxonomy, TextAnalysis, analyse, default_taxonomy
from services.classifier.text.themes import KeywordHit as TextHit
from shared.events import (
    ClassifiedResponse,
    Invitation,
    KeywordHit,
    Response,
    ResponseContext,
    SentimentReading,
)
from shared.ids import derived_id
from shared.nps import classify


def context_of(invitation: Invitation) -> ResponseContext:
    """The order's context as frozen into the invitation when it was decided."""
    return ResponseContext(
        order_id=invitation.order_id,
        amount=invitation.amount,
        currency=invitation.currency,
        products=invitation.products,
        segment=invitation.segment,
        locale=invitation.locale,
        experience=invitation.experience,
        purchased_at=invitation.purchased_at,
    )


def classify_response(
    response: Response,
    *,
    context: ResponseContext | None = None,
    previous_event_id: str | None = None,
    taxonomy: Taxonomy | None = None,
    version: str = "",
) -> ClassifiedResponse:
    """The response understood. ``previous_event_id`` is the last version of this response
    already classified (None when it is new); ``version`` names the classifier, so a
    reclassification with a new taxonomy is a new event of the same response."""
    locale = response.locale or (context.locale if context else None)
    analysis = analyse(response.comment, response.score, locale, taxonomy or default_taxonomy())
    return ClassifiedResponse(
        event_id=derived_id(response.event_id, f"classified:{version}"),
        occurred_at=response.occurred_at,
        response=response,
        category=classify(response.score),
        is_update=previous_event_id is not None and previous_event_id != str(response.event_id),
        context=context,
        **understanding(analysis),
    )


def understanding(analysis: TextAnalysis) -> dict[str, object]:
    """The analysis as the classified event's fields."""
    return {
        "language": analysis.language.code,
        "language_method": analysis.language.method.value,
        "sentiment": SentimentReading(
            label=analysis.sentiment.label.value,
            score=max(-1.0, min(1.0, analysis.sentiment.score)),
            words=list(analysis.sentiment.words),
        ),
        "themes": [_hit(hit) for hit in analysis.themes],
        "urgent": [_hit(hit) for hit in analysis.urgent],
        "flags": sorted(flag.value for flag in analysis.flags),
        "priority": analysis.priority.value,
        "comment_truncated": analysis.truncated,
    }


def _hit(hit: TextHit) -> KeywordHit:
    return KeywordHit(id=hit.id, label=hit.label, words=list(hit.words))
