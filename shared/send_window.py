"""When a customer may be emailed (inside a daily send window, in their own local time),
and the repeatable draw that decides whether a sampled customer is asked at all.

Pure: no I/O. Ingest moves invitations into the window; the notifier moves the emails of
the loops (review requests, follow-ups) into it, so nobody is emailed at night.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


@dataclass(frozen=True)
class SendWindow:
    """Local hours, such as 09:00-20:00, in which customers are emailed."""

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


def timezone_for(explicit: str | None, locale: str | None, default: str) -> ZoneInfo:
    """The given time zone, else the locale's country or language, else the default."""
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
    # UTC, whatever offset the moment came with: databases store the instant, not the offset.
    return local.astimezone(UTC)


def sampled_in(key: str, rate: float) -> bool:
    """A fair, repeatable draw: the same key (an order, a response) always gets the same answer."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
