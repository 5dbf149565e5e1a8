"""Which broker the integration tests use."""

from __future__ import annotations

import pytest

from tests.conftest import choose_broker


def test_a_configured_kafka_is_used_first_even_when_testcontainers_is_asked_for() -> None:
    env = {"NPSLOOP_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "NPSLOOP_TEST_KAFKA": "testcontainers"}
    assert choose_broker(env, lambda: True) == "configured"


def test_testcontainers_is_used_when_asked_for_and_docker_answers() -> None:
    assert choose_broker({"NPSLOOP_TEST_KAFKA": "testcontainers"}, lambda: True) == "testcontainers"


def test_asking_for_testcontainers_without_docker_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no Docker engine"):
        choose_broker({"NPSLOOP_TEST_KAFKA": "testcontainers"}, lambda: False)


def test_the_embedded_broker_is_the_default() -> None:
    assert choose_broker({}, lambda: True) == "embedded"
