"""Throughput and alert latency of the whole pipeline on the embedded broker (not a test).

    PYTHONPATH=. .venv/bin/python bench/pipeline.py [--raw N] [--pipeline N] [--rate R]
        [--seconds S] [--profile DIR] [--threads] [--postgres ADMIN_URL]

One run measures, on one embedded Tansu broker:

(a) raw_eps: one asyncio process with a plain aiokafka consumer and producer doing
    consume -> decode -> ``classify_response`` -> encode -> produce over N responses
    already on a topic; the floor of what Python does here.
(b) pipeline_eps: N responses produced straight onto the stack's responses topic (a
    mix of scores 0-10), divided by the time from the first produce until the
    aggregator's ``/v1/nps`` counts all N and the fake Slack has had an alert naming
    every detractor. The time the classified topic held all N is printed too.
(c) alert_ms_p50/p95/p99: detractors POSTed to ingest's signed ``/v1/responses`` at a
    steady rate; per response, the time from ingest's 202 to the first Slack API call
    naming it. Bursts are switched off for the run (NPSLOOP_BURST_THRESHOLD high,
    NPSLOOP_SLACK_CHANNEL_INTERVAL_SECONDS=0), so each detractor is its own post.
(d) rss_mb: peak RSS (VmHWM) of each worker process at the end of the run.

The last line printed is one JSON object with these figures.

The workers keep their read models in SQLite files, as in the tests; with --postgres
ADMIN_URL (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/postgres) all four share a fresh
PostgreSQL database made there for the run and dropped after, as in production. The CPU
seconds printed then count the PostgreSQL server's processes too.

With --profile DIR, py-spy samples each worker through (b) and (c) and writes its
collapsed stacks to DIR/<service>.txt (one line a stack and its sample count: read it with
``sort -t' ' -k2 -n``, or load it into speedscope.app or flamegraph.pl).

With --threads, the CPU seconds each process used in (b) and (c) are split by thread too:
its main thread (the event loop) and its busiest others (database threads, Faust's
consumer thread).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.classifier.domain import classify_response
from shared import topics
from shared.broker import EmbeddedBroker
from shared.events import Response, decode, encode
from shared.kafka_admin import ensure_topics
from shared.settings import Settings
from shared.signing import webhook_headers
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.fakes import FakeSlack
from tests.stack import WEBHOOK_SECRET, Stack, http_get, stack_with_fakes

COMMENTS = (
    "Leveringen var en uge forsinket og ingen svarede på min mail",
    "The staff in the store were rude and the price was too high",
    "Helt okej men dyrt",
    "Fantastic staff, fast delivery, will buy again",
)
WORKERS_ENV = {
    "NPSLOOP_SLACK_CHANNEL": "#cx-alerts",
    # One Slack post per detractor, at once: latency per response, not per summary.
    "NPSLOOP_BURST_THRESHOLD": "1000000",
    "NPSLOOP_SLACK_CHANNEL_INTERVAL_SECONDS": "0",
    # The gauges' refresh as deployed: the test stack refreshes every 0.5 s so that tests
    # need not wait for them, which cost the aggregator a quarter more CPU. /v1/nps, which
    # (b) polls, is asked of the read model, not of the refreshed gauges.
    "NPSLOOP_AGGREGATE_REFRESH_SECONDS": str(
        Settings.model_fields["aggregate_refresh_seconds"].default
    ),
}


def response(response_id: str, score: int, index: int) -> Response:
    now = datetime.now(UTC)
    return Response(
        event_id=uuid.uuid4(),
        occurred_at=now,
        response_id=response_id,
        customer_id=f"c-{index % 997}",
        score=score,
        comment=f"{COMMENTS[index % len(COMMENTS)]} {response_id}",
        responded_at=now,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --- (a) the raw aiokafka loop ------------------------------------------------------------


@contextlib.asynccontextmanager
async def read_from_start(bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer (no group) of every partition of the topic, from its first record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        assigned = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        yield consumer
    finally:
        await consumer.stop()


async def classified_at(bootstrap: str, topic: str, marker: bytes, count: int) -> float:
    """When ``count`` records containing ``marker`` are on the topic (time.time()).

    Counted by reading: the embedded broker's latest offsets are not record counts.
    """
    async with read_from_start(bootstrap, topic) as consumer:
        seen = 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200)
            seen += sum(marker in (m.value or b"") for messages in batch.values() for m in messages)
        return time.time()


async def produce_responses(bootstrap: str, topic: str, events: list[Response]) -> float:
    """Produce the events (key customer); returns the time.time() the first was sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.time()
        sent = [
            await producer.send(topic, encode(event), key=event.customer_id.encode())
            for event in events
        ]
        await asyncio.gather(*sent)
        return started
    finally:
        await producer.stop()


async def raw_loop(bootstrap: str, count: int) -> float:
    namespace = f"raw{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, namespace, (topics.RESPONSES, topics.RESPONSES_CLASSIFIED))
    source = topics.RESPONSES.qualified(namespace)
    target = topics.RESPONSES_CLASSIFIED.qualified(namespace)
    events = [response(f"raw-{i}", i % 11, i) for i in range(count)]
    await produce_responses(bootstrap, source, events)

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        await consumer._client.force_metadata_update()
        assigned = [TopicPartition(source, p) for p in consumer.partitions_for_topic(source) or ()]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        done = 0
        # Timed from the first record fetched: the first fetch's wait is start-up, not work.
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        while not batch:
            batch = await consumer.getmany(timeout_ms=1000)
        started = time.perf_counter()
        while True:
            pending = []
            for messages in batch.values():
                for message in messages:
                    classified = classify_response(decode(Response, message.value))
                    pending.append(await producer.send(target, encode(classified), message.key))
            await asyncio.gather(*pending)
            done += len(pending)
            if done >= count:
                break
            batch = await consumer.getmany(timeout_ms=1000)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()
    print(f"(a) raw loop: {count} responses consumed, classified, produced in {elapsed:.2f} s")
    return count / elapsed


# --- (b) the real pipeline ----------------------------------------------------------------


def nps_count(stack: Stack) -> int:
    status, text = http_get(stack.url("aggregator") + "/v1/nps?window=30d", timeout=10.0)
    return int(json.loads(text)["responses"]) if status == 200 else -1


class SlackIds:
    """Response ids named in the fake Slack's posts, with when the first post naming each
    arrived. Each post is read once: reading them all at every poll held the benchmark's
    GIL for longer and longer as the posts grew, and the fake Slack, in the same process,
    answered the notifier that much later."""

    def __init__(self, slack: FakeSlack, pattern: re.Pattern[str]) -> None:
        self.slack = slack
        self.pattern = pattern
        self.read = 0
        self.seen: dict[str, float] = {}

    def now(self) -> dict[str, float]:
        posts = self.slack.received("/api/chat.postMessage")
        for received in posts[self.read :]:
            for found in set(self.pattern.findall(json.dumps(received.body))):
                self.seen[found] = min(self.seen.get(found, received.at), received.at)
        self.read = len(posts)
        return self.seen


def counted_and_routed(
    all_counted: Callable[[], bool], at_slack: SlackIds, detractors: set[str], timeout: float
) -> tuple[float, float]:
    """When the aggregator had counted every response (polled every 0.2 s) and when the
    fake Slack had a post naming every detractor (time.time() of each)."""
    aggregated_at = routed_at = None
    deadline = time.time() + timeout
    while time.time() < deadline and not (aggregated_at and routed_at):
        now = time.time()
        if aggregated_at is None and all_counted():
            aggregated_at = now
        if routed_at is None and detractors <= at_slack.now().keys():
            routed_at = max(at_slack.seen.values())
        time.sleep(0.2)
    if not (aggregated_at and routed_at):
        raise RuntimeError(
            f"pipeline not done in {timeout:.0f} s: "
            f"aggregated={aggregated_at is not None} routed={routed_at is not None}"
        )
    return aggregated_at, routed_at


def pipeline(stack: Stack, slack: FakeSlack, count: int, timeout: float) -> float:
    run = uuid.uuid4().hex[:6]
    events = [response(f"pl-{run}-{i}", i % 11, i) for i in range(count)]
    detractors = {e.response_id for e in events if e.score <= 6}
    at_slack = SlackIds(slack, re.compile(rf"pl-{run}-\d+"))
    classified_topic = stack.topic(topics.RESPONSES_CLASSIFIED.name)
    counting = ThreadPoolExecutor(1).submit(
        asyncio.run,
        classified_at(stack.bootstrap, classified_topic, f'"pl-{run}-'.encode(), count),
    )
    counted_before = nps_count(stack)
    calls_before = len(slack.received())

    started = asyncio.run(
        produce_responses(stack.bootstrap, stack.topic(topics.RESPONSES.name), events)
    )
    produced = time.time() - started
    aggregated_at, routed_at = counted_and_routed(
        lambda: nps_count(stack) - counted_before >= count, at_slack, detractors, timeout
    )
    classified = counting.result(timeout=timeout)
    calls = Counter(r.path for r in slack.received()[calls_before:])
    done = max(aggregated_at, routed_at, classified)
    print(
        f"(b) pipeline: {count} responses ({len(detractors)} detractors) produced in "
        f"{produced:.2f} s; all classified after {classified - started:.2f} s, "
        f"all counted by the aggregator after {aggregated_at - started:.2f} s "
        f"(polled every 0.2 s), every detractor alerted after "
        f"{routed_at - started:.2f} s; Slack API calls: {dict(calls)}"
    )
    return count / (done - started)


# --- (c) alert latency at a steady rate ---------------------------------------------------


async def post_steadily(url: str, run: str, rate: float, seconds: float) -> dict[str, float]:
    """POST detractors at ``rate`` a second; returns the time.time() of each 202."""
    accepted: dict[str, float] = {}
    failures: list[int] = []
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(index: int) -> None:
            response_id = f"lat-{run}-{index}"
            body = json.dumps(
                {
                    "response_id": response_id,
                    "customer_id": f"c-lat-{index % 997}",
                    "score": index % 4,
                    "comment": f"{COMMENTS[index % 2]} {response_id}",
                }
            ).encode()
            headers = {"Content-Type": "application/json"}
            headers.update(webhook_headers(WEBHOOK_SECRET, f"msg_{uuid.uuid4().hex}", body))
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status == 202:
                    accepted[response_id] = time.time()
                else:
                    failures.append(answer.status)

        tasks = []
        start = time.perf_counter()
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(index)))
        await asyncio.gather(*tasks)
        behind = time.perf_counter() - start - seconds
    if failures:
        print(f"{len(failures)} POSTs not accepted: statuses {sorted(set(failures))}")
    print(f"{total} POSTs sent over {seconds:.0f} s (the last answered {behind:+.2f} s after plan)")
    return accepted


async def record_times(bootstrap: str, topic: str, pattern: re.Pattern[bytes]) -> dict[str, float]:
    """When each response id matching ``pattern`` was first produced to the topic (the
    record's timestamp, time.time() seconds). Read until a fetch finds nothing: the embedded
    broker's end offsets are not record counts."""
    times: dict[str, float] = {}
    async with read_from_start(bootstrap, topic) as consumer:
        while batch := await consumer.getmany(timeout_ms=1000):
            for message in (m for messages in batch.values() for m in messages):
                for found in {f.decode() for f in pattern.findall(message.value or b"")}:
                    at = message.timestamp / 1000
                    times[found] = min(times.get(found, at), at)
    return times


def stages(stack: Stack, run: str, accepted: dict[str, float], seen: dict[str, float]) -> None:
    """Where (c)'s time went: p50/p99 of the time from ingest's 202 to each topic, and from
    there to Slack (record timestamps; the processes share one clock)."""
    pattern = re.compile(rf"lat-{run}-\d+".encode())
    at: dict[str, dict[str, float]] = {"accepted": accepted}
    for spec in (topics.RESPONSES, topics.RESPONSES_CLASSIFIED):
        at[spec.name] = asyncio.run(record_times(stack.bootstrap, stack.topic(spec.name), pattern))
    at["slack"] = seen
    names = list(at)
    parts = []
    for before, after in itertools.pairwise(names):
        gaps = [(at[after][r] - at[before][r]) * 1000 for r in accepted if r in at[after]]
        if gaps:
            parts.append(
                f"{before} -> {after} p50 {percentile(gaps, 0.5):.0f} ms, "
                f"p99 {percentile(gaps, 0.99):.0f} ms"
            )
    print(f"(c) stages: {'; '.join(parts)}")


def alert_latency(
    stack: Stack, slack: FakeSlack, rate: float, seconds: float, timeout: float
) -> list[float]:
    run = uuid.uuid4().hex[:6]
    accepted = asyncio.run(post_steadily(stack.url("ingest") + "/v1/responses", run, rate, seconds))
    at_slack = SlackIds(slack, re.compile(rf"lat-{run}-\d+"))
    deadline = time.time() + timeout
    seen = at_slack.now()
    while time.time() < deadline and not accepted.keys() <= seen.keys():
        time.sleep(0.5)
        seen = at_slack.now()
    missing = len(accepted.keys() - seen.keys())
    if missing:
        print(f"(c) {missing} of {len(accepted)} accepted detractors never reached Slack")
    latencies = [(seen[r] - at) * 1000 for r, at in accepted.items() if r in seen]
    stages(stack, run, accepted, seen)
    print(
        f"(c) {len(latencies)} alerts at {rate:.0f}/s: ingest 202 -> Slack call "
        f"mean {statistics.mean(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )
    return latencies


# --- (d) peak RSS -------------------------------------------------------------------------


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User and system CPU time a process (all its threads) or one thread has used so far."""
    stat = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads_cpu_seconds(pid: int) -> dict[int, float]:
    """cpu_seconds of each thread of a process, by thread id (the main thread's is the pid)."""
    used = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            used[int(task.name)] = cpu_seconds(pid, int(task.name))
    return used


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine: the postmaster and its backends."""
    pids = []
    for process in Path("/proc").iterdir():
        if process.name.isdigit():
            with contextlib.suppress(OSError):
                if (process / "comm").read_text().strip() == "postgres":
                    pids.append(int(process.name))
    return pids


def group_cpu_seconds(pids: list[int]) -> dict[int, float]:
    used = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            used[pid] = cpu_seconds(pid)
    return used


@contextlib.contextmanager
def cpu_used(
    what: str, pids: dict[str, int], threads: bool = False, postgres: bool = False
) -> Iterator[None]:
    """Print the CPU seconds each process used while the block ran: who had the cores.

    With ``threads``, also each process's main thread (its event loop) and its busiest other
    threads (database threads, Faust's consumer thread, the broker's): where in it they went.
    With ``postgres``, the PostgreSQL server's too (all its processes on this machine).
    """
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before_threads = {name: threads_cpu_seconds(pid) for name, pid in pids.items() if threads}
    server_before = group_cpu_seconds(postgres_pids()) if postgres else {}
    started = time.perf_counter()
    yield
    wall = time.perf_counter() - started
    used = {name: round(cpu_seconds(pid) - before[name], 1) for name, pid in pids.items()}
    if postgres:
        # A backend started meanwhile used all its CPU in the block; one that ended is lost.
        server_after = group_cpu_seconds(postgres_pids())
        used["postgres"] = round(
            sum(spent - server_before.get(pid, 0.0) for pid, spent in server_after.items()), 1
        )
    print(f"{what}: CPU seconds in {wall:.1f} s of wall time (2 cores: {2 * wall:.1f}): {used}")
    if not threads:
        return
    for name, pid in pids.items():
        now = threads_cpu_seconds(pid)
        by_thread = {tid: now[tid] - before_threads[name].get(tid, 0.0) for tid in now}
        others = sorted((spent for tid, spent in by_thread.items() if tid != pid), reverse=True)
        print(
            f"{what} {name}: main thread {by_thread.get(pid, 0.0):.2f} s, other threads "
            f"{[round(spent, 2) for spent in others if spent >= 0.05]}"
        )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


@contextlib.contextmanager
def profiled(stack: Stack, directory: Path | None, gil: bool = False) -> Iterator[None]:
    """py-spy sampling every worker while the block runs (nothing without a directory)."""
    if directory is None:
        yield
        return
    # Beside the interpreter running this: .venv/bin/py-spy, wherever the checkout is.
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    directory.mkdir(parents=True, exist_ok=True)
    samplers = [
        subprocess.Popen(
            [
                *(py_spy, "record", "--format", "raw", "--rate", "200", "--nonblocking"),
                # Only the thread holding the GIL: what uses the CPU, not what waits.
                *(("--gil",) if gil else ()),
                *("--pid", str(process.pid), "--output", str(directory / f"{name}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, process in stack.processes.items()
    ]
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for sampler in samplers:
            sampler.wait(timeout=60)
        print(f"profiles: {', '.join(str(directory / f'{n}.txt') for n in stack.processes)}")


@contextlib.contextmanager
def dropped_after(admin_url: str | None, database_url: str | None) -> Iterator[None]:
    try:
        yield
    finally:
        if admin_url and database_url:
            drop_postgres_database(admin_url, database_url)


def warm_up(stack: Stack, slack: FakeSlack) -> None:
    """One detractor through the whole loop, so joins and first imports are behind us."""
    run = uuid.uuid4().hex[:6]
    accepted = asyncio.run(post_steadily(stack.url("ingest") + "/v1/responses", run, 10, 1))
    at_slack = SlackIds(slack, re.compile(rf"lat-{run}-\d+"))
    deadline = time.time() + 120
    while time.time() < deadline and not accepted.keys() <= at_slack.now().keys():
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=int, default=3000, help="responses for (a)")
    parser.add_argument("--pipeline", type=int, default=1000, help="responses for (b)")
    parser.add_argument("--rate", type=float, default=200.0, help="responses a second for (c)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (c) posts")
    parser.add_argument("--timeout", type=float, default=300.0, help="most waited for (b), (c)")
    parser.add_argument("--profile", type=Path, help="py-spy each worker into this directory")
    parser.add_argument(
        "--gil", action="store_true", help="with --profile: sample only the thread holding the GIL"
    )
    parser.add_argument(
        "--threads", action="store_true", help="print each process's CPU seconds by thread"
    )
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server for the workers")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every worker, e.g. NPSLOOP_NOTIFIER_LANES=1 (repeatable)",
    )
    args = parser.parse_args()
    env = dict(WORKERS_ENV)
    for setting in args.set:
        name, _, value = setting.partition("=")
        if not name.startswith("NPSLOOP_") or not value:
            parser.error(f"--set {setting}: expected NPSLOOP_NAME=VALUE")
        env[name] = value

    with tempfile.TemporaryDirectory() as directory, EmbeddedBroker() as broker:
        raw_eps = asyncio.run(raw_loop(broker.bootstrap_servers, args.raw))
        print(f"(a) raw_eps {raw_eps:.0f}")
        database_url = create_postgres_database(args.postgres) if args.postgres else None
        with (
            dropped_after(args.postgres, database_url),
            stack_with_fakes(
                broker.bootstrap_servers, Path(directory) / "stack", env, database_url
            ) as (stack, slack, _sendgrid),
        ):
            warm_up(stack, slack)
            pids: dict[str, int] = {n: p.pid for n, p in stack.processes.items()}
            pids.update(broker=broker.pid or 0, bench=os.getpid())
            with profiled(stack, args.profile, args.gil):
                with cpu_used("(b)", pids, args.threads, bool(args.postgres)):
                    pipeline_eps = pipeline(stack, slack, args.pipeline, args.timeout)
                print(f"(b) pipeline_eps {pipeline_eps:.0f}")
                with cpu_used("(c)", pids, args.threads, bool(args.postgres)):
                    latencies = alert_latency(stack, slack, args.rate, args.seconds, args.timeout)
            rss = {name: peak_rss_mb(process.pid) for name, process in stack.processes.items()}
        print(f"(d) peak RSS (VmHWM) per worker, MB: {rss}")
        print(
            json.dumps(
                {
                    "raw_eps": round(raw_eps, 1),
                    "pipeline_eps": round(pipeline_eps, 1),
                    "ratio": round(pipeline_eps / raw_eps, 3),
                    "alert_ms_p50": round(percentile(latencies, 0.50), 1),
                    "alert_ms_p95": round(percentile(latencies, 0.95), 1),
                    "alert_ms_p99": round(percentile(latencies, 0.99), 1),
                    "rss_mb": rss,
                }
            )
        )


if __name__ == "__main__":
    main()
