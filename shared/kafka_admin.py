"""Topic administration with kafka-python (it is used here for admin and producing only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from shared.topics import REGISTRY, TopicSpec

log = logging.getLogger(__name__)


def admin_client(bootstrap_servers: str, timeout_seconds: float = 30.0) -> KafkaAdminClient:
    """An admin client, retrying until the brokers answer or the time is up."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap_servers.split(","),
                client_id="npsloop-admin",
                request_timeout_ms=10_000,
            )
        except (KafkaError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"no Kafka broker answered at {bootstrap_servers} within "
                    f"{timeout_seconds:.0f}s: {exc}"
                ) from exc
            time.sleep(0.2)


def ensure_topics(
    bootstrap_servers: str,
    namespace: str = "",
    specs: Iterable[TopicSpec] = REGISTRY,
    replication_factor: int = 1,
    timeout_seconds: float = 30.0,
) -> list[str]:
    """Create the registry's topics that do not exist yet; return the names created."""
    admin = admin_client(bootstrap_servers, timeout_seconds)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(spec.qualified(namespace), spec.partitions, replication_factor)
            for spec in specs
            if spec.qualified(namespace) not in existing
        ]
        created = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                # Another worker created it between our listing and our request.
                pass
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        admin.close()
