"""Configuration: one frozen settings object, read from NPSLOOP_* environment variables.

Built once in each entry point's ``main()`` and passed down; nothing else reads
the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["ingest", "classifier", "notifier", "aggregator"]
SERVICES: tuple[ServiceName, ...] = ("ingest", "classifier", "notifier", "aggregator")


class Settings(BaseSettings):
    """Every setting of npsloop. The README's configuration table is checked against it."""

    model_config = SettingsConfigDict(env_prefix="NPSLOOP_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        None,
        description="Kafka bootstrap servers (host:port,...). Unset: `npsloop up` starts the "
        "embedded broker; a worker started alone needs it.",
    )
    kafka_replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor of the topics npsloop creates (3 on a real cluster).",
    )
    namespace: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Prefix of topic names and consumer groups, to run several installations "
        "on one Kafka cluster.",
    )
    data_dir: Path = Field(
        Path("var"),
        description="Where embedded mode keeps SQLite files, the local outbox and logs.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db. Unset: one SQLite "
        "file per service in the data directory.",
    )
    migrate_on_start: bool = Field(
        True, description="Apply database migrations when a worker starts."
    )
    web_host: str = Field("127.0.0.1", description="Address the workers' HTTP servers bind to.")
    web_port: int | None = Field(
        None, description="HTTP port of this worker, overriding the per-service default."
    )
    ingest_port: int = Field(6066, description="HTTP port of ingest (the public edge).")
    classifier_port: int = Field(6067, description="HTTP port of the classifier (health, metrics).")
    notifier_port: int = Field(6068, description="HTTP port of the notifier (health, metrics).")
    aggregator_port: int = Field(6069, description="HTTP port of the aggregator (metrics).")
    embedded_broker_port: int | None = Field(
        None, description="Port of the embedded broker started by `npsloop up`; unset: a free one."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the workers."
    )
    broker_session_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Kafka consumer session timeout: how long a dead worker keeps its partitions.",
    )
    recovery_consistency_check: bool = Field(
        True,
        description="Faust's check at recovery that a table's stored offsets are not past the "
        "end of its changelog. `npsloop up` turns it off for its embedded broker, which "
        "misreports a partition's end after batched writes (the check then stops a worker "
        "taking over partitions though nothing is inconsistent); keep it on with Kafka.",
    )
    broker_fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,
        description="How long the broker may hold a consumer's fetch that finds nothing new. "
        "Kafka answers as soon as a message arrives, so there this only sets how often idle "
        "workers ask; the embedded broker answers only when the wait is over, so there it is "
        "each hop's latency, and `npsloop up` sets 100 for it (Faust's own fixed value is "
        "1500; the broker's CPU at idle is the price of a short one).",
    )
    consumer_stall_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a held partition may stand still behind its end, with nothing "
        "in the worker's hands, before the worker reads it again from its committed offset "
        "(see shared/wedge.py).",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Base URL of the Slack Web API (a fake one in tests)."
    )
    slack_bot_token: SecretStr | None = Field(
        None, description="Slack bot token (xoxb-...). Unset: alerts go to the local outbox."
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        description="Signing secret of your Slack app: ingest checks the case-button clicks Slack "
        "posts to /slack/actions with it. Unset: the buttons answer 503.",
    )
    slack_channel: str = Field(
        "#customer-feedback", description="Channel that detractor and passive alerts go to."
    )
    escalation_channel: str = Field(
        "#customer-feedback",
        description="Channel where a case nobody claimed within its SLA is escalated, once.",
    )
    digest_channel: str = Field(
        "#customer-feedback", description="Channel that the weekly results digest is posted to."
    )
    sendgrid_api_url: str = Field(
        "https://api.sendgrid.com",
        description="Base URL of the SendGrid API (a fake one in tests).",
    )
    sendgrid_api_key: SecretStr | None = Field(
        None, description="SendGrid API key. Unset: emails go to the local outbox."
    )
    email_from: str = Field("feedback@example.com", description="Sender address of emails.")
    email_from_name: str = Field("npsloop", description="Sender name of emails.")
    company_name: str = Field("our shop", description="How emails name the business.")
    review_google_url: str | None = Field(
        None, description="Your Google review page, in review requests of stores without their own."
    )
    review_facebook_url: str | None = Field(
        None,
        description="Your Facebook review page, in review requests of stores without their own.",
    )
    review_trustpilot_url: str | None = Field(
        None,
        description="Your Trustpilot review page, in review requests of stores without their own.",
    )
    review_links_file: Path | None = Field(
        None,
        description="Review pages per store (YAML or JSON: default and stores, each with "
        "google, facebook and trustpilot); a store not in it gets the company's pages above. "
        "Checked at start.",
    )
    review_policy: str = Field(
        "promoters",
        description="Who is asked for a review: promoters (where a rule asks), everyone who "
        "answers, or sample:N (N percent of those who answer, whatever their score).",
    )
    delivery_timeout_seconds: float = Field(
        10.0, gt=0, description="How long one call to Slack or SendGrid may take."
    )
    delivery_retry_max_seconds: float = Field(
        300.0, gt=0, description="Longest wait between two attempts of a failed delivery."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Shared secret of the Standard Webhooks signatures on POST /v1/purchases and "
        "/v1/responses (whsec_<base64> or any string). Required by ingest; `npsloop up` makes one.",
    )
    token_secret: SecretStr | None = Field(
        None,
        description="Key that signs survey and unsubscribe links (ingest and notifier). "
        "Required; `npsloop up` makes one.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL of ingest as customers reach it, for links in emails. "
        "Unset: http://127.0.0.1:<ingest port>.",
    )
    notifier_public_url: str | None = Field(
        None,
        description="Base URL of the notifier as staff reach it, for the case links in alerts. "
        "Unset: http://127.0.0.1:<notifier port>.",
    )
    survey_link_days: int = Field(
        30, ge=1, description="How long a survey link works after sending."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body ingest accepts (larger: 413)."
    )
    journal_max_backlog: int = Field(
        10_000,
        ge=1,
        description="Unpublished journal entries beyond which ingest answers 503 with "
        "Retry-After instead of accepting more (the broker is away).",
    )
    delay_service_hours: float = Field(
        24.0, ge=0, description="Wait after a service experience before inviting."
    )
    delay_product_hours: float = Field(
        14 * 24.0, ge=0, description="Wait after a product purchase before inviting (to use it)."
    )
    send_window: str = Field(
        "09:00-20:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$",
        description="Local hours in which invitations, review requests and follow-up emails "
        "are sent (never at night).",
    )
    default_timezone: str = Field(
        "Europe/Copenhagen",
        description="Time zone of customers whose purchase names none and whose locale "
        "names no country.",
    )
    fatigue_days: int = Field(
        90, ge=0, description="No invitation within this many days of the last one or a response."
    )
    default_sampling_rate: float = Field(
        1.0, ge=0, le=1, description="Share of eligible purchases that get an invitation."
    )
    sampling_rates: dict[str, float] = Field(
        default_factory=dict,
        description='Sampling per segment, as JSON: {"store=Webshop": 0.25, "region=Skåne": 0.5}; '
        "the first matching entry wins, else the default rate.",
    )
    heard_from_options: list[str] = Field(
        default_factory=list,
        description='Answers to "how did you first hear about us?" as JSON, e.g. '
        '["recommendation", "google", "social_media", "ads", "local_paper", "store", "other"]; '
        "empty: the question is not asked.",
    )
    rules_file: Path | None = Field(
        None,
        description="The routing rules (YAML) of the notifier; unset: the ones shipped with "
        "npsloop. Checked at start, with the Slack channels they name.",
    )
    taxonomy_file: Path | None = Field(
        None,
        description="The theme taxonomy (YAML) the classifier uses; unset: the one shipped "
        "with npsloop. Checked at start; `npsloop taxonomy check FILE` checks one.",
    )
    slack_channel_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="Least time between two posts to one Slack channel (Slack takes about one "
        "a second); a post that comes sooner waits in the outbox for its turn.",
    )
    burst_threshold: int = Field(
        5,
        ge=2,
        description="Alerts waiting for one Slack channel from which on they are posted as "
        "one summary (up to 25 a message) instead of one by one.",
    )
    notifier_lanes: int = Field(
        16,
        ge=1,
        description="Deliveries the notifier attempts at once, and alerts it redraws at once "
        "for case steps (each response's in order): its work is mostly waiting on Slack, "
        "SendGrid and the database, so more lanes mean more alerts a second, up to what those "
        "take.",
    )
    delivery_max_attempts: int = Field(
        400,
        ge=1,
        description="Attempts of a delivery that sent (a failed look for an earlier attempt does "
        "not count) before it is dead and goes to the dlq with its reason: 400, with waits of up "
        "to NPSLOOP_DELIVERY_RETRY_MAX_SECONDS, ride out about a day of Slack or SendGrid outage.",
    )
    aggregate_refresh_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the aggregator recomputes its windows for /metrics; a refresh "
        "that takes over a quarter of this waits longer, so refreshing never takes more than "
        "a quarter of the worker's time.",
    )
    aggregator_batch_size: int = Field(
        500,
        ge=1,
        description="Events (classified responses, invitations, purchases, case steps) the "
        "aggregator records in one database transaction, at most: those that arrive within "
        "0.1 s of the first, up to this many.",
    )
    reporting_timezone: str | None = Field(
        None,
        description="Time zone of the aggregator's calendar weeks, daily snapshots and digest "
        "schedule; unset: NPSLOOP_DEFAULT_TIMEZONE.",
    )
    segment_dimensions: list[str] = Field(
        default_factory=lambda: [
            "region",
            "business_unit",
            "department",
            "product",
            "store",
            "channel",
        ],
        description="The segment dimensions NPS is cut by, as JSON (an allow-list of region, "
        "business_unit, department, product, store, channel).",
    )
    segment_max_values: int = Field(
        20,
        ge=0,
        description="Distinct values per dimension that get a segment of their own (the first "
        "seen, kept for good); later values count in `other`.",
    )
    nps_min_sample: int = Field(
        30,
        ge=1,
        description="Responses below which a figure is flagged as an insufficient sample.",
    )
    enps_min_group: int = Field(
        5,
        ge=1,
        description="Smallest eNPS group shown on its own; smaller ones fold into `other` or "
        "stay hidden.",
    )
    reporting_currency: str = Field(
        "DKK",
        pattern=r"^[A-Z]{3}$",
        description="Currency of the revenue figures; purchases in another are left out.",
    )
    recommendation_answers: list[str] = Field(
        default_factory=lambda: ["recommendation"],
        description='Answers to "how did you first hear about us?" that mean a recommendation, '
        "as JSON.",
    )
    digest_schedule: str = Field(
        "Monday 08:00",
        pattern=r"^(?i:monday|tuesday|wednesday|thursday|friday|saturday|sunday) "
        r"([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="When the weekly digest of the last complete week is published: a weekday "
        "and a local time in the reporting time zone.",
    )

    @field_validator("slack_api_url")
    @classmethod
    def _slack_base_ends_in_a_slash(cls, url: str) -> str:
        # slack-sdk joins method names onto the base URL: it must end in a slash.
        return url if url.endswith("/") else url + "/"

    @property
    def reporting_zone(self) -> ZoneInfo:
        return ZoneInfo(self.reporting_timezone or self.default_timezone)

    def port_of(self, service: ServiceName) -> int:
        if self.web_port is not None:
            return self.web_port
        ports: dict[ServiceName, int] = {
            "ingest": self.ingest_port,
            "classifier": self.classifier_port,
            "notifier": self.notifier_port,
            "aggregator": self.aggregator_port,
        }
        return ports[service]

    def database_url_of(self, service: ServiceName) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.sqlite3').resolve()}"

    @property
    def local_outbox_path(self) -> Path:
        return self.data_dir / "outbox.jsonl"

    @property
    def ingest_public_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.ingest_port}").rstrip("/")

    @property
    def notifier_case_url(self) -> str:
        return (self.notifier_public_url or f"http://127.0.0.1:{self.port_of('notifier')}").rstrip(
            "/"
        )

    def require_secret(self, name: Literal["webhook_secret", "token_secret"]) -> str:
        value: SecretStr | None = getattr(self, name)
        if value is None or not value.get_secret_value():
            raise SystemExit(
                f"NPSLOOP_{name.upper()} is not set: set it to a long random string "
                "(`npsloop up` makes and keeps one for you in the data directory)."
            )
        return value.get_secret_value()

    def require_bootstrap_servers(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise SystemExit(
                "NPSLOOP_KAFKA_BOOTSTRAP_SERVERS is not set: point it at your Kafka "
                "(e.g. 127.0.0.1:9092), or run `npsloop up` to start the embedded broker."
            )
        return self.kafka_bootstrap_servers
