"""What the aggregator's timers do: refresh the gauges, publish the week's digest once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.aggregator.adapters import ReadModel
from services.aggregator.digest import DigestSchedule, build_digest
from services.aggregator.metrics import AggregatorGauges
from services.aggregator.queries import load_facts
from services.aggregator.report import Report, ReportingConfig, build_report
from shared.events import Digest, SurveyKind

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Refresher:
    """Loads the facts the windows need, folds them into a report and shows it on the gauges.

    The read model keeps the facts of the horizon (180 days of responses) in memory and
    reads only the rows written since the last refresh; the report is folded whole each
    time, 0.4 to 0.5 s for 20,000 responses on a small machine (bench/aggregator_refresh.py).
    """

    def __init__(
        self,
        read_model: ReadModel,
        gauges: AggregatorGauges,
        config: ReportingConfig,
        clock: Clock = utc_now,
    ) -> None:
        self.read_model = read_model
        self.gauges = gauges
        self.config = config
        self.clock = clock

    def refresh(self) -> Report:
        now = self.clock()
        report = build_report(load_facts(self.read_model, now), now, self.config)
        self.gauges.show(report)
        return report


@dataclass(frozen=True)
class RefreshPace:
    """How long to wait after a refresh before the next.

    A refresh starts every ``interval``, yet never so often that refreshing takes more than
    ``share`` of the worker's time: its cost grows with the responses of 180 days (3.6 s for
    20,000 on a small machine), and at the default interval of 2 s it would otherwise run
    back to back, a core taken from counting and from the other workers on the host.
    """

    interval: float
    share: float = 0.25

    def __post_init__(self) -> None:
        if self.interval <= 0 or not 0 < self.share <= 1:
            raise ValueError(f"a refresh pace needs interval > 0 and 0 < share <= 1: {self}")

    def wait_after(self, took: float) -> float:
        """Seconds from the end of a refresh that took ``took`` seconds to the next one."""
        return max(self.interval - took, took * (1 - self.share) / self.share)


class DigestPublisher:
    """Publishes the digest of each week once it is due, and once only.

    Sent first, then stored as published: a crash in between publishes it again with the
    same event id, which the notifier posts once. A week without a single NPS response
    has nothing to say and is not published (a new installation does not open with an
    empty digest).
    """

    def __init__(
        self,
        read_model: ReadModel,
        config: ReportingConfig,
        schedule: DigestSchedule,
        send: Callable[[Digest], Awaitable[None]],
        clock: Clock = utc_now,
    ) -> None:
        self.read_model = read_model
        self.config = config
        self.schedule = schedule
        self.send = send
        self.clock = clock

    async def publish_due(self) -> Digest | None:
        now = self.clock()
        period = self.schedule.due(now, self.config.zone)
        if period is None or await asyncio.to_thread(self.read_model.digest_published, period):
            return None

        def build() -> Digest | None:
            facts = load_facts(self.read_model, now)
            if not any(
                fact.survey_kind == SurveyKind.NPS and fact.responded_at in period
                for fact in facts.responses
            ):
                return None
            return build_digest(facts, now, self.config)

        digest = await asyncio.to_thread(build)
        if digest is None:
            return None
        await self.send(digest)
        await asyncio.to_thread(
            self.read_model.mark_digest_published, period, str(digest.event_id), now
        )
        return digest
