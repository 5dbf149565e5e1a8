"""The loops' emails to customers end to end on the real broker: a Danish customer buys in
Aarhus C, answers the invitation with one click, and gets through SendGrid a review request
in Danish with the store's Google, Facebook and Trustpilot pages, or the follow-up their
rule asks for; every review decision is in the notifier's database with its reason."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes import FakeServer, Received
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

SCORE_LINK = re.compile(r'href="(http://127\.0\.0\.1:\d+/s/[^"]+)"')
COMPANY_GOOGLE = "https://g.page/r/test-shop/review"
AARHUS = {
    "google": "https://g.page/r/test-shop-aarhus-c/review",
    "facebook": "https://www.facebook.com/test.shop.aarhus.c/reviews",
    "trustpilot": "https://www.trustpilot.com/evaluate/test-shop.example",
}
REVIEW_LINKS = f"""
stores:
  Aarhus C:
    google: {AARHUS["google"]}
    facebook: {AARHUS["facebook"]}
    trustpilot: {AARHUS["trustpilot"]}
"""
RULES = """
version: 1
rules:
  - name: detractors
    when: {category: detractor}
    then: [slack_alert, open_case: {sla_hours: 48}, follow_up_email]
  - name: passives
    when: {category: passive}
    then: [slack_alert, follow_up_email]
  - name: promoters
    when: {category: promoter}
    then: [review_request, kudos: {channel: "#kudos"}]
"""


@dataclass
class Emails:
    stack: Stack
    slack: FakeServer
    sendgrid: FakeServer

    def buy_and_answer(self, email: str, score: int) -> str:
        """A purchase in Aarhus C, in Danish; the invitation's score link clicked."""
        known = self.contexts_known()
        body = {
            "order_id": f"order-{uuid.uuid4().hex[:10]}",
            "customer_id": f"customer-{uuid.uuid4().hex[:10]}",
            "amount": "899.00",
            "currency": "DKK",
            "locale": "da-DK",
            "experience": "product",
            "segment": {"store": "Aarhus C", "region": "Midtjylland"},
            "contact": {"email": email, "name": "Karen"},
        }
        status, text, _ = http_post(
            self.stack.url("ingest") + "/v1/purchases", json.dumps(body).encode()
        )
        assert status == 202, text
        [invitation] = self.wait_for_mails(email, 1)
        links = SCORE_LINK.findall(html_of(invitation))
        # Invitations here go out the moment they are planned; in life hours pass before a
        # click, and the classifier knows the order (its store) by then.
        deadline = time.monotonic() + 30
        while self.contexts_known() <= known and time.monotonic() < deadline:
            time.sleep(0.2)
        status, _ = http_get(links[score])
        assert status == 200
        return str(body["customer_id"])

    def contexts_known(self) -> float:
        _, text = http_get(self.stack.url("classifier") + "/metrics")
        for line in text.splitlines():
            if line.startswith("npsloop_invitation_contexts_total "):
                return float(line.split()[1])
        return 0.0

    def wait_for_mails(self, email: str, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        mails: list[Received] = []
        while time.monotonic() < deadline:
            mails = [
                mail
                for mail in self.sendgrid.received("/v3/mail/send")
                if mail.body["personalizations"][0]["to"][0]["email"] == email
            ]
            if len(mails) >= count:
                return mails
            time.sleep(0.2)
        raise AssertionError(f"{len(mails)} of {count} emails reached {email}")

    def review_decision(self, customer_id: str) -> tuple[object, ...]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(self.stack.data_dir / "notifier.sqlite3") as db:
                row = db.execute(
                    "SELECT asked, reason, detail, policy, store FROM notifier_review_decisions "
                    "WHERE customer_id = ?",
                    (customer_id,),
                ).fetchone()
            if row:
                return tuple(row)
            time.sleep(0.3)
        raise AssertionError(f"no review decision for {customer_id}")


def html_of(mail: Received) -> str:
    return next(part["value"] for part in mail.body["content"] if part["type"] == "text/html")


def text_of(mail: Received) -> str:
    return next(part["value"] for part in mail.body["content"] if part["type"] == "text/plain")


@pytest.fixture(scope="module")
def emails(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emails]:
    data_dir = tmp_path_factory.mktemp("customer-emails")
    links, rules = data_dir / "review-links.yaml", data_dir / "rules.yaml"
    links.write_text(REVIEW_LINKS, encoding="utf-8")
    rules.write_text(RULES, encoding="utf-8")
    env = {
        "NPSLOOP_COMPANY_NAME": "Test Shop",
        "NPSLOOP_DELAY_PRODUCT_HOURS": "0",
        # Day or night, whenever the suite runs (the window itself is unit-tested).
        "NPSLOOP_SEND_WINDOW": "00:00-24:00",
        "NPSLOOP_REVIEW_GOOGLE_URL": COMPANY_GOOGLE,
        "NPSLOOP_REVIEW_LINKS_FILE": str(links),
        "NPSLOOP_RULES_FILE": str(rules),
    }
    with stack_with_fakes(kafka_bootstrap, data_dir, env) as running:
        yield Emails(*running)


def test_a_danish_promoter_gets_a_danish_review_request_with_their_stores_three_pages(
    emails: Emails,
) -> None:
    customer = emails.buy_and_answer("karen@example.com", 10)
    _, review = emails.wait_for_mails("karen@example.com", 2)
    assert review.body["subject"] == "Vil du fortælle andre om Test Shop?"
    html, text = html_of(review), text_of(review)
    assert 'lang="da"' in html
    assert "Tak, fordi du gav Test Shop 10 ud af 10." in text
    for site, url in AARHUS.items():
        assert f'href="{url}"' in html, site
        assert url in text, site
    assert [label for label in re.findall(r">(Anmeld os på [A-Za-z]+)<", html)] == [
        "Anmeld os på Google",
        "Anmeld os på Facebook",
        "Anmeld os på Trustpilot",
    ]
    assert COMPANY_GOOGLE not in text, "the store's own Google page, not the company's"
    assert review.body["headers"]["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    assert emails.review_decision(customer) == (1, "promoter", "promoter", "promoters", "Aarhus C")


def test_a_rule_with_follow_up_email_brings_a_passive_the_danish_follow_up(
    emails: Emails,
) -> None:
    customer = emails.buy_and_answer("mads@example.com", 7)
    _, follow_up = emails.wait_for_mails("mads@example.com", 2)
    assert follow_up.body["subject"] == "Tak for dit svar til Test Shop"
    text = text_of(follow_up)
    assert "Hvad skulle der til, for at du ville give os 9 eller 10?" in text
    assert "Svar gerne direkte på denne e-mail" in text
    assert "Anmeld os" not in text
    assert emails.review_decision(customer)[:3] == (
        0,
        "not_a_promoter",
        "policy promoters: passive not asked",
    )
    time.sleep(2.0)
    assert len(emails.wait_for_mails("mads@example.com", 2)) == 2, "one follow-up, no more"
