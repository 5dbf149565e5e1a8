"""The NPS arithmetic: categories, score, standard error, margin of error, change over time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.nps import Category, Counts, change, classify, margin_of_error, nps, standard_error


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, Category.DETRACTOR),
        (6, Category.DETRACTOR),
        (7, Category.PASSIVE),
        (8, Category.PASSIVE),
        (9, Category.PROMOTER),
        (10, Category.PROMOTER),
    ],
)
def test_scores_fall_into_their_category_at_the_boundaries(score: int, category: Category) -> None:
    assert classify(score) is category


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_zero_to_ten_is_a_value_error(score: int) -> None:
    with pytest.raises(ValueError, match="0 to 10"):
        classify(score)


@pytest.mark.parametrize("score", [7.5, True, "7"])
def test_a_score_that_is_not_a_whole_number_is_a_type_error(score: Any) -> None:
    with pytest.raises(TypeError):
        classify(score)


FIFTY_THIRTY_TWENTY = Counts(promoters=50, passives=30, detractors=20)


def test_nps_is_promoters_minus_detractors_in_percent() -> None:
    assert nps(FIFTY_THIRTY_TWENTY) == pytest.approx(30.0)


def test_standard_error_follows_from_the_category_shares() -> None:
    # variance = p + d - (p - d)^2 = 0.5 + 0.2 - 0.09 = 0.61; SE = 100 * sqrt(0.61 / 100)
    assert standard_error(FIFTY_THIRTY_TWENTY) == pytest.approx(7.81, abs=0.01)


def test_margin_of_error_is_the_95_percent_half_width() -> None:
    assert margin_of_error(FIFTY_THIRTY_TWENTY) == pytest.approx(15.31, abs=0.01)


def test_a_wider_confidence_level_gives_a_wider_margin() -> None:
    assert margin_of_error(FIFTY_THIRTY_TWENTY, z=2.576) == pytest.approx(20.12, abs=0.01)


def test_without_responses_there_is_no_nps_and_no_error() -> None:
    empty = Counts()
    assert nps(empty) is None
    assert standard_error(empty) is None
    assert margin_of_error(empty) is None


def test_all_promoters_is_nps_100_with_no_uncertainty() -> None:
    counts = Counts(promoters=12)
    assert nps(counts) == pytest.approx(100.0)
    assert standard_error(counts) == pytest.approx(0.0)


def test_all_detractors_is_nps_minus_100() -> None:
    assert nps(Counts(detractors=7)) == pytest.approx(-100.0)


def test_all_passives_is_nps_0_with_no_uncertainty() -> None:
    counts = Counts(passives=9)
    assert nps(counts) == pytest.approx(0.0)
    assert standard_error(counts) == pytest.approx(0.0)


@pytest.mark.parametrize("fields", [{"promoters": -1}, {"passives": -1}, {"detractors": -3}])
def test_counts_cannot_be_negative(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        Counts(**fields)


def test_counts_know_their_total_and_each_category() -> None:
    assert FIFTY_THIRTY_TWENTY.n == 100
    assert FIFTY_THIRTY_TWENTY.of(Category.PROMOTER) == 50
    assert FIFTY_THIRTY_TWENTY.of(Category.PASSIVE) == 30
    assert FIFTY_THIRTY_TWENTY.of(Category.DETRACTOR) == 20


def test_a_small_drop_on_sixty_responses_each_is_noise() -> None:
    before = Counts(promoters=35, passives=15, detractors=10)  # NPS 41.7
    after = Counts(promoters=33, passives=17, detractors=10)  # NPS 38.3
    result = change(before, after)
    assert result is not None
    assert result.delta == pytest.approx(-3.33, abs=0.01)
    assert result.z < 0
    assert not result.significant


def test_a_big_drop_on_thousands_of_responses_is_significant() -> None:
    before = Counts(promoters=3000, passives=1250, detractors=750)  # NPS 45
    after = Counts(promoters=2500, passives=1250, detractors=1250)  # NPS 25
    result = change(before, after)
    assert result is not None
    assert result.delta == pytest.approx(-20.0)
    assert result.z < -1.96
    assert result.significant


def test_the_same_drop_is_noise_on_few_responses_and_significant_on_many() -> None:
    few = change(Counts(9, 5, 6), Counts(5, 5, 10))
    many = change(Counts(900, 500, 600), Counts(500, 500, 1000))
    assert few is not None and many is not None
    assert few.delta == pytest.approx(many.delta)
    assert not few.significant
    assert many.significant


@pytest.mark.parametrize(
    ("before", "after"),
    [(Counts(), Counts(promoters=5)), (Counts(detractors=5), Counts())],
)
def test_there_is_no_change_to_speak_of_when_a_period_has_no_responses(
    before: Counts, after: Counts
) -> None:
    assert change(before, after) is None


def test_a_change_between_two_certain_periods_is_significant() -> None:
    result = change(Counts(promoters=10), Counts(detractors=10))
    assert result is not None
    assert result.z == float("-inf")
    assert result.significant


@settings(database=None)  # leave no .hypothesis/ directory behind in the repository
@given(
    promoters=st.integers(min_value=0, max_value=100_000),
    passives=st.integers(min_value=0, max_value=100_000),
    detractors=st.integers(min_value=0, max_value=100_000),
)
def test_nps_stays_within_bounds_and_its_margin_is_never_negative(
    promoters: int, passives: int, detractors: int
) -> None:
    counts = Counts(promoters, passives, detractors)
    assume(counts.n > 0)
    score = nps(counts)
    margin = margin_of_error(counts)
    assert score is not None and margin is not None
    assert -100.0 <= score <= 100.0
    assert margin >= 0.0


# --- Worked by hand -------------------------------------------------------------------------
# Each figure below is computed in the comment beside it, from the definitions:
#   p = promoters / n, d = detractors / n, NPS = 100 (p - d)
#   variance of one response = p + d - (p - d)^2, SE = 100 sqrt(variance / n)
#   margin of error (95%) = 1.96 SE
#   z = (NPS_after - NPS_before) / sqrt(SE_before^2 + SE_after^2), significant when |z| >= 1.96

NINETY_SIXTY_FIFTY = Counts(promoters=90, passives=60, detractors=50)


def test_the_margin_of_error_of_two_hundred_responses_worked_by_hand() -> None:
    # n = 200, p = 90/200 = 0.45, d = 50/200 = 0.25, NPS = 100 (0.45 - 0.25) = 20
    # variance = 0.45 + 0.25 - 0.20^2 = 0.70 - 0.04 = 0.66
    # SE = 100 sqrt(0.66 / 200) = 100 sqrt(0.0033) = 100 x 0.057446 = 5.7446
    # margin = 1.96 x 5.7446 = 11.259
    assert nps(NINETY_SIXTY_FIFTY) == pytest.approx(20.0)
    assert standard_error(NINETY_SIXTY_FIFTY) == pytest.approx(5.7446, abs=1e-4)
    assert margin_of_error(NINETY_SIXTY_FIFTY) == pytest.approx(11.259, abs=1e-3)


def test_a_ten_point_drop_between_a_hundred_and_two_hundred_responses_is_noise() -> None:
    # before: 50/30/20 of 100, NPS 30, SE^2 = 10000 x 0.61 / 100 = 61
    # after: 90/60/50 of 200, NPS 20, SE^2 = 10000 x 0.66 / 200 = 33
    # z = (20 - 30) / sqrt(61 + 33) = -10 / sqrt(94) = -10 / 9.6954 = -1.0314
    result = change(FIFTY_THIRTY_TWENTY, NINETY_SIXTY_FIFTY)
    assert result is not None
    assert result.delta == pytest.approx(-10.0)
    assert result.z == pytest.approx(-1.0314, abs=1e-4)
    assert not result.significant


def test_a_thirty_point_drop_on_four_hundred_responses_each_is_significant() -> None:
    # before: 200/120/80 of 400, p = 0.5, d = 0.2, NPS 30
    #   variance = 0.5 + 0.2 - 0.3^2 = 0.61, SE^2 = 10000 x 0.61 / 400 = 15.25
    # after: 140/120/140 of 400, p = d = 0.35, NPS 0
    #   variance = 0.35 + 0.35 - 0 = 0.70, SE^2 = 10000 x 0.70 / 400 = 17.5
    # z = (0 - 30) / sqrt(15.25 + 17.5) = -30 / sqrt(32.75) = -30 / 5.7228 = -5.2422
    result = change(Counts(200, 120, 80), Counts(140, 120, 140))
    assert result is not None
    assert result.delta == pytest.approx(-30.0)
    assert result.z == pytest.approx(-5.2422, abs=1e-4)
    assert result.significant


def test_a_rise_just_under_the_critical_z_is_not_significant_and_just_over_it_is() -> None:
    # before: 25/50/25 of 100, NPS 0, variance = 0.5 - 0 = 0.5, SE^2 = 10000 x 0.5 / 100 = 50
    # after: 35/40/25 of 100, NPS 10, variance = 0.6 - 0.01 = 0.59, SE^2 = 59
    # z = 10 / sqrt(109) = 10 / 10.4403 = 0.9578: noise
    # after: 45/30/25 of 100, NPS 20, variance = 0.7 - 0.04 = 0.66, SE^2 = 66
    # z = 20 / sqrt(116) = 20 / 10.7703 = 1.8570: still noise
    # after: 47/28/25 of 100, NPS 22, variance = 0.72 - 0.0484 = 0.6716, SE^2 = 67.16
    # z = 22 / sqrt(117.16) = 22 / 10.8240 = 2.0325: significant
    before = Counts(25, 50, 25)
    steps = [
        (Counts(35, 40, 25), 0.9578),
        (Counts(45, 30, 25), 1.8570),
        (Counts(47, 28, 25), 2.0325),
    ]
    results = [change(before, after) for after, _ in steps]
    for result, (_, z) in zip(results, steps, strict=True):
        assert result is not None
        assert result.z == pytest.approx(z, abs=1e-4)
    assert [result.significant for result in results if result] == [False, False, True]


def test_two_unanimous_periods_with_the_same_nps_are_no_change() -> None:
    # SE = 0 in both periods and delta = 0: z is defined as 0, not 0/0.
    result = change(Counts(promoters=4), Counts(promoters=9))
    assert result is not None
    assert result.z == 0.0
    assert not result.significant


def test_one_unanimous_period_still_has_the_others_uncertainty() -> None:
    # before: 10 promoters, NPS 100, SE 0
    # after: 50/30/20 of 100, NPS 30, SE^2 = 61
    # z = (30 - 100) / sqrt(0 + 61) = -70 / 7.8102 = -8.9626
    result = change(Counts(promoters=10), FIFTY_THIRTY_TWENTY)
    assert result is not None
    assert result.z == pytest.approx(-8.9626, abs=1e-4)


def test_counts_add_category_by_category() -> None:
    assert Counts(1, 2, 3) + Counts(10, 20, 30) == Counts(11, 22, 33)


def test_a_tally_counts_each_category() -> None:
    tally = Counts.tally([Category.PROMOTER, Category.DETRACTOR, Category.PROMOTER])
    assert tally == Counts(promoters=2, detractors=1)
