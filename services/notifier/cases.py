"""Follow-up cases: someone owns each detractor and passive until the customer was contacted.

Pure: no Faust, no I/O. A case moves open -> claimed -> contacted -> resolved, can be
reopened, and is escalated once when nobody claimed it within its SLA. Every change says
who and when, so time to claim and time to contact can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.events import CaseAction
from shared.ids import case_id_for


class CaseState(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    CONTACTED = "contacted"
    RESOLVED = "resolved"


class CaseError(ValueError):
    """A step that does not fit the case: it is refused with the reason."""


@dataclass(frozen=True)
class Case:
    case_id: str
    response_id: str
    customer_id: str | None
    state: CaseState
    opened_at: datetime
    sla_due_at: datetime
    question: str | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    contacted_by: str | None = None
    contacted_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None

    @classmethod
    def open(
        cls,
        response_id: str,
        customer_id: str | None,
        at: datetime,
        sla_hours: float,
        question: str | None = None,
    ) -> Case:
        return cls(
            case_id=case_id_for(response_id),
            response_id=response_id,
            customer_id=customer_id,
            state=CaseState.OPEN,
            opened_at=at,
            sla_due_at=at + timedelta(hours=sla_hours),
            question=question,
        )

    def apply(self, action: CaseAction, actor: str | None, at: datetime) -> Case:
        """The case after a step; CaseError when the step does not fit its state."""
        if action == CaseAction.CLAIMED:
            if self.state != CaseState.OPEN:
                raise CaseError(
                    f"case {self.case_id} is {self.state}, only an open case is claimed"
                )
            return replace(self, state=CaseState.CLAIMED, claimed_by=actor, claimed_at=at)
        if action == CaseAction.CONTACTED:
            if self.state not in (CaseState.OPEN, CaseState.CLAIMED):
                raise CaseError(f"case {self.case_id} is {self.state}: the customer was contacted")
            # Contacting the customer claims an unclaimed case: someone did own it.
            claimed_by = self.claimed_by or actor
            claimed_at = self.claimed_at or at
            return replace(
                self,
                state=CaseState.CONTACTED,
                claimed_by=claimed_by,
                claimed_at=claimed_at,
                contacted_by=actor,
                contacted_at=at,
            )
        if action == CaseAction.RESOLVED:
            if self.state == CaseState.RESOLVED:
                raise CaseError(f"case {self.case_id} is resolved already")
            return replace(self, state=CaseState.RESOLVED, resolved_by=actor, resolved_at=at)
        if action == CaseAction.REOPENED:
            if self.state != CaseState.RESOLVED:
                raise CaseError(
                    f"case {self.case_id} is {self.state}, only a resolved case reopens"
                )
            return replace(self, state=CaseState.OPEN, resolved_by=None, resolved_at=None)
        if action == CaseAction.ESCALATED:
            return replace(self, escalated_at=self.escalated_at or at)
        raise CaseError(f"{action} is not a step of a case")

    def due_for_escalation(self, now: datetime) -> bool:
        """Not claimed within its SLA and not escalated yet: escalated exactly once."""
        return self.state == CaseState.OPEN and self.escalated_at is None and now >= self.sla_due_at

    def breached(self, now: datetime) -> bool:
        """Past its SLA and still not resolved."""
        if self.state == CaseState.RESOLVED:
            return self.resolved_at is not None and self.resolved_at > self.sla_due_at
        return now > self.sla_due_at
