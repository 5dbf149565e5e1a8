"""The survey, link-problem and unsubscribe pages as a customer meets them: the real invitation
email from the running stack, its links opened in real headless Chromium, answered with the
keyboard alone, and what that leaves on the topics and in the decisions.

tests/integration/test_pages_in_a_browser.py drives the rendered pages from a stand-in server;
this module drives the real ingest edge, behind the four real workers, on a real broker.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from services.ingest.domain import response_from_link
from shared import topics
from shared.events import FollowUpAnswers, ResponseSource
from shared.i18n import messages_for
from shared.signing import TokenSigner
from tests.browser import (
    PHONE,
    Focused,
    focused,
    headless_chromium,
    press,
    require_chromium,
    save_phone_and_desktop_screenshots,
    viewport,
)
from tests.fakes import Received
from tests.integration.test_survey_lifecycle import Lifecycle
from tests.kafka_helpers import read_all
from tests.stack import TOKEN_SECRET, stack_with_fakes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Git-ignored (var/), for a person to look at after a run.
SCREENSHOTS = ROOT / "var" / "screenshots"
COMPANY = "Test Shop"
HEARD_FROM = ("recommendation", "google", "ads")
SCORE_LINK = re.compile(r'href="(http://127\.0\.0\.1:\d+/s/[^"]+)"')
# Only after the journal says everything is published: a last look for a straggler.
SETTLE_SECONDS = 1.0
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


class Edge(Lifecycle):
    """The lifecycle helpers (purchase, mails, explain), with what these tests read too."""

    def responses_of(self, response_id: str) -> list[dict[str, Any]]:
        """The events on the responses topic for one response, in the order they were sent."""
        records = read_all(self.stack.bootstrap, self.stack.topic(topics.RESPONSES.name))
        events = [json.loads(value) for _, value in records if value]
        return [event for event in events if event.get("response_id") == response_id]

    def sql(self, service: str, query: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.stack.data_dir / f"{service}.sqlite3", timeout=10) as db:
            return db.execute(query, params).fetchall()

    def journal_published(self, customer: str) -> list[tuple[str, str]]:
        """(topic, event id) of everything ingest journaled for the customer, once all of it
        has gone to the broker; empty while some of it is still waiting."""
        rows = self.sql(
            "ingest",
            "SELECT topic, event_id, published_at FROM ingest_journal WHERE customer_id=?",
            customer,
        )
        if not rows or any(published is None for _, _, published in rows):
            return []
        return [(topic, event) for topic, event, _ in rows]


def html_of(mail: Received) -> str:
    return str(next(p["value"] for p in mail.body["content"] if p["type"] == "text/html"))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_of(link: str) -> dict[str, Any]:
    return TokenSigner(TOKEN_SECRET.encode()).verify(link.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def edge(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    env = {
        "NPSLOOP_COMPANY_NAME": COMPANY,
        "NPSLOOP_DELAY_PRODUCT_HOURS": "0",
        "NPSLOOP_DELAY_SERVICE_HOURS": "48",
        "NPSLOOP_SEND_WINDOW": "00:00-24:00",
        "NPSLOOP_HEARD_FROM_OPTIONS": json.dumps(list(HEARD_FROM)),
    }
    with stack_with_fakes(kafka_bootstrap, tmp_path_factory.mktemp("real-edge"), env) as running:
        yield Edge(*running)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    # A page test that never ran must not pass as one that did: no browser is a failure.
    try:
        require_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with headless_chromium() as driver:
        yield driver


def open_page(browser: WebDriver, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def navigation(browser: WebDriver) -> dict[str, Any]:
    """The HTTP status of the page shown, and how many bytes came over the network for it."""
    return dict(
        browser.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {status: n.responseStatus, transferSize: n.transferSize};"
        )
    )


def text_of(browser: WebDriver, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def lang_of(browser: WebDriver) -> str | None:
    return browser.find_element(By.TAG_NAME, "html").get_attribute("lang")


def checked(browser: WebDriver, name: str) -> str | None:
    found = browser.find_elements(By.CSS_SELECTOR, f"input[name={name}]:checked")
    return found[0].get_attribute("value") if found else None


def wait_for_heading(browser: WebDriver, heading: str) -> None:
    """Wait for the next page. The heading is read in the page by script, holding no
    reference to a node: the old page's heading, found and then read while the next page
    replaces it, failed as stale, or as "Node with given id does not belong to the
    document" from chromedriver."""
    WebDriverWait(browser, 15).until(
        lambda d: (
            d.execute_script(
                "const h = document.querySelector('h1'); return h ? h.innerText : null"
            )
            == heading
        )
    )


def keep_screenshots(browser: WebDriver, tmp_path: Path, name: str) -> list[Path]:
    """Phone and desktop PNGs in the test's tmp dir, copied to var/screenshots/real-edge-*."""
    kept = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for shot in save_phone_and_desktop_screenshots(browser, tmp_path, f"real-edge-{name}"):
        assert shot.stat().st_size > 5_000, f"{shot} looks blank"
        kept.append(Path(shutil.copy(shot, SCREENSHOTS / shot.name)))
    return kept


def test_a_swedish_customer_answers_from_the_email_with_the_keyboard_alone_on_a_phone(
    edge: Edge, browser: WebDriver, tmp_path: Path
) -> None:
    sv = messages_for("sv")
    reason = "Snabb leverans – och personalen i Malmö var så trevlig. Æ Ø Å Ä Ö æ ø å ä ö"
    improve = "Fler kassor öppna på lördagar; smørrebrød och blåbär i caféet, tack!"
    purchase = edge.purchase(
        locale="sv",
        currency="SEK",
        segment={"store": "Malmö", "region": "Skåne"},
        contact={"email": "asa@example.se", "name": "Åsa"},
    )
    links = SCORE_LINK.findall(html_of(edge.wait_for_mail_to("asa@example.se")))
    assert len(links) == 11
    link = token_of(links[8])
    assert link["s"] == 8 and link["l"] == "sv" and link["c"] == purchase["customer_id"]
    response_id = str(link["i"])

    with viewport(browser, PHONE, mobile=True):
        open_page(browser, links[8])
        assert navigation(browser)["status"] == 200
        assert browser.execute_script("return window.innerWidth") == PHONE[0]
        assert lang_of(browser) == "sv"
        assert text_of(browser, "h1") == sv.thanks_for_score.format(score=8)
        assert text_of(browser, "legend") == sv.question("nps", COMPANY)
        assert text_of(browser, "label[for=reason]").startswith(sv.reason_question)
        # An 8 is a passive: the page asks what would make it a 9 or 10.
        assert text_of(browser, "label[for=improve]").startswith(sv.improve_question(8))
        assert [
            label.text for label in browser.find_elements(By.CSS_SELECTOR, ".choices label")
        ] == [sv.heard_from_label(key) for key in HEARD_FROM]
        assert text_of(browser, "button") == sv.submit
        assert checked(browser, "score") == "8"
        assert checked(browser, "heard_from") is None

        # The radio group is one tab stop, entered at the score the click gave; right is 9.
        press(browser, Keys.TAB)
        assert focused(browser) == Focused("input", "radio", "score", "8", "8")
        press(browser, Keys.ARROW_RIGHT)
        assert focused(browser) == Focused("input", "radio", "score", "9", "9")
        assert checked(browser, "score") == "9"

        press(browser, Keys.TAB)
        now = focused(browser)
        assert now is not None and (now.tag, now.name) == ("textarea", "reason")
        press(browser, reason)
        press(browser, Keys.TAB)
        now = focused(browser)
        assert now is not None and (now.tag, now.name) == ("textarea", "improve")
        press(browser, improve)
        assert browser.find_element(By.ID, "reason").get_attribute("value") == reason
        assert browser.find_element(By.ID, "improve").get_attribute("value") == improve

        # Into the heard-from group (nothing chosen yet: the first answer has the focus),
        # then down twice: the third answer, "an advertisement", is chosen.
        press(browser, Keys.TAB)
        now = focused(browser)
        assert now is not None and (now.name, now.value) == ("heard_from", "recommendation")
        press(browser, Keys.ARROW_DOWN, Keys.ARROW_DOWN)
        assert focused(browser) == Focused(
            "input", "radio", "heard_from", "ads", sv.heard_from_label("ads")
        )
        assert checked(browser, "heard_from") == "ads"
        press(browser, Keys.TAB)
        assert focused(browser) == Focused("button", "submit", "", "", sv.submit)

    keep_screenshots(browser, tmp_path, "survey-sv-answered")

    with viewport(browser, PHONE, mobile=True):
        press(browser, Keys.ENTER)
        wait_for_heading(browser, sv.thanks_title)
        assert navigation(browser)["status"] == 200
        assert lang_of(browser) == "sv"
        body = text_of(browser, "body")
        assert sv.thanks_body.format(company=COMPANY) in body and sv.thanks_close in body
    keep_screenshots(browser, tmp_path, "thanks-sv")

    customer = str(purchase["customer_id"])
    wait_for("ingest to publish what it journaled", lambda: edge.journal_published(customer))
    wait_for("the click and the answer", lambda: len(edge.responses_of(response_id)) >= 2)
    time.sleep(SETTLE_SECONDS)
    events = edge.responses_of(response_id)
    assert len(events) == 2, events
    click, answer = events
    assert {event["invitation_id"] for event in events} == {response_id}
    assert {event["customer_id"] for event in events} == {customer}
    assert click["event_id"] != answer["event_id"]
    assert (click["source"], click["score"], click["comment"]) == ("email_click", 8, None)
    assert click["answers"] == {"reason": None, "improve": None, "heard_from": None}
    assert (answer["source"], answer["score"], answer["locale"]) == ("web", 9, "sv")
    # Every æ, ø, å, ä and ö came through the browser, the form post, the journal and the
    # broker unchanged.
    assert answer["answers"] == {"reason": reason, "improve": improve, "heard_from": "ads"}
    assert answer["comment"] == reason


def test_a_danish_customer_clicking_the_same_score_twice_is_one_response_and_one_event(
    edge: Edge, browser: WebDriver
) -> None:
    da = messages_for("da")
    purchase = edge.purchase(contact={"email": "mads@example.dk", "name": "Mads"})
    customer = str(purchase["customer_id"])
    links = SCORE_LINK.findall(html_of(edge.wait_for_mail_to("mads@example.dk")))
    link = token_of(links[7])
    response_id = str(link["i"])

    for _click in range(2):
        open_page(browser, links[7])
        # Served by the edge both times (the page is no-store), not from the browser's cache.
        shown = navigation(browser)
        assert shown["status"] == 200 and shown["transferSize"] > 0, shown
        assert lang_of(browser) == "da"
        assert text_of(browser, "h1") == da.thanks_for_score.format(score=7)
        assert checked(browser, "score") == "7"

    # The same click means the same content, hence the same deterministic event id; ingest
    # journals an event id once, so the two clicks are one event on the topic.
    same_click = response_from_link(
        link, 7, FollowUpAnswers(), ResponseSource.EMAIL_CLICK, datetime.now(UTC)
    )
    journaled = wait_for("ingest to publish the click", lambda: edge.journal_published(customer))
    assert [event for topic, event in journaled if topic == topics.RESPONSES.name] == [
        str(same_click.event_id)
    ]
    wait_for("the click on the topic", lambda: edge.responses_of(response_id))
    time.sleep(SETTLE_SECONDS)
    events = edge.responses_of(response_id)
    assert [(e["event_id"], e["score"], e["source"]) for e in events] == [
        (str(same_click.event_id), 7, "email_click")
    ]
    assert events[0]["response_id"] == response_id and events[0]["customer_id"] == customer

    # What the aggregator is fed (the classified responses) and what it counts: one
    # response, from that one event, not an update of itself.
    def classified() -> list[dict[str, Any]]:
        records = read_all(edge.stack.bootstrap, edge.stack.topic(topics.RESPONSES_CLASSIFIED.name))
        events = [json.loads(value) for _, value in records if value]
        return [e for e in events if e["response"]["response_id"] == response_id]

    wait_for("the classified click", classified)
    counted = wait_for(
        "the aggregator to count the response",
        lambda: edge.sql(
            "aggregator",
            "SELECT score, category FROM aggregator_responses WHERE response_id=?",
            response_id,
        ),
    )
    assert counted == [(7, "passive")]
    time.sleep(SETTLE_SECONDS)
    fed = classified()
    assert [(e["response"]["event_id"], e["is_update"]) for e in fed] == [
        (str(same_click.event_id), False)
    ]


def test_an_expired_or_tampered_link_shows_its_page_in_the_browsers_language(
    edge: Edge, browser: WebDriver, tmp_path: Path
) -> None:
    signer = TokenSigner(TOKEN_SECRET.encode())
    # The links say Danish, but a link that cannot be used is explained in the language of
    # the browser it was opened in, not the link's.
    payload = {"i": f"inv-{uuid.uuid4().hex[:8]}", "c": "c-old", "k": "nps", "l": "da"}
    expired = signer.sign({**payload, "s": 9}, time.time() - 60)
    genuine = signer.sign({**payload, "s": 3}, time.time() + 600)
    # A customer edits the score in the link from 3 to 10; the signature no longer matches.
    body, mac = genuine.split(".")
    edited = json.loads(_unb64(body))
    edited["s"] = 10
    tampered = f"{_b64(json.dumps(edited, separators=(',', ':'), sort_keys=True))}.{mac}"
    base = edge.stack.url("ingest") + "/s/"

    def shows(driver: WebDriver, token: str, status: int, locale: str, problem: str) -> None:
        messages = messages_for(locale)
        title, explanation, next_step = (
            (
                messages.link_expired_title,
                messages.link_expired_explanation,
                messages.link_expired_next_step,
            )
            if problem == "expired"
            else (
                messages.link_invalid_title,
                messages.link_invalid_explanation,
                messages.link_invalid_next_step,
            )
        )
        open_page(driver, base + token)
        assert navigation(driver)["status"] == status
        assert lang_of(driver) == messages.html_lang
        assert driver.title == title
        assert text_of(driver, "h1") == title
        paragraphs = [p.text for p in driver.find_elements(By.CSS_SELECTOR, ".card p")]
        assert paragraphs == [explanation, next_step]
        # Nothing on it records a score or offers a form.
        assert driver.find_elements(By.CSS_SELECTOR, "form, input, button") == []

    # This browser speaks English (Chromium is started with --lang=en-US).
    assert browser.execute_script("return navigator.language") == "en-US"
    shows(browser, expired, 410, "en", "expired")
    shows(browser, tampered, 403, "en", "invalid")

    with headless_chromium() as swedish:
        user_agent = swedish.execute_script("return navigator.userAgent")
        swedish.execute_cdp_cmd(
            "Emulation.setUserAgentOverride",
            {"userAgent": user_agent, "acceptLanguage": "sv-SE,sv;q=0.9,en;q=0.5"},
        )
        shows(swedish, expired, 410, "sv", "expired")
        keep_screenshots(swedish, tmp_path, "link-expired-sv")
        shows(swedish, tampered, 403, "sv", "invalid")
        keep_screenshots(swedish, tmp_path, "link-invalid-sv")

    # Neither link recorded anything.
    time.sleep(SETTLE_SECONDS)
    assert edge.responses_of(payload["i"]) == []


def test_unsubscribing_in_the_browser_by_keyboard_suppresses_a_later_purchase(
    edge: Edge, browser: WebDriver, tmp_path: Path
) -> None:
    nb = messages_for("no")
    first = edge.purchase(
        locale="no", currency="NOK", contact={"email": "ingrid@example.no", "name": "Ingrid"}
    )
    customer = str(first["customer_id"])
    mail = edge.wait_for_mail_to("ingrid@example.no")
    unsubscribe = mail.body["headers"]["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(edge.stack.url("ingest") + "/u/")

    open_page(browser, unsubscribe)
    assert navigation(browser)["status"] == 200
    assert lang_of(browser) == "nb"
    assert text_of(browser, "h1") == nb.unsubscribe_title
    body = text_of(browser, "body")
    assert nb.unsubscribe_question.format(company=COMPANY) in body
    assert nb.unsubscribe_keep in body
    # Opening the page asks; it does not unsubscribe (mail scanners open every link).
    assert edge.sql(
        "ingest", "SELECT unsubscribed_at FROM ingest_customers WHERE customer_id=?", customer
    ) in ([], [(None,)])
    keep_screenshots(browser, tmp_path, "unsubscribe-nb")

    press(browser, Keys.TAB)
    assert focused(browser) == Focused("button", "submit", "", "", nb.unsubscribe_button)
    press(browser, Keys.ENTER)
    wait_for_heading(browser, nb.unsubscribed_title)
    assert navigation(browser)["status"] == 200
    assert text_of(browser, "[role=status]") == nb.unsubscribed_body.format(company=COMPANY)
    keep_screenshots(browser, tmp_path, "unsubscribed-nb")

    # Purchases and preferences are separate topics: buy again only once ingest has taken
    # the unsubscription in, or the purchase may be planned before it.
    wait_for(
        "ingest to note the unsubscription",
        lambda: edge.sql(
            "ingest",
            "SELECT 1 FROM ingest_customers WHERE customer_id=? AND unsubscribed_at IS NOT NULL",
            customer,
        ),
    )
    later = edge.purchase(
        customer_id=customer,
        locale="no",
        currency="NOK",
        contact={"email": "ingrid@example.no", "name": "Ingrid"},
    )
    output = edge.explain_until(customer, "suppressed (unsubscribed)")
    line = next(line for line in output.splitlines() if str(later["order_id"]) in line)
    assert "suppressed (unsubscribed)" in line, output
    first_line = next(line for line in output.splitlines() if str(first["order_id"]) in line)
    assert "suppressed" not in first_line, output
    time.sleep(SETTLE_SECONDS)
    assert len(edge.mails_to("ingrid@example.no")) == 1
