"""The one registry of topics: name, key, partition count and value type.

Everything keyed by customer has the same partition count, so that one
customer's purchases, invitations and responses meet in the same partition
number and any table fed by them shares their partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared import events

CUSTOMER_PARTITIONS = 8


class TopicKey(StrEnum):
    CUSTOMER = "customer_id"
    RESPONSE = "response_id"
    SERVICE = "service"
    NONE = "none"


@dataclass(frozen=True)
class TopicSpec:
    """A topic of the system; ``name`` is versioned and never edited in place."""

    name: str
    key: TopicKey
    partitions: int
    value_type: type[events.Event]

    def qualified(self, namespace: str = "") -> str:
        """The topic's name on the broker, below an optional namespace."""
        return f"{namespace}.{self.name}" if namespace else self.name


PURCHASES = TopicSpec(
    "npsloop.purchases.v1", TopicKey.CUSTOMER, CUSTOMER_PARTITIONS, events.Purchase
)
INVITATIONS = TopicSpec(
    "npsloop.invitations.v1", TopicKey.CUSTOMER, CUSTOMER_PARTITIONS, events.Invitation
)
RESPONSES = TopicSpec(
    "npsloop.responses.v1", TopicKey.CUSTOMER, CUSTOMER_PARTITIONS, events.Response
)
RESPONSES_CLASSIFIED = TopicSpec(
    "npsloop.responses-classified.v1",
    TopicKey.CUSTOMER,
    CUSTOMER_PARTITIONS,
    events.ClassifiedResponse,
)
CASES = TopicSpec("npsloop.cases.v1", TopicKey.RESPONSE, CUSTOMER_PARTITIONS, events.CaseEvent)
CONTACT_PREFERENCES = TopicSpec(
    "npsloop.contact-preferences.v1",
    TopicKey.CUSTOMER,
    CUSTOMER_PARTITIONS,
    events.ContactPreference,
)
DIGESTS = TopicSpec("npsloop.digests.v1", TopicKey.NONE, 1, events.Digest)
DLQ = TopicSpec("npsloop.dlq.v1", TopicKey.SERVICE, 1, events.DeadLetter)

REGISTRY: tuple[TopicSpec, ...] = (
    PURCHASES,
    INVITATIONS,
    RESPONSES,
    RESPONSES_CLASSIFIED,
    CASES,
    CONTACT_PREFERENCES,
    DIGESTS,
    DLQ,
)
