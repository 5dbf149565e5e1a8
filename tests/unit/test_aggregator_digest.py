"""The weekly digest: due on its schedule, built in words, published once per week."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import SqlReadModel
from services.aggregator.digest import DigestSchedule, build_digest, digest_id
from services.aggregator.domain import Period
from services.aggregator.loop_health import CaseStep
from services.aggregator.report import Facts, ReportingConfig
from services.aggregator.responses import ResponseFact
from services.aggregator.segments import SegmentBuckets, SegmentPolicy
from services.aggregator.service import DigestPublisher
from shared.events import CaseAction, Digest
from tests.unit.builders import a_fast_classified_response, run

ZONE = ZoneInfo("Europe/Copenhagen")
# Monday 9 March 2026, 09:00 in Copenhagen: last week is 2-9 March, the one before 23 Feb-2 March.
NOW = datetime(2026, 3, 9, 9, 0, tzinfo=ZONE)
LAST_WEEK = Period(datetime(2026, 3, 2, tzinfo=ZONE), datetime(2026, 3, 9, tzinfo=ZONE))
STORES = SegmentPolicy(dimensions=("store",), max_values=5)
CONFIG = ReportingConfig(zone=ZONE, policy=STORES)


def fact(score: int, index: int, days_before: float, store: str, **fields: object) -> ResponseFact:
    return ResponseFact.of(
        a_fast_classified_response(
            score,
            response_id=f"r-{days_before}-{index}-{score}-{store}",
            customer_id=f"c-{index}",
            responded_at=LAST_WEEK.end - timedelta(days=days_before),
            segment={"store": store},
            **fields,  # type: ignore[arg-type]
        )
    )


def a_week_of_facts() -> Facts:
    responses = []
    # The week before: Aarhus loved us, Odense so-so. Last week: Aarhus fell, Odense the same.
    for index in range(40):
        responses.append(fact(10, index, 10, "Aarhus"))
        responses.append(fact(10 if index % 2 else 0, index, 10, "Odense"))
        responses.append(fact(0, index, 3, "Aarhus", themes=("delivery",)))
        responses.append(fact(10 if index % 2 else 0, index, 3, "Odense", themes=("staff",)))
    opened = LAST_WEEK.start + timedelta(days=1)
    steps = (
        CaseStep("o", "case", "r", CaseAction.OPENED, opened, opened + timedelta(hours=24)),
        CaseStep("c", "case", "r", CaseAction.CONTACTED, opened + timedelta(hours=3)),
    )
    buckets = SegmentBuckets(STORES, {"store": ("Aarhus", "Odense")})
    return Facts(responses=tuple(responses), buckets=buckets, case_steps=steps)


def test_the_schedule_reads_a_weekday_and_a_local_time() -> None:
    assert DigestSchedule.parse("Monday 08:00") == DigestSchedule(0, time(8, 0))
    assert DigestSchedule.parse("friday 16:30") == DigestSchedule(4, time(16, 30))
    with pytest.raises(ValueError, match="weekday"):
        DigestSchedule.parse("Someday 08:00")


def test_the_digest_of_last_week_is_due_once_this_weeks_moment_has_passed() -> None:
    monday_eight = DigestSchedule(0, time(8, 0))
    assert monday_eight.due(datetime(2026, 3, 9, 7, 59, tzinfo=ZONE), ZONE) is None
    assert monday_eight.due(datetime(2026, 3, 9, 8, 0, tzinfo=ZONE), ZONE) == LAST_WEEK
    assert monday_eight.due(datetime(2026, 3, 15, 23, 0, tzinfo=ZONE), ZONE) == LAST_WEEK
    # 08:00 in Copenhagen is 07:00 UTC in winter: the zone decides, not UTC.
    assert monday_eight.due(datetime(2026, 3, 9, 7, 30, tzinfo=UTC), ZONE) == LAST_WEEK


def test_the_digest_says_the_change_in_words_the_movers_the_themes_and_the_loop() -> None:
    digest = build_digest(a_week_of_facts(), NOW, CONFIG)
    assert digest.title == "NPS weekly digest 2026-W10"
    assert (digest.period_start, digest.period_end) == (LAST_WEEK.start, LAST_WEEK.end)
    text = digest.text
    # Week before: 60 promoters, 20 detractors of 80 (+50); last week 20 and 60 (-50).
    assert "NPS in 2026-W10: -50 ± " in text and "on 80 responses" in text
    assert "(the week before: +50 ± " in text
    assert "Change: -100 points: a significant drop, more than chance would explain." in text
    assert "• store Aarhus: +100 → -100 (-200 points: a significant drop, more than " in text
    assert "• store Odense: +0 → +0 (+0 points: within the margin of error" in text
    assert "Top themes of promoters: Staff (100%)." in text
    assert "Top themes of detractors: Delivery (67%), Staff (33%)." in text
    assert "1 case opened; 1 of 1 contacted within SLA (100%); median time to contact 3.0 h" in text


def test_a_small_change_on_few_responses_is_called_chance() -> None:
    responses = (fact(10, 1, 10, "Aarhus"), fact(0, 1, 3, "Aarhus"))
    digest = build_digest(Facts(responses=responses), NOW, CONFIG)
    assert "too few responses to tell a change from chance" in digest.text
    assert "Fewer than 30 responses" in digest.text


def test_the_same_week_gives_the_same_digest_id() -> None:
    assert build_digest(Facts(), NOW, CONFIG).event_id == digest_id(LAST_WEEK)
    later = build_digest(Facts(), NOW + timedelta(days=2), CONFIG)
    assert later.event_id == digest_id(LAST_WEEK)
    assert digest_id(LAST_WEEK) != digest_id(Period(LAST_WEEK.end, LAST_WEEK.end))


def test_the_digest_is_published_once_per_week_even_across_a_restart(
    sessions: sessionmaker[Session],
) -> None:
    model = SqlReadModel(sessions, STORES, ZONE)
    for one in a_week_of_facts().responses[:8]:
        model.record_response(one)
    sent: list[Digest] = []

    async def send(digest: Digest) -> None:
        sent.append(digest)

    schedule = DigestSchedule(0, time(8, 0))
    first = DigestPublisher(model, CONFIG, schedule, send, lambda: NOW)
    assert run(first.publish_due()) is not None
    assert run(first.publish_due()) is None
    restarted = DigestPublisher(
        SqlReadModel(sessions, STORES, ZONE), CONFIG, schedule, send, lambda: NOW
    )
    assert run(restarted.publish_due()) is None
    assert [digest.event_id for digest in sent] == [digest_id(LAST_WEEK)]


def test_a_week_without_responses_publishes_nothing(sessions: sessionmaker[Session]) -> None:
    sent: list[Digest] = []

    async def send(digest: Digest) -> None:
        sent.append(digest)

    publisher = DigestPublisher(
        SqlReadModel(sessions, STORES, ZONE), CONFIG, DigestSchedule(0, time(8)), send, lambda: NOW
    )
    assert run(publisher.publish_due()) is None
    assert sent == []


def test_a_digest_that_could_not_be_sent_is_tried_again(sessions: sessionmaker[Session]) -> None:
    model = SqlReadModel(sessions, STORES, ZONE)
    model.record_response(a_week_of_facts().responses[2])
    attempts: list[Digest] = []

    async def broker_away(digest: Digest) -> None:
        attempts.append(digest)
        if len(attempts) == 1:
            raise ConnectionError("broker away")

    publisher = DigestPublisher(model, CONFIG, DigestSchedule(0, time(8)), broker_away, lambda: NOW)
    with pytest.raises(ConnectionError):
        run(publisher.publish_due())
    assert run(publisher.publish_due()) is not None
    assert run(publisher.publish_due()) is None
    assert len(attempts) == 2 and attempts[0].event_id == attempts[1].event_id
