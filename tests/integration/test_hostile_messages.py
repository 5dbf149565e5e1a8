"""Hostile messages straight onto the topics the workers consume (issue 7, point 3).

A seeded mix of malformed records (random bytes, tombstones, JSON nested too deep or not
an object, fields of the wrong type, a score of "7", -1, 11 or NaN, a 1 MiB comment,
unpaired surrogates, schema version 99) goes onto the six consumed topics. Every consumer
of a topic must dead-letter each one exactly once, with a reason naming what was wrong and
the original bytes (of a 1 MiB message, its beginning and its size), and go on: every
worker stays up and ready, and a valid response sent afterwards still reaches Slack.

The count is NPSLOOP_HOSTILE_MESSAGES (default 10,000).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared import topics
from shared.events import (
    CaseAction,
    CaseEvent,
    ClassifiedResponse,
    ContactPreference,
    DeadLetter,
    Invitation,
    InvitationStatus,
    Purchase,
    Response,
    decode,
)
from shared.nps import Category
from shared.settings import ServiceName
from shared.streams import DEAD_LETTER_MAX_VALUE_BYTES
from tests.fakes import FakeServer
from tests.kafka_helpers import collect, produce_many
from tests.stack import Stack, http_get, http_post, stack_with_fakes

pytestmark = pytest.mark.integration

MESSAGES = int(os.environ.get("NPSLOOP_HOSTILE_MESSAGES", "10000"))
HUGE_COMMENTS = 3
HUGE = 1024 * 1024
SEED = 7
DEAD_LETTER_TIMEOUT = 240.0
SETTLE_SECONDS = 3.0

# Who consumes what, as the agents subscribe (services/*/agents.py). The test fails if a
# service dead-letters a topic not listed here, or leaves one listed without its letters.
CONSUMERS: dict[topics.TopicSpec, tuple[ServiceName, ...]] = {
    topics.RESPONSES: ("classifier", "ingest"),
    topics.RESPONSES_CLASSIFIED: ("aggregator", "notifier"),
    topics.PURCHASES: ("aggregator", "ingest"),
    topics.INVITATIONS: ("aggregator", "classifier", "ingest", "notifier"),
    topics.CASES: ("aggregator", "notifier"),
    topics.CONTACT_PREFERENCES: ("ingest", "notifier"),
}

NOW = "2026-03-02T10:00:00+00:00"


def _valid(spec: topics.TopicSpec) -> dict[str, Any]:
    """A valid event of the topic, as JSON fields: each malformed message breaks one thing."""
    common: dict[str, Any] = {"event_id": uuid.uuid4(), "occurred_at": NOW}
    response = Response(
        **common,
        response_id="r-1",
        customer_id="c-1",
        score=3,
        comment="Late again",
        responded_at=NOW,
    )
    event: Any
    if spec is topics.RESPONSES:
        event = response
    elif spec is topics.RESPONSES_CLASSIFIED:
        event = ClassifiedResponse(**common, response=response, category=Category.DETRACTOR)
    elif spec is topics.PURCHASES:
        event = Purchase(**common, order_id="o-1", customer_id="c-1", amount="10", currency="DKK")
    elif spec is topics.INVITATIONS:
        event = Invitation(
            **common, invitation_id="i-1", customer_id="c-1", status=InvitationStatus.SENT
        )
    elif spec is topics.CASES:
        event = CaseEvent(**common, case_id="k-1", response_id="r-1", action=CaseAction.OPENED)
    else:
        event = ContactPreference(**common, customer_id="c-1", action="unsubscribed")
    fields: dict[str, Any] = json.loads(event.model_dump_json())
    return fields


def _scored(fields: dict[str, Any]) -> dict[str, Any]:
    """Where the score is: the event itself, or the response inside a classified one."""
    inner = fields.get("response")
    return inner if isinstance(inner, dict) else fields


def _a_text_field(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    scored = _scored(fields)
    for name in ("comment", "order_id", "invitation_id", "case_id", "customer_id"):
        if isinstance(scored.get(name), str):
            return scored, name
    raise AssertionError(f"no text field in {fields}")


@dataclass(frozen=True)
class Hostile:
    kind: str
    key: bytes | None
    value: bytes | None
    # The reason must contain one of these: it names what was wrong.
    names: tuple[str, ...]


def _dump(fields: object) -> bytes:
    # allow_nan: NaN as JSON's producers write it by mistake.
    return json.dumps(fields, allow_nan=True).encode()


def _hostile(spec: topics.TopicSpec, kind: str, rng: random.Random) -> Hostile:
    key = rng.choice([None, f"c-{rng.randrange(1000)}".encode(), rng.randbytes(8)])
    fields = _valid(spec)
    if kind == "random_bytes":
        # \xff never starts valid UTF-8, so this never parses as JSON by chance.
        return Hostile(kind, key, b"\xff" + rng.randbytes(rng.randrange(300)), ("Invalid JSON",))
    if kind == "no_value":
        # A tombstone: a key and no value (Kafka takes no record without either).
        return Hostile(kind, key or b"c-tombstone", None, ("no value",))
    if kind == "too_deep":
        return Hostile(kind, key, b"[" * rng.randrange(1_000, 20_000), ("Invalid JSON",))
    if kind == "not_an_object":
        value = rng.choice([[fields], "a string", 42, None, True])
        return Hostile(kind, key, _dump(value), ("should be an object",))
    if kind == "wrong_type":
        name = rng.choice(sorted(fields))
        # Nothing here coerces: text is no object or list, a list is no scalar or object.
        fields[name] = "not an object" if isinstance(fields[name], dict | list) else [1, 2]
        return Hostile(kind, key, _dump(fields), (name,))
    if kind.startswith("score_"):
        _scored(fields)["score"] = {
            "score_text": "7",
            "score_negative": -1,
            "score_eleven": 11,
            "score_nan": math.nan,
        }[kind]
        return Hostile(kind, key, _dump(fields), ("score",))
    if kind == "surrogate":
        holder, name = _a_text_field(fields)
        holder[name] = rng.choice(["\ud800", "late \udc00 again", "\udbff\udbff"])
        if rng.random() < 0.5:
            # As the escape \ud800: valid JSON syntax, but no character.
            return Hostile(kind, key, _dump(fields), ("surrogate",))
        # As raw bytes: UTF-8 has no encoding for a surrogate at all.
        raw = json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return Hostile(kind, key, raw, ("surrogate",))
    if kind == "schema_version":
        fields["schema_version"] = 99
        return Hostile(kind, key, _dump(fields), ("schema_version",))
    if kind == "huge_comment":
        _scored(fields)["comment"] = "Ø" * (HUGE // 2)  # 1 MiB of UTF-8
        value = json.dumps(fields, ensure_ascii=False).encode()
        return Hostile(kind, key, value, ("comment",))
    raise AssertionError(kind)


EVERY_TOPIC = ("random_bytes", "no_value", "too_deep", "not_an_object", "wrong_type")
EVERY_TOPIC += ("surrogate", "schema_version")
SCORES = ("score_text", "score_negative", "score_eleven", "score_nan")


def hostile_messages(count: int, seed: int = SEED) -> list[tuple[topics.TopicSpec, Hostile]]:
    """``count`` malformed messages spread over the consumed topics, the same for a seed."""
    rng = random.Random(seed)
    huge = min(HUGE_COMMENTS, count)
    made = [
        (spec, _hostile(spec, "huge_comment", rng))
        for spec in [topics.RESPONSES, topics.RESPONSES_CLASSIFIED, topics.RESPONSES][:huge]
    ]
    specs = list(CONSUMERS)
    while len(made) < count:
        spec = rng.choice(specs)
        has_score = spec in (topics.RESPONSES, topics.RESPONSES_CLASSIFIED)
        kind = rng.choice(EVERY_TOPIC + SCORES if has_score else EVERY_TOPIC)
        made.append((spec, _hostile(spec, kind, rng)))
    rng.shuffle(made)
    return made


def test_the_hostile_mix_is_refused_by_the_decoder_with_a_reason_naming_the_fault() -> None:
    """The generator itself, checked without a broker: each message is malformed for the
    decoder, and the reason names the fault (so the stack test checks the workers)."""
    for spec, hostile in hostile_messages(2_000, seed=SEED + 1):
        with pytest.raises(ValueError) as refused:
            decode(spec.value_type, hostile.value)
        assert any(name in str(refused.value) for name in hostile.names), (
            hostile.kind,
            str(refused.value),
        )


@pytest.fixture(scope="module")
def running(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, FakeServer, FakeServer]]:
    data_dir = tmp_path_factory.mktemp("hostile")
    with stack_with_fakes(kafka_bootstrap, data_dir) as running:
        yield running


def test_every_malformed_message_is_dead_lettered_once_per_consumer_and_no_worker_stops(
    running: tuple[Stack, FakeServer, FakeServer],
) -> None:
    stack, slack, _ = running
    messages = hostile_messages(MESSAGES)
    started = time.monotonic()
    landed = produce_many(
        stack.bootstrap,
        ((stack.topic(spec.name), h.key, h.value) for spec, h in messages),
    )
    produced = time.monotonic()
    expected: dict[tuple[str, str, int, int], Hostile] = {}
    for (spec, hostile), (topic, partition, offset) in zip(messages, landed, strict=True):
        for service in CONSUMERS[spec]:
            expected[(service, topic, partition, offset)] = hostile

    def still_running() -> None:
        for service, process in stack.processes.items():
            assert process.poll() is None, f"{service} stopped:\n{stack.tail(service)}"

    records = collect(
        stack.bootstrap,
        stack.topic(topics.DLQ.name),
        len(expected),
        timeout=DEAD_LETTER_TIMEOUT,
        # Anything arriving later would be a second letter for one message.
        settle=SETTLE_SECONDS,
        check=still_running,
    )
    dead_lettered = time.monotonic()
    letters = [decode(DeadLetter, value) for _, value in records]
    where = Counter((lt.service, lt.topic, lt.partition, lt.offset) for lt in letters)
    by_service = Counter(letter.service for letter in letters)
    by_kind = Counter(hostile.kind for _, hostile in messages)
    print(
        f"\n{len(messages)} malformed messages ({dict(sorted(by_kind.items()))}) produced in "
        f"{produced - started:.1f}s; {len(letters)} dead letters of {len(expected)} expected "
        f"({dict(sorted(by_service.items()))}) after {dead_lettered - started:.1f}s"
    )
    # Summed up by consumer, topic and kind: pytest's own diff of two sets of ~23,000
    # tuples would take minutes to draw.
    missing = Counter((w[0], w[1], expected[w].kind) for w in set(expected) - set(where))
    unexpected = Counter((w[0], w[1]) for w in set(where) - set(expected))
    short = {service for service, _, _ in missing} | {service for service, _ in unexpected}
    assert not missing and not unexpected, (
        f"missing {sum(missing.values())}: {missing.most_common(10)}; "
        f"unexpected {sum(unexpected.values())}: {unexpected.most_common(10)}\n"
        + "\n".join(f"{service}:\n{stack.tail(service, 80)}" for service in sorted(short))
    )
    assert [w for w, n in where.items() if n > 1] == []
    for letter in letters:
        hostile = expected[(letter.service, letter.topic, letter.partition, letter.offset)]
        assert letter.key == hostile.key, hostile.kind
        if hostile.value is not None and len(hostile.value) > DEAD_LETTER_MAX_VALUE_BYTES:
            # Too big to travel whole: its beginning and its size (all of it is on the topic).
            assert letter.value == hostile.value[:DEAD_LETTER_MAX_VALUE_BYTES]
            assert letter.value_size == len(hostile.value)
        else:
            assert letter.value == hostile.value, hostile.kind
        assert letter.error_type == "DecodeError", (hostile.kind, letter.error)
        assert any(name in letter.error for name in hostile.names), (hostile.kind, letter.error)

    still_running()
    for service in stack.processes:
        assert http_get(stack.url(service) + "/ready")[0] == 200, stack.tail(service)

    # And the pipeline still works: a detractor sent now still alerts staff.
    run = uuid.uuid4().hex[:8]
    body = {"response_id": f"after-{run}", "customer_id": f"c-{run}", "score": 1}
    body["comment"] = f"Still standing {run}"
    status, text, _ = http_post(stack.url("ingest") + "/v1/responses", json.dumps(body).encode())
    assert status == 202, text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        posted = slack.accepted("/api/chat.postMessage")
        if any(f"Still standing {run}" in json.dumps(p.body) for p in posted):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no alert for a valid response after the hostile messages")
