"""Routing rules: conditions, actions, the shipped defaults, explanations and validation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Literal

import pytest

from services.notifier.rules import (
    EmailOwner,
    FollowUpEmail,
    Kudos,
    OpenCase,
    ReviewRequest,
    Routing,
    RulesError,
    RuleSet,
    SlackAlert,
    default_rules,
    format_explanation,
    load_rules,
    parse_rules,
    slug,
)
from shared.events import (
    ClassifiedResponse,
    KeywordHit,
    Response,
    ResponseContext,
    Segment,
    SurveyKind,
)
from shared.nps import classify

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
Flag = Literal["score_comment_mismatch", "urgent"]
Language = Literal["da", "sv", "no", "en", "de"]


def a_classified_response(
    score: int = 3,
    *,
    survey_kind: SurveyKind = SurveyKind.NPS,
    segment: Segment | None = None,
    invitation_segment: Segment | None = None,
    themes: Sequence[str] = (),
    urgent: Sequence[str] = (),
    flags: Sequence[Flag] = (),
    priority: Literal["normal", "high"] = "normal",
    language: Language | None = None,
    is_update: bool = False,
) -> ClassifiedResponse:
    response = Response(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        response_id="resp-1",
        customer_id="cust-1",
        survey_kind=survey_kind,
        score=score,
        comment="Some words.",
        segment=segment or Segment(),
        responded_at=NOW,
    )
    return ClassifiedResponse(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        response=response,
        category=classify(score),
        is_update=is_update,
        language=language,
        themes=[KeywordHit(id=theme, label=theme.title()) for theme in themes],
        urgent=[KeywordHit(id=category, label=category.title()) for category in urgent],
        flags=list(flags),
        priority=priority,
        context=ResponseContext(segment=invitation_segment) if invitation_segment else None,
    )


def rules(text: str, default_channel: str = "#customer-feedback") -> RuleSet:
    return parse_rules(dedent(text), "test.yaml", default_channel=default_channel)


def one_rule(when: str, then: str = '[slack_alert: {channel: "#alerts"}]') -> RuleSet:
    return rules(
        f"""
        version: 1
        rules:
          - name: the rule
            when: {when}
            then: {then}
        """
    )


def matches(rule_set: RuleSet, classified: ClassifiedResponse) -> bool:
    return rule_set.evaluate(classified).explanations[0].matched


def reasons(routing: Routing, rule: int = 0) -> list[str]:
    return [check.reason for check in routing.explanations[rule].checks]


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(RulesError) as caught:
        rules(text)
    return caught.value.problems


# --- conditions ---------------------------------------------------------------------------


def test_a_category_condition_matches_that_category_only() -> None:
    detractors = one_rule("{category: detractor}")
    assert matches(detractors, a_classified_response(6))
    assert not matches(detractors, a_classified_response(7))


def test_a_list_of_categories_matches_any_of_them() -> None:
    unhappy = one_rule("{category: [detractor, passive]}")
    assert matches(unhappy, a_classified_response(2))
    assert matches(unhappy, a_classified_response(8))
    assert not matches(unhappy, a_classified_response(9))


@pytest.mark.parametrize(
    ("score_range", "inside", "outside"),
    [("0-3", (0, 3), (4, 10)), ("9", (9,), (8, 10)), ("{min: 7, max: 8}", (7, 8), (6, 9))],
)
def test_a_score_range_includes_both_ends(
    score_range: str, inside: tuple[int, ...], outside: tuple[int, ...]
) -> None:
    rule_set = one_rule(f"{{score: {score_range}}}")
    assert all(matches(rule_set, a_classified_response(score)) for score in inside)
    assert not any(matches(rule_set, a_classified_response(score)) for score in outside)


def test_a_survey_kind_condition_matches_nps_responses() -> None:
    assert matches(one_rule("{survey_kind: nps}"), a_classified_response(3))


def test_a_segment_condition_ignores_capitals_and_extra_spaces() -> None:
    odense = one_rule("{segment: {store: [odense, 'Aarhus  c']}}")
    assert matches(odense, a_classified_response(segment=Segment(store="Aarhus C")))
    assert matches(odense, a_classified_response(segment=Segment(store="ODENSE")))
    assert not matches(odense, a_classified_response(segment=Segment(store="Vejle")))


def test_a_segment_condition_does_not_match_a_response_without_that_field() -> None:
    rule_set = one_rule("{segment: {region: Skåne}}")
    routing = rule_set.evaluate(a_classified_response(segment=Segment(store="Malmö")))
    assert not routing.explanations[0].matched
    assert reasons(routing) == ["region is not given, rule wants 'Skåne': no"]


def test_every_segment_field_can_be_matched() -> None:
    segment = Segment(
        region="Midtjylland",
        business_unit="Retail",
        department="Kitchen",
        product="Espresso",
        store="Aarhus C",
        channel="webshop",
    )
    for field, value in segment.model_dump().items():
        rule_set = one_rule(f"{{segment: {{{field}: '{value}'}}}}")
        assert matches(rule_set, a_classified_response(segment=segment)), field
        assert not matches(rule_set, a_classified_response()), field


def test_the_segment_frozen_in_the_invitation_comes_before_the_responses_own() -> None:
    rule_set = one_rule("{segment: {store: Odense, region: Fyn}}")
    classified = a_classified_response(
        segment=Segment(store="Vejle", region="Fyn"),
        invitation_segment=Segment(store="Odense"),
    )
    routing = rule_set.evaluate(classified)
    assert routing.explanations[0].matched
    assert reasons(routing) == ["region is 'Fyn': yes", "store is 'Odense': yes"]


def test_themes_match_when_any_of_them_is_in_the_comment() -> None:
    rule_set = one_rule("{themes: [delivery, price]}")
    assert matches(rule_set, a_classified_response(themes=["price", "staff_service"]))
    assert not matches(rule_set, a_classified_response(themes=["staff_service"]))
    assert not matches(rule_set, a_classified_response())


def test_all_themes_match_only_when_every_one_is_in_the_comment() -> None:
    rule_set = one_rule("{all_themes: [delivery, price]}")
    assert matches(rule_set, a_classified_response(themes=["price", "delivery", "staff_service"]))
    routing = rule_set.evaluate(a_classified_response(themes=["delivery"]))
    assert not routing.explanations[0].matched
    assert reasons(routing) == [
        "themes are delivery, rule wants all of delivery, price: no (price missing)"
    ]


def test_an_urgent_condition_matches_the_urgent_categories_found() -> None:
    rule_set = one_rule("{urgent: [legal, safety]}")
    assert matches(rule_set, a_classified_response(urgent=["legal"]))
    assert not matches(rule_set, a_classified_response(urgent=["churn"]))


def test_flags_match_when_any_of_them_is_raised() -> None:
    rule_set = one_rule("{flags: score_comment_mismatch}")
    assert matches(rule_set, a_classified_response(10, flags=["score_comment_mismatch"]))
    assert not matches(rule_set, a_classified_response(10, flags=["urgent"]))


def test_priority_matches_the_classifiers_priority() -> None:
    rule_set = one_rule("{priority: high}")
    assert matches(rule_set, a_classified_response(priority="high"))
    assert not matches(rule_set, a_classified_response(priority="normal"))


def test_language_matches_the_comments_language_and_no_means_norwegian() -> None:
    rule_set = one_rule("{language: [no, da]}")
    assert matches(rule_set, a_classified_response(language="no"))
    assert not matches(rule_set, a_classified_response(language="sv"))
    routing = rule_set.evaluate(a_classified_response(language=None))
    assert reasons(routing) == ["language is not known, rule wants no or da: no"]


def test_is_update_tells_a_first_answer_from_a_later_version() -> None:
    first_only = one_rule("{is_update: false}")
    assert matches(first_only, a_classified_response(is_update=False))
    assert not matches(first_only, a_classified_response(is_update=True))


def test_all_conditions_of_a_rule_must_hold() -> None:
    rule_set = one_rule("{category: detractor, segment: {store: Odense}}")
    assert not matches(rule_set, a_classified_response(2, segment=Segment(store="Vejle")))
    assert not matches(rule_set, a_classified_response(9, segment=Segment(store="Odense")))
    assert matches(rule_set, a_classified_response(2, segment=Segment(store="Odense")))


def test_a_rule_without_conditions_matches_every_response() -> None:
    rule_set = rules(
        """
        rules:
          - name: everything
            then: [slack_alert]
        """
    )
    assert all(matches(rule_set, a_classified_response(score)) for score in range(11))


# --- channels and placeholders -------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "channel"),
    [
        ("Aarhus C", "#store-aarhus-c"),
        ("Malmö Triangeln", "#store-malmo-triangeln"),
        ("Næstved", "#store-naestved"),
        ("Østerbro / Nørrebro", "#store-osterbro-norrebro"),
        ("Straße 42", "#store-strasse-42"),
    ],
)
def test_a_placeholder_is_filled_with_the_segment_value_written_as_slack_names_channels(
    store: str, channel: str
) -> None:
    rule_set = one_rule("{}", '[slack_alert: {channel: "#store-{store}"}]')
    [alert] = rule_set.evaluate(a_classified_response(segment=Segment(store=store))).actions
    assert alert == SlackAlert(channel, "#customer-feedback", ("the rule",))


def test_a_response_without_the_placeholders_field_goes_to_the_fallback_channel() -> None:
    rule_set = one_rule(
        "{}", '[slack_alert: {channel: "#{region}-{store}", fallback_channel: "#cx"}]'
    )
    only_store = a_classified_response(segment=Segment(store="Odense"))
    assert rule_set.evaluate(only_store).actions == (SlackAlert("#cx", None, ("the rule",)),)
    both = a_classified_response(segment=Segment(store="Odense", region="Fyn"))
    assert rule_set.evaluate(both).actions == (SlackAlert("#fyn-odense", "#cx", ("the rule",)),)


def test_without_a_fallback_the_files_default_channel_is_used() -> None:
    rule_set = rules(
        """
        defaults:
          channel: "#nps"
        rules:
          - name: alert
            then: [slack_alert: {channel: "#store-{store}"}, slack_alert]
        """
    )
    assert rule_set.evaluate(a_classified_response()).actions == (
        SlackAlert("#nps", None, ("alert",)),
    )


def test_without_defaults_in_the_file_the_notifiers_default_channel_is_used() -> None:
    rule_set = rules("rules: [{name: alert, then: [slack_alert]}]", default_channel="#nps-alerts")
    assert rule_set.default_channel == "#nps-alerts"
    assert rule_set.evaluate(a_classified_response()).actions == (
        SlackAlert("#nps-alerts", None, ("alert",)),
    )


def test_the_category_placeholder_names_a_channel_per_category() -> None:
    rule_set = one_rule("{}", '[slack_alert: {channel: "#nps-{category}"}]')
    routing = rule_set.evaluate(a_classified_response(8))
    assert routing.actions == (SlackAlert("#nps-passive", "#customer-feedback", ("the rule",)),)


def test_a_channel_id_is_used_as_it_is() -> None:
    rule_set = one_rule("{}", "[kudos: {channel: C0123456789}]")
    assert rule_set.evaluate(a_classified_response(10)).actions == (
        Kudos("C0123456789", None, ("the rule",)),
    )


def test_channels_lists_the_channels_written_out_in_full_and_not_the_templates() -> None:
    rule_set = rules(
        """
        rules:
          - name: a
            then:
              - slack_alert: {channel: "#store-{store}", fallback_channel: "#stores"}
              - kudos: {channel: "#kudos"}
              - slack_alert: {channel: C0123456789}
        """
    )
    assert rule_set.channels() == frozenset(
        {"#customer-feedback", "#stores", "#kudos", "C0123456789"}
    )


# --- several rules ------------------------------------------------------------------------


TWO_ALERTING_RULES = """
    rules:
      - name: unhappy
        when: {category: [detractor, passive]}
        then:
          - slack_alert: {channel: "#cx"}
          - email_owner: {to: Lead@example.com}
      - name: urgent
        when: {priority: high}
        then:
          - slack_alert: {channel: "#cx"}
          - email_owner: {to: lead@example.com}
          - slack_alert: {channel: "#escalations"}
    """


def test_the_same_alert_asked_for_by_two_rules_is_planned_once_naming_both() -> None:
    routing = rules(TWO_ALERTING_RULES).evaluate(a_classified_response(2, priority="high"))
    assert routing.actions == (
        SlackAlert("#cx", None, ("unhappy", "urgent")),
        EmailOwner("Lead@example.com", ("unhappy", "urgent")),
        SlackAlert("#escalations", None, ("urgent",)),
    )


def test_actions_come_in_rule_order() -> None:
    routing = rules(TWO_ALERTING_RULES).evaluate(a_classified_response(9, priority="high"))
    assert [action.kind for action in routing.actions] == [
        "slack_alert",
        "email_owner",
        "slack_alert",
    ]
    assert [action.rules for action in routing.actions] == [("urgent",)] * 3


def test_a_response_gets_one_case_with_the_shortest_sla_and_the_first_question() -> None:
    rule_set = rules(
        """
        rules:
          - name: passives
            when: {category: passive}
            then: [open_case: {sla_hours: 72, question: "What would make it a 10?"}]
          - name: urgent
            when: {priority: high}
            then: [open_case: {sla_hours: 4, question: "Call them"}]
        """
    )
    routing = rule_set.evaluate(a_classified_response(7, priority="high"))
    assert routing.actions == (OpenCase(4, "What would make it a 10?", ("passives", "urgent")),)


def test_a_customer_gets_one_review_request_and_one_follow_up_email() -> None:
    rule_set = rules(
        """
        rules:
          - name: a
            then: [review_request, follow_up_email]
          - name: b
            then: [review_request: {}, follow_up_email: {question: "Why?"}]
        """
    )
    routing = rule_set.evaluate(a_classified_response(10))
    assert routing.actions == (ReviewRequest(("a", "b")), FollowUpEmail("Why?", ("a", "b")))


def test_stop_ends_the_matching_and_later_rules_are_explained_but_not_applied() -> None:
    rule_set = rules(
        """
        rules:
          - name: vip store
            when: {segment: {store: Flagship}}
            then: [slack_alert: {channel: "#flagship"}]
            stop: true
          - name: detractors
            when: {category: detractor}
            then: [slack_alert: {channel: "#cx"}]
        """
    )
    routing = rule_set.evaluate(a_classified_response(2, segment=Segment(store="Flagship")))
    assert routing.actions == (SlackAlert("#flagship", None, ("vip store",)),)
    later = routing.explanations[1]
    assert later.matched and not later.applied
    assert later.note == "not applied: rule 'vip store' said stop"


def test_stop_on_a_rule_that_does_not_match_stops_nothing() -> None:
    rule_set = rules(
        """
        rules:
          - name: vip store
            when: {segment: {store: Flagship}}
            then: [slack_alert: {channel: "#flagship"}]
            stop: true
          - name: detractors
            when: {category: detractor}
            then: [slack_alert: {channel: "#cx"}]
        """
    )
    routing = rule_set.evaluate(a_classified_response(2, segment=Segment(store="Odense")))
    assert routing.actions == (SlackAlert("#cx", None, ("detractors",)),)


# --- the shipped defaults -----------------------------------------------------------------


def test_by_default_a_detractor_alerts_the_stores_channel_and_opens_a_case_due_in_48_hours() -> (
    None
):
    routing = default_rules().evaluate(a_classified_response(3, segment=Segment(store="Aarhus C")))
    assert routing.actions == (
        SlackAlert("#store-aarhus-c", "#customer-feedback", ("detractors",)),
        OpenCase(48, None, ("detractors",)),
    )


def test_by_default_a_detractor_without_a_store_alerts_the_default_channel() -> None:
    routing = default_rules().evaluate(a_classified_response(0))
    assert routing.actions[0] == SlackAlert("#customer-feedback", None, ("detractors",))


def test_by_default_a_passive_alerts_and_opens_a_case_asking_what_would_make_them_a_promoter() -> (
    None
):
    routing = default_rules().evaluate(a_classified_response(7, segment=Segment(store="Odense")))
    assert routing.actions == (
        SlackAlert("#store-odense", "#customer-feedback", ("passives",)),
        OpenCase(72, "What one thing would make you a promoter?", ("passives",)),
    )


def test_by_default_a_promoter_is_asked_for_a_review_and_the_staff_hear_the_praise() -> None:
    routing = default_rules().evaluate(a_classified_response(10, segment=Segment(store="Odense")))
    assert routing.actions == (
        ReviewRequest(("promoters",)),
        Kudos("#store-odense", "#customer-feedback", ("promoters",)),
    )


def test_by_default_an_urgent_detractor_also_reaches_the_default_channel_within_a_day() -> None:
    classified = a_classified_response(
        1, segment=Segment(store="Odense"), flags=["urgent"], priority="high"
    )
    routing = default_rules().evaluate(classified)
    assert routing.actions == (
        SlackAlert("#customer-feedback", None, ("urgent",)),
        OpenCase(24, None, ("urgent", "detractors")),
        SlackAlert("#store-odense", "#customer-feedback", ("detractors",)),
    )


def test_by_default_a_promoter_who_sounds_unhappy_is_looked_at_not_asked_for_a_review() -> None:
    classified = a_classified_response(9, flags=["score_comment_mismatch"])
    routing = default_rules().evaluate(classified)
    assert routing.actions == (
        SlackAlert("#customer-feedback", None, ("promoters who sound unhappy",)),
    )


def test_the_default_rules_post_only_to_the_notifiers_channel_unless_templated() -> None:
    assert default_rules("#nps-alerts").channels() == frozenset({"#nps-alerts"})


# --- eNPS ---------------------------------------------------------------------------------


def test_an_enps_response_is_never_routed_not_even_by_a_rule_for_everything() -> None:
    rule_set = rules(
        """
        rules:
          - name: everything
            then:
              - slack_alert
              - open_case: {sla_hours: 1}
              - email_owner: {to: hr@example.com}
              - kudos: {channel: "#kudos"}
              - follow_up_email
              - review_request
        """
    )
    for score in (0, 7, 10):
        enps = a_classified_response(score, survey_kind=SurveyKind.ENPS, priority="high")
        routing = rule_set.evaluate(enps)
        assert routing.actions == ()
        assert not routing.explanations[0].matched
        assert routing.note is not None and "anonymous" in routing.note
    assert (
        default_rules().evaluate(a_classified_response(0, survey_kind=SurveyKind.ENPS)).actions
        == ()
    )


def test_a_rule_for_enps_responses_is_refused() -> None:
    [problem] = problems(
        """
        rules:
          - name: staff
            when: {survey_kind: [nps, enps]}
            then: [slack_alert]
        """
    )
    assert problem.startswith(
        "test.yaml:4: rule 'staff', when.survey_kind: no rule may act on eNPS"
    )


# --- explain ------------------------------------------------------------------------------


def test_explain_says_which_rules_matched_and_why_and_what_is_planned() -> None:
    rule_set = rules(
        """
        rules:
          - name: odense
            when: {segment: {store: Odense}}
            then: [slack_alert: {channel: "#odense"}]
          - name: detractors
            when: {category: detractor, score: 0-4}
            then: [slack_alert: {channel: "#store-{store}"}, open_case: {sla_hours: 48}]
        """
    )
    text = format_explanation(
        rule_set.evaluate(a_classified_response(3, segment=Segment(store="Aarhus C")))
    )
    alert = "Slack alert in #store-aarhus-c (if it does not exist: #customer-feedback)"
    assert text.splitlines() == [
        "response resp-1: detractor, score 3/10, nps survey (rules: test.yaml)",
        "rule 'odense' (line 3): did not match",
        "    store is 'Aarhus C', rule wants 'Odense': no",
        "rule 'detractors' (line 6): matched",
        "    category is detractor: yes",
        "    score is 3, rule wants 0-4: yes",
        f"    -> {alert}",
        "    -> open a case with an SLA of 48 h",
        "plan (2 actions):",
        f"    {alert}  [from 'detractors']",
        "    open a case with an SLA of 48 h  [from 'detractors']",
    ]


def test_explain_shows_the_reasons_of_every_condition_kind() -> None:
    rule_set = one_rule(
        "{category: [promoter, passive], themes: delivery, urgent: churn, flags: urgent, "
        "priority: high, is_update: true}"
    )
    routing = rule_set.evaluate(a_classified_response(2, themes=["price"]))
    assert reasons(routing) == [
        "category is detractor, rule wants promoter or passive: no",
        "themes are price, rule wants delivery: no",
        "no urgent categories, rule wants churn: no",
        "no flags, rule wants urgent: no",
        "priority is normal, rule wants high: no",
        "is_update is false, rule wants true: no",
    ]


def test_explain_says_when_there_is_nothing_to_do() -> None:
    text = format_explanation(one_rule("{category: promoter}").evaluate(a_classified_response(2)))
    assert text.endswith("plan: nothing to do")


def test_explain_says_why_an_enps_response_is_not_routed() -> None:
    routing = default_rules().evaluate(a_classified_response(2, survey_kind=SurveyKind.ENPS))
    text = format_explanation(routing)
    assert "eNPS response is anonymous" in text
    assert "rule 'detractors'" not in text
    assert text.endswith("plan: nothing to do")


def test_explain_says_a_rule_without_conditions_matches_everything() -> None:
    text = format_explanation(
        rules("rules: [{name: all, then: [review_request]}]").evaluate(a_classified_response(9))
    )
    assert "rule 'all' (line 1): matched\n    no conditions: every response matches" in text


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_lines", "expected"),
    [
        pytest.param(
            "when: {catgory: detractor}",
            "test.yaml:5: rule 'r', when: unknown condition 'catgory' (did you mean 'category'?)",
            id="unknown condition",
        ),
        pytest.param(
            "when: {segment: {shop: Odense}}",
            "test.yaml:5: rule 'r', when.segment: unknown segment field 'shop'; use region,",
            id="unknown segment field",
        ),
        pytest.param(
            "when: {category: detractors}",
            "test.yaml:5: rule 'r', when.category: unknown category 'detractors' "
            "(did you mean 'detractor'?); use promoter, passive or detractor",
            id="unknown category",
        ),
        pytest.param(
            "when: {flags: [urgent, angry]}",
            "test.yaml:5: rule 'r', when.flags: unknown flag 'angry'; "
            "use score_comment_mismatch or urgent",
            id="unknown flag",
        ),
        pytest.param(
            "when: {priority: urgent}",
            "test.yaml:5: rule 'r', when.priority: unknown priority 'urgent'; use normal or high",
            id="unknown priority",
        ),
        pytest.param(
            "when: {language: nb}",
            "test.yaml:5: rule 'r', when.language: unknown language 'nb' (Norwegian is 'no')",
            id="unknown language",
        ),
        pytest.param(
            "when: {themes: [Delivery]}",
            "test.yaml:5: rule 'r', when.themes: 'Delivery' is not a theme id",
            id="bad theme id",
        ),
        pytest.param(
            "when: {score: 0-11}",
            "test.yaml:5: rule 'r', when.score: "
            "scores go from 0 to 10, the range 0-11 does not fit",
            id="score over 10",
        ),
        pytest.param(
            "when: {score: 6-0}",
            "test.yaml:5: rule 'r', when.score: the range 6-0 is backwards: write 0-6",
            id="backwards score range",
        ),
        pytest.param(
            "when: {score: low}",
            "test.yaml:5: rule 'r', when.score: "
            "'low' is not a score range; write a score range as 0-6",
            id="score in words",
        ),
        pytest.param(
            "when: {score: {min: 3, most: 5}}",
            "test.yaml:5: rule 'r', when.score: unknown key 'most' in the score range",
            id="score with unknown key",
        ),
        pytest.param(
            "when: {category: []}",
            "test.yaml:5: rule 'r', when.category: is an empty list",
            id="empty list",
        ),
        pytest.param(
            "when: {is_update: maybe}",
            "test.yaml:5: rule 'r', when.is_update: must be true or false, not 'maybe'",
            id="not a boolean",
        ),
        pytest.param(
            "stop: sometimes",
            "test.yaml:5: rule 'r', stop: must be true or false, not 'sometimes'",
            id="stop not a boolean",
        ),
        pytest.param(
            "owner: kim",
            "test.yaml:5: rule 'r': unknown rule field 'owner'; "
            "use name, description, when, then or stop",
            id="unknown rule field",
        ),
    ],
)
def test_a_bad_condition_is_refused_naming_line_rule_and_field(
    rule_lines: str, expected: str
) -> None:
    text = f"""
    version: 1
    rules:
      - name: r
        {rule_lines}
        then: [review_request]
    """
    [problem] = problems(text)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(
            "sms: {to: kim}",
            "test.yaml:6: rule 'r', then: unknown action 'sms'; use slack_alert, email_owner,",
            id="unknown action",
        ),
        pytest.param(
            'slack_alert: {channel: "#store-{shop}"}',
            "test.yaml:6: rule 'r', then.slack_alert.channel: unknown placeholder {shop}",
            id="unknown placeholder",
        ),
        pytest.param(
            'slack_alert: {channel: "customer-feedback"}',
            "test.yaml:6: rule 'r', then.slack_alert.channel: 'customer-feedback' is not a "
            'Slack channel: write its name with # ("#kudos") or its id (C0123456789)',
            id="channel without #",
        ),
        pytest.param(
            'slack_alert: {channel: "#Customer Feedback"}',
            "test.yaml:6: rule 'r', then.slack_alert.channel: '#Customer Feedback': "
            "Slack channel names have only lower-case letters, digits, - and _",
            id="channel with capitals",
        ),
        pytest.param(
            'kudos: {channel: "#kudos", fallback_channel: "#kudos-{store}"}',
            "test.yaml:6: rule 'r', then.kudos.fallback_channel: '#kudos-{store}': "
            "this channel cannot have placeholders",
            id="fallback with a placeholder",
        ),
        pytest.param(
            "kudos: {channel: }",
            "test.yaml:6: rule 'r', then.kudos.channel: is empty; write the channel in quotes",
            id="unquoted channel",
        ),
        pytest.param(
            "kudos: {}",
            "test.yaml:6: rule 'r', then.kudos: missing kudos setting 'channel'",
            id="kudos without a channel",
        ),
        pytest.param(
            'slack_alert: {room: "#cx"}',
            "test.yaml:6: rule 'r', then.slack_alert: unknown slack_alert setting 'room'; "
            "use channel or fallback_channel",
            id="unknown setting",
        ),
        pytest.param(
            "open_case: {sla_hours: 48h}",
            "test.yaml:6: rule 'r', then.open_case.sla_hours: "
            "must be a number of hours, such as 48",
            id="sla in words",
        ),
        pytest.param(
            "open_case: {sla_hours: 0}",
            "test.yaml:6: rule 'r', then.open_case.sla_hours: must be more than 0 hours",
            id="sla of zero",
        ),
        pytest.param(
            "email_owner: {to: [lead@example.com, kim]}",
            "test.yaml:6: rule 'r', then.email_owner.to: 'kim' is not an email address",
            id="not an email address",
        ),
        pytest.param(
            "{slack_alert: {}, open_case: {sla_hours: 4}}",
            "test.yaml:6: rule 'r', then: one action per item: put a '-' before each of "
            "slack_alert, open_case",
            id="two actions in one item",
        ),
    ],
)
def test_a_bad_action_is_refused_naming_line_rule_and_field(action: str, expected: str) -> None:
    text = f"""
    version: 1
    rules:
      - name: r
        then:
          - {action}
    """
    [problem] = problems(text)
    assert problem.startswith(expected), problem


def test_an_actions_settings_written_beside_it_are_recognised_as_misindented() -> None:
    [problem] = problems(
        """
        rules:
          - name: r
            then:
              - slack_alert:
                channel: "#cx"
        """
    )
    assert problem.startswith("test.yaml:6: rule 'r', then: unknown action 'channel'")
    assert problem.endswith("('channel' is a setting: indent it under its action)")


def test_a_rule_without_actions_is_refused() -> None:
    assert problems(
        """
        rules:
          - name: r
            when: {category: promoter}
            then:
        """
    ) == ("test.yaml:5: rule 'r', then: a rule needs at least one action under 'then'",)


def test_actions_given_as_a_mapping_instead_of_a_list_are_refused() -> None:
    [problem] = problems(
        """
        rules:
          - name: r
            then: {review_request: {}}
        """
    )
    assert problem.startswith("test.yaml:4: rule 'r', then: must be a list")


def test_two_rules_with_one_name_are_refused() -> None:
    assert problems(
        """
        rules:
          - name: detractors
            then: [slack_alert]
          - name: detractors
            then: [review_request]
        """
    ) == (
        "test.yaml:5: rule 'detractors', name: is used twice (first on line 3); "
        "each rule needs its own name",
    )


def test_a_rule_without_a_name_is_called_by_its_number() -> None:
    assert problems(
        """
        rules:
          - name: first
            then: [slack_alert]
          - then: [review_request]
        """
    ) == ("test.yaml:5: rule #2: missing rule field 'name'",)


def test_a_version_other_than_1_is_refused() -> None:
    assert problems("version: 2\nrules: []\n") == (
        "test.yaml:1: version: must be 1, the only version of the rules format so far",
    )


def test_an_unknown_top_level_field_is_refused() -> None:
    missing, unknown = problems("version: 1\nrule: []\n")
    assert missing == "test.yaml:1: missing field 'rules'"
    assert unknown.startswith("test.yaml:2: unknown field 'rule' (did you mean 'rules'?)")


def test_a_bad_default_channel_is_refused() -> None:
    assert problems('defaults: {channel: "#{store}"}\nrules: []\n') == (
        "test.yaml:1: defaults.channel: '#{store}': this channel cannot have placeholders, "
        "it is used when they cannot be filled in",
    )


def test_a_key_written_twice_is_refused() -> None:
    [problem] = problems(
        """
        rules:
          - name: r
            when:
              category: detractor
              category: passive
            then: [slack_alert]
        """
    )
    assert problem == "test.yaml:6: 'category' appears twice here"


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    found = problems(
        """
        version: 3
        rules:
          - name: a
            when: {category: detractors}
            then: [slack_alert: {channel: "#store-{shop}"}]
          - name: a
            then: []
        """
    )
    assert [problem.split(": ")[0] for problem in found] == [
        "test.yaml:2",
        "test.yaml:5",
        "test.yaml:6",
        "test.yaml:7",
        "test.yaml:8",
    ]

    with pytest.raises(RulesError) as caught:
        rules("version: 3\nrules: [{name: a, then: [sms]}]")
    assert str(caught.value) == (
        "2 problems in the rules:\n"
        "test.yaml:1: version: must be 1, the only version of the rules format so far\n"
        "test.yaml:2: rule 'a', then: unknown action 'sms'; use slack_alert, email_owner, "
        "open_case, review_request, follow_up_email or kudos"
    )


def test_broken_yaml_is_refused_naming_the_line() -> None:
    [problem] = problems("rules:\n  - name: a\n    then: [slack_alert: {channel: #cx}]\n")
    assert problem.startswith("test.yaml:4: not valid YAML")


def test_a_file_that_is_not_a_mapping_is_refused() -> None:
    assert problems("- name: a\n") == (
        "test.yaml: a rules file is a mapping with 'version: 1' and a 'rules' list",
    )


def test_the_shipped_rules_file_and_a_copy_of_it_load(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "services" / "notifier" / "rules.yaml"
    copy = tmp_path / "rules.yaml"
    copy.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = load_rules(copy)
    assert [rule.name for rule in loaded.rules] == [rule.name for rule in default_rules().rules]
    assert loaded.source == str(copy)


def test_a_missing_rules_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such rules file"):
        load_rules(tmp_path / "nope.yaml")


def test_slugs_keep_only_lower_case_letters_digits_and_single_hyphens() -> None:
    assert slug("  Café--Ørsted (Nord) ") == "cafe-orsted-nord"
