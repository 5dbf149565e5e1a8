"""The links in a survey invitation: eleven one-click scores and an unsubscribe link.

Each is a signed token, so the edge can trust what a click says (which invitation,
which score) without a lookup, and nobody can forge or alter one. Tokens carry ids,
never an address or a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import Invitation
from shared.signing import TokenSigner

UNSUBSCRIBE_LINK_DAYS = 365


@dataclass(frozen=True)
class SurveyLinks:
    scores: tuple[str, ...]
    unsubscribe: str


def survey_token_payload(invitation: Invitation) -> dict[str, str]:
    payload = {
        "i": invitation.invitation_id,
        "c": invitation.customer_id,
        "k": invitation.survey_kind.value,
    }
    if invitation.locale:
        payload["l"] = invitation.locale
    if invitation.segment.department:
        payload["d"] = invitation.segment.department
    return payload


def survey_links(
    signer: TokenSigner, public_url: str, invitation: Invitation, sent_at: datetime, days: int
) -> SurveyLinks:
    """The score links (0..10) and the unsubscribe link of an invitation sent at ``sent_at``."""
    base = public_url.rstrip("/")
    expires = (sent_at + timedelta(days=days)).timestamp()
    payload = survey_token_payload(invitation)
    scores = tuple(
        f"{base}/s/{signer.sign({**payload, 's': score}, expires)}" for score in range(11)
    )
    unsubscribe_payload = {"u": invitation.customer_id, "l": invitation.locale or ""}
    unsubscribe_expires = (sent_at + timedelta(days=UNSUBSCRIBE_LINK_DAYS)).timestamp()
    unsubscribe = f"{base}/u/{signer.sign(unsubscribe_payload, unsubscribe_expires)}"
    return SurveyLinks(scores, unsubscribe)
