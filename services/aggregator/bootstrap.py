"""The aggregator's configuration from settings: one place that reads them."""

from __future__ import annotations

from services.aggregator.digest import DigestSchedule
from services.aggregator.domain import Rules
from services.aggregator.report import ReportingConfig
from services.aggregator.segments import SegmentPolicy
from shared.settings import Settings


def reporting_config(settings: Settings) -> ReportingConfig:
    """How the aggregator reports; a setting it cannot use stops the worker with the reason."""
    try:
        return ReportingConfig(
            zone=settings.reporting_zone,
            policy=SegmentPolicy(tuple(settings.segment_dimensions), settings.segment_max_values),
            rules=Rules(settings.nps_min_sample, settings.enps_min_group),
            currency=settings.reporting_currency,
            recommendation=frozenset(settings.recommendation_answers),
        )
    except (ValueError, LookupError) as exc:
        raise SystemExit(f"the aggregator's settings: {exc}") from exc


def digest_schedule(settings: Settings) -> DigestSchedule:
    try:
        return DigestSchedule.parse(settings.digest_schedule)
    except ValueError as exc:
        raise SystemExit(f"NPSLOOP_DIGEST_SCHEDULE: {exc}") from exc
