"""The Slack side of the loop: alerts with case buttons, burst summaries, kudos, and clicks.

Pure: Block Kit as plain dicts, no I/O. Every function returns the arguments of
``chat.postMessage`` (add ``ts`` for ``chat.update``). Not slack-sdk's block models: an
alert is drawn in the notifier's intake, one at a time for every response, and the models
took a third of that intake's time. The tests read every message back through those models
(``Block.parse_all``), so what is drawn here is Block Kit as slack-sdk knows it.

Customer text is hostile until proven otherwise. Three layers keep a comment from
pinging anyone, mentioning a user or smuggling a link:

1. Slack's own escaping of ``&``, ``<`` and ``>`` (``slack_escape``): no manual parsing
   string (``<!channel>``, ``<@U1>``, ``<http://evil|bank>``) can form.
2. ``verbatim: true`` on every mrkdwn text object holding customer text: Slack then skips
   its automatic parsing (URL auto-linking, channel names, bare ``@here``) while our own
   ``<@U123>`` mentions and ``<url|case>`` links still work.
3. A WORD JOINER (U+2060) after the ``@`` of ``@channel``, ``@here`` and ``@everyone``
   and inside ``scheme://`` and ``www.``. It covers the places where verbatim does not
   exist (the fallback ``text`` shown in notifications) and any future caller that
   forgets layer 2. A word joiner rather than inline code, because a comment can hold
   backticks that would close the code span; rather than a zero-width space, because it
   adds no line-break opportunity; rather than a zero-width joiner, because that one
   changes how a following emoji renders. It is invisible, so staff read the comment as
   written; the cost is an invisible character in a copied URL, which is the point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from services.notifier.cases import Case
from services.notifier.messages import SECTION_LIMIT, slack_escape
from shared.events import ClassifiedResponse, KeywordHit, Segment
from shared.nps import Category
from shared.slack_actions import CHANNEL_ID, USER_ID

__all__ = [
    "AlertLine",
    "CaseStateName",
    "CaseView",
    "alert_message",
    "escape_customer_text",
    "kudos_message",
    "summary_message",
]

# Slack's limits on a message (docs.slack.dev, Block Kit reference); over them Slack
# refuses the whole message with invalid_blocks, so the alert would never arrive.
MAX_BLOCKS = 50
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
# What a summary shows before "and N more": a burst is read at a glance, not scrolled.
SUMMARY_MAX_LINES = 25
SUMMARY_COMMENT_CHARS = 100

CaseStateName = Literal["open", "claimed", "contacted", "resolved"]

_WORD_JOINER = "\u2060"
# No word boundaries asked for: "0http://", "øwww." and "@herebe" must be broken too.
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)
_SCHEME = re.compile(r"([a-z0-9+.\-]):(?=//)", re.IGNORECASE)
_WWW = re.compile(r"(www)\.", re.IGNORECASE)
# A link target we put inside <...|...>: these characters would end or split the link.
_UNSAFE_IN_LINK = re.compile(r"[\s<>|]")
_LINK_MAX = 1000
_IDENTIFIER_MAX = 200

_HEADLINE = {
    Category.DETRACTOR: "Detractor",
    Category.PASSIVE: "Passive",
    Category.PROMOTER: "Promoter",
}
_ICON = {
    Category.DETRACTOR: ":red_circle:",
    Category.PASSIVE: ":large_yellow_circle:",
    Category.PROMOTER: ":large_green_circle:",
}
_PLURAL = {
    Category.DETRACTOR: ("detractor", "detractors"),
    Category.PASSIVE: ("passive", "passives"),
    Category.PROMOTER: ("promoter", "promoters"),
}
_LANGUAGE = {
    "da": "Danish",
    "sv": "Swedish",
    "no": "Norwegian",
    "en": "English",
    "de": "German",
}
# Which buttons a case offers in each state, the first one the suggested next step; the
# action ids are the ones ingest reads (shared.slack_actions.CASE_BUTTONS).
_BUTTONS: dict[str, tuple[tuple[str, str], ...]] = {
    "open": (("Claim", "case_claim"),),
    "claimed": (("Contacted", "case_contacted"), ("Resolve", "case_resolve")),
    "contacted": (("Resolve", "case_resolve"),),
    "resolved": (("Reopen", "case_reopen"),),
}


def escape_customer_text(text: str) -> str:
    """Customer text made harmless for Slack mrkdwn: no mention, broadcast or link can form."""
    escaped = slack_escape(text)
    escaped = _BROADCAST.sub("@" + _WORD_JOINER, escaped)
    escaped = _SCHEME.sub(lambda m: m.group(1) + _WORD_JOINER + ":", escaped)
    return _WWW.sub(lambda m: m.group(1) + _WORD_JOINER + ".", escaped)


def _check_link(url: str, what: str) -> str:
    if not url.startswith(("https://", "http://")) or _UNSAFE_IN_LINK.search(url):
        raise ValueError(f"{what} must be an http(s) URL without spaces, <, > or |: {url!r:.80}")
    if len(url) > _LINK_MAX:
        raise ValueError(f"{what} is longer than {_LINK_MAX} characters")
    return url


def _link(url: str, label: str) -> str:
    # Our own URL (validated on the way in); & is escaped as Slack asks for link targets.
    return f"<{slack_escape(url)}|{label}>"


@dataclass(frozen=True)
class CaseView:
    """What an alert shows of the follow-up case behind it: state, owner, link, buttons.

    ``*_by`` are Slack user ids when the step came from a button (rendered as mentions),
    otherwise any name (rendered as escaped text).
    """

    case_id: str
    state: CaseStateName
    url: str
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    contacted_by: str | None = None
    contacted_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    sla_due_at: datetime | None = None
    escalated: bool = False

    def __post_init__(self) -> None:
        if not self.case_id or len(self.case_id) > _IDENTIFIER_MAX:
            raise ValueError(f"a case id has 1 to {_IDENTIFIER_MAX} characters")
        if self.state not in get_args(CaseStateName):
            raise ValueError(f"unknown case state {self.state!r}")
        _check_link(self.url, "the case URL")

    @classmethod
    def of(cls, case: Case, url: str) -> CaseView:
        """The view of a case from the notifier's case state machine."""
        return cls(
            case_id=case.case_id,
            state=case.state.value,
            url=url,
            claimed_by=case.claimed_by,
            claimed_at=case.claimed_at,
            contacted_by=case.contacted_by,
            contacted_at=case.contacted_at,
            resolved_by=case.resolved_by,
            resolved_at=case.resolved_at,
            sla_due_at=case.sla_due_at,
            escalated=case.escalated_at is not None,
        )


@dataclass(frozen=True)
class AlertLine:
    """One alert in a burst summary: linked to its case page when there is one, else
    named by its response id, as the full alert names it (`npsloop rules explain` takes it)."""

    score: int
    category: Category
    comment: str | None
    case_url: str | None
    response_id: str | None = None

    def __post_init__(self) -> None:
        if self.case_url is not None:
            _check_link(self.case_url, "the case URL")
        elif not self.response_id:
            raise ValueError("a summary line needs a case URL or a response id")


# --- Block Kit -------------------------------------------------------------------------

Block = dict[str, Any]


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, emoji: bool | None = None) -> Block:
    return {"type": "plain_text", "text": text} | ({} if emoji is None else {"emoji": emoji})


def _section(text: Block | None = None, fields: Sequence[Block] = ()) -> Block:
    return (
        {"type": "section"}
        | ({"text": text} if text else {})
        | ({"fields": list(fields)} if fields else {})
    )


def _context(*elements: Block) -> Block:
    return {"type": "context", "elements": list(elements)}


def _divider() -> Block:
    return {"type": "divider"}


# --- text helpers ----------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters of escaped text, never ending inside an escape (&amp;)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&", max(0, limit - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else _cut(text, limit - 1) + "…"


def _quoted_comment(comment: str) -> str:
    """The comment as a Slack quote, shortened to one section with a note of its length."""
    escaped = escape_customer_text(comment)
    quoted = "\n".join(f">{line}" for line in escaped.splitlines() or [""])
    if len(quoted) <= SECTION_LIMIT:
        return quoted
    note = f"\n_(shortened: the comment has {len(comment):,} characters)_"
    return _cut(quoted, SECTION_LIMIT - len(note) - 1) + "…" + note


def _customer(text: str) -> Block:
    # verbatim: see the module docstring, layer 2. Our own <@U…>, <!date…> and <url|…> still work.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _who(user: str) -> str:
    # Ids come from Slack's own payloads, never from customers; anything else is shown as
    # text, so a name typed elsewhere cannot turn into a mention.
    if USER_ID.match(user):
        return f"<@{user}>"
    return _fit(escape_customer_text(user), 80)


def _when(at: datetime) -> str:
    # Slack renders <!date^...> in each reader's own time zone; the text after | is what
    # clients that cannot (notifications, old apps) show instead.
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _step(label: str, by: str | None, at: datetime | None) -> str:
    text = label
    if by:
        text += f" by {_who(by)}"
    if at:
        text += f" {_when(at)}"
    return text


def _channel_mention(channel: str) -> str:
    if CHANNEL_ID.match(channel):
        return f"<#{channel}>"
    return "#" + slack_escape(channel.lstrip("#"))


def _where(segment: Segment) -> list[tuple[str, str]]:
    parts = [
        ("Region", segment.region),
        ("Business unit", segment.business_unit),
        ("Department", segment.department),
        ("Product", segment.product),
        ("Channel", segment.channel),
    ]
    return [(name, value) for name, value in parts if value]


def _merged_segment(classified: ClassifiedResponse) -> Segment:
    # The invitation's frozen segment is what NPS is cut by; a response from another
    # survey tool brings only its own.
    frozen = classified.context.segment if classified.context else Segment()
    own = classified.response.segment
    return Segment(
        **{
            name: getattr(frozen, name) or getattr(own, name)
            for name in ("region", "business_unit", "department", "product", "store", "channel")
        }
    )


def _order_value(classified: ClassifiedResponse) -> str | None:
    context = classified.context
    if context is None or context.amount is None:
        return None
    amount = Decimal(context.amount)
    currency = escape_customer_text(context.currency or "")
    return f"{amount:,.2f} {currency}".strip()


def _hits(hits: Sequence[KeywordHit], max_words: int = 6) -> list[str]:
    lines = []
    for hit in hits:
        words = list(dict.fromkeys(hit.words))  # as written, once each, in order
        shown = ", ".join(escape_customer_text(word) for word in words[:max_words])
        more = f" (+{len(words) - max_words})" if len(words) > max_words else ""
        label = escape_customer_text(hit.label)
        lines.append(f"{label}: {shown}{more}" if shown else label)
    return lines


def _message(channel: str, text: str, blocks: Sequence[Block]) -> dict[str, Any]:
    if len(blocks) > MAX_BLOCKS:  # a bug here, not bad input: every builder budgets blocks
        raise AssertionError(f"{len(blocks)} blocks, Slack takes at most {MAX_BLOCKS}")
    return {
        "channel": channel,
        "text": text,
        "blocks": list(blocks),
        "unfurl_links": False,
        "unfurl_media": False,
    }


# --- the alert -------------------------------------------------------------------------


def _case_line(case: CaseView) -> str:
    steps: list[str] = []
    if case.state == "open":
        steps.append("*Open*: nobody has claimed it yet")
        if case.sla_due_at:
            steps.append(f"claim it by {_when(case.sla_due_at)}")
    if case.state == "resolved":
        steps.append(_step("*Resolved*", case.resolved_by, case.resolved_at))
    if case.state in ("contacted", "resolved") and (case.contacted_by or case.contacted_at):
        label = "*Contacted*" if case.state == "contacted" else "contacted"
        steps.append(_step(label, case.contacted_by, case.contacted_at))
    if case.state != "open" and (case.claimed_by or case.claimed_at):
        label = "*Claimed*" if case.state == "claimed" else "claimed"
        steps.append(_step(label, case.claimed_by, case.claimed_at))
    if case.state != "open" and not steps:
        steps.append(f"*{case.state.capitalize()}*")
    if case.escalated:
        steps.append(":rotating_light: escalated: not claimed within its SLA")
    steps.append(_link(case.url, "Open the case"))
    return "  ·  ".join(steps)


def _case_buttons(case: CaseView, response_id: str) -> Block:
    buttons = [
        {
            "type": "button",
            "text": _plain(label),
            "action_id": action_id,
            # The response id: ingest keys the case event by it and derives the case id.
            "value": response_id,
        }
        # Only the suggested next step is green; Slack advises restraint with styles.
        | ({"style": "primary"} if number == 0 and case.state != "resolved" else {})
        for number, (label, action_id) in enumerate(_BUTTONS[case.state])
    ]
    return {"type": "actions", "block_id": "case_actions", "elements": buttons}


def alert_message(
    classified: ClassifiedResponse, channel: str, case: CaseView | None
) -> dict[str, Any]:
    """chat.postMessage (or, with ``ts``, chat.update) arguments for a detractor/passive alert.

    Shows the score, the comment as a quote, what the classifier found (language, themes
    with the customer's words, flags), where and what was bought, and the case with the
    buttons its state allows. Posted again with chat.update whenever the case moves.
    """
    response = classified.response
    category = classified.category
    high = classified.priority == "high" or "urgent" in classified.flags
    headline = f"{_HEADLINE[category]} {response.score}/10"
    marker = ":rotating_light: HIGH PRIORITY · " if high else ""
    blocks: list[Block] = [
        {
            "type": "header",
            "text": _plain(f"{marker}{_ICON[category]} {headline}"[:HEADER_LIMIT], emoji=True),
        }
    ]

    flags: list[str] = []
    if high:
        urgent = _hits(classified.urgent)
        words = f": {'; '.join(urgent)}" if urgent else ""
        flags.append(f":rotating_light: *HIGH PRIORITY*, urgent words{words}")
    if "score_comment_mismatch" in classified.flags:
        flags.append(":warning: The score and the comment disagree — probably misread the scale.")
    if flags:
        blocks.append(_section(_customer(_fit("\n".join(flags), SECTION_LIMIT))))

    comment = (response.comment or "").strip()
    blocks.append(
        _section(_customer(_quoted_comment(comment) if comment else "_No comment given._"))
    )

    if classified.themes:
        themes = "\n".join(f"• {line}" for line in _hits(classified.themes))
        blocks.append(_section(_customer(_fit(f"*Themes*\n{themes}", SECTION_LIMIT))))

    segment = _merged_segment(classified)
    fields: list[str] = []
    if classified.language:
        fields.append(f"*Language*\n{_LANGUAGE.get(classified.language, classified.language)}")
    if segment.store:
        fields.append(f"*Store*\n{escape_customer_text(segment.store)}")
    where = _where(segment)
    if where:
        fields.append(
            "*Segment*\n"
            + "\n".join(f"{name}: {escape_customer_text(value)}" for name, value in where)
        )
    order_value = _order_value(classified)
    if order_value:
        order_id = classified.context.order_id if classified.context else None
        order = f" (order {escape_customer_text(order_id)})" if order_id else ""
        fields.append(f"*Order value*\n{order_value}{order}")
    if fields:
        blocks.append(_section(fields=[_customer(_fit(f, FIELD_LIMIT)) for f in fields]))

    if classified.is_update:
        blocks.append(_context(_mrkdwn("Updated: the customer added to their answer.")))
    # The response's id lets staff find it (and `npsloop rules explain` it) from the alert.
    reference = _fit(f"Response `{classified.response.response_id}`", FIELD_LIMIT)
    blocks.append(_context(_customer(reference)))
    if case is not None:
        blocks.append(_divider())
        blocks.append(_context(_customer(_case_line(case))))
        blocks.append(_case_buttons(case, response.response_id))

    store = f" at {segment.store}" if segment.store else ""
    said = f": “{comment[:150]}{'…' if len(comment) > 150 else ''}”" if comment else ""
    fallback = f"{'HIGH PRIORITY: ' if high else ''}{headline}{store}{said}"
    return _message(channel, escape_customer_text(fallback), blocks)


# --- the burst summary -----------------------------------------------------------------


def _counted(alerts: Sequence[AlertLine]) -> str:
    parts = []
    for category in (Category.DETRACTOR, Category.PASSIVE, Category.PROMOTER):
        count = sum(1 for alert in alerts if alert.category == category)
        if count:
            one, many = _PLURAL[category]
            parts.append(f"{count} {one if count == 1 else many}")
    # "14 new detractors and 3 passives": "new" once, after the first count.
    first, _, noun = parts[0].partition(" ")
    parts[0] = f"{first} new {noun}"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _summary_line(alert: AlertLine) -> str:
    comment = " ".join((alert.comment or "").split())
    if comment:
        shown = comment[:SUMMARY_COMMENT_CHARS]
        more = "…" if len(comment) > SUMMARY_COMMENT_CHARS else ""
        said = f"“{escape_customer_text(shown)}{more}”"
    else:
        said = "_no comment_"
    if alert.case_url is not None:
        where = _link(alert.case_url, "case")
    else:
        where = f"`{_fit(escape_customer_text(alert.response_id or ''), _IDENTIFIER_MAX)}`"
    return f"{_ICON[alert.category]} *{alert.score}*/10 {said} {where}"


def summary_message(
    channel: str,
    alerts: Sequence[AlertLine],
    minutes: int,
    *,
    dashboard_url: str | None = None,
    max_lines: int = SUMMARY_MAX_LINES,
) -> dict[str, Any]:
    """One message for a burst of alerts instead of a flood: a headline and a line each.

    Lines are packed several to a section. Past ``max_lines`` (or Slack's block budget)
    the last line says how many more there are, linking to ``dashboard_url`` if given.
    """
    if not alerts:
        raise ValueError("a summary needs at least one alert")
    if dashboard_url is not None:
        _check_link(dashboard_url, "the dashboard URL")
    period = "minute" if minutes == 1 else f"{minutes} minutes"
    counted = _counted(alerts)
    headline = f"*{counted}* in {_channel_mention(channel)} in the last {period}"
    blocks: list[Block] = [_section(_mrkdwn(headline)), _divider()]
    # One block is kept for "and N more".
    section_budget = MAX_BLOCKS - len(blocks) - 1
    sections: list[str] = []
    shown = 0
    for alert in alerts[: max(max_lines, 0)]:
        line = _summary_line(alert)
        if sections and len(sections[-1]) + 1 + len(line) <= SECTION_LIMIT:
            sections[-1] += "\n" + line
        elif len(sections) < section_budget:
            sections.append(line)
        else:
            break
        shown += 1
    blocks.extend(_section(_customer(section)) for section in sections)
    if shown < len(alerts):
        more = f"…and {len(alerts) - shown} more"
        if dashboard_url:
            more += f": {_link(dashboard_url, 'see them all on the dashboard')}"
        blocks.append(_section(_mrkdwn(more)))
    fallback = f"{counted} in #{channel.lstrip('#')} in the last {period}"
    return _message(channel, escape_customer_text(fallback), blocks)


# --- kudos -----------------------------------------------------------------------------


def kudos_message(classified: ClassifiedResponse, channel: str) -> dict[str, Any]:
    """A short share of a promoter's praise, for the team's kudos channel."""
    if classified.category != Category.PROMOTER:
        raise ValueError(f"kudos are for promoters, not a {classified.category}")
    response = classified.response
    store = _merged_segment(classified).store
    at = f" at {escape_customer_text(store)}" if store else ""
    comment = (response.comment or "").strip()
    blocks: list[Block] = [
        _section(
            _customer(f":star2: *A promoter gave us {response.score}/10*{at}"),
        )
    ]
    if comment:
        blocks.append(_section(_customer(_quoted_comment(comment))))
    blocks.append(_context(_mrkdwn("Shared from the feedback loop. Well done!")))
    said = f": “{comment[:150]}{'…' if len(comment) > 150 else ''}”" if comment else ""
    fallback = f"A promoter gave us {response.score}/10{' at ' + store if store else ''}{said}"
    return _message(channel, escape_customer_text(fallback), blocks)


def escalation_message(classified: ClassifiedResponse, channel: str, case: Case) -> dict[str, Any]:
    """A case nobody claimed within its SLA, raised in the escalation channel once."""
    response = classified.response
    stamp = int(case.sla_due_at.timestamp())
    shown = f"{case.sla_due_at:%Y-%m-%d %H:%M} UTC"
    due = f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{shown}>"
    headline = (
        f":alarm_clock: Unclaimed past its SLA: {_HEADLINE.get(classified.category, 'Response')} "
        f"{response.score}/10"
    )
    comment = (response.comment or "").strip()
    blocks: list[Block] = [
        _section(_mrkdwn(f"*{headline}*\nThe SLA ran out {due}.")),
    ]
    if comment:
        blocks.append(_section(_customer(_quoted_comment(comment))))
    blocks.append(_context(_customer(_fit(f"Response `{response.response_id}`", FIELD_LIMIT))))
    return _message(channel, escape_customer_text(f"{headline}: nobody claimed it"), blocks)
