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
