"""Signatures: Standard Webhooks for inbound calls, and signed, expiring tokens for links.

Standard Webhooks (standardwebhooks.com): the sender signs ``{id}.{timestamp}.{body}``
with HMAC-SHA256 and sends ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64>`` (several, space-separated, during a key rotation).
The secret is ``whsec_`` followed by the base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WEBHOOK_TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """A signature or token was refused; the message says why, for the caller to show."""


def _secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def webhook_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for a body (what upstream senders compute)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    secret: str, webhook_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers a sender adds to a signed webhook."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook_signature(secret, webhook_id, stamp, body),
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_seconds: int = WEBHOOK_TOLERANCE_SECONDS,
) -> str:
    """Check a webhook's signature and freshness; return its webhook-id.

    Replays inside the tolerance are the caller's to refuse, by remembering the id.
    """
    webhook_id = headers.get("webhook-id", "")
    stamp_text = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not webhook_id or not stamp_text or not signatures:
        missing = [
            name
            for name, value in (
                ("webhook-id", webhook_id),
                ("webhook-timestamp", stamp_text),
                ("webhook-signature", signatures),
            )
            if not value
        ]
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    try:
        stamp = int(stamp_text)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not a whole number of seconds") from exc
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_seconds:
        raise SignatureError(
            f"webhook-timestamp is {abs(current - stamp):.0f}s away from now "
            f"(at most {tolerance_seconds}s allowed): stale or clock skew"
        )
    expected = webhook_signature(secret, webhook_id, stamp, body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise SignatureError("webhook-signature does not match the body and the shared secret")


@dataclass(frozen=True)
class TokenSigner:
    """Compact signed tokens: base64url(JSON payload) '.' base64url(HMAC-SHA256), with an expiry.

    The payload is readable (it holds ids, never personal data) but cannot be changed
    without the secret.
    """

    secret: bytes

    def sign(self, payload: Mapping[str, Any], expires_at: float) -> str:
        body = dict(payload)
        body["exp"] = int(expires_at)
        encoded = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{encoded}.{self._mac(encoded)}"

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The payload of a genuine, unexpired token; TokenExpired or SignatureError otherwise."""
        encoded, _, mac = token.partition(".")
        # Bytes, not str: compare_digest refuses non-ASCII text, which a forged link may hold.
        expected = self._mac(encoded).encode()
        if not encoded or not mac or not hmac.compare_digest(mac.encode(), expected):
            raise SignatureError("the link is not genuine")
        try:
            payload: dict[str, Any] = json.loads(_unb64(encoded))
        except (ValueError, binascii.Error) as exc:
            raise SignatureError("the link is not genuine") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
            raise SignatureError("the link is not genuine")
        if (time.time() if now is None else now) > payload["exp"]:
            raise TokenExpired("the link has expired")
        return payload

    def _mac(self, encoded: str) -> str:
        return _b64(hmac.new(self.secret, encoded.encode(), hashlib.sha256).digest()[:24])


class TokenExpired(SignatureError):
    """A genuine token past its expiry."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
