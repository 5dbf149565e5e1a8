"""Group commit: small writes asked for at about the same time share one transaction, each
as if it had committed on its own, one after another."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.notifier.case_store import AlertRow, SqlCases
from shared.db import GroupCommit, Sessions
from tests.unit.builders import counted, run

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def remember(cases: SqlCases, response_id: str) -> Callable[[], bool]:
    """A write: keep a response's version for its alert (False when it was kept already)."""
    return functools.partial(cases.remember_alert, response_id, {"event_id": response_id}, NOW)


def kept(sessions: Sessions) -> set[str]:
    with sessions() as session:
        return set(session.execute(select(AlertRow.response_id)).scalars())


def test_a_write_asked_for_alone_commits_at_once(sessions: Sessions) -> None:
    group = GroupCommit(sessions.together)

    with counted(sessions) as counts:
        assert run(group.run(remember(SqlCases(sessions), "r0"))) is True

    assert counts["commits"] == 1
    assert kept(sessions) == {"r0"}


def test_writes_asked_for_together_share_one_commit_each_seeing_the_ones_before(
    sessions: Sessions,
) -> None:
    group = GroupCommit(sessions.together)
    cases = SqlCases(sessions)
    writes = [remember(cases, f"r{n}") for n in range(10)] + [remember(cases, "r3")]

    async def scenario() -> list[bool]:
        return await asyncio.gather(*(group.run(write) for write in writes))

    with counted(sessions) as counts:
        results = run(scenario())

    assert counts["commits"] == 1
    # The last is r3 again: it sees r3's write earlier in its group, as if committed before.
    assert results == [True] * 10 + [False]
    assert kept(sessions) == {f"r{n}" for n in range(10)}


def test_a_write_that_fails_fails_alone_and_leaves_nothing(sessions: Sessions) -> None:
    group = GroupCommit(sessions.together)
    cases = SqlCases(sessions)

    def remembered_then_refused() -> bool:
        cases.remember_alert("bad", {"event_id": "bad"}, NOW)
        raise ValueError("refused")

    async def scenario() -> list[bool | BaseException]:
        writes = [remember(cases, "r0"), remembered_then_refused, remember(cases, "r2")]
        return await asyncio.gather(*(group.run(w) for w in writes), return_exceptions=True)

    first, failed, last = run(scenario())

    assert (first, last) == (True, True)
    assert isinstance(failed, ValueError) and str(failed) == "refused"
    assert kept(sessions) == {"r0", "r2"}


def test_writes_commit_while_the_event_loops_shared_threads_are_all_busy(
    sessions: Sessions,
) -> None:
    """SendGrid's calls and other blocking work take the loop's shared threads, for up to
    their timeout; the commits every attempt waits for must not queue behind them."""
    group = GroupCommit(sessions.together)

    async def scenario() -> bool:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        gate = threading.Event()
        busy = asyncio.ensure_future(asyncio.to_thread(gate.wait, 30))
        try:
            return await asyncio.wait_for(group.run(remember(SqlCases(sessions), "r0")), 10)
        finally:
            gate.set()
            await busy

    assert run(scenario()) is True
    with sessions() as session:
        assert session.execute(select(func.count()).select_from(AlertRow)).scalar_one() == 1


class Remembered:
    """A write of many: keeps the versions of many responses in one call, and notes each
    call's items; ``refuses`` an item (failing the whole call) when it is among them."""

    def __init__(self, cases: SqlCases, refuses: str | None = None) -> None:
        self.cases = cases
        self.refuses = refuses
        self.calls: list[list[str]] = []

    def __call__(self, response_ids: list[str]) -> list[bool]:
        self.calls.append(list(response_ids))
        kept = [remember(self.cases, response_id)() for response_id in response_ids]
        if self.refuses in response_ids:
            raise ValueError(f"refused {self.refuses}")
        return kept


def test_batched_writes_asked_for_together_are_one_call_in_one_commit(
    sessions: Sessions,
) -> None:
    """The items of a write of many that share a group go to it in one call, in the order
    asked, at the place of the first; each caller has its own result."""
    group = GroupCommit(sessions.together)
    cases = SqlCases(sessions)
    many = Remembered(cases)

    async def scenario() -> list[bool]:
        # The first runs alone; the rest are asked for while it runs, and go together.
        first = asyncio.ensure_future(group.run(remember(cases, "r0")))
        await asyncio.sleep(0)
        asked = [
            group.run_batched(many, "r1"),
            group.run(remember(cases, "p1")),
            group.run_batched(many, "r2"),
            group.run_batched(many, "r0"),  # kept before, by the first
            group.run_batched(many, "r1"),  # kept earlier in its own call
        ]
        return [await first, *await asyncio.gather(*asked)]

    with counted(sessions) as counts:
        results = run(scenario())

    assert results == [True, True, True, True, False, False]
    assert many.calls == [["r1", "r2", "r0", "r1"]]
    assert counts["commits"] == 2
    assert kept(sessions) == {"r0", "r1", "r2", "p1"}


def test_a_batched_item_that_fails_fails_alone(sessions: Sessions) -> None:
    """Its call fails the group, which is then written one write at a time: each item of
    the call alone, so only the one at fault fails, and a plain write beside it commits."""
    group = GroupCommit(sessions.together)
    cases = SqlCases(sessions)
    many = Remembered(cases, refuses="bad")

    async def scenario() -> list[bool | BaseException]:
        asked = [
            group.run_batched(many, "r0"),
            group.run_batched(many, "bad"),
            group.run(remember(cases, "p0")),
            group.run_batched(many, "r2"),
        ]
        return await asyncio.gather(*asked, return_exceptions=True)

    first, failed, plain, last = run(scenario())

    assert (first, plain, last) == (True, True, True)
    assert isinstance(failed, ValueError) and str(failed) == "refused bad"
    assert many.calls == [["r0", "bad", "r2"], ["r0"], ["bad"], ["r2"]]
    assert kept(sessions) == {"r0", "r2", "p0"}


def test_a_write_of_many_must_give_a_result_for_each_item(sessions: Sessions) -> None:
    group = GroupCommit(sessions.together)

    def forgets_one(items: list[str]) -> list[str]:
        return items[1:]

    async def scenario() -> list[str | BaseException]:
        asked = [group.run_batched(forgets_one, item) for item in ("a", "b")]
        return await asyncio.gather(*asked, return_exceptions=True)

    assert all(isinstance(result, ValueError) for result in run(scenario()))
