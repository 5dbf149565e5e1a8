"""Slack's request signing: how the notifier knows a button click really came from Slack.

Slack signs every request it sends an app (interactivity, slash commands, events) with the
app's signing secret: ``X-Slack-Signature: v0=<hex HMAC-SHA256>`` over
``v0:{X-Slack-Request-Timestamp}:{raw body}``. The timestamp is signed too, so refusing an
old one stops a captured request from being replayed later.
See https://api.slack.com/authentication/verifying-requests-from-slack.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from shared.signing import SignatureError

__all__ = [
    "SLACK_TOLERANCE_SECONDS",
    "slack_request_headers",
    "slack_signature",
    "verify_slack_request",
]

SLACK_TOLERANCE_SECONDS = 5 * 60
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
_VERSION = "v0"
# Digits only: int() would also take " 12", "+12" and "1_2", which Slack never sends.
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def slack_signature(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for this body at this timestamp."""
    base = f"{_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{_VERSION}={digest}"


def slack_request_headers(
    signing_secret: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The two headers Slack adds to a request: what tests and fakes send to the notifier."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: slack_signature(signing_secret, stamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    # HTTP header names are case-insensitive; a plain dict of them is not.
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return (value or "").strip()


def verify_slack_request(
    signing_secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_seconds: int = SLACK_TOLERANCE_SECONDS,
) -> None:
    """Accept a request Slack signed within the tolerance; raise SignatureError saying why not.

    ``body`` must be the raw bytes as received: the signature covers them, not a re-encoding
    of the parsed form.
    """
    if not signing_secret:
        # An empty key would make every attacker's HMAC "valid" with the same empty key.
        raise SignatureError("no Slack signing secret is configured")
    stamp_text = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    missing = [
        name
        for name, value in ((TIMESTAMP_HEADER, stamp_text), (SIGNATURE_HEADER, signature))
        if not value
    ]
    if missing:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    if not _TIMESTAMP.match(stamp_text):
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a whole number of seconds")
    stamp = int(stamp_text)
    current = time.time() if now is None else now
    # Checked before the signature, as Slack advises: a stale request is refused even when
    # it is genuine, which is what makes a replay of a captured request useless.
    if abs(current - stamp) > tolerance_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {abs(current - stamp):.0f}s away from now "
            f"(at most {tolerance_seconds}s allowed): stale, replayed or clock skew"
        )
    expected = slack_signature(signing_secret, stamp, body).encode()
    # Bytes, not str: hmac.compare_digest raises TypeError on non-ASCII str, and a forged
    # header may hold anything; "replace" keeps even lone surrogates from raising here.
    received = signature.encode("utf-8", errors="replace")
    if not hmac.compare_digest(received, expected):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body and the signing secret")
