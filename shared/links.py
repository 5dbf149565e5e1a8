"""The links in a survey invitation: eleven one-click scores and an unsubscribe link; and the
unsubscribe link of every other email to a customer.

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
    unsubscribe = unsubscribe_link(
        signer, public_url, invitation.customer_id, invitation.locale, sent_at
    )
    return SurveyLinks(scores, unsubscribe)


# A case link works for as long as anyone may look back at a case.
CASE_LINK_DAYS = 400


def case_link(signer: TokenSigner, notifier_url: str, case_id: str, opened_at: datetime) -> str:
    """The signed link of a case's page; the same case always gets the same link."""
    expires = (opened_at + timedelta(days=CASE_LINK_DAYS)).timestamp()
    return f"{notifier_url.rstrip('/')}/cases/{signer.sign({'case': case_id}, expires)}"


def unsubscribe_link(
    signer: TokenSigner, public_url: str, customer_id: str, locale: str | None, sent_at: datetime
) -> str:
    """The link that unsubscribes a customer, its page in their language, valid for a year."""
    payload = {"u": customer_id, "l": locale or ""}
    expires = (sent_at + timedelta(days=UNSUBSCRIBE_LINK_DAYS)).timestamp()
    return f"{public_url.rstrip('/')}/u/{signer.sign(payload, expires)}"
