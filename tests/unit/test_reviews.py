"""Review requests: the review pages of each store, and whom the review policy asks, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.classifier.domain import classify_response
from services.notifier.reviews import (
    ReviewConfigError,
    ReviewDecision,
    ReviewLinks,
    ReviewPolicy,
    ReviewReason,
    decide_review,
    parse_review_links,
    review_links,
)
from services.notifier.rules import Action, ReviewRequest
from shared.events import ClassifiedResponse, ResponseContext, Segment, SurveyKind
from tests.unit.builders import a_response

GOOGLE = "https://g.page/r/lund/review"
FACEBOOK = "https://www.facebook.com/lund/reviews"
TRUSTPILOT = "https://www.trustpilot.com/evaluate/lund.example"
AARHUS_GOOGLE = "https://g.page/r/lund-aarhus/review"
COMPANY = {"google": GOOGLE, "facebook": FACEBOOK, "trustpilot": None}
FILE = f"""
default:
  trustpilot: {TRUSTPILOT}
stores:
  Aarhus C:
    google: {AARHUS_GOOGLE}
  Odense:
    facebook: null
"""


# --- the policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("promoters", ReviewPolicy("promoters")),
        ("everyone", ReviewPolicy("everyone")),
        (" Everyone ", ReviewPolicy("everyone")),
        ("sample:25", ReviewPolicy("sample", 25)),
        ("sample:1", ReviewPolicy("sample", 1)),
        ("sample:100", ReviewPolicy("sample", 100)),
    ],
)
def test_a_review_policy_is_promoters_everyone_or_a_sample_in_percent(
    text: str, policy: ReviewPolicy
) -> None:
    assert ReviewPolicy.parse(text) == policy
    assert ReviewPolicy.parse(str(policy)) == policy


def test_the_default_policy_asks_promoters() -> None:
    assert ReviewPolicy() == ReviewPolicy.parse("promoters")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "promoter",
        "all",
        "sample",
        "sample:0",
        "sample:101",
        "sample:2.5",
        "sample:-5",
        "sample:1/4",
    ],
)
def test_a_bad_review_policy_is_refused_saying_what_is_allowed(text: str) -> None:
    with pytest.raises(ReviewConfigError) as error:
        ReviewPolicy.parse(text)
    message = str(error.value)
    assert f"NPSLOOP_REVIEW_POLICY is {text!r}" in message
    assert "'promoters'" in message and "'everyone'" in message and "sample:25" in message


# --- the review pages ---------------------------------------------------------------------


def test_a_store_gets_its_own_pages_and_the_companys_for_the_rest() -> None:
    links = parse_review_links(FILE, "reviews.yaml", {"google": GOOGLE, "facebook": FACEBOOK})
    assert links.for_store("Aarhus C") == {
        "google": AARHUS_GOOGLE,
        "facebook": FACEBOOK,
        "trustpilot": TRUSTPILOT,
    }


def test_a_store_is_found_whatever_its_capitals_and_spaces() -> None:
    links = parse_review_links(FILE, "reviews.yaml", {"google": GOOGLE})
    assert links.for_store("  aarhus   c ")["google"] == AARHUS_GOOGLE


def test_a_store_without_a_page_on_a_site_gets_no_link_there_not_the_companys() -> None:
    links = parse_review_links(FILE, "reviews.yaml", {"google": GOOGLE, "facebook": FACEBOOK})
    assert links.for_store("Odense") == {"google": GOOGLE, "trustpilot": TRUSTPILOT}


def test_a_store_not_in_the_file_and_a_response_without_a_store_get_the_companys_pages() -> None:
    links = parse_review_links(FILE, "reviews.yaml", {"google": GOOGLE})
    assert links.for_store("Vejle") == {"google": GOOGLE, "trustpilot": TRUSTPILOT}
    assert links.for_store(None) == {"google": GOOGLE, "trustpilot": TRUSTPILOT}


def test_without_a_file_the_settings_pages_are_the_companys_and_unset_ones_are_left_out() -> None:
    links = review_links(COMPANY)
    assert links.for_store("Aarhus C") == {"google": GOOGLE, "facebook": FACEBOOK}
    assert review_links({"google": None}).for_store(None) == {}


def test_a_json_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps({"stores": {"Malmö": {"trustpilot": TRUSTPILOT}}}))
    assert review_links({}, path).for_store("malmö") == {"trustpilot": TRUSTPILOT}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stores:\n  Aarhus C:\n    gogle: https://g.page/r/x\n",
            "reviews.yaml:3: store 'Aarhus C': 'gogle' is not a review site "
            "(did you mean 'google'?); use google, facebook, trustpilot",
        ),
        (
            "stores:\n  Aarhus C:\n    google: g.page/r/x\n",
            "reviews.yaml:3: store 'Aarhus C': the Google page must be an https:// address, "
            "not 'g.page/r/x'",
        ),
        (
            "default:\n  trustpilot: http://trustpilot.com/evaluate/x\n",
            "reviews.yaml:2: default: the Trustpilot page must be an https:// address",
        ),
        (
            "stores:\n  Aarhus C:\n    google: https://g.page/r/a\n  aarhus c:\n"
            "    google: https://g.page/r/b\n",
            "reviews.yaml:4: store 'aarhus c' is given twice (as 'Aarhus C' too",
        ),
        ("store:\n  Odense: {}\n", "reviews.yaml:1: unknown key 'store' (did you mean 'stores'?)"),
        ("stores:\n  Odense: https://g.page/r/x\n", "reviews.yaml:2: store 'Odense': give its"),
        ("stores: [Odense]\n", "reviews.yaml:1: 'stores' is a mapping"),
        ("- google\n", "reviews.yaml: a review links file is a mapping"),
        ("stores:\n  Odense: {google: [x\n", "reviews.yaml:3: not valid YAML"),
    ],
)
def test_a_bad_review_links_file_is_refused_naming_the_line_and_what_to_fix(
    text: str, expected: str
) -> None:
    with pytest.raises(ReviewConfigError) as error:
        parse_review_links(text, "reviews.yaml")
    assert expected in str(error.value)


def test_every_problem_is_reported_at_once_with_the_settings_too(tmp_path: Path) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text("stores:\n  A:\n    yelp: https://x.example\n  B:\n    google: nope\n")
    with pytest.raises(ReviewConfigError) as error:
        review_links({"google": "http://g.page/r/x"}, path)
    problems = error.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("NPSLOOP_REVIEW_GOOGLE_URL must be an https:// address")
    assert problems[1].startswith(f"{path}:3: store 'A': 'yelp'")
    assert problems[2].startswith(f"{path}:5: store 'B': the Google page")


def test_a_missing_review_links_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReviewConfigError, match="no such review links file"):
        review_links({}, tmp_path / "nowhere.yaml")


# --- the decision -------------------------------------------------------------------------

LINKS = ReviewLinks({"google": GOOGLE}, {"aarhus c": {"trustpilot": TRUSTPILOT}})
ASKED_BY_RULE: list[Action] = [ReviewRequest()]


def answer(
    score: int,
    *,
    email: str | None = "freja@example.com",
    store: str | None = "Aarhus C",
    response_id: str = "resp-1",
    survey_kind: SurveyKind = SurveyKind.NPS,
) -> ClassifiedResponse:
    response = a_response(
        score, email=email, response_id=response_id, survey_kind=survey_kind, comment=None
    )
    return classify_response(response).model_copy(
        update={"context": ResponseContext(segment=Segment(store=store), locale="da")}
    )


def decide(
    classified: ClassifiedResponse,
    policy: str = "promoters",
    actions: list[Action] = ASKED_BY_RULE,
    links: ReviewLinks = LINKS,
) -> ReviewDecision:
    decision = decide_review(classified, actions, ReviewPolicy.parse(policy), links)
    assert decision is not None
    return decision


def test_a_promoter_a_rule_asks_for_is_asked_with_their_stores_pages() -> None:
    decision = decide(answer(10))
    assert decision.asked
    assert (decision.reason, decision.detail) == (ReviewReason.PROMOTER, "promoter")
    assert decision.links == {"google": GOOGLE, "trustpilot": TRUSTPILOT}
    assert (decision.store, decision.policy, decision.category) == (
        "Aarhus C",
        "promoters",
        "promoter",
    )


@pytest.mark.parametrize(("score", "category"), [(8, "passive"), (2, "detractor")])
def test_under_the_promoters_policy_others_are_not_asked_even_when_a_rule_asks(
    score: int, category: str
) -> None:
    decision = decide(answer(score))
    assert not decision.asked
    assert decision.reason is ReviewReason.NOT_A_PROMOTER
    assert decision.detail == f"policy promoters: {category} not asked"
    assert decision.links == {}


def test_under_the_promoters_policy_a_promoter_no_rule_asks_for_is_not_asked() -> None:
    decision = decide(answer(9), actions=[])
    assert (decision.asked, decision.reason) == (False, ReviewReason.NO_RULE)
    assert decision.detail == "no rule asks for a review request"


@pytest.mark.parametrize("score", [0, 5, 7, 8, 9, 10])
def test_under_the_everyone_policy_every_score_is_asked_whatever_the_rules_say(
    score: int,
) -> None:
    decision = decide(answer(score), "everyone", actions=[])
    assert (decision.asked, decision.reason) == (True, ReviewReason.EVERYONE)
    assert decision.detail == f"policy everyone: {decision.category} asked"


def test_a_sample_is_drawn_from_every_score_by_response_and_the_same_each_time() -> None:
    draws = {
        (rid, score): decide(answer(score, response_id=rid), "sample:30", actions=[]).asked
        for rid in (f"resp-{n}" for n in range(400))
        for score in (2, 10)
    }
    # The score plays no part: one response is in or out whatever it says.
    assert all(draws[(rid, 2)] == draws[(rid, 10)] for rid, _ in draws)
    share = sum(draws.values()) / len(draws)
    assert 0.24 < share < 0.36
    again = {
        (rid, score): decide(answer(score, response_id=rid), "sample:30", actions=[]).asked
        for rid, score in draws
    }
    assert again == draws


def test_a_sampled_out_response_says_so_and_a_sampled_in_one_too() -> None:
    decisions = [
        decide(answer(8, response_id=f"r-{n}"), "sample:50", actions=[]) for n in range(20)
    ]
    out = next(d for d in decisions if not d.asked)
    within = next(d for d in decisions if d.asked)
    assert (out.reason, out.detail) == (ReviewReason.SAMPLED_OUT, "policy sample:50: sampled out")
    assert (within.reason, within.detail) == (
        ReviewReason.SAMPLED_IN,
        "policy sample:50: passive sampled in",
    )


def test_a_customer_without_an_email_address_is_not_asked() -> None:
    decision = decide(answer(10, email=None))
    assert (decision.asked, decision.reason, decision.detail) == (
        False,
        ReviewReason.NO_EMAIL,
        "no email address",
    )


def test_a_store_without_review_pages_is_named_in_the_reason() -> None:
    links = ReviewLinks({}, {"aarhus c": {"google": GOOGLE}})
    decision = decide(answer(10, store="Vejle"), links=links)
    assert (decision.asked, decision.reason) == (False, ReviewReason.NO_REVIEW_LINKS)
    assert decision.detail == "no review links for store Vejle"
    assert decide(answer(10, store=None), links=links).detail == (
        "no review links for responses without a store"
    )


def test_an_employee_answer_gets_no_review_decision_at_all() -> None:
    classified = answer(10, survey_kind=SurveyKind.ENPS)
    assert decide_review(classified, ASKED_BY_RULE, ReviewPolicy("everyone"), LINKS) is None


def test_a_suppressed_decision_is_not_asked_and_has_no_links() -> None:
    decision = decide(answer(10)).suppressed()
    assert (decision.asked, decision.reason, decision.links) == (
        False,
        ReviewReason.SUPPRESSED,
        {},
    )
