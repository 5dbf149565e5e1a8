"""Faust plumbing every service shares: the app, topics from the registry, the
per-event loop that never lets an exception escape, and the health and metrics routes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError, OperationalError

from shared import events
from shared.commits import use_contiguous_commits
from shared.metrics import (
    CONTENT_TYPE,
    ConsumerLag,
    PartitionKey,
    StreamMetrics,
    partition_lag,
    render,
)
from shared.settings import ServiceName, Settings
from shared.topics import CUSTOMER_PARTITIONS, DLQ, TopicSpec

log = logging.getLogger(__name__)

DEAD_LETTER_NAMESPACE = uuid.UUID("6b1f7c1e-52a8-4d0a-9c55-1f1e0c2a7d01")
# A letter carries the key and value in base64 (a third bigger) and must stay under the
# producer's and Kafka's default limit of 1 MB, or it cannot be sent: the agent crashes
# and the message is skipped without a letter. Anything bigger is kept cut to this.
DEAD_LETTER_MAX_KEY_BYTES = 64 * 1024
DEAD_LETTER_MAX_VALUE_BYTES = 512 * 1024
MAX_REQUEST_BYTES = 5 * 1024 * 1024

Handler = Callable[[bytes | None, bytes | None], Awaitable[None]]
ReadyCheck = Callable[[], bool]
Decoded = TypeVar("Decoded")


def make_app(service: ServiceName, settings: Settings) -> faust.App:
    """The Faust app of one service; its consumer group is the service's name."""
    bootstrap = settings.require_bootstrap_servers()
    port = settings.port_of(service)
    group = (
        f"{settings.namespace}-npsloop-{service}" if settings.namespace else f"npsloop-{service}"
    )
    session_timeout = settings.broker_session_timeout_seconds
    datadir = settings.data_dir / "faust" / f"{service}-{port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group,
        broker=[f"kafka://{server.strip()}" for server in bootstrap.split(",")],
        store="memory://",
        datadir=str(datadir),
        topic_partitions=CUSTOMER_PARTITIONS,
        topic_replication_factor=settings.kafka_replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        recovery_consistency_check=settings.recovery_consistency_check,
        producer_acks=-1,
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=max(session_timeout / 10, 0.5),
        broker_rebalance_timeout=max(session_timeout * 2, 10.0),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=port,
        web_application_options={"client_max_size": MAX_REQUEST_BYTES},
    )
    use_contiguous_commits(app, settings.broker_fetch_max_wait_ms)
    return app


def topic(app: faust.App, spec: TopicSpec, settings: Settings) -> faust.TopicT:
    """A registry topic carrying raw bytes: decoding is ours, so a bad message reaches the dlq."""
    return app.topic(
        spec.qualified(settings.namespace),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )


class TransientError(Exception):
    """A failure that a later attempt may not meet (an outage), never the event's fault."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | ConnectionError | TimeoutError | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class EventLoop:
    """Runs a handler per event of a stream.

    A transient failure (the database or the broker away) is retried with a
    growing pause, holding the partition so that nothing is skipped; any other
    failure sends the event to the dlq with its reason, and the stream goes on.
    """

    def __init__(
        self,
        service: ServiceName,
        dlq: faust.TopicT,
        metrics: StreamMetrics,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.service = service
        self.dlq = dlq
        self.metrics = metrics
        self.retry_max_seconds = retry_max_seconds

    async def run(self, stream: faust.StreamT[bytes], handler: Handler) -> None:
        async for event in stream.events():
            await self.process(event.message, handler)

    async def run_batches(
        self,
        stream: faust.StreamT[bytes],
        decode: Callable[[bytes | None, bytes | None], Decoded],
        handler: Callable[[Sequence[Decoded]], Awaitable[None]],
        max_size: int,
        within_seconds: float,
    ) -> None:
        """Like run, with the decoded events handled in batches: up to ``max_size`` at once,
        gathered for at most ``within_seconds`` after the first.

        For a handler that pays per call rather than per event (a database transaction).
        ``decode`` is pure: an event it refuses goes to the dlq with its reason, and the rest
        of its batch goes on. A transient failure retries the whole batch with a growing
        pause; any other failure handles the batch again one event at a time, as run would,
        so that only the events at fault go to the dlq and the rest are handled. The handler
        must bear a batch given again, whole or in part.

        Every event of a batch is acked once the batch has been handled, never before: the
        consumer commits an offset only once every event before it is acked, so a stop or a
        crash mid-batch delivers the batch again. (Faust's own ``take_events`` acks what it
        gave out as soon as the caller leaves its loop, handled or not.)
        """
        # Stream.noack() is Faust's, though its StreamT declares no such method.
        manual: Any = stream.noack()  # type: ignore[attr-defined]
        events = aiter(manual.events())
        clock = asyncio.get_running_loop().time
        following: asyncio.Future[Any] | None = None
        try:
            ended = False
            while not ended:
                batch: list[Any] = []
                deadline: float | None = None
                while len(batch) < max_size:
                    if following is None:
                        following = asyncio.ensure_future(anext(events))
                    left = None if deadline is None else max(deadline - clock(), 0.0)
                    done, _ = await asyncio.wait({following}, timeout=left)
                    if not done:
                        break  # the next event waits for the next batch
                    arrived, following = following, None
                    try:
                        batch.append(arrived.result())
                    except StopAsyncIteration:
                        ended = True
                        break
                    if deadline is None:
                        deadline = clock() + within_seconds
                if batch:
                    await self.process_batch(batch, decode, handler)
                    for event in batch:
                        await manual.ack(event)
        finally:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)

    async def process_batch(
        self,
        batch: Sequence[Any],
        decode: Callable[[bytes | None, bytes | None], Decoded],
        handler: Callable[[Sequence[Decoded]], Awaitable[None]],
    ) -> None:
        decoded: list[tuple[Any, Decoded]] = []
        for event in batch:
            message = event.message
            try:
                decoded.append((message, decode(message.key, message.value)))
            except Exception as exc:
                await self.dead_letter(message, exc)
        if not decoded:
            return
        topic_name: str = decoded[0][0].topic
        pause = 0.2
        while True:
            try:
                await handler([value for _, value in decoded])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    log.warning(
                        "%s: a batch of %d from %s failed, handling it one by one: %s",
                        self.service,
                        len(decoded),
                        topic_name,
                        type(exc).__name__,
                    )
                    break
                self.metrics.retries.labels(self.service, topic_name).inc()
                log.warning(
                    "%s: transient failure on a batch of %d from %s, retrying in %.1fs: %s",
                    self.service,
                    len(decoded),
                    topic_name,
                    pause,
                    type(exc).__name__,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.retry_max_seconds)
            else:
                for message, _ in decoded:
                    self.metrics.events.labels(self.service, message.topic, "ok").inc()
                return
        for message, value in decoded:
            await self.process(message, _alone(handler, value))

    async def process(self, message: Any, handler: Handler) -> None:
        topic_name: str = message.topic
        pause = 0.2
        while True:
            try:
                await handler(message.key, message.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    self.metrics.retries.labels(self.service, topic_name).inc()
                    log.warning(
                        "%s: transient failure on %s[%s]@%s, retrying in %.1fs: %s",
                        self.service,
                        topic_name,
                        message.partition,
                        message.offset,
                        pause,
                        type(exc).__name__,
                    )
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self.retry_max_seconds)
                    continue
                await self.dead_letter(message, exc)
                return
            else:
                self.metrics.events.labels(self.service, topic_name, "ok").inc()
                return

    async def dead_letter(self, message: Any, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, events.DecodeError) else _describe(exc)
        letter = events.DeadLetter(
            event_id=uuid.uuid5(
                DEAD_LETTER_NAMESPACE,
                f"{self.service}:{message.topic}:{message.partition}:{message.offset}",
            ),
            occurred_at=datetime.now(UTC),
            service=self.service,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=_beginning(message.key, DEAD_LETTER_MAX_KEY_BYTES),
            value=_beginning(message.value, DEAD_LETTER_MAX_VALUE_BYTES),
            error_type=type(exc).__name__,
            error=reason[:4000],
            failed_at=datetime.now(UTC),
            key_size=_size_if_over(message.key, DEAD_LETTER_MAX_KEY_BYTES),
            value_size=_size_if_over(message.value, DEAD_LETTER_MAX_VALUE_BYTES),
        )
        log.warning(
            "%s: %s[%s]@%s went to the dlq: %s: %s",
            self.service,
            message.topic,
            message.partition,
            message.offset,
            letter.error_type,
            letter.error[:300],
        )
        await self.dlq.send(key=self.service.encode(), value=events.encode(letter))
        self.metrics.events.labels(self.service, message.topic, "dead_letter").inc()
        self.metrics.dead_letters.labels(self.service, message.topic, letter.error_type).inc()


def _alone(handler: Callable[[Sequence[Decoded]], Awaitable[None]], value: Decoded) -> Handler:
    """The batch handler as a handler of one event, already decoded."""

    async def handle(_key: bytes | None, _value: bytes | None) -> None:
        await handler([value])

    return handle


def _beginning(data: bytes | None, limit: int) -> bytes | None:
    return data if data is None else data[:limit]


def _size_if_over(data: bytes | None, limit: int) -> int | None:
    return len(data) if data is not None and len(data) > limit else None


def _describe(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno})" if frame else ""
    return f"{exc}{where}"


def dlq_topic(app: faust.App, settings: Settings) -> faust.TopicT:
    return topic(app, DLQ, settings)


def consumer_ready(app: faust.App) -> bool:
    """Ready when holding partitions of its topics, not rebalancing, and its tables recovered.

    Faust keeps ``rebalancing`` set from the revocation until recovery has ended, so a
    worker that joins a group answers not ready until its share is assigned and restored.
    A standby's changelog partitions alone do not make it ready: it serves nothing.
    """
    return settled(app) and bool(held_partitions(app))


def settled(app: faust.App) -> bool:
    """Not rebalancing, and its tables recovered: the consumer's books are this generation's."""
    if app.rebalancing or getattr(app, "in_recovery", False):
        return False
    recovery = app.tables.recovery if app.tables else None  # type: ignore[attr-defined]
    return recovery is None or recovery.completed.is_set()


def consumer_lag(app: faust.App) -> dict[PartitionKey, int]:
    """The lag of every partition the worker's agents consume, as far as it is known.

    Table changelogs are left out: a table's recovery reads them, and the group never
    commits offsets on them, so they would look forever behind.
    """
    try:
        consumer = app.consumer
        held = topic_partitions_held(app)
        highwaters: dict[PartitionKey, int | None] = {
            (tp.topic, tp.partition): consumer.highwater(tp) for tp in held
        }
        # Faust keeps the offsets it committed, and those it found committed when it was
        # given the partition, only on its consumer; there is no public accessor.
        known: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    except Exception:
        return {}  # not started, or between generations: nothing to tell yet
    committed = {(tp.topic, tp.partition): known.get(tp) for tp in held}
    return partition_lag(highwaters, committed)


def held_partitions(app: faust.App) -> list[PartitionKey]:
    """The partitions of its agents' topics that the worker holds now (no changelogs)."""
    try:
        return sorted((tp.topic, tp.partition) for tp in topic_partitions_held(app))
    except Exception:
        return []  # not started, or between generations


def topic_partitions_held(app: faust.App) -> list[Any]:
    """The TopicPartitions of its agents' topics the worker holds now (no changelogs)."""
    changelogs = app.tables.changelog_topics
    return [tp for tp in app.consumer.assignment() if tp.topic not in changelogs]


def add_health_routes(
    app: faust.App,
    service: ServiceName,
    registry: CollectorRegistry,
    ready: ReadyCheck,
) -> None:
    """/health (alive), /ready (serving its partitions, and how many) and /metrics (Prometheus).

    The consumer lag is measured as /metrics is read, so a scrape always sees it fresh.
    """
    lag = ConsumerLag.create(registry)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"service": service, "status": "ok"})

    async def readiness(_request: web.Request) -> web.Response:
        is_ready = ready()
        # How many partitions it holds, so that whoever scales a service out sees the share.
        body = {"service": service, "ready": is_ready, "partitions": len(held_partitions(app))}
        return web.json_response(body, status=200 if is_ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        lag.show(consumer_lag(app))
        body = await asyncio.to_thread(render, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    router = web_router(app)
    router.add_get("/health", health)
    router.add_get("/ready", readiness)
    router.add_get("/metrics", metrics)


def web_router(app: faust.App) -> web.UrlDispatcher:
    """The router of the worker's aiohttp server, for plain aiohttp handlers."""
    application: web.Application = app.web.web_app  # type: ignore[attr-defined]
    return application.router


def settle_heap() -> None:
    """Leave what the worker holds for good out of the garbage collector's full passes.

    A worker starts with a few hundred thousand objects that live as long as it does
    (modules, Faust, SQLAlchemy's tables and statements), and Python's full collection
    walks every one of them each time: 0.1 to 0.25 s a pass, several passes a minute under
    load, each a pause of the worker (docs/PERFORMANCE.md). Frozen, they are left out of the
    walk; they are still freed by their reference counts, and only a reference cycle among
    them would now be kept, so the garbage is collected first.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class _Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        settle_heap()  # once started: its consumer, producer and web server are built


def run_worker(app: faust.App, settings: Settings) -> None:
    """Run the Faust worker in the foreground until SIGINT or SIGTERM."""
    worker = _Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
