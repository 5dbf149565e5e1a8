"""Review-request decisions in the notifier's database, and the service step that records
them: decide, honour an unsubscribe, write once per response, count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Boolean, String, Table, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.notifier.domain import LoopConfig, decide_review_for
from services.notifier.reviews import ReviewDecision, ReviewReason
from services.notifier.rules import Action
from shared.db import Base, UtcDateTime, inserted_keys
from shared.events import ClassifiedResponse


class ReviewDecisionRow(Base):
    __tablename__ = "notifier_review_decisions"

    response_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Only to forget it on erasure: the decision itself holds no personal data.
    customer_id: Mapped[str | None] = mapped_column(String(200))
    asked: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(300))
    policy: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    store: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)


_DECISIONS = cast(Table, ReviewDecisionRow.__table__)
_KEY = ["response_id"]


def _row_of(decision: ReviewDecision, now: datetime) -> dict[str, Any]:
    return {
        "response_id": decision.response_id,
        "customer_id": decision.customer_id,
        "asked": decision.asked,
        "reason": decision.reason.value,
        "detail": decision.detail[:300],
        "policy": decision.policy,
        "category": decision.category.value,
        "store": decision.store[:120] if decision.store else None,
        "decided_at": now,
    }


@dataclass(frozen=True)
class StoredReviewDecision:
    response_id: str
    customer_id: str | None
    asked: bool
    reason: ReviewReason
    detail: str
    policy: str
    category: str
    store: str | None
    decided_at: datetime


class SqlReviewDecisions:
    """One review decision per response: the first, unless a later version of the response
    asks where the first did not (a score changed from 8 to 9): asked is never taken back."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, decision: ReviewDecision, now: datetime) -> bool:
        """Store a decision; True when it is new or now asks, False when it changes nothing."""
        return self.record_many([decision], now)[0]

    def record_many(self, decisions: Sequence[ReviewDecision], now: datetime) -> list[bool]:
        """``record`` of each decision, in one transaction: one statement for them all, and
        one more for each that asks where the response had a decision already. Their
        response ids differ (a later version of a response is recorded by a later call)."""
        rows = {decision.response_id: _row_of(decision, now) for decision in decisions}
        if len(rows) != len(decisions):
            raise ValueError("record_many takes one decision of a response at a time")
        with self._sessions.begin() as session:
            # In the order of their keys: two workers' intakes lock rows in the same order.
            inserted = inserted_keys(session, _DECISIONS, [rows[k] for k in sorted(rows)], _KEY)
            changed = []
            for decision in decisions:
                if (decision.response_id,) in inserted:
                    changed.append(True)
                elif not decision.asked:
                    changed.append(False)
                else:
                    asks_now = session.execute(
                        update(ReviewDecisionRow)
                        .where(
                            ReviewDecisionRow.response_id == decision.response_id,
                            ReviewDecisionRow.asked.is_(False),
                        )
                        .values(**rows[decision.response_id])
                    )
                    changed.append(bool(getattr(asks_now, "rowcount", 0)))
            return changed

    def decision(self, response_id: str) -> StoredReviewDecision | None:
        with self._sessions() as session:
            row = session.get(ReviewDecisionRow, response_id)
            if row is None:
                return None
            return StoredReviewDecision(
                response_id=row.response_id,
                customer_id=row.customer_id,
                asked=row.asked,
                reason=ReviewReason(row.reason),
                detail=row.detail,
                policy=row.policy,
                category=row.category,
                store=row.store,
                decided_at=row.decided_at,
            )

    def forget_customer(self, customer_id: str) -> None:
        """Erasure: the decisions stay (they are counts and reasons), whose they were does not."""
        with self._sessions.begin() as session:
            session.execute(
                update(ReviewDecisionRow)
                .where(ReviewDecisionRow.customer_id == customer_id)
                .values(customer_id=None)
            )


def review_decisions_counter(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "npsloop_review_decisions_total",
        "Review-request decisions by outcome (asked, not_asked) and reason (promoter, "
        "everyone, sampled_in, not_a_promoter, no_rule, sampled_out, no_email, "
        "no_review_links, suppressed); one per response.",
        ["decision", "reason"],
        registry=registry,
    )
    for reason in ReviewReason:
        counter.labels(_outcome(reason.asked), reason.value)
    return counter


def _outcome(asked: bool) -> str:
    return "asked" if asked else "not_asked"


class ReviewLedger:
    """Records, once per response, whether its customer is asked for a review and why.

    The decision is the one ``plan`` acts on (the same pure function on the same response),
    except that a customer who unsubscribed or was erased is recorded as suppressed: the
    dispatcher does not send them the email either.
    """

    def __init__(
        self,
        store: SqlReviewDecisions,
        config: LoopConfig,
        is_suppressed: Callable[[str], bool],
        counter: Counter,
    ) -> None:
        self.store = store
        self.config = config
        self.is_suppressed = is_suppressed
        self.counter = counter

    def record(
        self, classified: ClassifiedResponse, actions: Sequence[Action], now: datetime
    ) -> ReviewDecision | None:
        """Decide and store, in the calling thread."""
        return self.record_many([(classified, actions)], now)[0]

    def record_many(
        self, responses: Sequence[tuple[ClassifiedResponse, Sequence[Action]]], now: datetime
    ) -> list[ReviewDecision | None]:
        """``record`` of each response (with the actions its rules asked for), their response
        ids differing: the notifier's intake calls it in the thread (and the transaction)
        where it takes its batch in."""
        decisions = [decide_review_for(c, self.config, actions) for c, actions in responses]
        decisions = [
            decision.suppressed()
            if decision is not None and decision.asked and self.is_suppressed(decision.customer_id)
            else decision
            for decision in decisions
        ]
        made = [decision for decision in decisions if decision is not None]
        for decision, changed in zip(made, self.store.record_many(made, now), strict=True):
            if changed:
                self.counter.labels(_outcome(decision.asked), decision.reason.value).inc()
        return decisions

    async def forget_customer(self, customer_id: str) -> None:
        await asyncio.to_thread(self.store.forget_customer, customer_id)
