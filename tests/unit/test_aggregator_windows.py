"""The aggregator's windows, figures, small-group protection and segment buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.aggregator.domain import (
    ROLLING_7D,
    CalendarWeek,
    Figures,
    Period,
    Trend,
    all_windows,
    iso_week,
    protect_small_groups,
    week_label,
)
from services.aggregator.segments import OTHER, UNSPECIFIED, SegmentBuckets, SegmentPolicy
from shared.nps import Counts

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


# --- periods and windows --------------------------------------------------------------------


def test_a_period_holds_its_start_but_not_its_end() -> None:
    period = Period(NOW - timedelta(hours=1), NOW)
    assert NOW - timedelta(hours=1) in period
    assert NOW - timedelta(microseconds=1) in period
    assert NOW not in period


def test_a_period_compares_instants_whatever_the_zone_it_was_given_in() -> None:
    # 02:30 CEST on 25 October 2026 happens twice; its second time is 01:30 UTC.
    first = datetime(2026, 10, 25, 2, 30, tzinfo=COPENHAGEN)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=COPENHAGEN)
    period = Period(first, second)
    assert period.end - period.start == timedelta(hours=1)
    assert datetime(2026, 10, 25, 1, 0, tzinfo=UTC) in period


def test_a_period_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends after"):
        Period(NOW, NOW - timedelta(seconds=1))


def test_a_rolling_window_is_compared_with_the_window_of_the_same_length_before_it() -> None:
    assert ROLLING_7D.period(NOW) == Period(NOW - timedelta(days=7), NOW)
    assert ROLLING_7D.previous(NOW) == Period(NOW - timedelta(days=14), NOW - timedelta(days=7))


def test_the_aggregator_reports_five_rolling_windows_and_two_weeks() -> None:
    names = [window.name for window in all_windows(COPENHAGEN)]
    assert names == ["1h", "24h", "7d", "30d", "90d", "week", "last_week"]


def test_an_iso_week_starts_on_monday_midnight_on_the_local_clock() -> None:
    week = iso_week(NOW, COPENHAGEN)
    # Monday 2 March 2026, 00:00 in Copenhagen (CET, UTC+1) is 23:00 UTC on Sunday.
    assert week.start == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert week.end == datetime(2026, 3, 8, 23, 0, tzinfo=UTC)
    assert week_label(week, COPENHAGEN) == "2026-W10"


def test_sunday_late_evening_in_copenhagen_belongs_to_that_week_not_the_next() -> None:
    sunday_evening = datetime(2026, 3, 8, 23, 30, tzinfo=COPENHAGEN)
    assert week_label(iso_week(sunday_evening, COPENHAGEN), COPENHAGEN) == "2026-W10"
    assert week_label(iso_week(sunday_evening, UTC), UTC) == "2026-W10"
    monday_early = datetime(2026, 3, 9, 0, 30, tzinfo=COPENHAGEN)  # still Sunday in UTC
    assert week_label(iso_week(monday_early, COPENHAGEN), COPENHAGEN) == "2026-W11"
    assert week_label(iso_week(monday_early, UTC), UTC) == "2026-W10"


def test_the_week_the_clocks_go_forward_is_an_hour_short() -> None:
    # Summer time starts on Sunday 29 March 2026 in Copenhagen.
    week = iso_week(datetime(2026, 3, 26, tzinfo=UTC), COPENHAGEN)
    assert week.end - week.start == timedelta(hours=167)


def test_the_iso_year_of_a_week_is_not_always_the_calendar_year() -> None:
    # 1 January 2027 is a Friday: it is in the last week of 2026 (2026-W53).
    week = iso_week(datetime(2027, 1, 1, 12, tzinfo=UTC), COPENHAGEN)
    assert week_label(week, COPENHAGEN) == "2026-W53"


def test_this_week_so_far_is_compared_with_the_whole_week_before() -> None:
    week = CalendarWeek("week", COPENHAGEN)
    assert week.period(NOW) == Period(datetime(2026, 3, 1, 23, tzinfo=UTC), NOW)
    assert week.previous(NOW) == Period(
        datetime(2026, 2, 22, 23, tzinfo=UTC), datetime(2026, 3, 1, 23, tzinfo=UTC)
    )


def test_last_week_is_the_last_complete_week_compared_with_the_one_before() -> None:
    last_week = CalendarWeek("last_week", COPENHAGEN, complete=True)
    assert week_label(last_week.period(NOW), COPENHAGEN) == "2026-W09"
    assert week_label(last_week.previous(NOW), COPENHAGEN) == "2026-W08"


# --- figures and trends ---------------------------------------------------------------------


def test_figures_on_fewer_responses_than_the_minimum_are_flagged() -> None:
    assert Figures.of(Counts(10, 10, 9), min_sample=30).insufficient_sample
    assert not Figures.of(Counts(10, 10, 10), min_sample=30).insufficient_sample


def test_a_period_without_responses_has_no_nps_and_is_insufficient() -> None:
    figures = Figures.of(Counts())
    assert figures.nps is None and figures.margin_of_error is None
    assert figures.insufficient_sample


def test_a_large_change_on_sufficient_samples_is_significant() -> None:
    # The worked example of test_nps: z = -30 / sqrt(15.25 + 17.5) = -5.24.
    trend = Trend.of(Figures.of(Counts(140, 120, 140)), Figures.of(Counts(200, 120, 80)))
    assert trend.change is not None and trend.change.delta == pytest.approx(-30.0)
    assert trend.significant


def test_unanimous_small_periods_are_never_a_significant_change() -> None:
    # Three promoters, then three detractors: SE 0 in both, z = -inf, but n = 3 < 30.
    trend = Trend.of(Figures.of(Counts(detractors=3)), Figures.of(Counts(promoters=3)))
    assert trend.change is not None and trend.change.z == float("-inf")
    assert not trend.significant


def test_a_period_after_an_empty_one_has_no_change() -> None:
    trend = Trend.of(Figures.of(Counts(40, 0, 0)), Figures.of(Counts()))
    assert trend.change is None
    assert not trend.significant


# --- groups too small to show ---------------------------------------------------------------


def test_groups_under_k_are_folded_into_other() -> None:
    groups = {"Sales": Counts(5, 0, 0), "IT": Counts(2, 0, 0), "HR": Counts(0, 0, 3)}
    assert protect_small_groups(groups, 5, OTHER) == {
        "Sales": Counts(5, 0, 0),
        OTHER: Counts(2, 0, 3),
    }


def test_when_other_stays_under_k_the_smallest_group_joins_it() -> None:
    # HR alone (2) would be hidden, but the total minus Sales and IT would reveal it:
    # IT (5) is the smallest shown group and joins it, making other 7.
    groups = {"Sales": Counts(8, 0, 0), "IT": Counts(5, 0, 0), "HR": Counts(0, 0, 2)}
    assert protect_small_groups(groups, 5, OTHER) == {
        "Sales": Counts(8, 0, 0),
        OTHER: Counts(5, 0, 2),
    }


def test_a_total_under_k_is_hidden_entirely() -> None:
    groups = {"IT": Counts(2, 0, 0), "HR": Counts(0, 0, 1)}
    assert protect_small_groups(groups, 5, OTHER) == {}


def test_an_existing_other_bucket_counts_with_the_folded_groups() -> None:
    groups = {"Sales": Counts(6, 0, 0), OTHER: Counts(3, 0, 0), "HR": Counts(0, 0, 2)}
    assert protect_small_groups(groups, 5, OTHER) == {
        "Sales": Counts(6, 0, 0),
        OTHER: Counts(3, 0, 2),
    }


def test_without_a_minimum_every_group_with_responses_is_shown() -> None:
    groups = {"Sales": Counts(1, 0, 0), "IT": Counts()}
    assert protect_small_groups(groups, 1, OTHER) == {"Sales": Counts(1, 0, 0)}


# --- segment buckets ------------------------------------------------------------------------


def test_the_first_values_seen_get_their_own_bucket_and_later_ones_go_to_other() -> None:
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("store",), max_values=2))
    for store in ("Aarhus", "Odense", "Aalborg", "Aarhus"):
        buckets = buckets.admit({"store": store})
    assert buckets.admitted == {"store": ("Aarhus", "Odense")}
    assert buckets.bucket("store", "Aarhus") == "Aarhus"
    assert buckets.bucket("store", "Aalborg") == OTHER
    assert buckets.labels("store") == ("Aarhus", "Odense", OTHER, UNSPECIFIED)


def test_a_missing_value_is_counted_as_unspecified_never_dropped() -> None:
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("region",)))
    assert buckets.bucket("region", None) == UNSPECIFIED


def test_buckets_loaded_after_a_restart_keep_their_values() -> None:
    stored = {"store": ("Odense", "Aarhus")}
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("store",), max_values=2), stored)
    assert buckets.admit({"store": "Aalborg"}) is buckets
    assert buckets.bucket("store", "Odense") == "Odense"


def test_a_lowered_cap_keeps_the_earliest_admitted_values() -> None:
    stored = {"store": ("Odense", "Aarhus", "Aalborg")}
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("store",), max_values=1), stored)
    assert buckets.admitted == {"store": ("Odense",)}


def test_dimensions_outside_the_allow_list_get_no_buckets() -> None:
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("region",))).admit(
        {"region": "North", "store": "Aarhus"}
    )
    assert buckets.admitted == {"region": ("North",)}


def test_the_reserved_bucket_names_are_never_a_value_of_their_own() -> None:
    buckets = SegmentBuckets(SegmentPolicy(dimensions=("region",))).admit({"region": OTHER})
    assert buckets.admitted == {"region": ()}
    assert buckets.bucket("region", OTHER) == OTHER


def test_a_dimension_must_be_one_of_the_segment_fields() -> None:
    with pytest.raises(ValueError, match="not segment dimensions"):
        SegmentPolicy(dimensions=("customer_email",))
