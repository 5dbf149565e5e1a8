"""SQLAlchemy 2 base, engine and session factory, and Alembic migrations.

SQLite file by default (embedded mode), PostgreSQL by URL. Sessions are
synchronous; services call them through ``asyncio.to_thread`` so that no
database call blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK_ID = 0x6E70736C


class Base(DeclarativeBase):
    """Base of every table; each service declares and writes only its own tables."""


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, stored in UTC and always read back aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset: without this a +02:00 time would read back two hours off.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    # hide_parameters: a database error's text would otherwise carry the statement's values
    # (addresses, names, comments) into logs and dead letters.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
            **_JSON_CODEC,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # psycopg2's executemany runs a statement once a row, each a round trip: marking a
    # group's alerts sent took a round trip an alert, the most of what the notifier's one
    # writing thread waited for (docs/PERFORMANCE.md). Batched, 100 rows go in one. (Its
    # rowcount is then not there for such an UPDATE; none is read.)
    batched = (
        {"executemany_mode": "values_plus_batch"} if parsed.get_driver_name() == "psycopg2" else {}
    )
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **batched, **_JSON_CODEC)


def _to_json(value: Any) -> str:
    # OPT_NON_STR_KEYS: a dict keyed by numbers is written as the standard library writes
    # it, the numbers as strings.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# The JSON columns (an alert's response, an outbox payload) written and read by orjson:
# the standard library's codec was a twentieth of the notifier's CPU (docs/PERFORMANCE.md).
_JSON_CODEC: dict[str, Any] = {"json_serializer": _to_json, "json_deserializer": orjson.loads}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Sessions(sessionmaker[Session]):
    """A session factory whose transactions can be joined into one.

    Inside ``together()``, every ``begin()`` made in the same thread joins the transaction
    ``together()`` opened instead of starting (and committing) one of its own: stores that
    each write in a transaction of their own then write a batch of events in one, which
    commits (or rolls back) as a whole. ``with sessions() as session`` for reading is not
    joined: it reads what was committed, as it would outside.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self._joined = threading.local()

    def begin(self) -> contextlib.AbstractContextManager[Session]:
        session: Session | None = getattr(self._joined, "session", None)
        if session is not None:
            return contextlib.nullcontext(session)
        return super().begin()

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """One transaction for every ``begin()`` of this thread until the block ends."""
        if getattr(self._joined, "session", None) is not None:
            yield  # already inside one: the outer block commits
            return
        with super().begin() as session:
            self._joined.session = session
            try:
                yield
            finally:
                self._joined.session = None


T = TypeVar("T")
# What a grouped write ended in: its result, or the exception it raised.
_Outcome = tuple[bool, Any]
Item = TypeVar("Item")
WriteMany = Callable[[list[Any]], Sequence[Any]]


@dataclass(frozen=True)
class _Batched:
    """One item of a write that takes many (``GroupCommit.run_batched``)."""

    write_many: WriteMany
    item: Any

    def alone(self) -> Any:
        [result] = self.write_many([self.item])
        return result


_Write = Callable[[], Any] | _Batched


class GroupCommit:
    """Small write transactions asked for at about the same time, run one after another in
    one thread hop and one transaction (group commit).

    A write asked for while none is running starts at once, alone; those asked for while
    one runs wait for it and then go together, up to ``limit`` at a time. No write waits on
    a timer, and under load many share one commit: on SQLite, whose writers take turns on
    one lock, and on PostgreSQL alike, a commit per write was what bounded the notifier.

    Each write sees the ones before it in its group, as if they had committed one after
    another. Should the group fail (one write raising, a deadlock, the database away), it is
    rolled back and each write is run again in a transaction of its own, so one bad write
    fails alone. ``together`` is ``Sessions.together``, which every store's ``begin()``
    joins.

    A write of many (``run_batched``) takes the items of a group asked for with it in one
    call, at the place of the first: a statement for them all rather than one each. That
    is as if they had been asked for first, one after another, which they may have been:
    the writes of a group were asked for at the same time, by callers that each wait for
    their own (no caller has two writes in one group), so any order of them is one they
    could have committed in.

    The groups run on a thread of their own, not the event loop's shared pool: Sendgrid's
    calls and other blocking work in that pool must not hold up the commits every attempt
    waits for. One thread, so a process's writes never contend for SQLite's one lock.
    """

    def __init__(
        self, together: Callable[[], contextlib.AbstractContextManager[Any]], limit: int = 64
    ) -> None:
        self.together = together
        self.limit = limit
        self._waiting: list[tuple[_Write, asyncio.Future[Any]]] = []
        self._running: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")

    async def run(self, write: Callable[[], T]) -> T:
        """``write()``'s result once its group committed; what it raised, if it failed."""
        result: T = await self._asked(write)
        return result

    async def run_batched(self, write_many: Callable[[list[Item]], Sequence[T]], item: Item) -> T:
        """What ``write_many`` gave for ``item`` once its group committed. ``write_many``
        takes the items of the group asked for with it, in the order asked, and gives a
        result for each, in that order; a bound method is the same write each time."""
        result: T = await self._asked(_Batched(write_many, item))
        return result

    async def _asked(self, write: _Write) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((write, future))
        if self._running is None or self._running.done() or self._running.get_loop() is not loop:
            self._running = loop.create_task(self._run_groups())
        return await future

    async def _run_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._commit, [write for write, _ in group]
                )
            except BaseException as exc:  # cancelled with its worker: none of them is known
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                if future.done():  # its caller gave up waiting
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, writes: list[_Write]) -> list[_Outcome]:
        try:
            with self.together():
                return self._in_turn(writes)
        except Exception as exc:
            if len(writes) == 1:
                return [(False, exc)]
        return [self._alone(write) for write in writes]

    @staticmethod
    def _in_turn(writes: list[_Write]) -> list[_Outcome]:
        # Each write of many: the places of its items in the group, and the items.
        batches: dict[WriteMany, tuple[list[int], list[Any]]] = {}
        for place, write in enumerate(writes):
            if isinstance(write, _Batched):
                places, items = batches.setdefault(write.write_many, ([], []))
                places.append(place)
                items.append(write.item)
        results: dict[int, Any] = {}
        for place, write in enumerate(writes):
            if not isinstance(write, _Batched):
                results[place] = write()
            elif write.write_many in batches:  # not yet written with the first of its items
                places, items = batches.pop(write.write_many)
                given = list(write.write_many(items))
                if len(given) != len(places):
                    raise ValueError(
                        f"{write.write_many!r} gave {len(given)} results for {len(places)} items"
                    )
                results.update(zip(places, given, strict=True))
        return [(True, results[place]) for place in range(len(writes))]

    def _alone(self, write: _Write) -> _Outcome:
        try:
            with self.together():
                return (True, write.alone() if isinstance(write, _Batched) else write())
        except Exception as exc:
            return (False, exc)


def session_factory(engine: Engine) -> Sessions:
    return Sessions(engine)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; safe to run from many workers at once."""
    with _migration_lock(url):
        command.upgrade(alembic_config(url), "head")


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database == ":memory:":
            yield
            return
        lock_path = Path(database + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                try:
                    yield
                finally:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
        finally:
            engine.dispose()
        return
    yield


def lock_until_commit(session: Session, lock_id: int) -> None:
    """Serialise this transaction with any other taking the same lock, in any process.

    PostgreSQL holds an advisory lock until the transaction ends; SQLite needs none, as it
    lets one writer at a time, and a reader that then writes is turned away to retry.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def insert_ignore(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> bool:
    """INSERT a row unless one with the same ``keys`` exists; True when inserted."""
    statement = _insert_ignore_statement(_dialect_name(session), table, tuple(keys))
    return bool(getattr(session.execute(statement, values), "rowcount", 0))


def insert_ignore_many(
    session: Session, table: Any, rows: Sequence[dict[str, Any]], keys: list[str]
) -> int:
    """``insert_ignore`` of many rows in a few statements, in the order given (of two with
    the same ``keys``, the first is kept); how many were inserted."""
    return len(inserted_keys(session, table, rows, keys))


def inserted_keys(
    session: Session, table: Any, rows: Sequence[dict[str, Any]], keys: list[str]
) -> set[tuple[Any, ...]]:
    """``insert_ignore_many``, returning the ``keys`` (as tuples) of the rows inserted."""
    if not rows:
        return set()
    statement = _insert_ignore_returning(_dialect_name(session), table, tuple(keys))
    return {tuple(row) for row in session.execute(statement, list(rows))}


def upsert(
    session: Session,
    table: Any,
    values: dict[str, Any],
    keys: list[str],
    only_if: Callable[[Any], Any] | None = None,
) -> bool:
    """INSERT a row, or replace the non-key columns of the row with the same ``keys``.

    ``only_if``, given the proposed row (``excluded``), is the condition under which an
    existing row is replaced; it is left as it is otherwise. True when a row was written.
    """
    if only_if is not None:
        return bool(upsert_many(session, table, [values], keys, only_if))
    columns = tuple(name for name in values if name not in keys)
    statement = _upsert_statement(_dialect_name(session), table, tuple(keys), columns)
    return bool(getattr(session.execute(statement, values), "rowcount", 0))


def upsert_many(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    keys: list[str],
    only_if: Callable[[Any], Any] | None = None,
) -> int:
    """``upsert`` of many rows (no two with the same ``keys``, each with the same columns) in
    a few statements; how many were written. Rows are written in the order given: give them
    in the order of their keys, so that two transactions lock shared rows in the same order
    and do not deadlock."""
    if not rows:
        return 0
    columns = tuple(name for name in rows[0] if name not in keys)
    statement = _upsert_returning(_dialect_name(session), table, tuple(keys), columns, only_if)
    return len(session.execute(statement, list(rows)).all())


def add_to(session: Session, table: Any, keys: dict[str, Any], amounts: dict[str, int]) -> None:
    """INSERT a row of ``amounts``, or add them to the row with the same ``keys``.

    The addition happens in the database, so concurrent writers do not lose each other's.
    """
    add_to_many(session, table, list(keys), [{**keys, **amounts}])


def add_to_many(
    session: Session, table: Any, keys: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    """``add_to`` of many rows (no two with the same ``keys``, each with the same columns;
    the other columns are the amounts) in a few statements, written in the order given, as
    ``upsert_many``'s."""
    if not rows:
        return
    amounts = tuple(name for name in rows[0] if name not in keys)
    statement = _add_to_statement(_dialect_name(session), table, tuple(keys), amounts)
    session.execute(statement, list(rows))


# A statement built once and given its values at each execution: building one, with its
# cache key, costs ten times what SQLite takes to run it (docs/PERFORMANCE.md), and the
# single-row writes are the ones on the hot paths (an alert, a case, a delivery).
@functools.cache
def _insert_ignore_statement(dialect: str, table: Any, keys: tuple[str, ...]) -> Any:
    return _insert_of(dialect)(table).on_conflict_do_nothing(index_elements=list(keys))


@functools.cache
def _upsert_statement(
    dialect: str,
    table: Any,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    only_if: Callable[[Any], Any] | None = None,
) -> Any:
    statement = _insert_of(dialect)(table)
    changes = {name: statement.excluded[name] for name in columns}
    where = None if only_if is None else only_if(statement.excluded)
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes, where=where)


# The writes of many rows are one statement executed with many rows of values (SQLAlchemy's
# "insertmanyvalues" sends them as a few multi-row INSERTs), built once: an INSERT built
# with its rows in it (``values(rows)``) is compiled anew at every execution, as SQLAlchemy
# caches no multi-row VALUES (a tenth of the aggregator's time). What was written comes
# back through RETURNING, as the rowcount of an executemany differs between drivers.
@functools.cache
def _insert_ignore_returning(dialect: str, table: Any, keys: tuple[str, ...]) -> Any:
    return _insert_ignore_statement(dialect, table, keys).returning(*(table.c[k] for k in keys))


@functools.cache
def _upsert_returning(
    dialect: str,
    table: Any,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    only_if: Callable[[Any], Any] | None,
) -> Any:
    statement = _upsert_statement(dialect, table, keys, columns, only_if)
    return statement.returning(*(table.c[k] for k in keys))


@functools.cache
def _add_to_statement(
    dialect: str, table: Any, keys: tuple[str, ...], amounts: tuple[str, ...]
) -> Any:
    statement = _insert_of(dialect)(table)
    additions = {name: table.c[name] + statement.excluded[name] for name in amounts}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=additions)


def _dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert_of(name: str) -> Any:
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    raise NotImplementedError(f"npsloop supports SQLite and PostgreSQL, not {name}")
