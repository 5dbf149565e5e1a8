"""Invitation planning: when to ask, in whose daytime, how often, and why not."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.ingest.planning import (
    CustomerState,
    Decision,
    Reason,
    Rules,
    cancellation_reason,
    decide,
    send_time,
)
from shared.events import (
    Contact,
    Experience,
    InvitationStatus,
    Purchase,
    PurchaseKind,
    Segment,
)
from shared.send_window import SendWindow, in_window, sampled_in, timezone_for

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
STOCKHOLM = ZoneInfo("Europe/Stockholm")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

RULES = Rules(
    delay_service=timedelta(hours=24),
    delay_product=timedelta(days=14),
    window=SendWindow.parse("09:00-20:00"),
    default_timezone="Europe/Copenhagen",
    fatigue=timedelta(days=90),
)
WINDOW = RULES.window

# Monday 4 May 2026, 12:00 in Copenhagen (CEST, UTC+2): inside the send window.
NOON = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def a_purchase(
    *,
    order_id: str = "ord-1",
    purchased_at: datetime | None = NOON,
    occurred_at: datetime = NOON,
    experience: Experience = Experience.PRODUCT,
    email: str | None = "anna@example.com",
    locale: str | None = None,
    timezone: str | None = None,
    segment: Segment | None = None,
    kind: PurchaseKind = PurchaseKind.PURCHASE,
) -> Purchase:
    return Purchase(
        event_id=uuid.uuid4(),
        occurred_at=occurred_at,
        kind=kind,
        order_id=order_id,
        customer_id="cust-1",
        amount=Decimal("129.95"),
        currency="DKK",
        experience=experience,
        contact=Contact(email=email),
        locale=locale,
        timezone=timezone,
        segment=segment or Segment(),
        purchased_at=purchased_at,
    )


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def at_nine(moment: datetime, zone: ZoneInfo) -> bool:
    return local(moment, zone).time() == time(9, 0)


# --- when: the delay by experience --------------------------------------------------------


def test_a_service_purchase_is_invited_a_day_after_it_was_bought() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    assert send_time(purchase, RULES, NOON) == NOON + timedelta(hours=24)


def test_a_product_purchase_is_invited_two_weeks_after_it_was_bought() -> None:
    purchase = a_purchase(experience=Experience.PRODUCT)
    assert send_time(purchase, RULES, NOON) == NOON + timedelta(days=14)


def test_the_delay_counts_from_the_purchase_not_from_when_the_event_arrived() -> None:
    bought = NOON - timedelta(hours=2)
    purchase = a_purchase(experience=Experience.SERVICE, purchased_at=bought, occurred_at=NOON)
    assert send_time(purchase, RULES, NOON) == bought + timedelta(hours=24)


def test_without_a_purchase_time_the_delay_counts_from_the_event() -> None:
    arrived = NOON - timedelta(hours=2)
    purchase = a_purchase(experience=Experience.SERVICE, purchased_at=None, occurred_at=arrived)
    assert send_time(purchase, RULES, NOON) == arrived + timedelta(hours=24)


def test_a_due_time_already_in_the_past_is_moved_to_now() -> None:
    purchase = a_purchase(experience=Experience.SERVICE, purchased_at=NOON - timedelta(days=30))
    assert send_time(purchase, RULES, NOON) == NOON


def test_a_service_purchase_late_in_the_evening_is_invited_at_nine_the_morning_after() -> None:
    bought = datetime(2026, 5, 4, 22, 15, tzinfo=COPENHAGEN)
    purchase = a_purchase(experience=Experience.SERVICE, purchased_at=bought)
    assert send_time(purchase, RULES, bought) == datetime(2026, 5, 6, 9, 0, tzinfo=COPENHAGEN)


# --- when: the send window in local time ---------------------------------------------------


def test_a_moment_before_the_window_moves_to_its_start_the_same_day() -> None:
    early = datetime(2026, 5, 5, 7, 12, 30, tzinfo=COPENHAGEN)
    assert in_window(early, COPENHAGEN, WINDOW) == datetime(2026, 5, 5, 9, 0, tzinfo=COPENHAGEN)


def test_a_moment_after_the_window_moves_to_its_start_the_next_day() -> None:
    late = datetime(2026, 5, 5, 20, 30, tzinfo=COPENHAGEN)
    assert in_window(late, COPENHAGEN, WINDOW) == datetime(2026, 5, 6, 9, 0, tzinfo=COPENHAGEN)


def test_a_moment_inside_the_window_is_unchanged() -> None:
    afternoon = datetime(2026, 5, 5, 15, 47, 3, tzinfo=COPENHAGEN)
    assert in_window(afternoon, COPENHAGEN, WINDOW) == afternoon


@pytest.mark.parametrize("edge", [time(9, 0), time(20, 0)])
def test_the_window_includes_its_first_and_last_minute(edge: time) -> None:
    moment = datetime.combine(datetime(2026, 5, 5).date(), edge, tzinfo=COPENHAGEN)
    assert in_window(moment, COPENHAGEN, WINDOW) == moment


def test_the_window_is_applied_in_the_customers_zone_and_answered_in_the_callers() -> None:
    # 05:30 UTC is 07:30 in Copenhagen: moved to 09:00 there, which is 07:00 UTC.
    moment = datetime(2026, 5, 5, 5, 30, tzinfo=UTC)
    moved = in_window(moment, COPENHAGEN, WINDOW)
    assert moved == datetime(2026, 5, 5, 7, 0, tzinfo=UTC)
    assert moved.tzinfo is UTC


def test_a_stockholm_customer_and_a_london_customer_are_each_invited_at_nine_their_time() -> None:
    # Due 06:30 UTC: 08:30 in Stockholm, 07:30 in London; both before the window.
    bought = datetime(2026, 5, 4, 6, 30, tzinfo=UTC)
    in_stockholm = a_purchase(experience=Experience.SERVICE, purchased_at=bought, locale="sv-SE")
    in_london = a_purchase(experience=Experience.SERVICE, purchased_at=bought, locale="en-GB")

    stockholm_at = send_time(in_stockholm, RULES, bought)
    london_at = send_time(in_london, RULES, bought)

    assert at_nine(stockholm_at, STOCKHOLM)
    assert at_nine(london_at, LONDON)
    assert london_at - stockholm_at == timedelta(hours=1)


def test_the_purchases_own_time_zone_wins_over_its_locale() -> None:
    bought = datetime(2026, 5, 4, 6, 30, tzinfo=UTC)
    purchase = a_purchase(
        experience=Experience.SERVICE,
        purchased_at=bought,
        locale="da-DK",
        timezone="America/New_York",
    )
    # Due 02:30 in New York: moved to 09:00 there (13:00 UTC), not to 09:00 in Copenhagen.
    assert send_time(purchase, RULES, bought) == datetime(2026, 5, 5, 9, 0, tzinfo=NEW_YORK)


def test_a_locale_naming_a_country_gives_that_countrys_zone() -> None:
    assert timezone_for(None, "en-GB", "Europe/Copenhagen") == LONDON


def test_a_locale_naming_only_a_language_gives_the_zone_where_it_is_spoken() -> None:
    assert timezone_for(None, "sv", "Europe/Copenhagen") == STOCKHOLM


def test_the_country_of_a_locale_wins_over_its_language() -> None:
    # A Swedish speaker in Finland lives on Helsinki time.
    assert timezone_for(None, "sv-FI", "Europe/Copenhagen") == ZoneInfo("Europe/Helsinki")


def test_an_explicit_time_zone_wins_over_the_locale() -> None:
    assert timezone_for("America/New_York", "en-GB", "Europe/Copenhagen") == NEW_YORK


@pytest.mark.parametrize("locale", [None, "xx-YY", "en"])
def test_an_unknown_or_missing_locale_gives_the_default_zone(locale: str | None) -> None:
    assert timezone_for(None, locale, "Europe/Copenhagen") == COPENHAGEN


def test_an_explicit_time_zone_that_does_not_exist_falls_back_to_the_locale() -> None:
    assert timezone_for("Mars/Olympus_Mons", "en-GB", "Europe/Copenhagen") == LONDON


def test_a_default_zone_that_does_not_exist_falls_back_to_utc() -> None:
    assert timezone_for(None, None, "Nowhere/Special") == ZoneInfo("UTC")


def test_on_the_morning_clocks_go_forward_the_invitation_still_goes_at_nine_local_time() -> None:
    # 29 March 2026, 02:00 CET becomes 03:00 CEST. Due 05:00 UTC is 07:00 local.
    due = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    moved = in_window(due, COPENHAGEN, WINDOW)
    assert local(moved, COPENHAGEN) == datetime(2026, 3, 29, 9, 0, tzinfo=COPENHAGEN)
    assert moved == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_an_evening_before_clocks_go_forward_is_invited_at_nine_local_time_next_day() -> None:
    # 21:30 CET on 28 March; 09:00 the next day is already summer time (UTC+2).
    late = datetime(2026, 3, 28, 20, 30, tzinfo=UTC)
    assert in_window(late, COPENHAGEN, WINDOW) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_an_evening_before_clocks_go_back_is_invited_at_nine_local_time_next_day() -> None:
    # 21:00 CEST on 24 October; 09:00 on the 25th is winter time again (UTC+1).
    late = datetime(2026, 10, 24, 19, 0, tzinfo=UTC)
    assert in_window(late, COPENHAGEN, WINDOW) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


# --- how often: fatigue -------------------------------------------------------------------


def test_a_customer_invited_within_ninety_days_is_suppressed_for_fatigue() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    state = CustomerState(last_invited_at=at - timedelta(days=89))
    decision = decide(purchase, state, RULES, NOON)
    assert decision == Decision(InvitationStatus.SUPPRESSED, Reason.FATIGUE, None)


def test_a_customer_who_responded_within_ninety_days_is_suppressed_for_fatigue() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    state = CustomerState(last_responded_at=at - timedelta(days=89, hours=23))
    assert decide(purchase, state, RULES, NOON).reason == Reason.FATIGUE


def test_a_customer_invited_exactly_ninety_days_before_is_invited_again() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    state = CustomerState(last_invited_at=at - timedelta(days=90))
    assert decide(purchase, state, RULES, NOON) == Decision(InvitationStatus.SCHEDULED, None, at)


def test_a_customer_who_responded_exactly_ninety_days_before_is_invited_again() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    state = CustomerState(last_responded_at=at - timedelta(days=90))
    assert decide(purchase, state, RULES, NOON).status == InvitationStatus.SCHEDULED


def test_a_pending_invitation_still_to_be_sent_also_blocks_a_new_one() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    # An earlier product purchase whose invitation is due later than this one.
    state = CustomerState(last_invited_at=at + timedelta(days=10))
    assert decide(purchase, state, RULES, NOON).reason == Reason.FATIGUE


def test_a_pending_invitation_more_than_ninety_days_away_does_not_block_a_new_one() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    at = send_time(purchase, RULES, NOON)
    state = CustomerState(last_invited_at=at + timedelta(days=90))
    assert decide(purchase, state, RULES, NOON).status == InvitationStatus.SCHEDULED


def test_a_customer_never_asked_is_scheduled_at_the_send_time() -> None:
    purchase = a_purchase(experience=Experience.SERVICE)
    decision = decide(purchase, CustomerState(), RULES, NOON)
    assert decision == Decision(InvitationStatus.SCHEDULED, None, NOON + timedelta(hours=24))


# --- sampling -----------------------------------------------------------------------------


def test_the_same_order_is_always_drawn_the_same_way() -> None:
    draws = {order: sampled_in(order, 0.5) for order in (f"ord-{n}" for n in range(50))}
    assert all(sampled_in(order, 0.5) == drawn for order, drawn in draws.items())
    assert set(draws.values()) == {True, False}


def test_over_many_orders_the_share_sampled_in_matches_the_rate() -> None:
    sampled = sum(sampled_in(f"order-{n}", 0.25) for n in range(10_000))
    assert 0.23 <= sampled / 10_000 <= 0.27


def test_a_rate_of_zero_samples_nobody_and_a_rate_of_one_everybody() -> None:
    orders = [f"ord-{n}" for n in range(200)]
    assert not any(sampled_in(order, 0.0) for order in orders)
    assert all(sampled_in(order, 1.0) for order in orders)


def test_an_order_sampled_out_is_suppressed_with_that_reason() -> None:
    rules = replace(RULES, default_sampling_rate=0.0)
    decision = decide(a_purchase(), CustomerState(), rules, NOON)
    assert decision == Decision(InvitationStatus.SUPPRESSED, Reason.SAMPLED_OUT, None)


def test_a_segments_own_rate_applies_to_its_orders_only() -> None:
    rules = replace(RULES, sampling=Rules.parse_sampling({"store=Webshop": 0.0}))
    webshop = a_purchase(segment=Segment(store="Webshop"))
    aarhus = a_purchase(segment=Segment(store="Aarhus"))
    assert decide(webshop, CustomerState(), rules, NOON).reason == Reason.SAMPLED_OUT
    assert decide(aarhus, CustomerState(), rules, NOON).status == InvitationStatus.SCHEDULED


def test_the_first_matching_segment_rate_wins() -> None:
    sampling = Rules.parse_sampling({"store=Webshop": 0.0, "region=Nordics": 1.0})
    rules = replace(RULES, sampling=sampling)
    purchase = a_purchase(segment=Segment(store="Webshop", region="Nordics"))
    assert decide(purchase, CustomerState(), rules, NOON).reason == Reason.SAMPLED_OUT


def test_sampling_keys_are_parsed_into_dimension_value_and_rate() -> None:
    parsed = Rules.parse_sampling({"store=Webshop": 0.1, "channel=app": 1.0})
    assert parsed == (("store", "Webshop", 0.1), ("channel", "app", 1.0))


@pytest.mark.parametrize("key", ["shop=Webshop", "Webshop", "=Webshop"])
def test_a_sampling_key_that_is_not_a_segment_dimension_is_refused_by_name(key: str) -> None:
    with pytest.raises(ValueError, match=repr(key)):
        Rules.parse_sampling({key: 0.5})


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_sampling_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="'store=Webshop'"):
        Rules.parse_sampling({"store=Webshop": rate})


# --- why not: the order of reasons --------------------------------------------------------

EVERYTHING_AGAINST = CustomerState(last_invited_at=NOON, unsubscribed=True, erased=True)


def test_an_erased_customer_is_suppressed_as_erased_before_any_other_reason() -> None:
    rules = replace(RULES, default_sampling_rate=0.0)
    decision = decide(a_purchase(email=None), EVERYTHING_AGAINST, rules, NOON)
    assert decision == Decision(InvitationStatus.SUPPRESSED, Reason.ERASED, None)


def test_unsubscribed_comes_before_a_missing_email() -> None:
    state = CustomerState(last_invited_at=NOON, unsubscribed=True)
    assert decide(a_purchase(email=None), state, RULES, NOON).reason == Reason.UNSUBSCRIBED


def test_a_missing_email_comes_before_fatigue() -> None:
    state = CustomerState(last_invited_at=NOON)
    assert decide(a_purchase(email=None), state, RULES, NOON).reason == Reason.NO_EMAIL


def test_fatigue_comes_before_sampling() -> None:
    rules = replace(RULES, default_sampling_rate=0.0)
    state = CustomerState(last_invited_at=NOON)
    assert decide(a_purchase(), state, rules, NOON).reason == Reason.FATIGUE


# --- the send window setting --------------------------------------------------------------


def test_a_send_window_is_parsed_from_its_start_and_end() -> None:
    assert SendWindow.parse("09:00-20:00") == SendWindow(time(9, 0), time(20, 0))


@pytest.mark.parametrize("text", ["20:00-09:00", "09:00-09:00"])
def test_a_send_window_that_does_not_start_before_it_ends_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must start before it ends"):
        SendWindow.parse(text)


def test_a_send_window_may_end_at_midnight_written_as_24_00() -> None:
    window = SendWindow.parse("09:00-24:00")
    assert window.end == time(23, 59, 59)
    late = datetime(2026, 5, 5, 23, 30, tzinfo=COPENHAGEN)
    assert in_window(late, COPENHAGEN, window) == late


@pytest.mark.parametrize("text", ["09:00", "nine-eight", "09:00-20:00-21:00"])
def test_a_send_window_that_is_not_two_times_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SendWindow.parse(text)


# --- cancellations ------------------------------------------------------------------------


def test_a_refund_cancels_for_refund_and_a_cancellation_for_cancellation() -> None:
    assert cancellation_reason(a_purchase(kind=PurchaseKind.REFUND)) == Reason.REFUND
    assert cancellation_reason(a_purchase(kind=PurchaseKind.CANCELLATION)) == Reason.CANCELLATION
