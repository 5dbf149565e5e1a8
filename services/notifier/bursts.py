"""Bursts in a Slack channel: one post per turn, and a backlog of alerts as one summary.

Slack takes about one message per second per channel and answers 429 beyond that. So
each Slack channel has turns: a delivery posts only in a turn of its channel, and one
that finds the channel busy stays pending in the outbox until the turn ends (a 429's
Retry-After holds the channel's turn too). When a turn comes and enough alerts of the
channel are waiting, they go out together as one summary with a line each, so a burst
neither floods the channel nor waits minutes behind the rate limit.

A summary holds at most ``SUMMARY_MAX_LINES`` alerts, each shown: a bigger backlog
becomes several summaries, one per turn, rather than one ending in "and N more" that
would leave alerts nobody sees in Slack.

Pure: the dispatcher does the claiming and sending.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notifier.alerts import SUMMARY_MAX_LINES, AlertLine, summary_message
from shared.events import ClassifiedResponse
from shared.nps import Category

# Where an alert's outbox payload keeps what its summary line shows; the Slack sender
# drops it, like the fallback channel: it is for the notifier, not an argument of Slack's.
SUMMARY_LINE = "summary_line"
FALLBACK_CHANNEL = "fallback_channel"


@dataclass(frozen=True)
class BurstPolicy:
    """How often one Slack channel is posted to, and from how many waiting alerts on
    they go out as one summary (the alert whose turn it is counts)."""

    interval_seconds: float = 1.0
    threshold: int = 5
    max_lines: int = SUMMARY_MAX_LINES

    def __post_init__(self) -> None:
        if self.interval_seconds < 0:
            raise ValueError("the interval between two posts to a channel cannot be negative")
        if self.threshold < 2:
            raise ValueError("a summary is for two alerts or more")
        if not 2 <= self.max_lines <= SUMMARY_MAX_LINES:
            raise ValueError(f"a summary shows 2 to {SUMMARY_MAX_LINES} alerts")


def summary_line(classified: ClassifiedResponse, case_url: str | None = None) -> dict[str, Any]:
    """What a burst summary shows of an alert, kept with the alert in the outbox: its case
    page is where staff claim a case whose alert was coalesced."""
    response = classified.response
    return {
        "response_id": response.response_id,
        "score": response.score,
        "category": classified.category.value,
        "comment": response.comment,
        "case_url": case_url,
    }


def can_join_a_summary(payload: Mapping[str, Any]) -> bool:
    """Whether an alert's payload says what its summary line shows (alerts planned before
    bursts were coalesced do not, and are posted on their own)."""
    return isinstance(payload.get(SUMMARY_LINE), Mapping)


def summary_of(
    channel: str,
    payloads: Sequence[Mapping[str, Any]],
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """chat.postMessage arguments of one summary of these alerts, oldest first, headed
    "N new detractors in #channel in the last M minutes" (M counted from ``since``)."""
    lines = [
        AlertLine(
            score=int(line["score"]),
            category=Category(line["category"]),
            comment=line.get("comment"),
            # Alerts planned without a case (no case rule, or no case links) name the response.
            case_url=line.get("case_url"),
            response_id=line["response_id"],
        )
        for line in (payload[SUMMARY_LINE] for payload in payloads)
    ]
    minutes = max(math.ceil((now - since).total_seconds() / 60), 1)
    message = summary_message(channel, lines, minutes, max_lines=len(lines))
    fallback = next((p[FALLBACK_CHANNEL] for p in payloads if p.get(FALLBACK_CHANNEL)), None)
    if fallback:
        message[FALLBACK_CHANNEL] = fallback
    return message
