"""The `npsloop` command: run a worker, the whole system, migrations, topics, the local outbox."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.settings import SERVICES, ServiceName, Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  NPSLOOP_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise SystemExit(f"npsloop: the configuration is not valid:\n{problems}") from exc


def _bootstrap(settings: Settings) -> str:
    """The configured Kafka, else the embedded broker a running `npsloop up` recorded."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    runtime = settings.data_dir / "runtime.json"
    if runtime.exists():
        return str(json.loads(runtime.read_text())["kafka_bootstrap_servers"])
    return settings.require_bootstrap_servers()


def _ingest_store(settings: Settings) -> Any:
    from datetime import timedelta

    from services.ingest.store import IngestStore
    from shared.db import make_engine, migrate, session_factory

    url = settings.database_url_of("ingest")
    migrate(url)
    return IngestStore(session_factory(make_engine(url)), webhook_memory=timedelta(minutes=10))


def cmd_publish(args: argparse.Namespace) -> int:
    from pydantic import ValidationError as PurchaseInvalid
    from tqdm import tqdm

    from services.ingest.publisher import PurchasePublisher, read_purchases
    from shared.events import describe_validation_error

    settings = _settings()
    path = Path(args.file)
    if not path.is_file():
        print(f"npsloop: no such file: {path}", file=sys.stderr)
        return 2
    accepted = 0
    rejected: list[tuple[int, str]] = []
    with PurchasePublisher(_bootstrap(settings), settings.namespace) as publisher:
        for line in tqdm(read_purchases(path), desc="publishing", unit=" lines", file=sys.stderr):
            if line.fields is None:
                rejected.append((line.number, line.problem or "unreadable"))
                continue
            try:
                publisher.publish(line.fields)
            except PurchaseInvalid as exc:
                rejected.append((line.number, describe_validation_error(exc)))
                continue
            accepted += 1
    print(f"accepted {accepted}, rejected {len(rejected)}")
    for number, reason in rejected:
        print(f"  line {number}: {reason}")
    return 1 if rejected else 0


def cmd_explain(args: argparse.Namespace) -> int:
    history = _ingest_store(_settings()).history(args.customer)
    if not history:
        print(f"no survey decisions for customer {args.customer!r}")
        return 1
    print(f"survey decisions for customer {args.customer}:")
    for record in history:
        when = record.decided_at.strftime("%Y-%m-%d %H:%M:%S %Z")
        what = record.status + (f" ({record.reason})" if record.reason else "")
        send = f", send at {record.send_at:%Y-%m-%d %H:%M %Z}" if record.send_at else ""
        order = f"order {record.order_id}" if record.order_id else "no order"
        print(f"  {when}  {what:<24} {order}{send}  invitation {record.invitation_id}")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    import uuid
    from datetime import UTC, datetime

    from services.ingest.store import Inbound
    from shared import topics
    from shared.events import ContactPreference

    store = _ingest_store(_settings())
    customers = store.customers_with_email(args.email)
    if not customers:
        print("no customer with that email address in ingest's records")
        return 1
    at = datetime.now(UTC)
    erasures = [
        ContactPreference(
            event_id=uuid.uuid4(), occurred_at=at, customer_id=customer, action="erased"
        )
        for customer in customers
    ]
    store.accept(
        [Inbound(topics.CONTACT_PREFERENCES, e.customer_id, e.customer_id, e) for e in erasures],
        None,
        at,
    )
    print(
        f"erasure of {len(customers)} customer record(s) journaled: ingest publishes it, and "
        "every service removes the person's data when it reads it"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kafka import KafkaProducer

    from shared import topics

    settings = _settings()
    try:
        since = datetime.fromisoformat(args.since)
        until = datetime.fromisoformat(args.until) if args.until else None
    except ValueError as exc:
        print(f"npsloop: a date is YYYY-MM-DD or an ISO 8601 time: {exc}", file=sys.stderr)
        return 2
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    until = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
    store = _ingest_store(settings)
    producer = KafkaProducer(bootstrap_servers=_bootstrap(settings).split(","), acks="all")
    name = topics.RESPONSES.qualified(settings.namespace)
    count = 0
    try:
        for entry in store.journaled(topics.RESPONSES.name, since, until):
            producer.send(name, key=entry.key.encode(), value=entry.value)
            count += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=60)
    print(
        f"replayed {count} journaled response event(s) onto {name}: the classifier "
        "reclassifies them; figures are replaced by response id and nothing is sent again"
    )
    return 0


def cmd_eval_text(args: argparse.Namespace) -> int:
    from services.classifier.text.evaluation import main as evaluate

    return evaluate(args.files)


def cmd_taxonomy(args: argparse.Namespace) -> int:
    from services.classifier.text import TaxonomyError, load_taxonomy

    try:
        taxonomy = load_taxonomy(args.file)
    except (TaxonomyError, OSError) as exc:
        print(f"npsloop: {args.file} cannot be used:\n{exc}", file=sys.stderr)
        return 2
    print(
        f"{args.file} is valid: {len(taxonomy.themes)} themes "
        f"({', '.join(theme.id for theme in taxonomy.themes)}), "
        f"{len(taxonomy.urgent)} urgent categories"
    )
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from services.notifier.rules import RulesError, format_explanation, load_rules

    settings = _settings()
    if args.action == "check":
        try:
            rules = load_rules(args.target, default_channel=settings.slack_channel)
        except (RulesError, OSError) as exc:
            print(f"npsloop: {args.target} cannot be used:\n{exc}", file=sys.stderr)
            return 2
        names = ", ".join(rule.name for rule in rules.rules)
        print(f"{args.target} is valid: {len(rules.rules)} rules ({names})")
        print("channels it names: " + ", ".join(sorted(rules.channels())))
        return 0
    from services.notifier.bootstrap import configured_rules
    from services.notifier.case_store import SqlCases
    from shared.db import make_engine, migrate, session_factory
    from shared.events import ClassifiedResponse

    url = settings.database_url_of("notifier")
    migrate(url)
    posted = SqlCases(session_factory(make_engine(url))).alert(args.target)
    if posted is None:
        print(f"the notifier has not routed a response {args.target!r}")
        return 1
    try:
        rules = configured_rules(settings)
    except (RulesError, OSError) as exc:
        print(f"npsloop: the routing rules cannot be used:\n{exc}", file=sys.stderr)
        return 2
    classified = ClassifiedResponse.model_validate(posted.classified)
    print(format_explanation(rules.evaluate(classified)))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from shared.kafka_admin import ensure_topics
    from shared.streams import run_worker

    settings = _settings()
    service: ServiceName = args.service
    ensure_topics(
        settings.require_bootstrap_servers(),
        settings.namespace,
        replication_factor=settings.kafka_replication_factor,
    )
    module = importlib.import_module(f"services.{service}.app")
    run_worker(module.create_app(settings), settings)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from services.up import run

    return run(_settings(), demo=args.demo, demo_rate=args.rate)


def cmd_migrate(_args: argparse.Namespace) -> int:
    from shared.db import migrate

    settings = _settings()
    urls = {settings.database_url_of(service) for service in SERVICES}
    for url in sorted(urls):
        migrate(url)
    print(f"migrated {len(urls)} database(s)")
    return 0


def cmd_topics(_args: argparse.Namespace) -> int:
    from shared.kafka_admin import ensure_topics

    settings = _settings()
    created = ensure_topics(
        settings.require_bootstrap_servers(),
        settings.namespace,
        replication_factor=settings.kafka_replication_factor,
    )
    print("created: " + (", ".join(created) if created else "none, all topics exist"))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    path = _settings().local_outbox_path
    printed = _print_outbox(path, 0, args.last)
    while args.follow:
        time.sleep(0.5)
        printed = _print_outbox(path, printed, None)
    if printed == 0 and not path.exists():
        print(f"the local outbox {path} is empty: nothing was sent without credentials yet")
    return 0


def _print_outbox(path: Path, skip: int, last: int | None) -> int:
    if not path.exists():
        return skip
    lines = path.read_text(encoding="utf-8").splitlines()
    shown = lines[skip:] if last is None else lines[-last:]
    for line in shown:
        print(format_outbox_line(json.loads(line)))
    return len(lines)


def format_outbox_line(record: dict[str, Any]) -> str:
    """One delivery from the local outbox, as a person reads it."""
    payload = record["payload"]
    if record["channel"] == "slack":
        return f"[slack {payload['channel']}] {payload['text']}"
    line = f"[email to {payload['to_email']}] {payload['subject']}"
    scores = (payload.get("links") or {}).get("scores")
    if scores:
        line += f"\n      answer 10: {scores[10]}"
    return line


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "publish": cmd_publish,
    "explain": cmd_explain,
    "erase": cmd_erase,
    "replay": cmd_replay,
    "eval-text": cmd_eval_text,
    "taxonomy": cmd_taxonomy,
    "rules": cmd_rules,
    "worker": cmd_worker,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "topics": cmd_topics,
    "outbox": cmd_outbox,
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="npsloop",
        description="Closed-loop NPS feedback on Kafka. Settings come from NPSLOOP_* variables.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker = commands.add_parser("worker", help="run one service's Faust worker")
    worker.add_argument("service", choices=SERVICES)
    up = commands.add_parser("up", help="start the embedded broker and all four workers")
    up.add_argument("--demo", action="store_true", help="feed realistic demo traffic")
    up.add_argument("--rate", type=float, default=2.0, help="demo responses per second (default 2)")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("topics", help="create the topics of the registry that are missing")
    publish = commands.add_parser(
        "publish", help="publish purchase events from a JSON Lines or CSV file onto Kafka"
    )
    publish.add_argument("what", choices=["purchases"])
    publish.add_argument("file", help="a .jsonl file (one purchase per line) or a .csv file")
    explain = commands.add_parser(
        "explain", help="why a customer was (not) surveyed: the history of decisions"
    )
    explain.add_argument("customer", help="the customer id")
    erase = commands.add_parser("erase", help="erase a person's personal data everywhere")
    erase.add_argument("email", help="the person's email address")
    replay = commands.add_parser(
        "replay", help="republish journaled responses so they are classified again"
    )
    replay.add_argument("--since", required=True, help="from this date (YYYY-MM-DD) or time")
    replay.add_argument("--until", help="up to (not including) this date or time")
    eval_text = commands.add_parser(
        "eval-text", help="measure comment sentiment on labelled CSV files (text,label[,lang])"
    )
    eval_text.add_argument("files", nargs="+", metavar="FILE.csv")
    taxonomy = commands.add_parser("taxonomy", help="check a theme taxonomy file")
    taxonomy.add_argument("action", choices=["check"])
    taxonomy.add_argument("file", help="the YAML taxonomy")
    rules = commands.add_parser(
        "rules", help="check a routing rules file, or explain how a response was routed"
    )
    rules.add_argument("action", choices=["check", "explain"])
    rules.add_argument("target", help="check: the rules file; explain: a response id")
    outbox = commands.add_parser("outbox", help="show what was sent to the local outbox")
    outbox.add_argument("-n", "--last", type=int, default=20, help="how many (default 20)")
    outbox.add_argument("-f", "--follow", action="store_true", help="keep showing new ones")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except ConnectionError as exc:
        print(f"npsloop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
