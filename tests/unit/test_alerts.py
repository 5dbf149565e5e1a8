"""Slack alerts, summaries, kudos and button clicks: what staff see, what customers cannot do."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from services.notifier.alerts import (
    AlertLine,
    CaseView,
    alert_message,
    escalation_message,
    escape_customer_text,
    kudos_message,
    summary_message,
)
from services.notifier.cases import Case
from shared.events import (
    CaseAction,
    ClassifiedResponse,
    KeywordHit,
    Response,
    ResponseContext,
    Segment,
)
from shared.nps import Category
from tests.fakes import SLACK_TEST_TOKEN, FakeSlack, fake_slack

AT = datetime(2026, 3, 2, 10, 42, tzinfo=UTC)
CASE_URL = "https://npsloop.example/cases/case-7?from=slack&v=1"
DANISH_COMMENT = (
    "Leveringen kom en uge for sent, og pakken var helt smadret. "
    "Jeg vil opsige mit abonnement, hvis det sker igen."
)


def classified(
    score: int = 2,
    comment: str | None = DANISH_COMMENT,
    *,
    category: Category = Category.DETRACTOR,
    themes: list[KeywordHit] | None = None,
    urgent: list[KeywordHit] | None = None,
    flags: list[Any] | None = None,
    store: str | None = "Aarhus C",
    context: ResponseContext | None = None,
    is_update: bool = False,
) -> ClassifiedResponse:
    response = Response(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        response_id="resp-7",
        customer_id="cust-7",
        score=score,
        comment=comment,
        locale="da",
        responded_at=AT,
    )
    flags = flags if flags is not None else (["urgent"] if urgent else [])
    return ClassifiedResponse(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        response=response,
        category=category,
        language="da",
        themes=themes or [],
        urgent=urgent or [],
        flags=flags,
        priority="high" if "urgent" in flags else "normal",
        is_update=is_update,
        context=context
        or ResponseContext(
            order_id="A-1001",
            amount=Decimal("1249.5"),
            currency="DKK",
            segment=Segment(store=store, region="Midtjylland"),
        ),
    )


def urgent_danish_detractor() -> ClassifiedResponse:
    return classified(
        themes=[
            KeywordHit(id="delivery", label="Delivery", words=["Leveringen", "pakken", "pakken"]),
            KeywordHit(id="product_quality", label="Product quality", words=["smadret"]),
        ],
        urgent=[KeywordHit(id="churn", label="Leaving", words=["opsige mit abonnement"])],
    )


def a_case(state: Any = "open", **fields: Any) -> CaseView:
    return CaseView(case_id="case-7", state=state, url=CASE_URL, **fields)


def texts(message: dict[str, Any]) -> Iterator[str]:
    """Every text in a message's blocks, where Slack renders it."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield message["text"]
    yield from walk(message["blocks"])


def everything(message: dict[str, Any]) -> str:
    return "\n".join(texts(message))


def buttons(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (element["text"]["text"], element["action_id"], element["value"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def assert_block_kit(message: dict[str, Any]) -> None:
    """The blocks are Block Kit as slack-sdk's models know it: each parses into its model
    and comes back the same, through to_dict(), which checks Slack's limits on each."""
    parsed = Block.parse_all(message["blocks"])
    assert [block.to_dict() for block in parsed] == message["blocks"]


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    assert_block_kit(message)
    blocks = message["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert all(len(field["text"]) <= 2000 for field in block.get("fields", []))


# --- the alert -------------------------------------------------------------------------


def test_an_urgent_danish_detractor_is_marked_high_priority_with_its_urgent_words() -> None:
    message = alert_message(urgent_danish_detractor(), "#customer-feedback", a_case())

    header = message["blocks"][0]
    assert header["type"] == "header"
    assert "HIGH PRIORITY" in header["text"]["text"]
    assert "Detractor 2/10" in header["text"]["text"]
    assert "*HIGH PRIORITY*, urgent words: Leaving: opsige mit abonnement" in everything(message)
    assert message["text"].startswith("HIGH PRIORITY: Detractor 2/10 at Aarhus C")


def test_the_alert_quotes_the_comment_and_names_the_language() -> None:
    message = alert_message(urgent_danish_detractor(), "#customer-feedback", a_case())

    assert f">{DANISH_COMMENT}" in everything(message)
    assert "*Language*\nDanish" in everything(message)


def test_themes_show_the_words_the_customer_used_once_each() -> None:
    message = alert_message(urgent_danish_detractor(), "#customer-feedback", a_case())

    assert "• Delivery: Leveringen, pakken\n• Product quality: smadret" in everything(message)


def test_the_alert_shows_store_segment_and_order_value() -> None:
    message = alert_message(urgent_danish_detractor(), "#customer-feedback", a_case())

    shown = everything(message)
    assert "*Store*\nAarhus C" in shown
    assert "*Segment*\nRegion: Midtjylland" in shown
    assert "*Order value*\n1,249.50 DKK (order A-1001)" in shown


def test_without_an_order_there_is_no_order_value() -> None:
    message = alert_message(classified(context=ResponseContext()), "#customer-feedback", None)

    assert "Order value" not in everything(message)


def test_a_calm_detractor_is_not_marked_high_priority() -> None:
    message = alert_message(classified(), "#customer-feedback", a_case())

    assert "HIGH PRIORITY" not in everything(message)


def test_a_score_that_disagrees_with_the_comment_says_the_scale_was_probably_misread() -> None:
    message = alert_message(
        classified(1, "Fantastisk service, tusind tak!", flags=["score_comment_mismatch"]),
        "#customer-feedback",
        a_case(),
    )

    assert "the score and the comment disagree — probably misread the scale" in (
        everything(message).lower()
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("open", [("Claim", "case_claim", "resp-7")]),
        (
            "claimed",
            [("Contacted", "case_contacted", "resp-7"), ("Resolve", "case_resolve", "resp-7")],
        ),
        ("contacted", [("Resolve", "case_resolve", "resp-7")]),
        ("resolved", [("Reopen", "case_reopen", "resp-7")]),
    ],
)
def test_the_buttons_are_the_next_steps_of_the_case_and_name_the_response(
    state: str, expected: list[tuple[str, str, str]]
) -> None:
    message = alert_message(classified(), "#customer-feedback", a_case(state))

    assert buttons(message) == expected


def test_the_case_line_says_who_claimed_it_and_when_and_links_the_case() -> None:
    case = a_case("claimed", claimed_by="U123ABC", claimed_at=AT)

    shown = everything(alert_message(classified(), "#customer-feedback", case))

    # <!date> shows each reader their own time; the text after | is the fallback.
    claimed_at = int(AT.timestamp())
    assert (
        f"*Claimed* by <@U123ABC> <!date^{claimed_at}^{{date_short_pretty}} at {{time}}"
        "|2026-03-02 10:42 UTC>"
    ) in shown
    assert "<https://npsloop.example/cases/case-7?from=slack&amp;v=1|Open the case>" in shown


def test_a_resolved_case_names_everyone_who_moved_it() -> None:
    case = a_case(
        "resolved",
        claimed_by="U1AAA",
        claimed_at=AT,
        contacted_by="U2BBB",
        contacted_at=AT + timedelta(minutes=5),
        resolved_by="W3CCC",
        resolved_at=AT + timedelta(hours=1),
    )

    shown = everything(alert_message(classified(), "#customer-feedback", case))

    assert "*Resolved* by <@W3CCC>" in shown
    assert "contacted by <@U2BBB>" in shown
    assert "claimed by <@U1AAA>" in shown


def test_a_name_that_is_not_a_slack_user_id_is_shown_as_text_not_a_mention() -> None:
    case = a_case("claimed", claimed_by="<!channel> @here", claimed_at=AT)

    shown = everything(alert_message(classified(), "#customer-feedback", case))

    assert "<!channel>" not in shown and "@here" not in shown
    assert "claimed* by &lt;!channel&gt; @\u2060here".lower() in shown.lower()


def test_an_open_case_shows_its_deadline_and_an_escalation() -> None:
    case = a_case("open", sla_due_at=AT + timedelta(hours=4), escalated=True)

    shown = everything(alert_message(classified(), "#customer-feedback", case))

    assert "*Open*: nobody has claimed it yet" in shown
    assert f"claim it by <!date^{int((AT + timedelta(hours=4)).timestamp())}^" in shown
    assert "escalated: not claimed within its SLA" in shown


def test_an_alert_without_a_case_has_no_buttons_and_no_case_line() -> None:
    message = alert_message(classified(), "#customer-feedback", None)

    assert buttons(message) == []
    assert "Open the case" not in everything(message)


def test_an_alert_without_a_comment_says_none_was_given() -> None:
    message = alert_message(classified(comment=None), "#customer-feedback", a_case())

    assert "_No comment given._" in everything(message)


def test_an_updated_response_says_the_customer_added_to_it() -> None:
    message = alert_message(classified(is_update=True), "#customer-feedback", a_case())

    assert "the customer added to their answer" in everything(message)


def test_the_case_view_of_a_case_carries_its_state_and_steps() -> None:
    case = Case.open("resp-7", "cust-7", AT, sla_hours=4).apply(
        CaseAction.CLAIMED, "U123ABC", AT + timedelta(minutes=3)
    )

    view = CaseView.of(case, CASE_URL)

    assert (view.state, view.claimed_by, view.claimed_at) == (
        "claimed",
        "U123ABC",
        AT + timedelta(minutes=3),
    )
    assert view.sla_due_at == AT + timedelta(hours=4) and not view.escalated


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "https://x.example/a|Click me", "https://x.example/<!here>", "ftp://x"],
)
def test_a_case_url_that_could_break_out_of_its_link_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        CaseView(case_id="case-7", state="open", url=url)


def test_an_unknown_case_state_is_refused() -> None:
    with pytest.raises(ValueError, match="state"):
        CaseView(case_id="case-7", state="lost", url=CASE_URL)  # type: ignore[arg-type]


# --- hostile customers -------------------------------------------------------------------

HOSTILE_COMMENTS = [
    "<!channel> everyone look at this",
    "<!here|here> and <!everyone>",
    "@here refund me NOW",
    "@Channel @EVERYONE @here.",
    "<@U1> is rude, ask <@U02ABCDEF|boss>",
    "<!subteam^S123|@cx-team> <#C123|general>",
    "<http://evil.example|Your bank> needs you",
    "visit http://evil.example/login now",
    "HTTPS://evil.example/x or www.evil.example",
    "<script>alert(1)</script><a href='http://evil.example'>x</a>",
    "&lt;!channel&gt; already escaped &amp; sneaky",
    "```<!here>``` > <!channel>\n>quoted <@U1>",
    # Glued to a word: found by the properties in test_properties.
    "0http://evil.example øwww.evil.example _https://evil.example @herehttp://evil.example",
]

# What a < … > in an alert may be: only what npsloop itself put there.
OURS = re.compile(r"^(!date\^\d+\^[^|]*\|[^>]*|@UCLAIMER|https://npsloop\.example/[^|]*\|.*)$")


@pytest.mark.parametrize("comment", HOSTILE_COMMENTS)
def test_a_hostile_comment_cannot_ping_mention_or_link(comment: str) -> None:
    hostile = classified(
        comment=comment,
        themes=[KeywordHit(id="x", label="Delivery", words=[comment[:40]])],
        urgent=[KeywordHit(id="abuse", label="Abuse", words=[comment[:30]])],
        store=comment[:100].replace("\n", " "),
    )
    case = a_case("claimed", claimed_by="UCLAIMER", claimed_at=AT)

    for message in (
        alert_message(hostile, "#customer-feedback", case),
        summary_message("#store-aarhus", [AlertLine(2, Category.DETRACTOR, comment, CASE_URL)], 5),
    ):
        dumped = json.dumps(message)
        for danger in (
            "<!channel",
            "<!here",
            "<!everyone",
            "<!subteam",
            "<@U1",
            "<#C",
            "<http://evil",
        ):
            assert danger not in dumped
        assert "<script" not in dumped.lower() and "<a href" not in dumped.lower()
        assert not re.search(r"@(channel|here|everyone)", dumped, re.IGNORECASE)
        assert not re.search(r"(https?://|www\.)evil", dumped, re.IGNORECASE)
        for text in texts(message):
            for inside in re.findall(r"<([^>]*)>", text):
                assert OURS.match(inside), f"a link or mention npsloop did not make: <{inside}>"


def test_a_hostile_kudos_comment_is_just_as_harmless() -> None:
    promoter = classified(
        10, "<!channel> best shop @here http://evil.example", category=Category.PROMOTER
    )

    dumped = json.dumps(kudos_message(promoter, "#kudos"))

    assert "<!channel" not in dumped and "@here" not in dumped and "http://" not in dumped


def test_every_text_holding_customer_words_is_verbatim_so_slack_does_not_auto_link_it() -> None:
    message = alert_message(urgent_danish_detractor(), "#customer-feedback", a_case())

    for block in message["blocks"]:
        for text in [block.get("text"), *block.get("fields", [])]:
            if text and text["type"] == "mrkdwn" and "Leveringen" in text["text"]:
                assert text.get("verbatim") is True


def test_escaping_keeps_the_words_readable() -> None:
    escaped = escape_customer_text("Pris & kvalitet <3 — skriv til @here på http://x.dk")

    assert escaped == "Pris &amp; kvalitet &lt;3 — skriv til @\u2060here på http\u2060://x.dk"
    assert escaped.replace("\u2060", "") == (
        "Pris &amp; kvalitet &lt;3 — skriv til @here på http://x.dk"
    )


# --- Slack's limits ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["open", "claimed", "contacted", "resolved"])
def test_every_part_of_an_alert_is_block_kit_as_slack_sdk_reads_it(state: str) -> None:
    everything_shown = urgent_danish_detractor().model_copy(update={"is_update": True})
    case = a_case(state, claimed_by="U123", claimed_at=AT, escalated=True)

    message = alert_message(everything_shown, "#cx", case)

    kinds = [block["type"] for block in message["blocks"]]
    assert {"header", "section", "context", "divider", "actions"} <= set(kinds)
    assert any("fields" in block for block in message["blocks"])
    assert_block_kit(message)


def test_summaries_kudos_and_escalations_are_block_kit_as_slack_sdk_reads_them() -> None:
    promoter = classified(10, "Fantastic staff <b>", category=Category.PROMOTER)
    case = Case.open("resp-7", "cust-7", AT, sla_hours=4)

    for message in (
        summary_message("#cx", burst(30, 5), 5, dashboard_url="https://npsloop.example/d"),
        kudos_message(promoter, "#kudos"),
        escalation_message(classified(), "#escalations", case),
    ):
        assert_block_kit(message)


def comment_section(message: dict[str, Any]) -> str:
    quoted = [
        str(block["text"]["text"])
        for block in message["blocks"]
        if block["type"] == "section" and block.get("text", {}).get("text", "").startswith(">")
    ]
    assert len(quoted) == 1, "the comment is one section"
    return quoted[0]


def test_a_20000_character_comment_is_shortened_to_one_section_with_its_full_length() -> None:
    message = alert_message(
        classified(comment=("Meget dårligt. " * 1334)[:20_000]), "#cx", a_case()
    )

    section = comment_section(message)
    assert len(section) <= 3000
    assert section.endswith("_(shortened: the comment has 20,000 characters)_")
    assert_within_slack_limits(message)


def test_shortening_never_ends_inside_an_escape() -> None:
    message = alert_message(classified(comment="&" * 5000), "#cx", a_case())

    body = comment_section(message).split("…")[0]
    assert re.fullmatch(r">(&amp;)+", body)


def test_a_comment_of_many_short_lines_stays_within_one_section() -> None:
    message = alert_message(classified(comment="x\n" * 4000), "#cx", a_case())

    assert len(comment_section(message)) <= 3000


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = fake_slack(channels=["customer-feedback", "store-aarhus"])
    yield server
    server.stop()


def test_strict_fake_slack_accepts_an_alert_with_a_huge_hostile_comment(slack: FakeSlack) -> None:
    client = WebClient(token=SLACK_TEST_TOKEN, base_url=slack.url + "/api/")
    huge = classified(comment=("<!channel> & " * 3000), store="S" * 120)

    posted = client.chat_postMessage(**alert_message(huge, "#customer-feedback", a_case()))

    assert posted["ok"] is True


def test_strict_fake_slack_accepts_a_summary_of_200_alerts(slack: FakeSlack) -> None:
    client = WebClient(token=SLACK_TEST_TOKEN, base_url=slack.url + "/api/")
    alerts = [AlertLine(3, Category.DETRACTOR, "&" * 300, CASE_URL)] * 200

    posted = client.chat_postMessage(**summary_message("#store-aarhus", alerts, 5))

    assert posted["ok"] is True


# --- the burst summary -------------------------------------------------------------------


def burst(detractors: int, passives: int) -> list[AlertLine]:
    return [
        AlertLine(3, Category.DETRACTOR, f"Detractor comment {n}", f"{CASE_URL}&n={n}")
        for n in range(detractors)
    ] + [
        AlertLine(7, Category.PASSIVE, f"Passive comment {n}", f"{CASE_URL}&p={n}")
        for n in range(passives)
    ]


def test_a_burst_is_summed_up_in_one_headline() -> None:
    message = summary_message("#store-aarhus", burst(14, 3), 5)

    assert (
        message["text"] == "14 new detractors and 3 passives in #store-aarhus in the last 5 minutes"
    )
    assert "*14 new detractors and 3 passives* in #store-aarhus in the last 5 minutes" in (
        everything(message)
    )


def test_one_alert_in_one_minute_reads_naturally() -> None:
    message = summary_message("C0123ABC", burst(1, 0), 1)

    assert "*1 new detractor* in <#C0123ABC> in the last minute" in everything(message)


def test_each_alert_has_a_line_with_score_comment_and_case_link() -> None:
    message = summary_message("#store-aarhus", burst(14, 3), 5)

    shown = everything(message)
    for n in range(14):
        assert (
            f"*3*/10 “Detractor comment {n}” <{CASE_URL.replace('&', '&amp;')}&amp;n={n}|case>"
            in shown
        )
    assert shown.count("*7*/10") == 3
    assert "more" not in shown


def test_a_summary_line_shows_the_first_100_characters_escaped() -> None:
    comment = "<b>" + "a" * 200
    message = summary_message(
        "#store-aarhus", [AlertLine(1, Category.DETRACTOR, comment, CASE_URL)], 5
    )

    assert f"“&lt;b&gt;{'a' * 97}…”" in everything(message)


def test_200_alerts_fit_in_50_blocks_and_end_with_how_many_more() -> None:
    message = summary_message(
        "#store-aarhus", burst(180, 20), 5, dashboard_url="https://npsloop.example/dashboard"
    )

    assert_within_slack_limits(message)
    last = message["blocks"][-1]["text"]["text"]
    assert (
        last == "…and 175 more: <https://npsloop.example/dashboard|see them all on the dashboard>"
    )


def test_without_a_line_cap_the_block_and_section_limits_still_hold() -> None:
    alerts = [AlertLine(0, Category.DETRACTOR, "&" * 100, CASE_URL + "x" * 500)] * 2000

    message = summary_message("#store-aarhus", alerts, 5, max_lines=10_000)

    assert_within_slack_limits(message)
    shown = everything(message).count("|case>")
    found = re.search(r"and (\d+) more", message["blocks"][-1]["text"]["text"])
    assert found is not None
    more = int(found.group(1))
    assert shown + more == 2000 and shown > 25


def test_a_summary_line_without_a_case_page_names_its_response_instead() -> None:
    line = AlertLine(2, Category.DETRACTOR, "Slow", None, response_id="inv-381<@U1>")

    shown = everything(summary_message("#store-aarhus", [line], 5))

    assert "|case>" not in shown
    assert "`inv-381&lt;@U1&gt;`" in shown
    with pytest.raises(ValueError, match="case URL or a response id"):
        AlertLine(2, Category.DETRACTOR, "Slow", None)


def test_an_empty_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one alert"):
        summary_message("#store-aarhus", [], 5)


# --- kudos -----------------------------------------------------------------------------


def test_kudos_share_the_promoters_score_words_and_store() -> None:
    promoter = classified(10, "Super sød ekspedient & hurtig levering!", category=Category.PROMOTER)

    message = kudos_message(promoter, "#kudos")

    shown = everything(message)
    assert message["channel"] == "#kudos"
    assert "*A promoter gave us 10/10* at Aarhus C" in shown
    assert ">Super sød ekspedient &amp; hurtig levering!" in shown
    assert len(message["blocks"]) <= 3


def test_kudos_are_only_for_promoters() -> None:
    with pytest.raises(ValueError, match="promoters"):
        kudos_message(classified(3), "#kudos")
