"""What the classifier understands of a response. Pure: no Faust, no I/O."""

from __future__ import annotations

from shared.events import ClassifiedResponse, Response
from shared.ids import derived_id
from shared.nps import classify


def classify_response(response: Response) -> ClassifiedResponse:
    """The response with its NPS category; its id and time follow from the response's."""
    return ClassifiedResponse(
        event_id=derived_id(response.event_id, "classified"),
        occurred_at=response.occurred_at,
        response=response,
        category=classify(response.score),
    )
