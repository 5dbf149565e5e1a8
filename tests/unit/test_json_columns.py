"""The JSON columns (an alert's response, an outbox payload, a case) are written and read by
orjson through the engine (shared.db.make_engine), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.case_store import AlertRow
from shared.db import make_engine, migrate, session_factory
from tests.conftest import create_postgres_database, drop_postgres_database

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
# A comment as customers write them: Danish letters, an emoji, quotes and a backslash.
COMMENT = 'Personalet var søde, men "levering" tog 3 uger \\ 😞'


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_sessions(
    request: pytest.FixtureRequest, database_url: str, postgres_admin_url: str
) -> Iterator[sessionmaker[Session]]:
    url = database_url
    if request.param == "postgresql":
        url = create_postgres_database(postgres_admin_url)
        migrate(url)
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
        if request.param == "postgresql":
            drop_postgres_database(postgres_admin_url, url)


def kept(sessions: sessionmaker[Session], classified: dict[Any, Any]) -> dict[str, Any]:
    with sessions.begin() as session:
        session.add(AlertRow(response_id="r1", classified=classified, updated_at=NOW))
    with sessions() as session:
        return session.execute(select(AlertRow.classified)).scalar_one()


def test_a_json_column_reads_back_what_was_written(
    any_sessions: sessionmaker[Session],
) -> None:
    classified = {
        "comment": COMMENT,
        "score": 3,
        "sentiment": -0.625,
        "themes": ["delivery", "staff"],
        "context": None,
        "nested": {"flag": True, "empty": []},
    }

    assert kept(any_sessions, classified) == classified


def test_numbers_as_keys_are_written_as_strings_as_the_standard_library_writes_them(
    any_sessions: sessionmaker[Session],
) -> None:
    # orjson refuses keys that are not strings unless told otherwise.
    assert kept(any_sessions, {"by_score": {0: 2, 10: 5}}) == {"by_score": {"0": 2, "10": 5}}


def test_the_stored_text_is_compact_and_keeps_letters_as_written(
    sessions: sessionmaker[Session],
) -> None:
    kept(sessions, {"comment": COMMENT, "score": 3})

    with sessions() as session:
        stored = session.execute(text("SELECT classified FROM notifier_alerts")).scalar_one()

    # The standard library's codec writes '{"comment": "Personalet var s\\u00f8de, ...'.
    assert (
        stored
        == '{"comment":"Personalet var søde, men \\"levering\\" tog 3 uger \\\\ 😞","score":3}'
    )
