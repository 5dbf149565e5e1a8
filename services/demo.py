"""Demo traffic: realistic purchases and responses, in Danish, Swedish and English.

It talks to ingest over HTTP like any upstream system or survey page would.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shared.signing import webhook_headers

STORES = [
    ("Hovedstaden", "Retail", "København Strøget", "da"),
    ("Hovedstaden", "Retail", "Lyngby Storcenter", "da"),
    ("Midtjylland", "Retail", "Aarhus C", "da"),
    ("Stockholm", "Retail", "Stockholm Drottninggatan", "sv"),
    ("Skåne", "Retail", "Malmö Triangeln", "sv"),
    ("Online", "E-commerce", "Webshop", "en"),
]
PRODUCTS = [
    ("Kaffemaskine Barista Pro", "Kitchen"),
    ("Støvsuger Cyclone 3", "Home"),
    ("Hörlurar Silent X", "Electronics"),
    ("Cykelhjelm Urban", "Sport"),
    ("Vinterjakke Nordic", "Clothing"),
]
COMMENTS: dict[str, dict[str, list[str]]] = {
    "da": {
        "detractor": [
            "Leveringen tog over to uger, og ingen svarede på mine mails.",
            "Varen var i stykker ved levering, og kundeservice var uvenlig.",
            "Alt for dyrt i forhold til kvaliteten. Jeg handler ikke her igen.",
            "Jeg ventede 40 minutter i telefonkø for at få hjælp.",
        ],
        "passive": [
            "Fint nok, men leveringen kunne have været hurtigere.",
            "Gode priser, men hjemmesiden er svær at finde rundt på.",
            "Ok oplevelse. Personalet havde travlt.",
        ],
        "promoter": [
            "Super venligt personale og hurtig levering. Tak!",
            "Fantastisk service, jeg anbefaler jer gerne til andre.",
            "Nem bestilling og varen var præcis som beskrevet.",
        ],
    },
    "sv": {
        "detractor": [
            "Paketet kom en vecka för sent och ingen hörde av sig.",
            "Dålig kvalitet, produkten gick sönder efter två dagar.",
            "Otrevlig personal i butiken och lång kö i kassan.",
        ],
        "passive": [
            "Helt okej, men priset är lite högt.",
            "Bra sortiment men leveransen tog tid.",
        ],
        "promoter": [
            "Snabb leverans och mycket trevlig personal!",
            "Bästa kundservicen jag har varit med om.",
            "Enkelt att beställa, kommer definitivt att handla igen.",
        ],
    },
    "en": {
        "detractor": [
            "Delivery was two weeks late and nobody answered my emails.",
            "The product broke after a week and the refund is still not here.",
            "Rude staff and a long queue at the till.",
        ],
        "passive": [
            "Good products, but the website is slow.",
            "Fine, though shipping was more expensive than expected.",
        ],
        "promoter": [
            "Fast delivery and really helpful staff. Thank you!",
            "Great value, I have already recommended you to friends.",
        ],
    },
}
NAMES = ["Anna", "Mads", "Sofie", "Lars", "Elin", "Erik", "Freja", "Oscar", "Emma", "Noah"]
# NPS around +20: many promoters, a solid share of detractors, as in real retail.
SCORE_WEIGHTS = [2, 1, 1, 2, 2, 4, 5, 9, 12, 14, 18]


@dataclass(frozen=True)
class DemoEvent:
    path: str
    body: dict[str, Any] | list[dict[str, Any]]


def category_of(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def events(seed: int = 7) -> Iterator[DemoEvent]:
    """An endless, reproducible stream of purchases followed by responses to them."""
    rng = random.Random(seed)
    number = 0
    while True:
        number += 1
        region, unit, store, language = rng.choice(STORES)
        product, department = rng.choice(PRODUCTS)
        customer = f"demo-customer-{rng.randrange(100_000):05d}"
        order = f"demo-order-{seed}-{number:06d}"
        name = rng.choice(NAMES)
        email = f"{name.lower()}.{number}@example.com"
        segment = {
            "region": region,
            "business_unit": unit,
            "department": department,
            "product": product,
            "store": store,
            "channel": "online" if unit == "E-commerce" else "store",
        }
        yield DemoEvent(
            "/v1/purchases",
            {
                "order_id": order,
                "customer_id": customer,
                "amount": str(round(rng.uniform(99, 4999), 2)),
                "currency": "SEK" if language == "sv" else "GBP" if language == "en" else "DKK",
                "products": [product],
                "segment": segment,
                "contact": {"email": email, "name": name},
                "locale": language,
            },
        )
        score = rng.choices(range(11), weights=SCORE_WEIGHTS)[0]
        comment = rng.choice(COMMENTS[language][category_of(score)])
        one_click = rng.random() < 0.2
        response = {
            "response_id": f"demo-response-{seed}-{number:06d}",
            "invitation_id": f"demo-invitation-{seed}-{number:06d}",
            "customer_id": customer,
            "score": score,
            "source": "email_click" if one_click else "web",
            "locale": language,
            "segment": segment,
            "contact": {"email": email, "name": name},
        }
        if one_click:
            # A one-click score first; the comment arrives later and updates the same response.
            yield DemoEvent("/v1/responses", response)
            yield DemoEvent("/v1/responses", {**response, "source": "web", "comment": comment})
        else:
            yield DemoEvent("/v1/responses", {**response, "comment": comment})


class DemoTraffic:
    """Posts demo events to ingest at a steady rate until stopped."""

    def __init__(
        self, ingest_url: str, rate_per_second: float, webhook_secret: str, seed: int = 7
    ) -> None:
        self.ingest_url = ingest_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.interval = 1.0 / max(rate_per_second, 0.01)
        self.seed = seed
        self.sent = 0
        self.failed = 0
        self._number = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> DemoTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        for event in events(self.seed):
            if self._stop.is_set():
                return
            self._post(event)
            if event.path == "/v1/responses":
                self._stop.wait(self.interval)

    def _post(self, event: DemoEvent) -> None:
        body = json.dumps(event.body).encode()
        self._number += 1
        headers = webhook_headers(self.webhook_secret, f"demo-{self.seed}-{self._number}", body)
        request = urllib.request.Request(
            self.ingest_url + event.path,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
            self.sent += 1
        except (urllib.error.URLError, TimeoutError, OSError):
            self.failed += 1
