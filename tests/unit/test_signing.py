"""Standard Webhooks signatures and signed link tokens."""

from __future__ import annotations

import base64
import time

import pytest

from shared.signing import (
    SignatureError,
    TokenExpired,
    TokenSigner,
    verify_webhook,
    webhook_headers,
    webhook_signature,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
SIGNER = TokenSigner(b"link key")


def test_a_signed_webhook_verifies_and_returns_its_id() -> None:
    headers = webhook_headers(SECRET, "msg_1", b'{"a": 1}')
    assert verify_webhook(SECRET, headers, b'{"a": 1}') == "msg_1"


def test_the_signature_is_standard_webhooks_v1_hmac_sha256_of_id_timestamp_and_body() -> None:
    # The example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = webhook_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_one_of_several_signatures_matching_is_enough_during_a_key_rotation() -> None:
    headers = webhook_headers(SECRET, "msg_2", b"{}")
    headers["webhook-signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]
    assert verify_webhook(SECRET, headers, b"{}") == "msg_2"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-signature": "v1,AAAA"}, "does not match"),
        # Seconds from now, resolved when the test runs (not when it is collected).
        ({"webhook-timestamp": -900}, "stale"),
        ({"webhook-timestamp": +900}, "stale"),
        ({"webhook-timestamp": "soon"}, "whole number"),
        ({"webhook-id": ""}, "missing header"),
        ({"webhook-signature": "v1,\u00e6\u00f8\u00e5"}, "does not match"),
    ],
)
def test_a_wrong_stale_or_incomplete_webhook_is_refused_saying_why(
    change: dict[str, str | int], reason: str
) -> None:
    changed = {
        name: str(int(time.time()) + value) if isinstance(value, int) else value
        for name, value in change.items()
    }
    headers = {**webhook_headers(SECRET, "msg_3", b"{}"), **changed}
    with pytest.raises(SignatureError, match=reason):
        verify_webhook(SECRET, headers, b"{}")


def test_a_token_carries_its_payload_until_it_expires() -> None:
    token = SIGNER.sign({"i": "inv-1", "s": 7}, time.time() + 60)
    assert SIGNER.verify(token)["i"] == "inv-1"
    with pytest.raises(TokenExpired):
        SIGNER.verify(token, now=time.time() + 120)


@pytest.mark.parametrize(
    "forged",
    ["", "0", ".", "abc.def", "abc.\u00e6\u00f8\u00e5", "\u00e6.\u00f8", "a" * 5000 + ".b"],
)
def test_a_forged_or_garbled_token_is_refused_never_crashes(forged: str) -> None:
    with pytest.raises(SignatureError):
        SIGNER.verify(forged)


def test_a_token_signed_with_another_key_or_altered_is_refused() -> None:
    token = TokenSigner(b"another key").sign({"i": "inv-1"}, time.time() + 60)
    with pytest.raises(SignatureError):
        SIGNER.verify(token)
    genuine = SIGNER.sign({"i": "inv-1", "s": 1}, time.time() + 60)
    _, mac = genuine.split(".")
    altered = base64.urlsafe_b64encode(b'{"exp":9999999999,"i":"inv-1","s":10}').rstrip(b"=")
    with pytest.raises(SignatureError):
        SIGNER.verify(altered.decode() + "." + mac)
