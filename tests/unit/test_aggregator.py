"""The aggregator's read model, its refresh and the gauges: each fact once, by its id."""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from services.aggregator.adapters import SqlReadModel
from services.aggregator.bootstrap import reporting_config
from services.aggregator.domain import Rules
from services.aggregator.loop_health import CaseStep
from services.aggregator.metrics import AggregatorGauges
from services.aggregator.money import PurchaseFact, read_purchase
from services.aggregator.queries import load_facts
from services.aggregator.report import ReportingConfig, build_report, since
from services.aggregator.responses import InvitationFact, ResponseFact, ResponseLedger
from services.aggregator.segments import SegmentPolicy
from services.aggregator.service import Refresher, RefreshPace
from shared.db import make_engine, migrate, session_factory
from shared.events import CaseAction, DecodeError, PurchaseKind, SurveyKind
from shared.nps import Counts
from shared.settings import Settings
from tests.unit.builders import a_fast_classified_response

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Copenhagen")
NPS, ENPS = SurveyKind.NPS, SurveyKind.ENPS
STORES = SegmentPolicy(dimensions=("store",), max_values=2)
CONFIG = ReportingConfig(zone=ZONE, policy=STORES)


def fact(score: int, **fields: object) -> ResponseFact:
    fields.setdefault("responded_at", NOW - timedelta(days=1))
    return ResponseFact.of(a_fast_classified_response(score, **fields))  # type: ignore[arg-type]


@pytest.fixture
def read_model(sessions: sessionmaker[Session]) -> SqlReadModel:
    return SqlReadModel(sessions, STORES, ZONE)


def whole_day(read_model: SqlReadModel, day: date, kind: SurveyKind = NPS) -> Counts:
    return read_model.snapshots(kind, "all", day).get("all", {}).get(day, Counts())


def yesterday() -> date:
    return (NOW - timedelta(days=1)).astimezone(ZONE).date()


# --- settings -------------------------------------------------------------------------------


def test_the_reporting_settings_default_as_the_issue_says() -> None:
    settings = Settings()
    config = reporting_config(settings)
    assert config.zone == ZoneInfo("Europe/Copenhagen")
    assert config.policy == SegmentPolicy()
    assert config.policy.max_values == 20
    assert config.rules == Rules(min_sample=30, enps_min_group=5)
    assert config.currency == "DKK"
    assert config.recommendation == {"recommendation"}
    assert settings.digest_schedule == "Monday 08:00"
    assert Settings(reporting_timezone="Europe/Oslo").reporting_zone == ZoneInfo("Europe/Oslo")
    assert Settings(default_timezone="Europe/Oslo").reporting_zone == ZoneInfo("Europe/Oslo")


def test_a_dimension_outside_the_segment_allow_list_stops_the_worker() -> None:
    with pytest.raises(SystemExit, match="colour"):
        reporting_config(Settings(segment_dimensions=["store", "colour"]))


# --- responses: once by id, the latest version wins ------------------------------------------


def test_the_same_response_delivered_twice_is_kept_and_counted_once(
    read_model: SqlReadModel,
) -> None:
    once = fact(10, response_id="r-1")
    assert read_model.record_response(once)
    assert not read_model.record_response(once)
    assert [kept.response_id for kept in read_model.responses(since(NOW))] == ["r-1"]
    assert whole_day(read_model, yesterday()) == Counts(promoters=1)


def test_a_later_version_replaces_the_earlier_in_the_row_and_the_snapshot(
    read_model: SqlReadModel,
) -> None:
    read_model.record_response(fact(3, response_id="r-1", received_at=NOW - timedelta(hours=2)))
    read_model.record_response(fact(9, response_id="r-1", received_at=NOW - timedelta(hours=1)))
    assert [kept.score for kept in read_model.responses(since(NOW))] == [9]
    assert whole_day(read_model, yesterday()) == Counts(promoters=1)
    store = read_model.snapshots(NPS, "store", yesterday())
    assert store == {"unspecified": {yesterday(): Counts(promoters=1)}}


def test_an_earlier_version_arriving_late_changes_nothing(read_model: SqlReadModel) -> None:
    assert read_model.record_response(
        fact(9, response_id="r-1", received_at=NOW - timedelta(hours=1))
    )
    assert not read_model.record_response(
        fact(3, response_id="r-1", received_at=NOW - timedelta(hours=2))
    )
    assert [kept.score for kept in read_model.responses(since(NOW))] == [9]
    assert whole_day(read_model, yesterday()) == Counts(promoters=1)


def test_an_update_that_moves_the_response_to_another_day_moves_its_snapshot(
    read_model: SqlReadModel,
) -> None:
    first, second = NOW - timedelta(days=3), NOW - timedelta(days=1)
    read_model.record_response(
        fact(2, response_id="r-1", responded_at=first, received_at=NOW - timedelta(hours=2))
    )
    read_model.record_response(
        fact(2, response_id="r-1", responded_at=second, received_at=NOW - timedelta(hours=1))
    )
    assert whole_day(read_model, first.astimezone(ZONE).date()) == Counts()
    assert whole_day(read_model, second.astimezone(ZONE).date()) == Counts(detractors=1)


def test_any_order_with_repeats_keeps_what_the_ledger_keeps(tmp_path: Path) -> None:
    versions = [
        fact(
            score,
            response_id=f"r-{index % 7}",
            received_at=NOW - timedelta(minutes=index),
            segment={"store": f"S{index % 3}"},
        )
        for index, score in enumerate([0, 3, 6, 7, 8, 9, 10] * 4)
    ]
    expected = ResponseLedger(versions)
    for seed in range(3):
        shuffled = [*versions, *versions[:5]]
        random.Random(seed).shuffle(shuffled)
        url = f"sqlite:///{tmp_path / f'order-{seed}.sqlite3'}"
        migrate(url)
        engine = make_engine(url)
        model = SqlReadModel(session_factory(engine), STORES, ZONE)
        for version in shuffled:
            model.record_response(version)
        kept = {f.response_id: (f.score, f.event_id) for f in model.responses(since(NOW))}
        assert kept == {f.response_id: (f.score, f.event_id) for f in expected}
        assert whole_day(model, yesterday()) == Counts.tally(f.category for f in expected)
        engine.dispose()


# --- segments -------------------------------------------------------------------------------


def test_admitted_buckets_survive_a_restart_in_their_order(
    sessions: sessionmaker[Session],
) -> None:
    before = SqlReadModel(sessions, STORES, ZONE)
    for index, store in enumerate(["Odense", "Aarhus", "Aalborg"]):
        before.record_response(fact(9, response_id=f"r-{index}", segment={"store": store}))
    restarted = SqlReadModel(sessions, STORES, ZONE)
    assert restarted.buckets().admitted["store"] == ("Odense", "Aarhus")
    restarted.record_response(fact(9, response_id="r-9", segment={"store": "Vejle"}))
    assert restarted.buckets().admitted["store"] == ("Odense", "Aarhus")


def test_two_workers_admit_the_same_values_and_count_a_value_in_the_same_bucket(
    sessions: sessionmaker[Session],
) -> None:
    first, second = SqlReadModel(sessions, STORES, ZONE), SqlReadModel(sessions, STORES, ZONE)
    first.record_response(fact(9, response_id="r-1", segment={"store": "Aarhus"}))
    second.record_response(fact(9, response_id="r-2", segment={"store": "Odense"}))
    # The first still remembers one store of two; the stored buckets are full.
    first.record_response(fact(9, response_id="r-3", segment={"store": "Vejle"}))
    second.record_response(fact(9, response_id="r-4", segment={"store": "Vejle"}))
    assert first.buckets().admitted["store"] == ("Aarhus", "Odense")
    by_store = first.snapshots(NPS, "store", yesterday())
    counts = {segment: days[yesterday()].promoters for segment, days in by_store.items()}
    assert counts == {"Aarhus": 1, "Odense": 1, "other": 2}


def test_a_response_for_an_unknown_segment_value_is_counted_in_other_not_dropped(
    read_model: SqlReadModel,
) -> None:
    for index, store in enumerate(["Odense", "Aarhus", "Never-seen-before"]):
        read_model.record_response(fact(2, response_id=f"r-{index}", segment={"store": store}))
    registry = CollectorRegistry()
    Refresher(read_model, AggregatorGauges(registry, CONFIG), CONFIG, lambda: NOW).refresh()
    labels = {"survey_kind": "nps", "window": "7d", "dimension": "store"}
    assert (
        sample(registry, "npsloop_responses", **labels, segment="other", category="detractor") == 1
    )
    assert (
        sample(registry, "npsloop_responses", **labels, segment="Odense", category="detractor") == 1
    )
    whole = {"survey_kind": "nps", "window": "7d", "dimension": "all", "segment": "all"}
    assert sample(registry, "npsloop_responses", **whole, category="detractor") == 3
    assert read_model.snapshots(NPS, "store", yesterday())["other"] == {
        yesterday(): Counts(detractors=1)
    }


# --- history beyond the windows --------------------------------------------------------------


def test_a_response_older_than_the_longest_window_updates_only_the_snapshots(
    read_model: SqlReadModel,
) -> None:
    long_ago = NOW - timedelta(days=400)
    old = fact(0, response_id="old", responded_at=long_ago)
    read_model.record_response(old)
    read_model.record_response(old)
    read_model.record_response(fact(10, response_id="new"))
    assert whole_day(read_model, long_ago.astimezone(ZONE).date()) == Counts(detractors=1)
    report = build_report(load_facts(read_model, NOW), NOW, CONFIG)
    wholes = {row.window: row.trend for row in report.figures if row.segment.dimension == "all"}
    assert wholes["90d"].current.counts == Counts(promoters=1)
    assert wholes["90d"].previous is not None and wholes["90d"].previous.counts == Counts()


# --- invitations, purchases, cases ------------------------------------------------------------


def test_an_invitation_said_sent_twice_is_kept_at_its_first_time(read_model: SqlReadModel) -> None:
    later = InvitationFact("i-1", "c", NPS, NOW - timedelta(days=1))
    earlier = InvitationFact("i-1", "c", NPS, NOW - timedelta(days=2))
    assert read_model.record_invitation(later)
    assert read_model.record_invitation(earlier)
    assert not read_model.record_invitation(later)
    assert [f.sent_at for f in read_model.invitations(since(NOW))] == [earlier.sent_at]


def test_a_purchase_and_a_case_event_are_kept_once_by_event_id(read_model: SqlReadModel) -> None:
    purchase = PurchaseFact("e-1", "c", "o-1", Decimal("499.50"), "DKK", NOW)
    assert read_model.record_purchase(purchase)
    assert not read_model.record_purchase(purchase)
    assert read_model.purchases(NOW - timedelta(days=1)) == [purchase]
    step = CaseStep("s-1", "case-1", "r-1", CaseAction.OPENED, NOW, NOW + timedelta(hours=24))
    assert read_model.record_case_step(step)
    assert not read_model.record_case_step(step)
    assert read_model.case_steps() == [step]


def test_a_negative_amount_is_a_refund_that_reduces_revenue(read_model: SqlReadModel) -> None:
    def event(amount: object) -> bytes:
        return json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": (NOW - timedelta(days=3)).isoformat(),
                "order_id": "o-1",
                "customer_id": "c-1",
                "amount": amount,
                "currency": "DKK",
            }
        ).encode()

    refund = read_purchase(event(-30))
    assert refund.kind == PurchaseKind.REFUND and refund.amount == Decimal(30)
    read_model.record_purchase(PurchaseFact.of(read_purchase(event("100.00"))))
    read_model.record_purchase(PurchaseFact.of(refund))
    read_model.record_response(fact(10, response_id="r-1", customer_id="c-1"))
    registry = CollectorRegistry()
    Refresher(read_model, AggregatorGauges(registry, CONFIG), CONFIG, lambda: NOW).refresh()
    assert (
        sample(registry, "npsloop_revenue_per_customer", category="promoter", currency="DKK") == 70
    )


@pytest.mark.parametrize("value", [b"[" * 50_000, b'{"amount": ' * 50_000, b"\xff"])
def test_a_purchase_that_is_no_json_is_refused_with_the_decoders_reason(value: bytes) -> None:
    with pytest.raises(DecodeError, match="Invalid JSON"):
        read_purchase(value)


def test_the_latest_category_of_each_customer_is_the_ledgers(read_model: SqlReadModel) -> None:
    facts = [
        fact(2, response_id="a", customer_id="c", responded_at=NOW - timedelta(days=400)),
        fact(10, response_id="b", customer_id="c", responded_at=NOW - timedelta(days=4)),
        fact(7, response_id="d", customer_id="e", responded_at=NOW - timedelta(days=4)),
        fact(0, response_id="z", customer_id="e", responded_at=NOW - timedelta(days=4)),
        fact(1, response_id="x", customer_id="c", survey_kind=ENPS),
    ]
    for one in facts:
        read_model.record_response(one)
    assert read_model.latest_categories() == ResponseLedger(facts).latest_by_customer()


# --- the gauges -------------------------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


CUT_FAMILIES = (
    "npsloop_nps",
    "npsloop_nps_standard_error",
    "npsloop_nps_margin_of_error",
    "npsloop_nps_insufficient_sample",
    "npsloop_nps_change",
    "npsloop_nps_change_significant",
)
WINDOWS = ("1h", "24h", "7d", "30d", "90d", "week", "last_week")


def test_every_series_exists_with_its_labels_before_the_first_response() -> None:
    registry = CollectorRegistry()
    AggregatorGauges(registry, CONFIG)
    for kind in ("nps", "enps"):
        for window in WINDOWS:
            for dimension, segment in (
                ("all", "all"),
                ("store", "other"),
                ("store", "unspecified"),
            ):
                cut = {"survey_kind": kind, "window": window, "dimension": dimension}
                for name in CUT_FAMILIES:
                    assert sample(registry, name, **cut, segment=segment) is not None, name
                for category in ("promoter", "passive", "detractor"):
                    assert (
                        sample(
                            registry, "npsloop_responses", **cut, segment=segment, category=category
                        )
                        is not None
                    )
            assert (
                sample(registry, "npsloop_response_rate_ratio", survey_kind=kind, window=window)
                is not None
            )
    for window in WINDOWS:
        assert sample(registry, "npsloop_recommendation_share_ratio", window=window) is not None
        for source in ("recommendation", "google", "unanswered"):
            assert (
                sample(registry, "npsloop_nps_by_source", window=window, source=source) is not None
            )
        assert (
            sample(registry, "npsloop_loop_contacted_within_sla_ratio", window=window) is not None
        )
        for step in ("claim", "contact", "resolve"):
            for quantile in ("0.5", "0.95"):
                assert (
                    sample(
                        registry,
                        "npsloop_loop_duration_seconds",
                        window=window,
                        step=step,
                        quantile=quantile,
                    )
                    is not None
                )
    for state in ("open", "breached"):
        assert sample(registry, "npsloop_loop_cases", state=state) == 0
    for category in ("promoter", "passive", "detractor"):
        assert (
            sample(registry, "npsloop_revenue_per_customer", category=category, currency="DKK")
            is not None
        )
    for quadrant in ("fans", "habit", "shoppers", "last_chance"):
        assert sample(registry, "npsloop_loyalty_customers", quadrant=quadrant) == 0
        assert sample(registry, "npsloop_loyalty_revenue", quadrant=quadrant, currency="DKK") == 0
    whole = {"survey_kind": "nps", "window": "30d", "dimension": "all", "segment": "all"}
    nps = sample(registry, "npsloop_nps", **whole)
    assert nps is not None and math.isnan(nps)
    assert sample(registry, "npsloop_responses", **whole, category="promoter") == 0


def test_the_gauges_show_the_figures_the_change_and_its_significance(
    read_model: SqlReadModel,
) -> None:
    # 40 promoters this week against 40 detractors the week before: a significant rise.
    for index in range(40):
        read_model.record_response(fact(10, response_id=f"now-{index}"))
        read_model.record_response(
            fact(0, response_id=f"then-{index}", responded_at=NOW - timedelta(days=8))
        )
    registry = CollectorRegistry()
    Refresher(read_model, AggregatorGauges(registry, CONFIG), CONFIG, lambda: NOW).refresh()
    whole = {"survey_kind": "nps", "dimension": "all", "segment": "all"}
    assert sample(registry, "npsloop_nps", **whole, window="7d") == 100
    assert sample(registry, "npsloop_nps_change", **whole, window="7d") == 200
    assert sample(registry, "npsloop_nps_change_significant", **whole, window="7d") == 1
    assert sample(registry, "npsloop_nps_insufficient_sample", **whole, window="7d") == 0
    # The hour has nothing, and nothing before it: no change, not significant.
    change = sample(registry, "npsloop_nps_change", **whole, window="1h")
    assert change is not None and math.isnan(change)
    assert sample(registry, "npsloop_nps_change_significant", **whole, window="1h") == 0
    assert sample(registry, "npsloop_nps_insufficient_sample", **whole, window="1h") == 1


def test_an_enps_group_under_k_is_never_shown_alone(read_model: SqlReadModel) -> None:
    stores = ["Odense"] * 6 + ["Aarhus"] * 2 + ["Vejle"] * 2 + [None]
    for index, store in enumerate(stores):
        segment = {"store": store} if store else {}
        read_model.record_response(
            fact(2, response_id=f"e-{index}", survey_kind=ENPS, segment=segment)
        )
    registry = CollectorRegistry()
    Refresher(read_model, AggregatorGauges(registry, CONFIG), CONFIG, lambda: NOW).refresh()
    cut = {"survey_kind": "enps", "window": "7d", "dimension": "store"}
    assert sample(registry, "npsloop_responses", **cut, segment="Odense", category="detractor") == 6
    # Aarhus (2) and unspecified (1) are under k=5: they are shown only as part of other.
    aarhus = sample(registry, "npsloop_responses", **cut, segment="Aarhus", category="detractor")
    assert aarhus is not None and math.isnan(aarhus)
    unspecified = sample(registry, "npsloop_nps", **cut, segment="unspecified")
    assert unspecified is not None and math.isnan(unspecified)
    other = sample(registry, "npsloop_responses", **cut, segment="other", category="detractor")
    assert other == 5


def test_loop_health_money_and_themes_reach_their_gauges(read_model: SqlReadModel) -> None:
    opened = NOW - timedelta(days=2)
    for step in (
        CaseStep("o", "case-1", "r-1", CaseAction.OPENED, opened, opened + timedelta(hours=24)),
        CaseStep("c", "case-1", "r-1", CaseAction.CONTACTED, opened + timedelta(hours=2)),
        CaseStep("r", "case-1", "r-1", CaseAction.RESOLVED, opened + timedelta(hours=3)),
        CaseStep("o2", "case-2", "r-2", CaseAction.OPENED, opened, opened + timedelta(hours=1)),
    ):
        read_model.record_case_step(step)
    read_model.record_response(fact(10, response_id="r-3", themes=("staff",), customer_id="c-9"))
    read_model.record_purchase(
        PurchaseFact("p", "c-9", "o", Decimal(250), "DKK", NOW - timedelta(days=1))
    )
    registry = CollectorRegistry()
    Refresher(read_model, AggregatorGauges(registry, CONFIG), CONFIG, lambda: NOW).refresh()
    assert sample(registry, "npsloop_loop_contacted_within_sla_ratio", window="7d") == 0.5
    assert (
        sample(
            registry, "npsloop_loop_duration_seconds", window="7d", step="contact", quantile="0.5"
        )
        == 7200
    )
    assert sample(registry, "npsloop_loop_cases", state="open") == 1
    assert sample(registry, "npsloop_loop_cases", state="breached") == 1
    assert sample(registry, "npsloop_loyalty_customers", quadrant="habit") == 1
    assert sample(registry, "npsloop_loyalty_revenue", quadrant="habit", currency="DKK") == 250
    assert (
        sample(registry, "npsloop_theme_responses", window="7d", category="promoter", theme="staff")
        == 1
    )


def test_refreshes_start_every_interval_while_they_take_under_a_quarter_of_it() -> None:
    pace = RefreshPace(interval=2.0)
    assert pace.wait_after(0.2) == pytest.approx(1.8)
    assert pace.wait_after(0.5) == pytest.approx(1.5)


def test_a_slow_refresh_is_spaced_to_take_a_quarter_of_the_workers_time() -> None:
    """20,000 responses took 3.6 s to refresh: every 2 s, refreshing would never stop."""
    pace = RefreshPace(interval=2.0)
    assert pace.wait_after(3.6) == pytest.approx(10.8)
    assert 3.6 / (3.6 + pace.wait_after(3.6)) == pytest.approx(0.25)
    assert RefreshPace(interval=2.0, share=0.5).wait_after(3.6) == pytest.approx(3.6)


@pytest.mark.parametrize(("interval", "share"), [(0.0, 0.25), (2.0, 0.0), (2.0, 1.5)])
def test_a_refresh_pace_refuses_what_cannot_be_kept(interval: float, share: float) -> None:
    with pytest.raises(ValueError, match="refresh pace"):
        RefreshPace(interval=interval, share=share)
