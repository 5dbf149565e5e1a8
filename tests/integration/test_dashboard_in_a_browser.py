"""The dashboard page in real headless Chromium, served by the real DashboardRoutes.

The view comes from a synthetic but realistic ledger: twelve weeks of responses from
three stores, Danish comments run through the real classifier for their themes, cases
opened for the detractors and followed up at varying speed, and a year of purchases
with a refund. The page is served in-process by aiohttp on a free port.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from services.aggregator.dashboard import DashboardQuery, DashboardView, dashboard_view
from services.aggregator.loop_health import CaseLedger, CaseStep
from services.aggregator.money import PurchaseFact, PurchaseLedger
from services.aggregator.responses import ResponseFact, ResponseLedger
from services.aggregator.segments import SegmentBuckets
from services.aggregator.web import DashboardRoutes
from services.classifier.domain import classify_response
from shared.events import (
    CaseAction,
    FollowUpAnswers,
    Purchase,
    PurchaseKind,
    Response,
    Segment,
    SurveyKind,
)
from shared.nps import Category
from tests.browser import (
    DESKTOP,
    PHONE,
    focused,
    headless_chromium,
    press,
    save_screenshot,
    tab_through,
    viewport,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Git-ignored (var/), for a person to look at after a run; docs/ holds the README's copy,
# refreshed with NPSLOOP_UPDATE_README_SCREENSHOT=1.
SCREENSHOTS = ROOT / "var" / "screenshots"
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"

ZONE = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
STORES = {
    # store: (region, chance of a promoter in week 0 and in week 11, chance of a detractor)
    "Aarhus": ("Midtjylland", (0.38, 0.62), 0.22),
    "København": ("Hovedstaden", (0.58, 0.56), 0.14),
    "Odense": ("Syddanmark", (0.52, 0.36), 0.30),
}
COMMENTS = {
    Category.PROMOTER: (
        "Hurtig levering og søde medarbejdere i butikken.",
        "Super god kvalitet, holder i mange år.",
        "Venligt personale og god service.",
        "Godt udvalg og hurtig levering.",
        None,
    ),
    Category.PASSIVE: (
        "Helt fint, men lidt dyrt.",
        "Okay oplevelse, lidt lang ventetid ved kassen.",
        None,
    ),
    Category.DETRACTOR: (
        "Alt for dyrt, og pakken kom for sent.",
        "Lang ventetid ved kassen og uvenligt personale.",
        "Hjemmesiden driller, og levering tog to uger.",
        "Dårlig kvalitet, gik i stykker efter en uge.",
        None,
    ),
}
HEARD_FROM = ("recommendation", "google", "social_media", "store")


@dataclass
class Ledgers:
    responses: ResponseLedger
    cases: CaseLedger
    purchases: PurchaseLedger
    buckets: SegmentBuckets


def a_score(rng: random.Random, promoter: float, detractor: float) -> int:
    draw = rng.random()
    if draw < promoter:
        return rng.choice((9, 10, 10))
    if draw < promoter + detractor:
        return rng.choice((1, 3, 4, 5, 6, 6))
    return rng.choice((7, 8))


def synthetic_ledgers(seed: int = 7) -> Ledgers:
    """About 550 responses over 12 weeks in 3 stores, their cases, a year of purchases."""
    rng = random.Random(seed)
    responses, cases, purchases = ResponseLedger(), CaseLedger(), PurchaseLedger()
    buckets = SegmentBuckets()
    customers = [f"cust-{number:04d}" for number in range(320)]
    home = {customer: rng.choice(list(STORES)) for customer in customers}
    for week in range(12):
        for store, (region, (first, last), detractor) in STORES.items():
            promoter = first + (last - first) * week / 11
            for _ in range(rng.randint(13, 19)):
                at = NOW - timedelta(days=7 * (11 - week) + rng.uniform(0.0, 6.9))
                if at >= NOW:
                    continue
                score = a_score(rng, promoter, detractor)
                customer = rng.choice([c for c in customers if home[c] == store])
                response = Response(
                    event_id=uuid.uuid4(),
                    occurred_at=at,
                    response_id=f"resp-{len(responses):04d}",
                    customer_id=customer,
                    survey_kind=SurveyKind.NPS,
                    score=score,
                    comment=rng.choice(COMMENTS[category_of(score)]),
                    answers=FollowUpAnswers(heard_from=rng.choice(HEARD_FROM)),
                    segment=Segment(store=store, region=region, channel="store"),
                    responded_at=at,
                )
                fact = ResponseFact.of(classify_response(response))
                responses.record(fact)
                buckets = buckets.admit(fact.segment)
                if fact.category == Category.DETRACTOR:
                    for step in follow_up(rng, fact):
                        cases.record(step)
    # Promoters come back more often and buy more; København's baskets are larger.
    latest = responses.latest_by_customer()
    visits = {Category.PROMOTER: (2, 6), Category.PASSIVE: (1, 4), Category.DETRACTOR: (0, 3)}
    for customer in customers:
        spend = Decimal(2) if home[customer] == "København" else Decimal(1)
        low, high = visits.get(latest.get(customer, Category.PASSIVE), (0, 2))
        for number in range(rng.randint(low, high)):
            purchases.record(
                PurchaseFact.of(
                    Purchase(
                        event_id=uuid.uuid4(),
                        occurred_at=NOW - timedelta(days=rng.uniform(1, 360)),
                        order_id=f"order-{customer}-{number}",
                        customer_id=customer,
                        amount=Decimal(rng.randint(150, 1800)) * spend,
                        currency="DKK",
                    )
                )
            )
    refunded = customers[0]
    purchases.record(
        PurchaseFact.of(
            Purchase(
                event_id=uuid.uuid4(),
                occurred_at=NOW - timedelta(days=3),
                kind=PurchaseKind.REFUND,
                order_id=f"order-{refunded}-0",
                customer_id=refunded,
                amount=Decimal("899.00"),
                currency="DKK",
            )
        )
    )
    return Ledgers(responses, cases, purchases, buckets)


def category_of(score: int) -> Category:
    return (
        Category.PROMOTER if score >= 9 else Category.PASSIVE if score >= 7 else Category.DETRACTOR
    )


def follow_up(rng: random.Random, fact: ResponseFact) -> list[CaseStep]:
    """A detractor's case: opened at once with a 24-hour SLA, then claimed, contacted, resolved."""
    case = f"case-{fact.response_id}"
    opened = fact.responded_at + timedelta(minutes=1)
    steps = [
        CaseStep(
            f"{case}:opened",
            case,
            fact.response_id,
            CaseAction.OPENED,
            opened,
            opened + timedelta(hours=24),
        )
    ]
    at = opened
    # One case in eight is claimed and then forgotten: it stays open, past its SLA.
    stalls = rng.random() < 0.125
    for action, hours in (
        (CaseAction.CLAIMED, rng.uniform(0.2, 8)),
        (CaseAction.CONTACTED, rng.uniform(1, 30)),
        (CaseAction.RESOLVED, rng.uniform(12, 96)),
    ):
        at += timedelta(hours=hours)
        if at >= NOW or (stalls and action != CaseAction.CLAIMED):
            break
        steps.append(CaseStep(f"{case}:{action}", case, fact.response_id, action, at))
    return steps


@dataclass
class DashboardServer:
    """DashboardRoutes on aiohttp, on a free port, in a thread of its own."""

    ledgers: Ledgers
    url: str = ""

    def view_for(self, query: DashboardQuery) -> DashboardView:
        return dashboard_view(
            responses=self.ledgers.responses,
            cases=self.ledgers.cases.histories(),
            purchases=self.ledgers.purchases,
            buckets=self.ledgers.buckets,
            now=NOW,
            zone=ZONE,
            query=query,
            currency="DKK",
        )

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> str:
        app = web.Application()
        DashboardRoutes(self.view_for).register(app.router)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def start(self) -> DashboardServer:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[DashboardServer]:
    running = DashboardServer(synthetic_ledgers()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


def open_dashboard(browser: WebDriver, server: DashboardServer, **params: str) -> None:
    query = f"?{urlencode(params)}" if params else ""
    browser.get(f"{server.url}/dashboard{query}")
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def texts(browser: WebDriver, css: str) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, css)]


def focused_name(browser: WebDriver) -> str | None:
    now = focused(browser)
    return None if now is None else now.name


def test_the_ledger_is_realistic() -> None:
    ledgers = synthetic_ledgers()
    facts = list(ledgers.responses)
    assert 400 <= len(facts) <= 700
    assert {fact.segment["store"] for fact in facts} == set(STORES)
    assert any(fact.themes for fact in facts if fact.category == Category.DETRACTOR)
    assert any(fact.amount < 0 for fact in ledgers.purchases)


def test_the_dashboard_shows_nps_with_its_band_the_split_themes_loop_health_and_money(
    browser: WebDriver, server: DashboardServer
) -> None:
    open_dashboard(browser, server, dimension="store")
    assert browser.title == "NPS dashboard: Customers (NPS), last 30 days"
    assert texts(browser, "h1") == ["NPS dashboard"]
    assert texts(browser, "h2") == [
        "NPS now: Whole business, last 30 days",
        "NPS week by week",
        "Promoters, passives and detractors",
        "By store",
        "Themes: promoters and detractors",
        "Loop health",
        "Money: loyalty by value",
    ]
    nps, margin = browser.find_element(By.ID, "nps").text.replace("\u00a0", " ").split(" ± ")
    assert nps.lstrip("−").isdigit() and margin.isdigit()
    assert browser.find_element(By.CSS_SELECTOR, "#change .verdict").text in (
        "Significant",
        "Not significant",
    )
    headings = texts(browser, "figure.chart h3")
    assert headings[0] == "Whole business"
    assert sorted(headings[1:]) == [f"store: {store}" for store in sorted(STORES)]
    # Every chart has a band drawn around its line, and a title and description to be read.
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    assert len(charts) == 4
    for chart in charts:
        assert chart.find_elements(By.CSS_SELECTOR, "polygon.band")
        assert chart.find_elements(By.CSS_SELECTOR, "polyline.line")
        assert chart.get_attribute("role") == "img"
        assert chart.find_element(By.TAG_NAME, "desc").get_attribute("textContent")
    band = browser.find_element(By.CSS_SELECTOR, "polygon.band").rect
    assert band["height"] > 10 and band["width"] > 100
    assert {row.split(" ")[0] for row in texts(browser, "#by-segment + table tbody th")} == set(
        STORES
    )
    assert texts(browser, "ol.promoter-themes li") and texts(browser, "ol.detractor-themes li")
    assert "Price" in " ".join(texts(browser, "ol.detractor-themes li"))
    assert browser.find_element(By.ID, "within-sla").text.endswith("%")
    assert texts(browser, ".quadrants h3") == ["Fans", "Habit", "Shoppers", "Last chance"]
    assert " DKK" in browser.find_element(By.CSS_SELECTOR, "[aria-labelledby=money]").text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = save_screenshot(browser, SCREENSHOTS / "dashboard.png", DESKTOP, mobile=False)
    if os.environ.get("NPSLOOP_UPDATE_README_SCREENSHOT"):
        # On request only: a test run leaves the committed tree as it was.
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, README_SCREENSHOT)


def test_on_a_phone_the_dashboard_does_not_scroll_sideways(
    browser: WebDriver, server: DashboardServer
) -> None:
    open_dashboard(browser, server, window="90d", dimension="store")
    with viewport(browser, PHONE, mobile=True):
        page_width = browser.execute_script("return document.documentElement.scrollWidth")
        widest = browser.execute_script(
            """
            return Math.max(...[...document.querySelectorAll('main *')].map(
              (el) => el.getBoundingClientRect().right));
            """
        )
        controls = browser.execute_script(
            """
            return [...document.querySelectorAll('select, button')].map((el) => {
              const box = el.getBoundingClientRect();
              return [el.name || el.tagName, box.width, box.height];
            });
            """
        )
    assert page_width <= PHONE[0], "the dashboard scrolls sideways on a phone"
    assert widest <= PHONE[0]
    assert [c for c in controls if c[1] < 44 or c[2] < 44] == []
    save_screenshot(browser, SCREENSHOTS / "dashboard-phone.png", PHONE, mobile=True)


def test_every_text_has_a_contrast_of_at_least_4_5_to_1(
    browser: WebDriver, server: DashboardServer
) -> None:
    open_dashboard(browser, server, window="90d", dimension="store")
    found = browser.execute_script(
        """
        const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
        const lum = ([r, g, b]) => [r, g, b].map((c) => {
          c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
        const background = (el) => {
          for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
          }
          return [255, 255, 255];
        };
        const low = [];
        let checked = 0;
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const el = walker.currentNode.parentElement;
          if (!walker.currentNode.textContent.trim() || el.closest('svg')) continue;
          checked += 1;
          const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
          const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
          if (ratio < 4.5) low.push([walker.currentNode.textContent.trim(), ratio]);
        }
        return [checked, low];
        """
    )
    checked, low = found
    assert checked > 100
    assert low == []


def test_the_keyboard_reaches_the_form_first_and_chooses_a_store_with_it(
    browser: WebDriver, server: DashboardServer
) -> None:
    open_dashboard(browser, server)
    stops = tab_through(browser)
    assert [(stop.tag, stop.name, stop.label) for stop in stops[:5]] == [
        ("select", "window", "Window"),
        ("select", "kind", "Survey"),
        ("select", "dimension", "Cut by"),
        ("select", "segment", "Segment"),
        ("button", "", "Show"),
    ]
    # Every other stop opens a table of a chart's figures.
    assert {stop.tag for stop in stops[5:]} == {"summary"}

    browser.execute_script("document.activeElement && document.activeElement.blur()")
    press(browser, Keys.TAB, Keys.TAB, Keys.TAB)
    assert focused_name(browser) == "dimension"
    ring = browser.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineStyle, parseFloat(s.outlineWidth)];"
    )
    assert ring[0] == "solid" and ring[1] >= 2
    # Down past "Whole business" and the dimensions before store, then Show.
    store = ["all", "region", "business_unit", "department", "product", "store"].index("store")
    press(browser, *[Keys.ARROW_DOWN] * store, Keys.TAB, Keys.TAB, Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: "dimension=store" in d.current_url)
    assert "By store" in texts(browser, "h2")

    press(browser, Keys.TAB, Keys.TAB, Keys.TAB, Keys.TAB)
    assert focused_name(browser) == "segment"
    # The stores in the order they were first seen: Aarhus is the first.
    press(browser, Keys.ARROW_DOWN, Keys.TAB, Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: "segment=Aarhus" in d.current_url)
    assert texts(browser, "h2")[0] == "NPS now: store: Aarhus, last 30 days"
    assert texts(browser, "figure.chart h3") == ["Whole business", "store: Aarhus"]


def test_an_unknown_window_is_a_page_that_says_why(
    browser: WebDriver, server: DashboardServer
) -> None:
    open_dashboard(browser, server, window="fortnight")
    assert texts(browser, "h1") == ["This dashboard cannot be shown"]
    assert "There is no window “fortnight”" in texts(browser, "[role=alert]")[0]
