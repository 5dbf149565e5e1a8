"""Who to survey, and when. Pure: no Faust, no I/O.

The practitioners' rules: ask at the right moment (a service soon after, a product
once it has been used), only in daytime where the customer lives, never the same
customer too often, not after the order was refunded, never someone who said no.
Every decision carries its reason, so "why was this customer not surveyed?" has an answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.events import Experience, InvitationStatus, Purchase, Segment

# Where a locale names a country (or a language spoken mostly in one), its main time zone.
_ZONES = {
    "da": "Europe/Copenhagen",
    "dk": "Europe/Copenhagen",
    "sv": "Europe/Stockholm",
    "se": "Europe/Stockholm",
    "no": "Europe/Oslo",
    "nb": "Europe/Oslo",
    "nn": "Europe/Oslo",
    "fi": "Europe/Helsinki",
    "de": "Europe/Berlin",
    "gb": "Europe/London",
    "ie": "Europe/Dublin",
    "us": "America/New_York",
}


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
class SendWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        start_text, end_text = text.split("-")
        end = time(23, 59, 59) if end_text == "24:00" else time.fromisoformat(end_text)
        window = cls(time.fromisoformat(start_text), end)
        if window.start >= window.end:
            raise ValueError(f"the send window {text!r} must start before it ends")
        return window


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


def timezone_for(explicit: str | None, locale: str | None, default: str) -> ZoneInfo:
    """The purchase's own time zone, else the locale's country or language, else the default."""
    candidates = [explicit] if explicit else []
    if locale:
        parts = locale.replace("_", "-").lower().split("-")
        candidates += [_ZONES.get(parts[-1], ""), _ZONES.get(parts[0], "")]
    candidates.append(default)
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def in_window(moment: datetime, zone: ZoneInfo, window: SendWindow) -> datetime:
    """The first moment at or after ``moment`` inside the send window (returned in UTC)."""
    local = moment.astimezone(zone)
    if local.time() < window.start:
        local = local.replace(
            hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
        )
    elif local.time() > window.end:
        next_day = (local + timedelta(days=1)).date()
        local = datetime.combine(next_day, window.start, tzinfo=zone)
    # UTC, whatever offset the purchase came with: databases store the instant, not the offset.
    return local.astimezone(UTC)


def sampled_in(order_id: str, rate: float) -> bool:
    """A fair, repeatable draw: the same order always gets the same answer."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(order_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


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
