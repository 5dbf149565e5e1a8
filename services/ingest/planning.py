"""Who to survey, and when. Pure: no Faust, no I/O.

The practitioners' rules: ask at the right moment (a service soon after, a product
once it has been used), only in daytime where the customer lives, never the same
customer too often, not after the order was refunded, never someone who said no.
Every decision carries its reason, so "why was this customer not surveyed?" has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared.events import Experience, InvitationStatus, Purchase, Segment
from shared.send_window import SendWindow, in_window, sampled_in, timezone_for

# The send window's pieces live in shared/ (the notifier uses them too); ingest's edge
# imports them from here.
__all__ = [
    "CustomerState",
    "Decision",
    "Reason",
    "Rules",
    "SendWindow",
    "cancellation_reason",
    "decide",
    "in_window",
    "sampled_in",
    "sampling_rate",
    "send_time",
    "timezone_for",
]


class Reason(StrEnum):
    """Why an invitation was not scheduled, or was cancelled."""

    ERASED = "erased"
    UNSUBSCRIBED = "unsubscribed"
    NO_EMAIL = "no_email"
    FATIGUE = "fatigue"
    SAMPLED_OUT = "sampled_out"
    REFUND = "refund"
    CANCELLATION = "cancellation"


@dataclass(frozen=True)
class CustomerState:
    """What planning knows of a customer: when last asked or heard from, and their choices."""

    last_invited_at: datetime | None = None
    last_responded_at: datetime | None = None
    unsubscribed: bool = False
    erased: bool = False


@dataclass(frozen=True)
class Rules:
    delay_service: timedelta
    delay_product: timedelta
    window: SendWindow
    default_timezone: str
    fatigue: timedelta
    default_sampling_rate: float = 1.0
    # (dimension, value, rate): the first whose dimension and value match the segment wins.
    sampling: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)

    @staticmethod
    def parse_sampling(rates: dict[str, float]) -> tuple[tuple[str, str, float], ...]:
        parsed = []
        dimensions = set(Segment.model_fields)
        for key, rate in rates.items():
            dimension, separator, value = key.partition("=")
            if not separator or dimension not in dimensions:
                raise ValueError(
                    f"sampling key {key!r} must be <dimension>=<value> with a dimension of "
                    f"{', '.join(sorted(dimensions))}"
                )
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"sampling rate of {key!r} must be between 0 and 1, not {rate}")
            parsed.append((dimension, value, rate))
        return tuple(parsed)


@dataclass(frozen=True)
class Decision:
    status: InvitationStatus
    reason: Reason | None
    send_at: datetime | None


def sampling_rate(segment: Segment, rules: Rules) -> float:
    for dimension, value, rate in rules.sampling:
        if getattr(segment, dimension) == value:
            return rate
    return rules.default_sampling_rate


def send_time(purchase: Purchase, rules: Rules, now: datetime) -> datetime:
    """When to invite: after the experience's delay, not in the past, inside the send window."""
    happened = purchase.purchased_at or purchase.occurred_at
    is_service = purchase.experience == Experience.SERVICE
    delay = rules.delay_service if is_service else rules.delay_product
    due = max(happened + delay, now)
    zone = timezone_for(purchase.timezone, purchase.locale, rules.default_timezone)
    return in_window(due, zone, rules.window)


def decide(purchase: Purchase, state: CustomerState, rules: Rules, now: datetime) -> Decision:
    """Schedule an invitation for a purchase, or say why not."""
    if state.erased:
        return Decision(InvitationStatus.SUPPRESSED, Reason.ERASED, None)
    if state.unsubscribed:
        return Decision(InvitationStatus.SUPPRESSED, Reason.UNSUBSCRIBED, None)
    if not purchase.contact.email:
        return Decision(InvitationStatus.SUPPRESSED, Reason.NO_EMAIL, None)
    at = send_time(purchase, rules, now)
    for last in (state.last_invited_at, state.last_responded_at):
        if last is not None and abs(at - last) < rules.fatigue:
            return Decision(InvitationStatus.SUPPRESSED, Reason.FATIGUE, None)
    if not sampled_in(purchase.order_id, sampling_rate(purchase.segment, rules)):
        return Decision(InvitationStatus.SUPPRESSED, Reason.SAMPLED_OUT, None)
    return Decision(InvitationStatus.SCHEDULED, None, at)


def cancellation_reason(purchase: Purchase) -> Reason:
    return Reason.REFUND if purchase.kind == "refund" else Reason.CANCELLATION
