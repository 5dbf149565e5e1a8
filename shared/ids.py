"""Deterministic ids: the same input always yields the same id, so replays are recognised."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

NAMESPACE = uuid.UUID("0e5a3f0c-2b0d-4c55-8f55-6e7073c0f1b1")
CASE_NAMESPACE = uuid.UUID("a4d0c3f1-8f0e-4b7a-9a51-5c1f0b7e2a11")


def event_id(source: str, source_id: str, content: Any = None) -> uuid.UUID:
    """uuid5 of an event's source and its id there (and its content, when a source id repeats).

    ``content`` distinguishes a real change (a comment added to a response) from
    a redelivery of the same thing, which must keep its id.
    """
    name = f"{source}:{source_id}"
    if content is not None:
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        name += ":" + hashlib.sha256(canonical.encode()).hexdigest()
    return uuid.uuid5(NAMESPACE, name)


def derived_id(parent: uuid.UUID, step: str) -> uuid.UUID:
    """The id of the event a service derives from another, stable across replays."""
    return uuid.uuid5(parent, step)


def case_id_for(response_id: str) -> str:
    """One case per response, with an id anyone who knows the response can derive."""
    return str(uuid.uuid5(CASE_NAMESPACE, response_id))
