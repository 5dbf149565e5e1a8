"""deploy/ on its own: promtool accepts the Prometheus configuration and its rules, the
alerts fire on what they are for, Grafana's provisioning fits the dashboard, and
docker-compose mounts each file where the others expect it.

Whether the queries return data from a running stack is
tests/integration/test_prometheus_scrapes_the_stack.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import SERVICES, Settings
from tests.prometheus import (
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TEST,
    load_dashboard,
    load_rules,
    panel_queries,
    panels,
    require,
    variable_queries,
)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
VARIABLES = ("survey_kind", "window", "dimension", "segment")
SAMPLE_VALUES = {"survey_kind": "nps", "window": "30d", "dimension": "all", "segment": "all"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_promtool_accepts_the_prometheus_configuration_and_its_rule_files() -> None:
    checked = promtool("check", "config", PROMETHEUS_CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rules.yml" in checked.stdout  # the rule files were found and checked too
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_on_its_situation_and_stays_quiet_on_its_near_miss() -> None:
    tested = promtool("test", "rules", RULES_TEST)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_waits_a_while_says_how_bad_and_tells_what_to_do() -> None:
    alerts = [rule for group in load_rules()["groups"] for rule in group["rules"]]
    assert alerts
    for alert in alerts:
        assert alert.get("for"), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert len(alert["annotations"]["description"]) > 80, alert["alert"]


def test_the_alerts_cover_what_the_feedback_loop_needs_watched() -> None:
    expressions = {
        rule["alert"]: rule["expr"] for group in load_rules()["groups"] for rule in group["rules"]
    }
    wanted = {
        "NpsDetractorSpike": "npsloop_responses",
        "NpsSignificantDrop": "npsloop_nps_change_significant",
        "NpsCasesBreachingSla": 'npsloop_loop_cases{state="breached"}',
        "NpsloopDeadLetters": "npsloop_dead_letters_total",
        "NpsloopDeliveryFailures": 'npsloop_deliveries_total{outcome="failed"}',
        "NpsloopConsumerLag": "npsloop_consumer_lag_messages",
    }
    for alert, metric in wanted.items():
        assert metric in expressions[alert], alert


def test_promtool_parses_every_dashboard_query_with_its_variables_filled_in(
    tmp_path: Path,
) -> None:
    dashboard = load_dashboard()
    queries = panel_queries(dashboard, SAMPLE_VALUES) + variable_queries(dashboard, SAMPLE_VALUES)
    # promtool parses recording rules' expressions: each query becomes one.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": query.expr}
                    for number, query in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(queries)} rules found" in checked.stdout


def test_the_dashboard_reads_the_provisioned_datasource_and_offers_the_four_variables() -> None:
    dashboard = load_dashboard()
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    reference = {"type": "prometheus", "uid": datasource["uid"]}
    assert datasource["type"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == reference, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == reference, panel["title"]
            assert target["expr"].strip(), panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert tuple(variables) == VARIABLES
    for variable in variables.values():
        assert variable["datasource"] == reference
        assert variable["query"]["query"].startswith("label_values(")
    titles = " ".join(panel["title"].lower() for panel in panels(dashboard))
    for subject in (
        "margin of error",
        "per segment",
        "category split",
        "response rate",
        "sla",
        "cases",
        "revenue",
        "quadrants",
        "themes",
        "deliveries by outcome",
        "latency p95",
        "outbox",
        "dead letters",
        "consumer lag",
    ):
        assert subject in titles, subject


def test_docker_compose_mounts_deploy_where_prometheus_and_grafana_look_for_it() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file
    # Prometheus scrapes each service by its compose name on the port the service serves.
    scraped = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    for service in SERVICES:
        port = Settings.model_fields[f"{service}_port"].default  # compose sets no port
        assert service in services
        assert scraped[service] == [f"{service}:{port}"]

    grafana = services["grafana"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed here")
    # As a user would run it: the file next to a .env copied from .env.example.
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    checked = subprocess.run(
        [*command, "config", "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
