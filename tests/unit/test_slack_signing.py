"""Slack request signing, checked against the worked example in Slack's documentation."""

from __future__ import annotations

import pytest

from shared.signing import SignatureError
from shared.slack_signing import slack_request_headers, slack_signature, verify_slack_request

# api.slack.com/authentication/verifying-requests-from-slack: the documented example.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
DOC_HEADERS = {
    "X-Slack-Request-Timestamp": str(DOC_TIMESTAMP),
    "X-Slack-Signature": DOC_SIGNATURE,
}


def refusal(headers: dict[str, str], body: bytes = DOC_BODY, now: float | None = None) -> str:
    with pytest.raises(SignatureError) as raised:
        verify_slack_request(
            DOC_SECRET, headers, body, now=DOC_TIMESTAMP + 10 if now is None else now
        )
    return str(raised.value)


def test_the_signature_of_slacks_documented_example_is_reproduced() -> None:
    assert slack_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE


def test_slacks_documented_example_verifies() -> None:
    verify_slack_request(DOC_SECRET, DOC_HEADERS, DOC_BODY, now=DOC_TIMESTAMP + 60)


def test_header_names_are_matched_whatever_their_case() -> None:
    lower = {name.lower(): value for name, value in DOC_HEADERS.items()}
    verify_slack_request(DOC_SECRET, lower, DOC_BODY, now=DOC_TIMESTAMP)


def test_a_request_older_than_five_minutes_is_refused_as_stale() -> None:
    assert "stale" in refusal(DOC_HEADERS, now=DOC_TIMESTAMP + 301)


def test_a_request_from_more_than_five_minutes_in_the_future_is_refused_too() -> None:
    assert "stale" in refusal(DOC_HEADERS, now=DOC_TIMESTAMP - 301)


def test_the_tolerance_can_be_narrowed() -> None:
    with pytest.raises(SignatureError, match="at most 30s"):
        verify_slack_request(
            DOC_SECRET, DOC_HEADERS, DOC_BODY, now=DOC_TIMESTAMP + 31, tolerance_seconds=30
        )


def test_a_changed_body_does_not_match_the_signature() -> None:
    tampered = DOC_BODY.replace(b"user_id=U2CERLKJA", b"user_id=U0ATTACKR")
    assert "does not match" in refusal(DOC_HEADERS, body=tampered)


def test_a_request_signed_with_another_secret_is_refused() -> None:
    headers = slack_request_headers("another-secret", DOC_BODY, timestamp=DOC_TIMESTAMP)
    assert "does not match" in refusal(headers)


def test_a_missing_signature_header_is_named() -> None:
    reason = refusal({"X-Slack-Request-Timestamp": str(DOC_TIMESTAMP)})
    assert "missing" in reason and "X-Slack-Signature" in reason


def test_missing_headers_are_all_named() -> None:
    reason = refusal({})
    assert "X-Slack-Request-Timestamp" in reason and "X-Slack-Signature" in reason


def test_a_timestamp_that_is_not_a_number_is_refused() -> None:
    headers = {**DOC_HEADERS, "X-Slack-Request-Timestamp": "+1531420618"}
    assert "whole number" in refusal(headers)


@pytest.mark.parametrize(
    "signature",
    ["v0=ä2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", "v0=💥", "\udcff"],
)
def test_a_non_ascii_signature_is_refused_not_a_crash(signature: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str: the comparison is on bytes.
    assert "does not match" in refusal({**DOC_HEADERS, "X-Slack-Signature": signature})


def test_without_a_signing_secret_nothing_verifies() -> None:
    with pytest.raises(SignatureError, match="no Slack signing secret"):
        verify_slack_request("", DOC_HEADERS, DOC_BODY, now=DOC_TIMESTAMP)


def test_the_headers_a_fake_slack_sends_verify_now() -> None:
    body = b'payload={"type":"block_actions"}'
    verify_slack_request("s3cret", slack_request_headers("s3cret", body), body)
