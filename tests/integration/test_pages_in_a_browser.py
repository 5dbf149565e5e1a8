"""The survey, link-problem and unsubscribe pages in real headless Chromium, by keyboard alone.

The pages are served by a tiny HTTP server inside the test, which records what the
forms post; the real ingest routes serve the same rendered pages.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from services.ingest.pages import (
    SurveyPage,
    render_link_problem,
    render_survey,
    render_thanks,
    render_unsubscribe,
)
from services.notifier.invitation_email import invitation_email
from shared.events import FollowUpAnswers
from shared.i18n import messages_for
from tests.browser import (
    PHONE,
    Focused,
    focused,
    headless_chromium,
    press,
    save_phone_and_desktop_screenshots,
    tab_through,
    viewport,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Git-ignored (var/), for a person to look at after a run.
SCREENSHOTS = ROOT / "var" / "screenshots"
COMPANY = "Lund & Søn"
HEARD_FROM = ("recommendation", "google", "social_media", "store", "other")


@dataclass
class PageServer:
    """Serves fixed pages by path and records every form post."""

    pages: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    posted: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PageServer:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str) -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                page = pages.pages.get(self.path)
                self._send(200, page) if page else self._send(404, "not found")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with pages._lock:
                    pages.posted.append((self.path, parse_qs(raw.decode(), keep_blank_values=True)))
                self._send(200, pages.answers.get(self.path, "<!DOCTYPE html><title>ok</title>"))

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def wait_for_post(self, path: str, timeout: float = 10.0) -> dict[str, list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for posted_path, fields in self.posted:
                    if posted_path == path:
                        return fields
            time.sleep(0.05)
        raise AssertionError(f"nothing was posted to {path} within {timeout}s: {self.posted}")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


@pytest.fixture
def server() -> Iterator[PageServer]:
    pages = PageServer().start()
    yield pages
    pages.stop()


def survey(server: PageServer, locale: str, **overrides: Any) -> SurveyPage:
    values: dict[str, Any] = {
        "locale": locale,
        "company_name": COMPANY,
        "survey_kind": "nps",
        "score": 7,
        "action_url": f"{server.url}/answer",
        "heard_from_options": HEARD_FROM,
        **overrides,
    }
    page = SurveyPage(**values)
    server.pages["/survey"] = render_survey(page)
    server.answers["/answer"] = render_thanks(locale, COMPANY)
    return page


def open_page(browser: WebDriver, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def text_of(browser: WebDriver, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def keep_screenshots(browser: WebDriver, tmp_path: Path, name: str) -> None:
    for shot in save_phone_and_desktop_screenshots(browser, tmp_path, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOTS / shot.name)


@pytest.mark.parametrize(
    ("locale", "lang"), [("da", "da"), ("sv", "sv"), ("no", "nb"), ("en", "en")]
)
def test_the_survey_page_speaks_the_customers_language(
    browser: WebDriver, server: PageServer, locale: str, lang: str
) -> None:
    survey(server, locale)
    messages = messages_for(locale)
    open_page(browser, f"{server.url}/survey")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    assert text_of(browser, "h1") == messages.thanks_for_score.format(score=7)
    assert text_of(browser, "legend") == messages.question("nps", COMPANY)
    assert messages.improve_question(7) in text_of(browser, "label[for=improve]")


def test_tabbing_visits_the_score_the_two_answers_where_you_heard_and_send_in_that_order(
    browser: WebDriver, server: PageServer
) -> None:
    survey(server, "en")
    messages = messages_for("en")
    open_page(browser, f"{server.url}/survey")
    stops = tab_through(browser)
    assert [(stop.tag, stop.name) for stop in stops] == [
        ("input", "score"),
        ("textarea", "reason"),
        ("textarea", "improve"),
        ("input", "heard_from"),
        ("button", ""),
    ]
    # A radio group is one tab stop, entered at the score already given.
    assert (stops[0].value, stops[0].label) == ("7", "7")
    assert stops[1].label.startswith(messages.reason_question)
    assert stops[2].label.startswith(messages.improve_question(7))
    assert stops[3].label == messages.heard_from_label(HEARD_FROM[0])
    assert stops[4].label == messages.submit


@pytest.mark.parametrize(
    ("locale", "reason", "improve"),
    [
        ("da", "Hurtig levering og søde folk i butikken.", "Længere åbningstid om lørdagen."),
        ("sv", "Snabb leverans, men lite rörigt i kassan.", "Fler kassor öppna på helgen."),
        ("en", 'Friendly staff, "quick" delivery.', "Cheaper shipping <please>."),
    ],
    ids=["da", "sv", "en"],
)
def test_a_customer_answers_the_whole_survey_with_the_keyboard_alone(
    browser: WebDriver,
    server: PageServer,
    tmp_path: Path,
    locale: str,
    reason: str,
    improve: str,
) -> None:
    survey(server, locale)
    open_page(browser, f"{server.url}/survey")

    press(browser, Keys.TAB)
    assert focused(browser) == Focused("input", "radio", "score", "7", "7")
    press(browser, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert (
        browser.find_element(By.CSS_SELECTOR, "input[name=score]:checked").get_attribute("value")
        == "9"
    )

    press(browser, Keys.TAB, *reason, Keys.TAB, *improve)
    # Into the heard-from group, then down one: the second answer is chosen.
    press(browser, Keys.TAB, Keys.ARROW_DOWN)
    press(browser, Keys.TAB)
    assert focused(browser) == Focused("button", "submit", "", "", messages_for(locale).submit)
    keep_screenshots(browser, tmp_path, f"survey-{locale}-answered")

    press(browser, Keys.ENTER)
    posted = server.wait_for_post("/answer")
    assert posted == {
        "score": ["9"],
        "reason": [reason],
        "improve": [improve],
        "heard_from": [HEARD_FROM[1]],
    }
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "h1").text == messages_for(locale).thanks_title
    )
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == locale


def test_the_focused_control_shows_a_visible_focus_ring(
    browser: WebDriver, server: PageServer
) -> None:
    survey(server, "en")
    open_page(browser, f"{server.url}/survey")
    rings = []
    for _ in range(5):
        press(browser, Keys.TAB)
        # A score or heard-from radio is drawn by its label; the ring is drawn there.
        ring = browser.execute_script(
            """
            const el = document.activeElement;
            const drawn = el.type === 'radio' ? el.labels[0] : el;
            const style = getComputedStyle(drawn);
            return [el.name || el.tagName, style.outlineStyle, parseFloat(style.outlineWidth)];
            """
        )
        rings.append(tuple(ring))
    assert [name for name, _, _ in rings] == ["score", "reason", "improve", "heard_from", "BUTTON"]
    assert all(style == "solid" and width >= 2 for _, style, width in rings), rings


def test_on_a_phone_every_control_is_a_big_tap_target_and_no_text_is_small(
    browser: WebDriver, server: PageServer
) -> None:
    survey(server, "da")
    open_page(browser, f"{server.url}/survey")
    with viewport(browser, PHONE, mobile=True):
        targets = browser.execute_script(
            """
            const targets = [...document.querySelectorAll('.option label, textarea, button')];
            return targets.map((el) => {
              const box = el.getBoundingClientRect();
              return [el.textContent.trim().slice(0, 30), box.width, box.height];
            });
            """
        )
        sizes = browser.execute_script(
            """
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            const sizes = [];
            while (walker.nextNode()) {
              const text = walker.currentNode;
              if (!text.textContent.trim()) continue;
              const style = getComputedStyle(text.parentElement);
              if (style.display === 'none') continue;
              sizes.push([text.textContent.trim().slice(0, 30), parseFloat(style.fontSize)]);
            }
            return sizes;
            """
        )
        page_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert len(targets) == 11 + 2 + len(HEARD_FROM) + 1
    assert [t for t in targets if t[1] < 44 or t[2] < 44] == []
    assert [s for s in sizes if s[1] < 16] == []
    assert page_width <= PHONE[0], "the page scrolls sideways on a phone"


def test_hostile_text_shows_as_text_and_runs_nothing(
    browser: WebDriver, server: PageServer
) -> None:
    hostile = '"><script>window.pwned = true</script><img src=x onerror="window.pwned=true">'
    survey(
        server,
        "en",
        company_name=hostile,
        prefill=FollowUpAnswers(reason=f"</textarea>{hostile}", improve="\nstarts on a new line"),
        saved=True,
    )
    open_page(browser, f"{server.url}/survey")
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_element(By.ID, "reason").get_attribute("value") == f"</textarea>{hostile}"
    assert browser.find_element(By.ID, "improve").get_attribute("value") == "\nstarts on a new line"
    assert text_of(browser, ".brand") == hostile
    assert text_of(browser, "[role=status]") == messages_for("en").answer_updated


@pytest.mark.parametrize("locale", ["da", "sv", "en"])
@pytest.mark.parametrize("problem", ["expired", "invalid"])
def test_a_link_problem_page_explains_itself_and_has_nothing_to_trap_the_keyboard(
    browser: WebDriver, server: PageServer, tmp_path: Path, locale: str, problem: str
) -> None:
    messages = messages_for(locale)
    server.pages["/problem"] = render_link_problem(locale, problem)  # type: ignore[arg-type]
    open_page(browser, f"{server.url}/problem")
    title = messages.link_expired_title if problem == "expired" else messages.link_invalid_title
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == locale
    assert text_of(browser, "h1") == title
    assert browser.title == title
    assert tab_through(browser) == []
    if locale == "da":
        keep_screenshots(browser, tmp_path, f"link-{problem}-{locale}")


@pytest.mark.parametrize("locale", ["da", "sv", "en"])
def test_a_customer_unsubscribes_with_one_key_press(
    browser: WebDriver, server: PageServer, tmp_path: Path, locale: str
) -> None:
    messages = messages_for(locale)
    action = f"{server.url}/unsubscribe"
    server.pages["/unsubscribe"] = render_unsubscribe(locale, COMPANY, action, done=False)
    server.answers["/unsubscribe"] = render_unsubscribe(locale, COMPANY, action, done=True)
    open_page(browser, f"{server.url}/unsubscribe")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == locale
    stops = tab_through(browser)
    assert [(stop.tag, stop.label) for stop in stops] == [("button", messages.unsubscribe_button)]
    if locale == "da":
        keep_screenshots(browser, tmp_path, f"unsubscribe-{locale}")

    open_page(browser, f"{server.url}/unsubscribe")
    press(browser, Keys.TAB, Keys.ENTER)
    assert server.wait_for_post("/unsubscribe") == {}
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "h1").text == messages.unsubscribed_title
    )
    assert text_of(browser, "[role=status]") == messages.unsubscribed_body.format(company=COMPANY)
    if locale == "da":
        keep_screenshots(browser, tmp_path, f"unsubscribed-{locale}")


def test_an_employee_survey_says_it_is_anonymous_and_asks_no_heard_from(
    browser: WebDriver, server: PageServer, tmp_path: Path
) -> None:
    survey(server, "sv", survey_kind="enps", score=4)
    messages = messages_for("sv")
    open_page(browser, f"{server.url}/survey")
    assert text_of(browser, ".note") == messages.enps_anonymous
    assert text_of(browser, "legend") == messages.question("enps", COMPANY)
    assert [stop.name for stop in tab_through(browser)] == ["score", "reason", "improve", ""]
    keep_screenshots(browser, tmp_path, "survey-enps-sv")


def test_the_invitation_email_shows_all_eleven_scores_in_one_row_on_a_phone(
    browser: WebDriver, server: PageServer, tmp_path: Path
) -> None:
    email = invitation_email(
        "da",
        COMPANY,
        "Lars",
        "nps",
        [f"{server.url}/s/{score}" for score in range(11)],
        "https://feedback.example.com/unsubscribe?t=x",
    )
    server.pages["/email"] = email.html
    open_page(browser, f"{server.url}/email")
    with viewport(browser, PHONE, mobile=True):
        boxes = browser.execute_script(
            """
            return [...document.querySelectorAll('a')].map((a) => {
              const box = a.getBoundingClientRect();
              return [a.textContent, box.top, box.width, box.height];
            });
            """
        )
        page_width = browser.execute_script("return document.documentElement.scrollWidth")
    scores = boxes[:11]
    assert [text for text, _, _, _ in scores] == [str(score) for score in range(11)]
    assert len({top for _, top, _, _ in scores}) == 1, "the scores wrap onto several rows"
    assert all(width >= 24 and height >= 44 for _, _, width, height in scores), scores
    assert page_width <= PHONE[0], "the email scrolls sideways on a phone"
    keep_screenshots(browser, tmp_path, "invitation-email-da")
