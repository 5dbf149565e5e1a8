"""A started worker leaves its long-lived objects out of the collector's full passes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import faust
import pytest

from shared.streams import _Worker, settle_heap


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """The test process's collector as it was: nothing frozen, its own thresholds."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_settling_freezes_what_the_worker_holds_and_collects_its_garbage_first(
    collector_restored: None,
) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    held = [object() for _ in range(1000)]
    Node()  # a reference cycle, garbage: collected, not frozen for good
    collected_before = sum(stats["collected"] for stats in gc.get_stats())

    settle_heap()

    assert gc.get_freeze_count() >= len(held)
    assert sum(stats["collected"] for stats in gc.get_stats()) > collected_before
    assert not any(isinstance(thing, Node) for thing in gc.get_objects())
    # The youngest generation is collected after 10,000 new objects, not 700.
    assert gc.get_threshold()[0] == 10_000


def test_the_worker_settles_its_heap_once_started(collector_restored: None) -> None:
    loop = asyncio.new_event_loop()  # its own, not left behind as the test process's
    app = faust.App("npsloop-test-heap", broker="kafka://127.0.0.1:1")
    worker = _Worker(app, quiet=True, loglevel="WARNING", loop=loop)

    assert gc.get_freeze_count() == 0
    try:
        loop.run_until_complete(worker.on_startup_finished())
    finally:
        loop.close()

    assert gc.get_freeze_count() > 0
