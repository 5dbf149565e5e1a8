"""What promoters and detractors spend: trailing-year revenue and the loyalty quadrants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.aggregator.money import (
    Group,
    PurchaseFact,
    PurchaseLedger,
    Quadrant,
    loyalty_by_value,
)
from shared.events import Purchase, PurchaseKind
from shared.nps import Category

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PROMOTER, PASSIVE, DETRACTOR = Category.PROMOTER, Category.PASSIVE, Category.DETRACTOR


def purchase(
    customer: str,
    amount: str,
    *,
    kind: PurchaseKind = PurchaseKind.PURCHASE,
    days_ago: int = 10,
    currency: str = "DKK",
    event_id: uuid.UUID | None = None,
) -> PurchaseFact:
    return PurchaseFact.of(
        Purchase(
            event_id=event_id or uuid.uuid4(),
            occurred_at=NOW - timedelta(days=days_ago),
            kind=kind,
            order_id=f"order-{customer}",
            customer_id=customer,
            amount=Decimal(amount),
            currency=currency,
        )
    )


def test_a_refund_takes_its_amount_off() -> None:
    assert purchase("c", "100").amount == Decimal(100)
    assert purchase("c", "30", kind=PurchaseKind.REFUND).amount == Decimal(-30)
    assert purchase("c", "100", kind=PurchaseKind.CANCELLATION).amount == Decimal(-100)


def test_the_same_purchase_event_twice_counts_once() -> None:
    same = uuid.uuid4()
    ledger = PurchaseLedger()
    assert ledger.record(purchase("c", "100", event_id=same))
    assert not ledger.record(purchase("c", "100", event_id=same))
    result = loyalty_by_value(ledger, {"c": PROMOTER}, NOW, "DKK")
    assert result.by_category[PROMOTER] == Group(1, Decimal(100))


def test_revenue_per_customer_by_category_over_the_trailing_year() -> None:
    purchases = [
        purchase("ann", "1000"),
        purchase("ann", "200", kind=PurchaseKind.REFUND),
        purchase("ann", "5000", days_ago=400),  # more than a year ago
        purchase("bob", "600"),
        purchase("cy", "50"),
        purchase("zed", "70"),  # never answered
        purchase("bob", "999", currency="EUR"),  # not the reporting currency
    ]
    categories = {"ann": PROMOTER, "bob": PROMOTER, "cy": DETRACTOR, "dee": PASSIVE}
    result = loyalty_by_value(purchases, categories, NOW, "DKK")
    # ann 1000 - 200 = 800, bob 600: 1400 over 2 promoters = 700 each
    assert result.by_category[PROMOTER] == Group(2, Decimal(1400))
    assert result.by_category[PROMOTER].per_customer == Decimal(700)
    assert result.by_category[DETRACTOR] == Group(1, Decimal(50))
    # dee answered but bought nothing this year: she counts, at 0
    assert result.by_category[PASSIVE] == Group(1, Decimal(0))
    assert result.without_response == Group(1, Decimal(70))
    assert result.other_currency_events == 1


def test_the_four_quadrants_split_at_the_median_of_responding_customers() -> None:
    revenue = {"ann": "900", "bob": "100", "cy": "800", "dee": "50", "eve": "300"}
    categories = {
        "ann": PROMOTER,
        "bob": PROMOTER,
        "cy": DETRACTOR,
        "dee": DETRACTOR,
        "eve": PASSIVE,
    }
    purchases = [purchase(customer, amount) for customer, amount in revenue.items()]
    result = loyalty_by_value(purchases, categories, NOW, "DKK")
    # revenues 50, 100, 300, 800, 900: the median is 300 (eve, a passive, sits on it)
    assert result.median_revenue == Decimal(300)
    assert result.quadrants == {
        Quadrant.FANS: Group(1, Decimal(900)),  # ann
        Quadrant.HABIT: Group(1, Decimal(100)),  # bob
        Quadrant.SHOPPERS: Group(1, Decimal(800)),  # cy
        Quadrant.LAST_CHANCE: Group(1, Decimal(50)),  # dee
    }


def test_a_customer_exactly_at_the_median_is_below_it() -> None:
    purchases = [purchase("ann", "100"), purchase("bob", "100")]
    result = loyalty_by_value(purchases, {"ann": PROMOTER, "bob": DETRACTOR}, NOW, "DKK")
    assert result.median_revenue == Decimal(100)
    assert result.quadrants[Quadrant.HABIT] == Group(1, Decimal(100))
    assert result.quadrants[Quadrant.LAST_CHANCE] == Group(1, Decimal(100))


def test_without_responding_customers_there_is_no_median() -> None:
    result = loyalty_by_value([purchase("zed", "10")], {}, NOW, "DKK")
    assert result.median_revenue is None
    assert all(group.customers == 0 for group in result.quadrants.values())
