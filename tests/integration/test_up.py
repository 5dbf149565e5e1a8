"""`npsloop up --demo`: one command brings the loop up and shows it working;
Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.up import nps_summary
from shared.process import free_port
from tests.stack import http_get

pytestmark = pytest.mark.integration


def _processes_using(data_dir: Path) -> list[int]:
    """Pids of live processes started with this data directory in their environment."""
    marker = f"NPSLOOP_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def _broker_pids(log_marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "tansu" in cmdline and log_marker in cmdline:
            pids.append(int(entry.name))
    return pids


def test_up_with_demo_shows_alerts_review_emails_and_nps_then_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    ports = {name: free_port() for name in ("INGEST", "CLASSIFIER", "NOTIFIER", "AGGREGATOR")}
    broker_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPSLOOP_")}
    env.update({f"NPSLOOP_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        {
            "NPSLOOP_DATA_DIR": str(data_dir),
            "NPSLOOP_EMBEDDED_BROKER_PORT": str(broker_port),
            "NPSLOOP_BROKER_SESSION_TIMEOUT_SECONDS": "6",
        }
    )
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "services", "up", "--demo", "--rate", "5"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    outbox = data_dir / "outbox.jsonl"
    try:
        alerts = emails = 0
        summary = None
        deadline = started + 120
        while time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read().decode() if up.stdout else ""
            if outbox.exists():
                records = [json.loads(line) for line in outbox.read_text().splitlines() if line]
                alerts = sum(r["channel"] == "slack" for r in records)
                emails = sum(r["channel"] == "email" for r in records)
            status, text = http_get(f"http://127.0.0.1:{ports['AGGREGATOR']}/metrics", timeout=1)
            summary = nps_summary(text) if status == 200 else None
            if alerts and emails and summary:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        print(f"up --demo: first alert, review email and NPS after {elapsed:.1f}s: {summary}")
        assert alerts >= 1 and emails >= 1, f"alerts={alerts} emails={emails}"
        assert summary is not None and summary.startswith("NPS 30d:")
        assert len(_processes_using(data_dir)) >= 4, "the four workers should be running"
        assert _broker_pids(str(broker_port)), "the embedded broker should be running"
    finally:
        up.send_signal(signal.SIGINT)
        try:
            output, _ = up.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()
            output, _ = up.communicate()
            pytest.fail("npsloop up did not stop within 40s of Ctrl-C")
    text = output.decode()
    assert up.returncode == 0, text
    assert f"http://127.0.0.1:{ports['INGEST']}/v1/responses" in text
    # Alerts go where the shipped rules route them: the store's channel.
    assert "[slack #store-" in text and "[email to " in text
    assert "npsloop: stopped" in text
    deadline = time.monotonic() + 5
    while (
        _processes_using(data_dir) or _broker_pids(str(broker_port))
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(data_dir) == [], "a worker outlived npsloop up"
    assert _broker_pids(str(broker_port)) == [], "the broker outlived npsloop up"
