"""Properties of the pure domain under hostile and arbitrary input (issue 7, point 3).

The NPS arithmetic, decoding, the Slack rendering of customer text, the notifier's plan
and the invitation planning, each checked on inputs hypothesis makes up. Worked examples
live beside each module's own tests (test_nps, test_events, test_alerts, test_notifier,
test_planning); this file holds what must be true of every input.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.aggregator.money import read_purchase
from services.ingest.planning import CustomerState, Rules, decide
from services.notifier.alerts import AlertLine, alert_message, kudos_message, summary_message
from services.notifier.domain import LoopConfig, plan
from services.notifier.reviews import ReviewLinks
from shared.events import (
    ClassifiedResponse,
    Contact,
    DecodeError,
    Experience,
    InvitationStatus,
    Purchase,
    Segment,
    decode,
    encode,
)
from shared.nps import Category, Counts, change, classify, margin_of_error, nps
from shared.send_window import SendWindow, timezone_for
from shared.topics import REGISTRY
from tests.unit.test_alerts import (
    CASE_URL,
    OURS,
    a_case,
    assert_within_slack_limits,
    classified,
    texts,
)

# Modest and repeatable: the whole file runs in seconds, and leaves no .hypothesis/ behind.
SOME = settings(
    max_examples=150,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FEWER = settings(SOME, max_examples=40)

counts = st.builds(
    Counts,
    promoters=st.integers(0, 10_000),
    passives=st.integers(0, 10_000),
    detractors=st.integers(0, 10_000),
)
nonempty_counts = counts.filter(lambda c: c.n > 0)


# --- the NPS arithmetic ---------------------------------------------------------------------


@SOME
@given(score=st.integers(-1000, 1000))
def test_every_whole_score_is_in_exactly_the_category_of_its_range_or_refused(score: int) -> None:
    if not 0 <= score <= 10:
        with pytest.raises(ValueError, match="0 to 10"):
            classify(score)
        return
    expected = (
        Category.PROMOTER if score >= 9 else Category.PASSIVE if score >= 7 else Category.DETRACTOR
    )
    assert classify(score) is expected


@SOME
@given(score=st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.booleans(), st.none()))
def test_anything_but_a_whole_number_is_no_score(score: Any) -> None:
    with pytest.raises(TypeError):
        classify(score)


@SOME
@given(scores=st.lists(st.integers(0, 10), min_size=1, max_size=300))
def test_the_nps_of_the_tally_is_the_share_of_promoters_minus_the_share_of_detractors(
    scores: list[int],
) -> None:
    tally = Counts.tally(classify(score) for score in scores)
    promoters = sum(score >= 9 for score in scores) / len(scores)
    detractors = sum(score <= 6 for score in scores) / len(scores)
    assert tally.n == len(scores)
    assert nps(tally) == pytest.approx(100 * promoters - 100 * detractors)
    assert -100.0 <= (nps(tally) or 0.0) <= 100.0


@SOME
@given(counts=nonempty_counts, factor=st.integers(2, 50))
def test_the_margin_of_error_shrinks_with_the_root_of_n_for_the_same_shares(
    counts: Counts, factor: int
) -> None:
    scaled = Counts(counts.promoters * factor, counts.passives * factor, counts.detractors * factor)
    small, large = margin_of_error(counts), margin_of_error(scaled)
    assert small is not None and large is not None
    assert 0.0 <= large <= small
    assert large == pytest.approx(small / math.sqrt(factor), abs=1e-9)
    assert nps(scaled) == pytest.approx(nps(counts))


@SOME
@given(before=nonempty_counts, after=nonempty_counts)
def test_a_change_read_backwards_is_the_same_change_with_the_opposite_sign(
    before: Counts, after: Counts
) -> None:
    forwards, backwards = change(before, after), change(after, before)
    assert forwards is not None and backwards is not None
    assert forwards.delta == pytest.approx(-backwards.delta)
    assert forwards.z == pytest.approx(-backwards.z)
    assert forwards.significant == backwards.significant
    same = change(before, before)
    assert same is not None and same.delta == 0.0 and same.z == 0.0


@SOME
@given(a=counts, b=counts)
def test_counts_add_like_tallies_of_the_responses_together(a: Counts, b: Counts) -> None:
    assert a + b == b + a
    assert (a + b).n == a.n + b.n
    if (a + b).n:
        # The NPS of the whole lies between the NPS of its parts.
        parts = [score for score in (nps(a), nps(b)) if score is not None]
        whole = nps(a + b)
        assert whole is not None
        assert min(parts) - 1e-9 <= whole <= max(parts) + 1e-9


# --- decoding ---------------------------------------------------------------------------------

EVENT_TYPES = sorted({spec.value_type for spec in REGISTRY}, key=lambda t: t.__name__)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@SOME
@given(event_type=st.sampled_from(EVENT_TYPES), data=st.binary(max_size=400))
def test_any_bytes_decode_or_are_a_decode_error(event_type: Any, data: bytes) -> None:
    try:
        decode(event_type, data)
    except DecodeError as exc:
        assert str(exc)


@SOME
@given(event_type=st.sampled_from(EVENT_TYPES), document=json_values)
def test_any_json_decodes_or_is_a_decode_error_with_a_reason(
    event_type: Any, document: Any
) -> None:
    data = json.dumps(document, allow_nan=True).encode()
    try:
        decode(event_type, data)
    except DecodeError as exc:
        assert str(exc)


def _valid_classified_fields() -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(encode(classified()))
    return fields


@SOME
@given(
    path=st.sampled_from(
        [("score",), ("comment",), ("customer_id",), ("contact",), ("segment",), ("locale",)]
    ),
    nested=st.booleans(),
    value=json_values,
)
def test_a_classified_response_with_any_field_replaced_decodes_or_names_what_is_wrong(
    path: tuple[str, ...], nested: bool, value: Any
) -> None:
    fields = _valid_classified_fields()
    holder = fields["response"] if nested else fields
    holder[path[0]] = value
    try:
        decode(ClassifiedResponse, json.dumps(fields, allow_nan=True).encode())
    except DecodeError as exc:
        assert str(exc)


@SOME
@given(document=json_values, amount=json_values)
def test_the_aggregators_purchase_reader_decodes_or_is_a_decode_error(
    document: Any, amount: Any
) -> None:
    if isinstance(document, dict):
        document["amount"] = amount
    try:
        read_purchase(json.dumps(document, allow_nan=True).encode())
    except DecodeError as exc:
        assert str(exc)


# --- customer text in Slack -------------------------------------------------------------------

HOSTILE_BITS = [
    "<!channel>",
    "<!here|here>",
    "@here",
    "@Channel",
    "@everyone",
    "<@U1>",
    "<#C123|general>",
    "<http://evil.example|bank>",
    "http://evil.example",
    "HTTPS://evil.example",
    "www.evil.example",
    "<script>alert(1)</script>",
    "&lt;!channel&gt;",
    "&amp;",
    "&",
    "<",
    ">",
    "|",
    "`",
    "```",
    "*",
    "_",
    "~",
    "\n",
    ">",
    " ",
    "\u2060",
    "😀",
    "ø",
]
# What a comment may hold: no control characters but the line break, no surrogates.
readable = st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n")
hostile_text = st.lists(
    st.sampled_from(HOSTILE_BITS) | st.text(readable, max_size=8), max_size=60
).map("".join)

DANGERS = ("<!channel", "<!here", "<!everyone", "<!subteam", "<@U1", "<#C", "<http://evil")


def assert_harmless(message: dict[str, Any]) -> None:
    dumped = json.dumps(message, ensure_ascii=False)
    for danger in DANGERS:
        assert danger not in dumped
    assert "<script" not in dumped.lower()
    assert not re.search(r"@(channel|here|everyone)", dumped, re.IGNORECASE)
    assert not re.search(r"(https?://|www\.)evil", dumped, re.IGNORECASE)
    for text in texts(message):
        for inside in re.findall(r"<([^>]*)>", text):
            assert OURS.match(inside), f"a link or mention npsloop did not make: <{inside}>"


def mrkdwn_with(message: dict[str, Any], words: str) -> list[dict[str, Any]]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and words in str(node.get("text", "")):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message["blocks"])
    return found


@SOME
@given(comment=hostile_text, store=hostile_text, score=st.integers(0, 8))
def test_no_comment_can_ping_mention_or_link_in_an_alert_or_a_summary(
    comment: str, store: str, score: int
) -> None:
    store = " ".join(store.split())[:120] or None  # type: ignore[assignment]
    category = classify(score)
    response = classified(score, comment or None, category=category, store=store)
    case = a_case("claimed", claimed_by="UCLAIMER", claimed_at=response.occurred_at)
    alert = alert_message(response, "#customer-feedback", case)
    summary = summary_message("#cx", [AlertLine(score, category, comment, CASE_URL)] * 3, 5)
    for message in (alert, summary):
        assert_harmless(message)
        assert_within_slack_limits(message)
    # Slack's own parsing is off wherever the customer's words are.
    marker = "".join(c for c in comment if c.isalnum())[:12]
    if marker:
        assert all(text.get("verbatim") is True for text in mrkdwn_with(alert, marker))


@SOME
@given(comment=hostile_text)
def test_no_promoters_comment_can_ping_mention_or_link_in_kudos(comment: str) -> None:
    message = kudos_message(classified(10, comment or None, category=Category.PROMOTER), "#kudos")
    assert_harmless(message)
    assert_within_slack_limits(message)


@FEWER
@given(
    bit=st.sampled_from(HOSTILE_BITS),
    length=st.integers(1, 100_000),
    lines=st.booleans(),
)
def test_block_kit_limits_hold_for_any_comment_length(bit: str, length: int, lines: bool) -> None:
    comment = ((bit + ("\n" if lines else "")) * (length // len(bit) + 1))[:length]
    assume(comment.strip())
    response = classified(2, comment)
    for message in (
        alert_message(response, "#cx", a_case()),
        summary_message("#cx", [AlertLine(2, Category.DETRACTOR, comment, CASE_URL)] * 60, 5),
    ):
        assert_within_slack_limits(message)
        assert_harmless(message)
        assert len(json.dumps(message)) < 40_000  # Slack's whole-message ceiling


# --- the notifier's plan ------------------------------------------------------------------------

CONFIG = LoopConfig(
    slack_channel="#customer-feedback",
    company_name="Our Shop",
    review_links=ReviewLinks({"google": "https://g.page/r/our-shop/review"}),
    unsubscribe_link=lambda customer, locale, at: f"https://survey.example.com/u/{customer}",
)
emails = st.sampled_from([None, "ann@example.com", "bo.berg@example.se"])


@SOME
@given(
    score=st.integers(0, 10),
    comment=st.none() | hostile_text,
    email=emails,
    minutes=st.integers(0, 60 * 24 * 30),
)
def test_a_redelivered_response_plans_the_same_deliveries_with_the_same_keys(
    score: int, comment: str | None, email: str | None, minutes: int
) -> None:
    first = classified(score, comment or None, category=classify(score))
    first = first.model_copy(
        update={
            "response": first.response.model_copy(
                update={"contact": Contact(email=email, name="Ann")}
            )
        }
    )
    redelivered = decode(ClassifiedResponse, encode(first))
    now = first.occurred_at + timedelta(minutes=minutes)

    planned = plan(first, CONFIG, now=now)
    again = plan(redelivered, CONFIG, now=now)

    keys = [delivery.idempotency_key for delivery in planned]
    assert keys == [delivery.idempotency_key for delivery in again]
    assert len(set(keys)) == len(keys), "two deliveries of one plan share a key"
    assert [d.payload for d in planned] == [d.payload for d in again]
    assert all(first.response.response_id in key for key in keys)


@SOME
@given(score=st.integers(0, 10), comment=st.none() | hostile_text)
def test_a_later_version_of_a_response_keeps_the_keys_of_what_it_plans_again(
    score: int, comment: str | None
) -> None:
    first = classified(score, None, category=classify(score))
    update = classified(score, comment or None, category=classify(score), is_update=True)
    assert first.event_id != update.event_id
    # The same response (id): whatever both versions plan has one key, so it is sent once.
    before = {(d.kind, d.recipient): d.idempotency_key for d in plan(first, CONFIG)}
    after = {(d.kind, d.recipient): d.idempotency_key for d in plan(update, CONFIG)}
    for what in before.keys() & after.keys():
        assert before[what] == after[what]


# --- invitation planning ---------------------------------------------------------------------

RULES = Rules(
    delay_service=timedelta(hours=24),
    delay_product=timedelta(days=14),
    window=SendWindow.parse("09:00-20:00"),
    default_timezone="Europe/Copenhagen",
    fatigue=timedelta(days=90),
    default_sampling_rate=0.5,
)
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@st.composite
def purchases(draw: st.DrawFn) -> Purchase:
    return Purchase(
        event_id=uuid.uuid4(),
        occurred_at=draw(moments),
        order_id=draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)),
        customer_id="c-1",
        amount=draw(st.decimals(0, 100_000, places=2)),
        currency="DKK",
        experience=draw(st.sampled_from(list(Experience))),
        contact=Contact(email=draw(emails)),
        locale=draw(st.sampled_from([None, "da", "sv-SE", "en-GB", "en-US", "de"])),
        timezone=draw(st.sampled_from([None, "Europe/Stockholm", "America/New_York", "Not/AZone"])),
        purchased_at=draw(st.none() | moments),
        segment=Segment(store=draw(st.sampled_from([None, "Aarhus C", "Malmö"]))),
    )


states = st.builds(
    CustomerState,
    last_invited_at=st.none() | moments,
    last_responded_at=st.none() | moments,
    unsubscribed=st.booleans(),
    erased=st.booleans(),
)


@SOME
@given(purchase=purchases(), state=states, now=moments)
def test_planning_decides_the_same_for_the_same_purchase_and_stays_in_the_send_window(
    purchase: Purchase, state: CustomerState, now: datetime
) -> None:
    decision = decide(purchase, state, RULES, now)
    # A redelivered purchase (same bytes, decoded again) gets the same decision.
    assert decide(decode(Purchase, encode(purchase)), state, RULES, now) == decision
    if decision.status is InvitationStatus.SCHEDULED:
        assert decision.reason is None and decision.send_at is not None
        assert decision.send_at >= now
        zone = timezone_for(purchase.timezone, purchase.locale, RULES.default_timezone)
        local = decision.send_at.astimezone(zone).time()
        assert RULES.window.start <= local <= RULES.window.end
    else:
        assert decision.status is InvitationStatus.SUPPRESSED
        assert decision.reason is not None and decision.send_at is None
