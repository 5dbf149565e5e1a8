"""What the tests need of Prometheus and Grafana: Debian's `prometheus` and `promtool`
binaries, the queries of deploy/ (every Grafana panel and variable, every alert rule),
and a real Prometheus server in a temporary directory.

A missing binary is an error, not a skip, as with the browser: a check that never ran
must not pass. scripts/setup.sh installs them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.process import die_with_parent, free_port
from tests.stack import http_get

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "npsloop.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "npsloop.yml"

# Grafana's own variables, given values a short test run has data for (scrapes every second).
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}

# A metric selector in our queries: an npsloop metric (or `up`) and its label matchers.
_SELECTOR = re.compile(r"\b(?P<name>npsloop_[a-z0-9_]+|up)\b(?:\s*\{(?P<matchers>[^{}]*)\})?")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_LABEL_VALUES = re.compile(
    r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$"
)


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(
            f"{binary} is not installed: run scripts/setup.sh "
            "(or: apt-get install -y prometheus, which brings promtool too)"
        )
    return path


@dataclass(frozen=True)
class Query:
    """One PromQL expression of deploy/, named by where it comes from."""

    where: str
    expr: str

    def selectors(self) -> list[Selector]:
        return selectors_of(self.expr)


@dataclass(frozen=True)
class Selector:
    name: str
    text: str
    labels: tuple[str, ...]

    def shape(self) -> str:
        """A selector for any series of the metric that carries every label this one uses."""
        present = ", ".join(f'{label}=~".+"' for label in self.labels)
        return f"{self.name}{{{present}}}" if present else self.name


def selectors_of(expr: str) -> list[Selector]:
    found: dict[str, Selector] = {}
    for match in _SELECTOR.finditer(expr):
        matchers = match.group("matchers") or ""
        labels = tuple(sorted(set(_MATCHER_LABEL.findall(matchers))))
        text = f"{match.group('name')}{{{matchers}}}" if matchers else match.group("name")
        found.setdefault(text, Selector(match.group("name"), text, labels))
    return list(found.values())


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Grafana's `$name` and `${name}` replaced by concrete values."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    if "$" in expr:
        raise ValueError(f"a variable has no value in: {expr}")
    return expr


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def load_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return rules


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too; rows themselves left out."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def panel_queries(dashboard: Mapping[str, Any], values: Mapping[str, str]) -> list[Query]:
    every = {**GRAFANA_INTERVALS, **values}
    return [
        Query(
            f"panel {panel['title']!r} target {target['refId']}",
            substitute(target["expr"], every),
        )
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def variable_queries(dashboard: Mapping[str, Any], values: Mapping[str, str]) -> list[Query]:
    """Each template variable's label_values(selector, label) as `group by (label) (selector)`:
    the values the variable offers, empty when it would offer none."""
    found = []
    for variable in dashboard["templating"]["list"]:
        definition = variable["query"]["query"]
        match = _LABEL_VALUES.match(definition)
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(...): {definition}")
        selector = substitute(match.group("selector"), values)
        found.append(
            Query(
                f"variable {variable['name']}",
                f"group by ({match.group('label')}) ({selector})",
            )
        )
    return found


def rule_queries(rules: Mapping[str, Any]) -> list[Query]:
    return [
        Query(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


class Prometheus:
    """A Prometheus server's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        status, text = http_get(f"{self.url}{path}?{query}", timeout=10.0)
        if not text:
            raise RuntimeError(f"Prometheus did not answer {path} (status {status})")
        answer: dict[str, Any] = json.loads(text)
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """The /api/v1/query answer: status success with data, or status error with why."""
        return self.get("/api/v1/query", query=expr)

    def series_count(self, expr: str) -> int:
        answer = self.query(expr)
        if answer["status"] != "success":
            raise AssertionError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        result = answer["data"]["result"]
        return len(result) if isinstance(result, list) else 1

    def value(self, expr: str) -> float | None:
        """The value of a one-series instant query, None when it returns nothing."""
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.get("/api/v1/targets")["data"]["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        groups = self.get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextlib.contextmanager
def running_prometheus(
    directory: Path,
    targets: Mapping[str, str],
    rule_files: list[Path],
    interval_seconds: float = 1.0,
) -> Iterator[Prometheus]:
    """Debian's prometheus scraping ``targets`` (job name -> host:port) every
    ``interval_seconds``, evaluating ``rule_files`` as often; its storage in ``directory``."""
    binary = require("prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    interval = f"{int(interval_seconds * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in targets.items()
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = open(directory / "prometheus.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while http_get(url + "/-/ready", timeout=1.0)[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "prometheus did not start:\n" + (directory / "prometheus.log").read_text()
                )
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
