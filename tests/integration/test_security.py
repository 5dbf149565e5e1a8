"""Security checks on the running system (issue 7, point 4): the real edge, the real
slack-sdk and sendgrid clients against the fake servers, and the workers' own logs and
/metrics.

Already covered elsewhere, and not repeated here:

- webhook signatures in unit tests: wrong, stale, future, garbled and tampered
  (tests/unit/test_signing.py, tests/unit/test_ingest_domain.py), a replayed webhook-id
  refused (test_ingest_domain.py, and on the real edge in
  tests/integration/test_survey_lifecycle.py with unsigned and oversized bodies);
- Slack signatures: Slack's documented example, stale, future, wrong secret, garbled
  (tests/unit/test_slack_signing.py); forged and stale clicks on the route
  (tests/unit/test_slack_clicks_at_the_edge.py) and a forged click on the real edge
  (tests/integration/test_case_buttons_end_to_end.py);
- escaping of alerts and emails as pure functions (tests/unit/test_alerts.py,
  tests/unit/test_notifier.py, tests/unit/test_properties.py).

Here: the same refusals on the real edge where they were missing (a webhook signed with
another key, stale, from the future or replayed with a fresh timestamp; a Slack click
replayed inside and after its five minutes), what the real clients actually sent to Slack
and SendGrid for hostile text, header injection through a name or an address, and a
search of every worker's info log and /metrics for secrets and customers' addresses.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from shared import topics
from shared.events import CaseAction, CaseEvent, decode
from shared.settings import SERVICES
from shared.signing import webhook_headers
from shared.slack_signing import slack_request_headers
from tests.fakes import SLACK_TEST_TOKEN, FakeServer, FakeSlack, Received
from tests.kafka_helpers import collect, produce
from tests.stack import TOKEN_SECRET, WEBHOOK_SECRET, Stack, http_get, stack_with_fakes

pytestmark = pytest.mark.integration

SLACK_SIGNING_SECRET = "the security tests' Slack signing secret"
SENDGRID_KEY = "SG.test-key"  # what stack_with_fakes gives the notifier
OTHER_KEY = "whsec_" + base64.b64encode(b"somebody else's webhook key").decode()
GOOGLE = "https://g.page/r/test-shop/review"
OWNER = "owner@example.com"
POSTS = "/api/chat.postMessage"
MAIL = "/v3/mail/send"
RULES = f"""
version: 1
rules:
  - name: detractors
    when: {{category: detractor}}
    then:
      - slack_alert
      - open_case: {{sla_hours: 48}}
      - follow_up_email
      - email_owner: {{to: {OWNER}}}
  - name: passives
    when: {{category: passive}}
    then: [slack_alert, follow_up_email]
  - name: promoters
    when: {{category: promoter}}
    then: [review_request, kudos: {{channel: "#kudos"}}]
"""
HOSTILE_COMMENT = (
    "<!channel> @here look: <http://evil.example|Your bank> wants you "
    "<script>alert('x')</script> <b>bold</b> & <@U0BOSS> <!subteam^S1|@cx>"
)
# What a <...> in an alert may be: only npsloop's own case link and dates.
OURS = re.compile(r"^(http://127\.0\.0\.1:\d+/cases/[\w.\-]+\|Open the case|!date\^[^>]*)$")
HOSTILE_NAME = "<b>Ann</b> <script>alert(1)</script> & Co"


@dataclass
class Running:
    stack: Stack
    slack: FakeSlack
    sendgrid: FakeServer
    # Every customer address the module sent in: none may show in a log or a label.
    addresses: set[str]

    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        raw = json.dumps(body).encode()
        signed = webhook_headers(WEBHOOK_SECRET, f"msg_{uuid.uuid4().hex}", raw)
        request = urllib.request.Request(
            self.stack.url("ingest") + path,
            data=raw,
            headers={
                "Content-Type": "application/json",
                **(signed if headers is None else headers),
            },
            method="POST",
        )
        return _exchange(request)

    def respond(self, **body: Any) -> None:
        contact = body.get("contact") or {}
        if contact.get("email"):
            self.addresses.add(contact["email"])
        status, text = self.post("/v1/responses", body)
        assert status == 202, text

    def click(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            self.stack.url("ingest") + "/slack/actions",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            method="POST",
        )
        return _exchange(request)

    def mails_to(self, address: str, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            mails = [m for m in self.sendgrid.received(MAIL) if address in recipients(m)]
            if len(mails) >= count or time.monotonic() > deadline:
                return mails
            time.sleep(0.2)

    def alert_about(self, words: str, timeout: float = 60.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for posted in self.slack.received(POSTS):
                if words in json.dumps(posted.body, ensure_ascii=False):
                    return posted
            time.sleep(0.2)
        raise AssertionError(f"no Slack message with {words!r}")

    def records(self, spec: topics.TopicSpec) -> list[bytes]:
        got = collect(self.stack.bootstrap, self.stack.topic(spec.name), 0, settle=2.0)
        return [value for _, value in got if value is not None]


def _exchange(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def recipients(mail: Received) -> list[str]:
    """Every address a SendGrid request would deliver to: to, cc and bcc of every
    personalization, and the top-level reply-to and headers' values."""
    found = []
    for personalization in mail.body.get("personalizations", []):
        for field in ("to", "cc", "bcc"):
            found += [who["email"] for who in personalization.get(field, [])]
    return found


@pytest.fixture(scope="module")
def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir = tmp_path_factory.mktemp("security")
    rules = data_dir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    env = {
        "NPSLOOP_SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "NPSLOOP_RULES_FILE": str(rules),
        "NPSLOOP_COMPANY_NAME": "Test Shop",
        "NPSLOOP_REVIEW_GOOGLE_URL": GOOGLE,
        "NPSLOOP_SEND_WINDOW": "00:00-24:00",
        "NPSLOOP_DELAY_PRODUCT_HOURS": "0",
    }
    with stack_with_fakes(kafka_bootstrap, data_dir, env) as (stack, slack, sendgrid):
        yield Running(stack, slack, sendgrid, set())


def a_response(run: str, **fields: Any) -> dict[str, Any]:
    return {"response_id": f"r-{run}", "customer_id": f"c-{run}", "score": 2, **fields}


# --- signatures on the real edge ---------------------------------------------------------------


def test_a_webhook_signed_with_another_key_stale_future_or_replayed_is_refused_unpublished(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    body = a_response(run, comment=f"Never published {run}")
    raw = json.dumps(body).encode()
    now = int(time.time())
    refusals = {
        "another key": (webhook_headers(OTHER_KEY, f"m1-{run}", raw), "does not match"),
        "stale": (webhook_headers(WEBHOOK_SECRET, f"m2-{run}", raw, now - 6 * 60), "stale"),
        "future": (webhook_headers(WEBHOOK_SECRET, f"m3-{run}", raw, now + 6 * 60), "stale"),
    }
    for what, (headers, reason) in refusals.items():
        status, text = running.post("/v1/responses", body, headers)
        assert status == 401 and reason in text, (what, status, text)

    # A genuine request, then the same one replayed: the second is refused even when the
    # replay is re-stamped with a fresh time (its old signature then no longer matches) or
    # re-signed with the same webhook-id (the id was seen).
    genuine = webhook_headers(WEBHOOK_SECRET, f"m4-{run}", raw)
    assert running.post("/v1/responses", body, genuine)[0] == 202
    restamped = {**genuine, "webhook-timestamp": str(now + 1)}
    status, text = running.post("/v1/responses", body, restamped)
    assert status == 401 and "does not match" in text
    status, text = running.post("/v1/responses", body, genuine)
    assert status == 401 and "already received" in text

    published = [value for value in running.records(topics.RESPONSES) if run.encode() in value]
    assert len(published) == 1, "only the genuine request reached the topic"


def _claim(response_id: str, user: str = "U0KIM") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "kim"},
        "container": {"channel_id": "C0CXALERTS", "message_ts": "1700000000.000001"},
        "actions": [
            {"action_id": "case_claim", "value": response_id, "action_ts": f"{time.time():.6f}"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_slack_click_replayed_is_one_step_and_after_five_minutes_is_refused(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    running.respond(**a_response(run, comment=f"Nobody called {run}"))
    running.alert_about(f"Nobody called {run}")

    body = _claim(f"r-{run}")
    headers = slack_request_headers(SLACK_SIGNING_SECRET, body)
    # Slack signs no nonce: within its five minutes a replay verifies, and must change
    # nothing (the same click is the same event, journaled once).
    assert running.click(body, headers)[0] == 200
    assert running.click(body, headers)[0] == 200
    # The same request replayed after its five minutes (stamped as it then would be).
    stale = slack_request_headers(SLACK_SIGNING_SECRET, body, int(time.time()) - 5 * 60 - 5)
    status, text = running.click(body, stale)
    assert status == 401 and "stale" in text
    # Re-stamped to look fresh, its signature no longer matches.
    restamped = {**stale, "X-Slack-Request-Timestamp": str(int(time.time()))}
    status, text = running.click(body, restamped)
    assert status == 401 and "does not match" in text
    # Another user's click, signed with a guessed secret.
    forged = slack_request_headers("a guess", _claim(f"r-{run}", user="U0EVE"))
    assert running.click(_claim(f"r-{run}", user="U0EVE"), forged)[0] == 401

    steps = [decode(CaseEvent, value) for value in running.records(topics.CASES)]
    mine = [step for step in steps if step.response_id == f"r-{run}"]
    claims = [step for step in mine if step.action == CaseAction.CLAIMED]
    assert len(claims) == 1 and claims[0].actor == "U0KIM"


# --- hostile text, as the real clients sent it -------------------------------------------------


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("blocks")
    if isinstance(blocks, str):  # slack-sdk may send them as a JSON string
        blocks = json.loads(blocks)
    return list(blocks or [])


def _mrkdwn(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node
        for value in node.values():
            yield from _mrkdwn(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mrkdwn(item)


def test_a_hostile_comment_reaches_slack_as_harmless_text(running: Running) -> None:
    run = uuid.uuid4().hex[:8]
    running.respond(**a_response(run, comment=f"{HOSTILE_COMMENT} {run}"))

    alert = running.alert_about(run).body
    sent = json.dumps({"text": alert["text"], "blocks": _blocks(alert)}, ensure_ascii=False)
    for danger in ("<!channel", "<!here", "<!subteam", "<@U0BOSS", "<http://evil", "<script"):
        assert danger not in sent, danger
    for inside in re.findall(r"<([^>]*)>", sent):
        assert OURS.match(inside), f"a link or mention npsloop did not make: <{inside}>"
    assert not re.search(r"@(channel|here|everyone)", sent, re.IGNORECASE)
    assert not re.search(r"https?://evil", sent, re.IGNORECASE)
    # Every mrkdwn text quoting the customer is verbatim: Slack parses nothing in it.
    quoting = [text for text in _mrkdwn(_blocks(alert)) if run in text["text"]]
    assert quoting and all(text.get("verbatim") is True for text in quoting)
    # And staff still read what the customer wrote.
    shown = html.unescape(quoting[0]["text"].replace("\u2060", ""))
    assert "<!channel> @here look: <http://evil.example|Your bank>" in shown


def test_hostile_text_is_escaped_in_every_email_sendgrid_received(running: Running) -> None:
    run = uuid.uuid4().hex[:8]
    customer = f"ann.{run}@example.com"
    running.respond(
        **a_response(
            run,
            comment=f"{HOSTILE_COMMENT} {run}",
            contact={"email": customer, "name": HOSTILE_NAME},
        )
    )
    promoter = f"bo.{run}@example.com"
    running.respond(
        **a_response(f"p{run}", score=10, contact={"email": promoter, "name": HOSTILE_NAME})
    )

    [follow_up] = running.mails_to(customer, 1)
    [review] = running.mails_to(promoter, 1)
    owner = [m for m in running.mails_to(OWNER, 1) if run in json.dumps(m.body)]
    assert owner, "the owner's email about the response"
    for mail in (follow_up, review, owner[0]):
        content = {part["type"]: part["value"] for part in mail.body["content"]}
        page = content["text/html"]
        for danger in ("<script", "<b>", "<!channel", "<http://evil"):
            assert danger not in page, (mail.body["subject"], danger)
        assert "&lt;script&gt;" in page
        # The plain text part is shown as text by mail clients: it keeps the words.
        assert "<script>" in content["text/plain"]
    assert html.escape(HOSTILE_NAME) in follow_up.body["content"][1]["value"]


# --- header injection -----------------------------------------------------------------------------

INJECTIONS = [
    ("name", "Ann\r\nBcc: evil@example.com"),
    ("name", "Ann\nBcc: evil@example.com"),
    ("name", "Ann\rBcc: evil@example.com"),
    ("name", "Ann\u2028Bcc: evil@example.com"),
    ("name", "Ann\u0085Bcc: evil@example.com"),
    ("email", "ann@example.com\r\nBcc: evil@example.com"),
    ("email", "ann@example.com\nBcc: evil@example.com"),
    ("email", "ann@example.com, evil@example.com"),
    ("email", "Ann <ann@example.com>"),
]


@pytest.mark.parametrize(("field", "value"), INJECTIONS)
def test_a_line_break_or_a_second_address_in_contact_is_refused_at_the_edge(
    running: Running, field: str, value: str
) -> None:
    run = uuid.uuid4().hex[:8]
    contact = {"email": f"ann.{run}@example.com", "name": "Ann", field: value}
    purchase = {
        "order_id": f"o-{run}",
        "customer_id": f"c-{run}",
        "amount": "10",
        "currency": "DKK",
        "contact": contact,
    }
    for path, body in (
        ("/v1/responses", a_response(run, score=10, contact=contact)),
        ("/v1/purchases", purchase),
    ):
        status, text = running.post(path, body)
        assert status == 422, (path, status, text)
        assert f"contact.{field}" in {detail["field"] for detail in json.loads(text)["detail"]}


def test_an_odd_but_single_line_name_reaches_sendgrid_as_one_recipient_and_no_header(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    customer = f"cy.{run}@example.com"
    name = "Cy: Bcc evil@example.com; Cc: evil@example.com %0d%0aBcc: evil@example.com"
    running.respond(**a_response(run, score=10, contact={"email": customer, "name": name}))

    [review] = running.mails_to(customer, 1)
    assert recipients(review) == [customer]
    [personalization] = review.body["personalizations"]
    assert personalization["to"] == [{"email": customer, "name": name}]
    assert set(personalization) <= {"to", "headers", "subject"}
    assert set(review.body.get("headers", {})) <= {"List-Unsubscribe", "List-Unsubscribe-Post"}
    assert "evil" not in json.dumps(review.body.get("headers", {}))
    assert "evil@example.com" not in {
        m for mail in running.sendgrid.received(MAIL) for m in recipients(mail)
    }


# --- logs and metrics ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,}")


def _decoded_tokens(text: str) -> str:
    """What base64 in a log decodes to: a signed link's payload, for instance."""
    found = []
    for token in _TOKEN.findall(text):
        try:
            found.append(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    return "\n".join(found)


def test_no_secret_and_no_customer_address_is_in_any_info_log_or_metric_label(
    running: Running,
) -> None:
    run = uuid.uuid4().hex[:8]
    # Traffic that emails customers: an invitation, a follow-up and a review request; and
    # refused and dead-lettered input that carries an address.
    invited = f"dee.{run}@example.com"
    running.addresses.add(invited)
    purchase = {
        "order_id": f"o-{run}",
        "customer_id": f"c-{run}",
        "amount": "10",
        "currency": "DKK",
        "contact": {"email": invited, "name": "Dee"},
    }
    assert running.post("/v1/purchases", purchase)[0] == 202
    passive, promoter = f"eve.{run}@example.com", f"fay.{run}@example.com"
    running.respond(**a_response(f"e{run}", score=7, contact={"email": passive}))
    running.respond(**a_response(f"f{run}", score=9, contact={"email": promoter, "name": "Fay"}))
    refused = f"gus.{run}@example.com"
    running.addresses.add(refused)
    status, _ = running.post("/v1/responses", a_response(run, score=11, contact={"email": refused}))
    assert status == 422
    produce(
        running.stack.bootstrap,
        running.stack.topic(topics.RESPONSES.name),
        f"c-{run}".encode(),
        json.dumps(a_response(f"h{run}", score="7", contact={"email": refused})).encode(),
    )
    for address in (invited, passive, promoter):
        assert running.mails_to(address, 1), address
    time.sleep(3.0)  # the dead letter logged, the counters moved

    secrets = {
        "webhook secret": WEBHOOK_SECRET,
        "webhook key": WEBHOOK_SECRET.removeprefix("whsec_"),
        "token secret": TOKEN_SECRET,
        "Slack token": SLACK_TEST_TOKEN,
        "SendGrid key": SENDGRID_KEY,
        "Slack signing secret": SLACK_SIGNING_SECRET,
    }
    where: dict[str, str] = {}
    for service in SERVICES:
        log = running.stack.log_path(service).read_text(errors="replace")
        assert "INFO" in log, f"{service} logs at info"
        where[f"{service}.log"] = log + "\n" + _decoded_tokens(log)
        status, metrics = http_get(running.stack.url(service) + "/metrics")
        assert status == 200
        labels = "\n".join(re.findall(r"\{([^}]*)\}", metrics))
        where[f"{service} /metrics labels"] = labels + "\n" + _decoded_tokens(labels)
    assert running.addresses >= {invited, passive, promoter, refused}
    leaks = [
        f"{what} in {place}"
        for place, text in where.items()
        for what, secret in {**secrets, **{a: a for a in running.addresses}}.items()
        if secret.lower() in text.lower()
    ]
    assert leaks == []
