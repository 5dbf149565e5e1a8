"""The watch over wedged partitions: read again only what stands still behind its end with
nothing in hand, for long enough; never while rebalancing, never what is being handled."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from shared.commits import ContiguousConsumer
from shared.wedge import WedgeWatch

RESPONSES = TP("npsloop.responses.v1", 0)
OTHER = TP("npsloop.responses.v1", 1)
CHANGELOG = TP("npsloop-classifier-responses-seen-changelog", 0)


@dataclass(frozen=True)
class FakeMessage:
    tp: TP


@dataclass
class FakeConsumer:
    held: set[TP]
    highwaters: dict[TP, int]
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    _acked: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _acked_index: defaultdict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _gap: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _read_offset: dict[TP, int | None] = field(default_factory=dict)
    sought: list[tuple[TP, int | None]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.held | {CHANGELOG}

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def seek(self, tp: TP, offset: int) -> None:
        self._read_offset[tp] = offset
        self.sought.append((tp, offset))

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 3)  # the first offsets were deleted by retention


class FakeRecovery:
    def __init__(self) -> None:
        self.completed = asyncio.Event()
        self.completed.set()


class FakeTables(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__(seen=object())
        self.changelog_topics = {CHANGELOG.topic}
        self.recovery = FakeRecovery()


@dataclass
class FakeApp:
    consumer: FakeConsumer
    rebalancing: bool = False
    tables: FakeTables = field(default_factory=FakeTables)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_over(consumer: FakeConsumer, stall_seconds: float = 30.0) -> tuple[WedgeWatch, Clock]:
    clock = Clock()
    watch = WedgeWatch.create(FakeApp(consumer), CollectorRegistry(), stall_seconds)  # type: ignore[arg-type]
    watch.clock = clock
    return watch, clock


def wedged_consumer() -> FakeConsumer:
    consumer = FakeConsumer(held={RESPONSES}, highwaters={RESPONSES: 76, CHANGELOG: 9})
    consumer._committed_offset[RESPONSES] = 2
    consumer._acked[RESPONSES] = [4, 5, 6]
    consumer._acked_index[RESPONSES] = {4, 5, 6}
    consumer._gap[RESPONSES] = [3]
    consumer._read_offset[RESPONSES] = 75
    return consumer


def check(watch: WedgeWatch) -> list[Any]:
    return asyncio.run(watch.check())


def test_a_partition_standing_still_behind_its_end_is_read_again_from_its_committed_offset() -> (
    None
):
    consumer = wedged_consumer()
    watch, clock = watch_over(consumer)
    assert check(watch) == []  # first sight: from now on it stands
    clock.now += 29.0
    assert check(watch) == []
    clock.now += 2.0
    assert check(watch) == [RESPONSES]
    assert consumer.sought == [(RESPONSES, 2)]
    # Faust's books past the committed offset are forgotten, so the run commits unbroken.
    assert RESPONSES not in consumer._acked
    assert RESPONSES not in consumer._acked_index
    assert RESPONSES not in consumer._gap
    assert consumer._read_offset[RESPONSES] == 2
    assert watch.rereads.labels(RESPONSES.topic)._value.get() == 1
    # Read again, it gets as long again to move before the next try.
    clock.now += 10.0
    assert check(watch) == []
    clock.now += 25.0
    assert check(watch) == [RESPONSES]


def test_a_committed_offset_that_moves_is_never_wedged() -> None:
    consumer = wedged_consumer()
    watch, clock = watch_over(consumer)
    for step in range(10):
        consumer._committed_offset[RESPONSES] = 2 + step
        assert check(watch) == []
        clock.now += 20.0
    assert consumer.sought == []


def test_a_partition_with_a_message_in_hand_is_left_to_its_handler() -> None:
    # A handler retrying a database outage holds its message for as long as it takes.
    consumer = wedged_consumer()
    consumer._unacked_messages.add(FakeMessage(RESPONSES))
    watch, clock = watch_over(consumer)
    for _ in range(5):
        assert check(watch) == []
        clock.now += 60.0
    assert consumer.sought == []


def test_a_caught_up_partition_or_one_whose_end_is_unknown_is_fine() -> None:
    consumer = FakeConsumer(held={RESPONSES, OTHER}, highwaters={RESPONSES: 40})
    consumer._committed_offset[RESPONSES] = 40
    watch, clock = watch_over(consumer)
    for _ in range(3):
        assert check(watch) == []
        clock.now += 60.0
    assert consumer.sought == []


def test_nothing_is_read_again_while_rebalancing_or_recovering() -> None:
    consumer = wedged_consumer()
    watch, clock = watch_over(consumer)
    app: Any = watch.app
    assert check(watch) == []
    clock.now += 60.0
    app.rebalancing = True
    assert check(watch) == []
    app.rebalancing = False
    app.tables.recovery.completed.clear()
    clock.now += 60.0
    assert check(watch) == []
    app.tables.recovery.completed.set()
    # The clock starts again once the generation is settled.
    assert check(watch) == []
    clock.now += 31.0
    assert check(watch) == [RESPONSES]


def test_a_partition_never_committed_is_read_again_from_its_first_offset() -> None:
    consumer = FakeConsumer(held={RESPONSES}, highwaters={RESPONSES: 12})
    consumer._read_offset[RESPONSES] = 11
    watch, clock = watch_over(consumer)
    check(watch)
    clock.now += 31.0
    assert check(watch) == [RESPONSES]
    assert consumer.sought == [(RESPONSES, 3)]
    assert consumer._read_offset[RESPONSES] == 3


def test_changelogs_and_partitions_given_away_are_not_watched() -> None:
    consumer = wedged_consumer()
    watch, clock = watch_over(consumer)
    check(watch)
    consumer.held = set()  # given away in a rebalance
    clock.now += 31.0
    assert check(watch) == []
    consumer.held = {RESPONSES}  # and back: it stands from now, not from before
    assert check(watch) == []
    clock.now += 29.0
    assert check(watch) == []
    assert consumer.sought == []


@dataclass
class Books:
    """The parts of Faust's consumer that _new_offset reads and writes."""

    acked: list[int]
    committed: int | None
    first: int | None = 0
    _acked: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _acked_index: defaultdict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._acked[RESPONSES] = list(self.acked)
        self._acked_index[RESPONSES] = set(self.acked)
        self._committed_offset[RESPONSES] = self.committed
        self._first_offsets = {} if self.first is None else {RESPONSES: self.first}

    def commit(self) -> int | None:
        return ContiguousConsumer._new_offset(self, RESPONSES)  # type: ignore[arg-type]


def test_commits_run_unbroken_from_the_committed_offset() -> None:
    books = Books(acked=[12, 10, 11, 14], committed=10)
    assert books.commit() == 13
    assert books._acked[RESPONSES] == [14]
    assert books._acked_index[RESPONSES] == {14}


def test_one_message_passed_over_holds_the_commit_where_faust_would_skip_it() -> None:
    # Faust's own rule lets min(acked) be one past the committed offset: 10 would be lost.
    books = Books(acked=[11, 12, 13], committed=10)
    assert books.commit() is None
    assert books._acked[RESPONSES] == [11, 12, 13]  # kept, for when 10 comes


def test_offsets_handled_again_below_the_committed_one_are_dropped() -> None:
    books = Books(acked=[7, 8, 9, 10, 11], committed=10)
    assert books.commit() == 12
    assert books._acked[RESPONSES] == []
    assert books._acked_index[RESPONSES] == set()


def test_a_partition_never_committed_commits_its_first_run() -> None:
    assert Books(acked=[0, 1, 2, 5], committed=None).commit() == 3
    assert Books(acked=[3, 4], committed=None, first=3).commit() == 5
    assert Books(acked=[], committed=4).commit() is None


def test_a_partition_never_committed_holds_the_commit_until_its_first_message() -> None:
    """A stream that passed over the first messages of a partition the group never
    committed would otherwise commit past them: they would never be handled."""
    books = Books(acked=[2, 3, 4], committed=None, first=0)
    assert books.commit() is None
    assert books._acked[RESPONSES] == [2, 3, 4]
    # Where the partition starts is not known yet: nothing is committed either.
    assert Books(acked=[0, 1], committed=None, first=None).commit() is None


def test_no_offset_missing_from_the_fetched_sequence_counts_as_acked() -> None:
    # Faust fills such holes as acked (for compacted topics); npsloop's are not compacted.
    consumer: Any = object.__new__(ContiguousConsumer)
    asyncio.run(ContiguousConsumer._add_gap(consumer, RESPONSES, 3, 9))
    assert not hasattr(consumer, "_gap") or not consumer._gap


def test_the_fake_consumer_uses_only_what_the_real_one_has() -> None:
    # A fake with a method Faust's consumer lacks once hid a crash of the watch.
    for name in ("assignment", "highwater", "seek", "earliest_offsets"):
        assert callable(getattr(ContiguousConsumer, name)), name
        assert callable(getattr(FakeConsumer, name)), name
