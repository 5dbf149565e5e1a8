"""The notifier sends survey invitations at their send time, exactly once, and never to
someone who said no."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.notifier.adapters import OutboxEntry
from shared.events import (
    Contact,
    ContactPreference,
    Digest,
    Invitation,
    InvitationStatus,
    Segment,
)
from shared.links import SurveyLinks, survey_links
from shared.signing import TokenSigner
from tests.unit.builders import a_classified_response, run
from tests.unit.test_notifier import Loop

SIGNER = TokenSigner(b"unit test link key")


def links(invitation: Invitation) -> SurveyLinks:
    return survey_links(
        SIGNER,
        "https://survey.example.com",
        invitation,
        invitation.send_at or invitation.occurred_at,
        30,
    )


def an_invitation(
    status: InvitationStatus = InvitationStatus.SCHEDULED,
    *,
    send_at: datetime,
    invitation_id: str = "inv-1",
    customer_id: str = "c-1",
    email: str | None = "freja@example.com",
    locale: str = "da",
) -> Invitation:
    return Invitation(
        event_id=uuid.uuid4(),
        occurred_at=send_at - timedelta(days=14),
        invitation_id=invitation_id,
        customer_id=customer_id,
        status=status,
        send_at=send_at,
        locale=locale,
        segment=Segment(store="Aarhus C"),
        contact=Contact(email=email, name="Freja") if email else Contact(),
    )


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[OutboxEntry, str]] = []

    async def __call__(self, entry: OutboxEntry, provider_ref: str) -> None:
        self.sent.append((entry, provider_ref))


def a_loop() -> tuple[Loop, Recorder]:
    recorder = Recorder()
    return Loop(links=links, on_sent=recorder), recorder


def test_a_scheduled_invitation_is_not_sent_before_its_send_time_and_sent_once_after() -> None:
    loop, recorder = a_loop()
    invitation = an_invitation(send_at=loop.clock() + timedelta(hours=2))
    run(loop.dispatcher.handle_invitation(invitation))
    assert loop.email.sent == []
    loop.clock.advance(3600)
    loop.retry_due()
    assert loop.email.sent == []
    loop.clock.advance(3601)
    loop.retry_due()
    loop.retry_due()
    assert len(loop.email.sent) == 1
    [entry] = loop.email.sent
    assert entry.recipient == "freja@example.com"
    assert entry.payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert entry.payload["html"].count("https://survey.example.com/s/") == 11
    assert [e.idempotency_key for e, _ in recorder.sent] == [entry.idempotency_key]


def test_an_invitation_due_already_is_sent_at_once_in_the_customers_language() -> None:
    loop, _ = a_loop()
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=loop.clock(), locale="sv")))
    [entry] = loop.email.sent
    assert "rekommendera" in entry.payload["text"]


def test_the_same_scheduled_invitation_twice_is_sent_once() -> None:
    loop, _ = a_loop()
    invitation = an_invitation(send_at=loop.clock())
    run(loop.dispatcher.handle_invitation(invitation))
    run(loop.dispatcher.handle_invitation(invitation))
    assert len(loop.email.sent) == 1
    assert loop.count("duplicate", channel="email", kind="invitation") == 1.0


def test_a_cancellation_before_the_send_time_means_no_email() -> None:
    loop, recorder = a_loop()
    send_at = loop.clock() + timedelta(days=1)
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=send_at)))
    cancelled = an_invitation(InvitationStatus.CANCELLED, send_at=send_at, email=None)
    run(loop.dispatcher.handle_invitation(cancelled))
    loop.clock.advance(2 * 86400)
    loop.retry_due()
    assert loop.email.sent == []
    assert recorder.sent == []
    assert loop.count("cancelled", channel="email", kind="invitation") == 1.0


def test_an_unsubscribe_cancels_the_pending_invitation_and_stops_later_ones() -> None:
    loop, _ = a_loop()
    send_at = loop.clock() + timedelta(days=1)
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=send_at)))
    preference = ContactPreference(
        event_id=uuid.uuid4(), occurred_at=loop.clock(), customer_id="c-1", action="unsubscribed"
    )
    run(loop.dispatcher.handle_preference(preference))
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=send_at, invitation_id="inv-2")))
    loop.clock.advance(2 * 86400)
    loop.retry_due()
    assert loop.email.sent == []
    assert loop.count("suppressed", channel="email", kind="invitation") == 1.0


def test_an_unsubscribed_promoter_is_not_asked_for_a_review() -> None:
    loop, _ = a_loop()
    preference = ContactPreference(
        event_id=uuid.uuid4(), occurred_at=loop.clock(), customer_id="c-9", action="unsubscribed"
    )
    run(loop.dispatcher.handle_preference(preference))
    loop.handle(a_classified_response(10, customer_id="c-9", email="ann@example.com"))
    assert loop.email.sent == []


def test_a_resubscribed_customer_is_invited_again() -> None:
    loop, _ = a_loop()
    for action in ("unsubscribed", "resubscribed"):
        preference = ContactPreference(
            event_id=uuid.uuid4(), occurred_at=loop.clock(), customer_id="c-1", action=action
        )
        run(loop.dispatcher.handle_preference(preference))
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=loop.clock())))
    assert len(loop.email.sent) == 1


def test_a_suppressed_invitation_or_one_without_email_sends_nothing() -> None:
    loop, _ = a_loop()
    suppressed = an_invitation(InvitationStatus.SUPPRESSED, send_at=loop.clock())
    run(loop.dispatcher.handle_invitation(suppressed))
    run(loop.dispatcher.handle_invitation(an_invitation(send_at=loop.clock(), email=None)))
    assert loop.email.sent == []


def a_digest(text: str = "NPS 30d: +23 ± 8 (n=412)") -> Digest:
    return Digest(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        period_start=datetime(2026, 11, 23, tzinfo=UTC),
        period_end=datetime(2026, 11, 30, tzinfo=UTC),
        title="Week 48: NPS +23",
        text=text,
    )


def test_a_digest_is_posted_once_to_the_digest_channel_however_often_it_arrives() -> None:
    loop, _ = a_loop()
    digest = a_digest()
    run(loop.dispatcher.handle_digest(digest))
    run(loop.dispatcher.handle_digest(digest))
    [entry] = loop.slack.sent
    assert entry.recipient == "#customer-feedback"
    assert "Week 48: NPS +23" in json.dumps(entry.payload)
    assert loop.count("duplicate", kind="digest") == 1.0


def test_a_long_digest_is_split_into_sections_slack_accepts() -> None:
    loop, _ = a_loop()
    run(loop.dispatcher.handle_digest(a_digest("<!channel> " + "x" * 9_000)))
    [entry] = loop.slack.sent
    sections = [b["text"]["text"] for b in entry.payload["blocks"] if b["type"] == "section"]
    assert len(sections) == 4 and all(len(text) <= 3000 for text in sections)
    assert "<!channel>" not in json.dumps(entry.payload)
