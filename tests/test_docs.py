"""The README keeps its promises: two quick-start commands, every setting, CI runs its tests."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)
    assert blocks, "the Quick start section has no code block"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_the_quick_start_holds_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^```", section, flags=re.M)) >= 2
    assert len(quick_start_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    test_command = quick_start_commands()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in [line.strip() for line in ci.splitlines()]


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [
        f"NPSLOOP_{name.upper()}"
        for name in Settings.model_fields
        if f"`NPSLOOP_{name.upper()}`" not in README
    ]
    assert missing == []


def test_the_production_section_points_to_the_operations_guide_which_covers_its_topics() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    production = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    assert "deploy/README.md" in production
    guide = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    for heading in ("## Sizing", "## Upgrading", "## Backup and restore", "## What to watch"):
        assert heading in guide
    for topic in ("Partitions", "Workers", "Retention", "Migrations", "pg_dump"):
        assert topic in guide
