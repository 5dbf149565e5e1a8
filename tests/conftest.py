"""Fixtures shared by the test suites: the broker, PostgreSQL, fake Slack and SendGrid."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Literal

import pytest

from tests.fakes import FakeServer, fake_sendgrid, fake_slack

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

POSTGRES_ADMIN_URL = os.environ.get(
    "NPSLOOP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


BrokerChoice = Literal["configured", "testcontainers", "embedded"]


def choose_broker(env: Mapping[str, str], has_docker: Callable[[], bool]) -> BrokerChoice:
    """NPSLOOP_KAFKA_BOOTSTRAP_SERVERS first; testcontainers when asked for; else embedded."""
    if env.get("NPSLOOP_KAFKA_BOOTSTRAP_SERVERS"):
        return "configured"
    if env.get("NPSLOOP_TEST_KAFKA") == "testcontainers":
        if not has_docker():
            raise RuntimeError(
                "NPSLOOP_TEST_KAFKA=testcontainers, but no Docker engine answers here"
            )
        return "testcontainers"
    return "embedded"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker, chosen by choose_broker()."""
    choice = choose_broker(os.environ, docker_available)
    if choice == "configured":
        yield os.environ["NPSLOOP_KAFKA_BOOTSTRAP_SERVERS"]
    elif choice == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
    else:
        from shared.broker import EmbeddedBroker

        with EmbeddedBroker() as broker:
            yield broker.bootstrap_servers


@pytest.fixture
def fresh_kafka_bootstrap(kafka_bootstrap: str) -> Iterator[str]:
    """For a test whose workers rebalance and recover tables: on the embedded broker, one of
    its own, started for it. Tansu holds every earlier test's topics in memory, and under
    that load the scale-out test's table recovery went wrong in two CI runs (a standby
    ahead of a misreported partition end; partitions left unconsumed) where a fresh
    broker passed every time here. With Kafka, the session's broker."""
    if choose_broker(os.environ, docker_available) != "embedded":
        yield kafka_bootstrap
        return
    from shared.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return POSTGRES_ADMIN_URL


def create_postgres_database(admin_url: str) -> str:
    """A fresh, uniquely named database; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"npsloop_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url} ({type(exc).__name__}: {exc}); "
            "set NPSLOOP_TEST_POSTGRES_URL to a server where the tests may create databases"
        )
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def two_migrated_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kind: str
) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    """Two migrated databases of a kind ("sqlite" or "postgresql"), to write the same facts
    to one after another in one and a batch at a time in the other, and compare."""
    from shared.db import make_engine, migrate, session_factory

    engines = []
    dropped: list[str] = []
    for name in ("one-by-one", "batched"):
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('two') / f'{name}.sqlite3'}"
        else:
            url = create_postgres_database(request.getfixturevalue("postgres_admin_url"))
            dropped.append(url)
        migrate(url)
        engines.append(make_engine(url))
    try:
        yield session_factory(engines[0]), session_factory(engines[1])
    finally:
        for engine in engines:
            engine.dispose()
        for url in dropped:
            drop_postgres_database(request.getfixturevalue("postgres_admin_url"), url)


def drop_postgres_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture
def slack_server() -> Iterator[FakeServer]:
    server = fake_slack()
    yield server
    server.stop()


@pytest.fixture
def sendgrid_server() -> Iterator[FakeServer]:
    server = fake_sendgrid()
    yield server
    server.stop()
