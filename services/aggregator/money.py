"""Loyalty and money: what promoters, passives and detractors spend. Pure: no I/O.

- Revenue is net, in one reporting currency (a setting; the aggregator never converts):
  a purchase adds its amount, a refund or a cancellation takes its amount off. Events in
  another currency are left out and counted, so a mixed feed shows it is mixed.
- Each event is dated by the order's ``purchased_at`` when it names one, else by when it
  happened, so a refund nets against its own order rather than landing in another year.
- Trailing twelve months are the 365 days before ``now``.
- Each purchase event counts once, by event id (ingest derives it from the source's id).
- A customer's category is that of their latest NPS response, however old; customers
  who never answered are reported apart and are in no quadrant.
- Quadrants of loyalty by value: the median is over the customers with a response (all
  three categories, those without purchases at 0). Above it means strictly above, so
  at the median is below. Promoters above are fans, below are habit customers;
  detractors above are shoppers, below are last chance. Passives are neither loyal nor
  disloyal: they are reported as their own row so every responding customer is counted.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.aggregator.domain import Period
from shared.events import DecodeError, Purchase, PurchaseKind, decode
from shared.nps import Category

TRAILING_YEAR = timedelta(days=365)


@dataclass(frozen=True)
class PurchaseFact:
    """One purchase event as revenue: signed, dated, in its currency. A read-model row."""

    event_id: str
    customer_id: str
    order_id: str
    amount: Decimal
    currency: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    @classmethod
    def of(cls, purchase: Purchase) -> PurchaseFact:
        # The schema keeps amounts non-negative and says refund by kind; a negative amount
        # from an older producer is read as the refund it means.
        size = abs(purchase.amount)
        signed = size if purchase.kind == PurchaseKind.PURCHASE else -size
        return cls(
            str(purchase.event_id),
            purchase.customer_id,
            purchase.order_id,
            signed,
            purchase.currency,
            purchase.purchased_at or purchase.occurred_at,
        )


def read_purchase(data: bytes | None) -> Purchase:
    """A purchase event off the topic, a negative amount read as the refund it means.

    The v1 schema keeps amounts non-negative and says refund by kind; an older or a
    careless producer may still write a refund as ``"amount": -30``. That is a refund of
    30, not a bad event: it must reduce revenue rather than go to the dlq.
    """
    try:
        return decode(Purchase, data)
    except DecodeError:
        fields = _negative_amount_as_refund(data)
        if fields is None:
            raise
        return decode(Purchase, json.dumps(fields).encode())


def _negative_amount_as_refund(data: bytes | None) -> dict[str, object] | None:
    try:
        fields = json.loads(data or b"")
        amount = Decimal(str(fields["amount"]))
    except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError):
        # Not JSON, or nested too deep for Python's parser: the decoder's reason stands.
        return None
    if not isinstance(fields, dict) or not amount.is_finite() or amount >= 0:
        return None
    if fields.get("kind", PurchaseKind.PURCHASE.value) == PurchaseKind.PURCHASE.value:
        fields["kind"] = PurchaseKind.REFUND.value
    fields["amount"] = str(-amount)
    return fields


class PurchaseLedger:
    """Every purchase event once, by event id."""

    def __init__(self, facts: Iterable[PurchaseFact] = ()) -> None:
        self._facts: dict[str, PurchaseFact] = {}
        for fact in facts:
            self.record(fact)

    def record(self, fact: PurchaseFact) -> bool:
        if fact.event_id in self._facts:
            return False
        self._facts[fact.event_id] = fact
        return True

    def __iter__(self) -> Iterator[PurchaseFact]:
        return iter(self._facts.values())


class Quadrant(StrEnum):
    FANS = "fans"
    HABIT = "habit"
    SHOPPERS = "shoppers"
    LAST_CHANCE = "last_chance"


@dataclass(frozen=True)
class Group:
    """Customers and their revenue in a group (a category or a quadrant)."""

    customers: int
    revenue: Decimal

    @property
    def per_customer(self) -> Decimal | None:
        return None if self.customers == 0 else self.revenue / self.customers


@dataclass(frozen=True)
class MoneyGroup:
    """A group named for showing: a category (by its value), a quadrant or
    "without_response", with its customers and their net revenue."""

    name: str
    customers: int
    revenue: Decimal
    per_customer: Decimal | None

    @classmethod
    def of(cls, name: str, group: Group) -> MoneyGroup:
        return cls(name, group.customers, group.revenue, group.per_customer)


@dataclass(frozen=True)
class LoyaltyByValue:
    """Trailing-year revenue by NPS category, and the four quadrants of loyalty by value."""

    period: Period
    currency: str
    median_revenue: Decimal | None
    by_category: Mapping[Category, Group]
    quadrants: Mapping[Quadrant, Group]
    without_response: Group
    other_currency_events: int


def revenue_by_customer(
    purchases: Iterable[PurchaseFact], period: Period, currency: str
) -> tuple[dict[str, Decimal], int]:
    """Net revenue per customer in a period, and how many events were in another currency."""
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    skipped = 0
    for fact in purchases:
        if fact.at not in period:
            continue
        if fact.currency != currency:
            skipped += 1
            continue
        revenue[fact.customer_id] += fact.amount
    return dict(revenue), skipped


def _group(customers: Iterable[str], revenue: Mapping[str, Decimal]) -> Group:
    chosen = list(customers)
    return Group(len(chosen), sum((revenue.get(c, Decimal(0)) for c in chosen), Decimal(0)))


def loyalty_by_value(
    purchases: Iterable[PurchaseFact],
    categories: Mapping[str, Category],
    now: datetime,
    currency: str,
) -> LoyaltyByValue:
    """Trailing-twelve-month revenue per customer by category, and the loyalty quadrants.

    ``categories`` is each customer's latest NPS category (``ResponseLedger.latest_by_customer``).
    """
    period = Period(now - TRAILING_YEAR, now)
    revenue, skipped = revenue_by_customer(purchases, period, currency)
    by_category = {
        category: _group((c for c, kind in categories.items() if kind == category), revenue)
        for category in Category
    }
    responding = [revenue.get(customer, Decimal(0)) for customer in categories]
    median = statistics.median(responding) if responding else None

    def above(customer: str) -> bool:
        return median is not None and revenue.get(customer, Decimal(0)) > median

    def members(category: Category, high: bool) -> Iterator[str]:
        return (c for c, kind in categories.items() if kind == category and above(c) == high)

    quadrants = {
        Quadrant.FANS: _group(members(Category.PROMOTER, True), revenue),
        Quadrant.HABIT: _group(members(Category.PROMOTER, False), revenue),
        Quadrant.SHOPPERS: _group(members(Category.DETRACTOR, True), revenue),
        Quadrant.LAST_CHANCE: _group(members(Category.DETRACTOR, False), revenue),
    }
    without = _group((c for c in revenue if c not in categories), revenue)
    return LoyaltyByValue(period, currency, median, by_category, quadrants, without, skipped)
