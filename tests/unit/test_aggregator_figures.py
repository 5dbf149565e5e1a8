"""Each response counted once, by id, in the figures of every window and segment."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.domain import ROLLING_7D, ROLLING_30D, Period, Rules
from services.aggregator.figures import WHOLE, SegmentKey, segment_figures
from services.aggregator.responses import ResponseFact, ResponseLedger
from services.aggregator.segments import OTHER, UNSPECIFIED, SegmentBuckets, SegmentPolicy
from shared.events import ClassifiedResponse, SurveyKind
from shared.nps import Counts
from tests.unit.builders import a_fast_classified_response

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
NPS, ENPS = SurveyKind.NPS, SurveyKind.ENPS
STORES = SegmentPolicy(dimensions=("store",), max_values=2)


def fact(score: int, **fields: object) -> ResponseFact:
    fields.setdefault("responded_at", NOW - timedelta(days=1))
    return ResponseFact.of(a_fast_classified_response(score, **fields))  # type: ignore[arg-type]


def ledger_of(events: Iterable[ClassifiedResponse]) -> ResponseLedger:
    ledger = ResponseLedger()
    for event in events:
        ledger.record(ResponseFact.of(event))
    return ledger


def counts_of(figures: list, key: SegmentKey = WHOLE) -> Counts | None:  # type: ignore[type-arg]
    for row in figures:
        if row.segment == key:
            return row.trend.current.counts  # type: ignore[no-any-return]
    return None


# --- the ledger -----------------------------------------------------------------------------


def test_the_same_response_delivered_twice_is_kept_once() -> None:
    event = a_fast_classified_response(10, response_id="r-1")
    ledger = ResponseLedger()
    assert ledger.record(ResponseFact.of(event))
    assert not ledger.record(ResponseFact.of(event))
    assert len(ledger) == 1


def test_a_later_version_of_a_response_replaces_the_earlier() -> None:
    ledger = ResponseLedger()
    ledger.record(fact(3, response_id="r-1", received_at=NOW - timedelta(hours=2)))
    ledger.record(fact(9, response_id="r-1", received_at=NOW - timedelta(hours=1)))
    kept = ledger.get("r-1")
    assert kept is not None and kept.score == 9


def test_an_earlier_version_arriving_late_does_not_undo_the_later() -> None:
    ledger = ResponseLedger()
    ledger.record(fact(9, response_id="r-1", received_at=NOW - timedelta(hours=1)))
    assert not ledger.record(fact(3, response_id="r-1", received_at=NOW - timedelta(hours=2)))
    kept = ledger.get("r-1")
    assert kept is not None and kept.score == 9


def test_a_fact_carries_what_the_figures_cut_by() -> None:
    kept = fact(
        8,
        segment={"store": "Aarhus", "region": "Midt"},
        heard_from="recommendation",
        themes=("delivery", "price", "delivery"),
        invitation_id="inv-1",
    )
    assert kept.segment == {"store": "Aarhus", "region": "Midt"}
    assert kept.heard_from == "recommendation"
    assert [theme.id for theme in kept.themes] == ["delivery", "price"]
    assert kept.invitation_id == "inv-1"


def test_each_customers_category_is_that_of_their_latest_response() -> None:
    ledger = ResponseLedger(
        [
            fact(2, response_id="a", customer_id="c", responded_at=NOW - timedelta(days=40)),
            fact(10, response_id="b", customer_id="c", responded_at=NOW - timedelta(days=4)),
            fact(7, response_id="e", customer_id="c", survey_kind=ENPS),
        ]
    )
    assert ledger.latest_by_customer() == {"c": "promoter"}


# --- figures per window and segment ---------------------------------------------------------


def test_the_whole_and_every_bucket_are_counted_in_the_window() -> None:
    facts = [
        fact(10, response_id="1", segment={"store": "Aarhus"}),
        fact(9, response_id="2", segment={"store": "Odense"}),
        fact(2, response_id="3", segment={"store": "Aalborg"}),
        fact(8, response_id="4"),
        fact(0, response_id="old", responded_at=NOW - timedelta(days=31)),
    ]
    buckets = SegmentBuckets(STORES, {"store": ("Aarhus", "Odense")})
    figures = segment_figures(facts, buckets, ROLLING_30D, NOW, NPS)
    assert [row.segment.bucket for row in figures] == [
        "all",
        "Aarhus",
        "Odense",
        OTHER,
        UNSPECIFIED,
    ]
    assert counts_of(figures) == Counts(2, 1, 1)
    assert counts_of(figures, SegmentKey("store", OTHER)) == Counts(detractors=1)
    assert counts_of(figures, SegmentKey("store", UNSPECIFIED)) == Counts(passives=1)


def test_each_segment_is_compared_with_its_previous_period() -> None:
    facts = [
        fact(10, response_id="now", responded_at=NOW - timedelta(days=1)),
        fact(1, response_id="before", responded_at=NOW - timedelta(days=8)),
        fact(1, response_id="long-before", responded_at=NOW - timedelta(days=15)),
    ]
    (whole,) = segment_figures(
        facts, SegmentBuckets(SegmentPolicy(dimensions=())), ROLLING_7D, NOW, NPS
    )
    assert whole.trend.current.counts == Counts(promoters=1)
    assert whole.trend.previous is not None
    assert whole.trend.previous.counts == Counts(detractors=1)
    assert whole.trend.change is not None and whole.trend.change.delta == 200.0
    # One response each: far too few to call it a change.
    assert not whole.trend.significant


def test_a_segment_seen_only_last_period_is_listed_at_zero_now() -> None:
    facts = [
        fact(10, response_id="x", segment={"store": "Aarhus"}, responded_at=NOW - timedelta(days=9))
    ]
    buckets = SegmentBuckets(STORES, {"store": ("Aarhus",)})
    figures = segment_figures(facts, buckets, ROLLING_7D, NOW, NPS)
    assert counts_of(figures, SegmentKey("store", "Aarhus")) == Counts()


def test_nps_and_enps_are_reported_apart() -> None:
    facts = [fact(10, response_id="c"), fact(0, response_id="e", survey_kind=ENPS)]
    buckets = SegmentBuckets(SegmentPolicy(dimensions=()))
    nps_figures = segment_figures(facts, buckets, ROLLING_30D, NOW, NPS)
    assert counts_of(nps_figures) == Counts(promoters=1)


def test_enps_of_fewer_than_five_people_is_never_shown() -> None:
    facts = [fact(9, response_id=f"e-{i}", survey_kind=ENPS) for i in range(4)]
    assert segment_figures(facts, SegmentBuckets(), ROLLING_30D, NOW, ENPS) == []


def test_a_small_enps_department_is_folded_into_other_with_the_next_smallest() -> None:
    departments = {"Sales": 7, "IT": 5, "HR": 2}
    facts = [
        fact(9, response_id=f"{name}-{i}", survey_kind=ENPS, segment={"department": name})
        for name, size in departments.items()
        for i in range(size)
    ]
    buckets = SegmentBuckets(
        SegmentPolicy(dimensions=("department",)), {"department": tuple(departments)}
    )
    figures = segment_figures(facts, buckets, ROLLING_30D, NOW, ENPS)
    shown = {row.segment.bucket: row.trend.current.counts.n for row in figures}
    assert shown == {"all": 14, "Sales": 7, OTHER: 7}
    # Last period had nobody: its figures are withheld, not shown as zero.
    assert all(row.trend.previous is None for row in figures)


def test_the_k_for_enps_is_configurable() -> None:
    facts = [fact(9, response_id=f"e-{i}", survey_kind=ENPS) for i in range(3)]
    figures = segment_figures(
        facts,
        SegmentBuckets(SegmentPolicy(dimensions=())),
        ROLLING_30D,
        NOW,
        ENPS,
        Rules(enps_min_group=3),
    )
    assert counts_of(figures) == Counts(promoters=3)


# --- exactly once, in any order -------------------------------------------------------------


def ground_truth(
    events: Iterable[ClassifiedResponse], admitted: dict[str, tuple[str, ...]], period: Period
) -> dict[SegmentKey, Counts]:
    """The NPS counts worked out the plain way, independently of the ledger and figures.

    Per response id the version with the latest (occurred_at, event id) stands; it is
    counted by its score (9-10 promoter, 7-8 passive, else detractor) in the whole and
    in its store's bucket.
    """
    latest: dict[str, ClassifiedResponse] = {}
    for event in events:
        rid = event.response.response_id
        if rid not in latest or (event.occurred_at, str(event.event_id)) > (
            latest[rid].occurred_at,
            str(latest[rid].event_id),
        ):
            latest[rid] = event
    tallies: dict[SegmentKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for event in latest.values():
        response = event.response
        if not period.start <= response.responded_at < period.end:
            continue
        column = 0 if response.score >= 9 else 1 if response.score >= 7 else 2
        store = response.segment.store
        if store is None:
            bucket = "unspecified"
        elif store in admitted["store"]:
            bucket = store
        else:
            bucket = "other"
        for key in (SegmentKey("all", "all"), SegmentKey("store", bucket)):
            tallies[key][column] += 1
    return {key: Counts(*tally) for key, tally in tallies.items()}


response_versions = st.lists(
    st.builds(
        lambda rid, score, day, received, store, event: a_fast_classified_response(
            score,
            response_id=f"r-{rid}",
            responded_at=NOW - timedelta(days=day, minutes=1),
            received_at=NOW - timedelta(days=40) + timedelta(hours=received),
            segment={} if store is None else {"store": store},
            event_id=uuid.UUID(int=event),
        ),
        rid=st.integers(0, 6),
        score=st.integers(0, 10),
        day=st.integers(0, 35),
        received=st.integers(
            0, 3
        ),  # few distinct times, so versions tie on time and event id decides
        store=st.sampled_from([None, "Aarhus", "Odense", "Aalborg"]),
        event=st.integers(0, 2**32),
    ),
    max_size=25,
    # One event id is one event: two versions never share it.
    unique_by=lambda event: event.event_id,
)


@settings(database=None, max_examples=200)
@given(versions=response_versions, data=st.data())
def test_any_order_with_any_repeats_gives_the_figures_of_the_ground_truth(
    versions: list[ClassifiedResponse], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(versions), max_size=10)) if versions else []
    delivered = data.draw(st.permutations([*versions, *repeats]))
    admitted = {"store": ("Aarhus", "Odense")}
    buckets = SegmentBuckets(STORES, admitted)

    figures = segment_figures(ledger_of(delivered), buckets, ROLLING_30D, NOW, NPS)

    truth = ground_truth(versions, admitted, ROLLING_30D.period(NOW))
    assert {row.segment: row.trend.current.counts for row in figures} == {
        key: truth.get(key, Counts()) for key in {row.segment for row in figures}
    }
    assert {key for key, counts in truth.items() if counts.n} <= {row.segment for row in figures}
    # And the whole report, previous periods included, is the one of the versions in order.
    assert figures == segment_figures(ledger_of(versions), buckets, ROLLING_30D, NOW, NPS)
