"""Consumer lag: end offset less committed offset per held partition, as a Prometheus gauge."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from shared.metrics import ConsumerLag, partition_lag

RESPONSES = "npsloop.responses.v1"
CLASSIFIED = "npsloop.responses-classified.v1"


def test_a_caught_up_partition_has_no_lag_and_unprocessed_messages_are_counted() -> None:
    lags = partition_lag(
        highwaters={(RESPONSES, 0): 12, (RESPONSES, 1): 40},
        committed={(RESPONSES, 0): 12, (RESPONSES, 1): 33},
    )
    assert lags == {(RESPONSES, 0): 0, (RESPONSES, 1): 7}


def test_a_partition_never_committed_counts_from_the_start_and_an_unknown_end_is_left_out() -> None:
    lags = partition_lag(
        highwaters={(RESPONSES, 0): 5, (RESPONSES, 1): None, (RESPONSES, 2): 0},
        committed={(RESPONSES, 0): None, (RESPONSES, 1): 3},
    )
    assert lags == {(RESPONSES, 0): 5, (RESPONSES, 2): 0}


def test_a_commit_ahead_of_a_stale_end_offset_is_no_negative_lag() -> None:
    assert partition_lag({(RESPONSES, 0): 4}, {(RESPONSES, 0): 6}) == {(RESPONSES, 0): 0}


def test_the_gauge_shows_held_partitions_and_forgets_those_given_away() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag.create(registry)

    def sample(topic: str, partition: int) -> float | None:
        return registry.get_sample_value(
            "npsloop_consumer_lag_messages", {"topic": topic, "partition": str(partition)}
        )

    lag.show({(RESPONSES, 0): 3, (CLASSIFIED, 1): 0})
    assert sample(RESPONSES, 0) == 3.0
    assert sample(CLASSIFIED, 1) == 0.0

    lag.show({(RESPONSES, 0): 0})
    assert sample(RESPONSES, 0) == 0.0
    assert sample(CLASSIFIED, 1) is None
