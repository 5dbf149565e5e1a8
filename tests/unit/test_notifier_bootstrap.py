"""The notifier refuses, at start, rules it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifier.bootstrap import rule_set
from shared.settings import Settings


def test_a_rule_asking_for_a_follow_up_email_starts_now_that_the_email_is_sent(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - name: ask passives\n    when: {category: passive}\n"
        "    then: [follow_up_email: {}]\n"
    )
    assert [rule.name for rule in rule_set(Settings(rules_file=rules)).rules] == ["ask passives"]


def test_a_broken_rules_file_stops_the_notifier_naming_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - name: x\n    when: {colour: red}\n    then: [review_request]\n"
    )
    with pytest.raises(SystemExit, match=r"rules.yaml:4"):
        rule_set(Settings(rules_file=rules))


def test_the_shipped_rules_start_without_slack_credentials() -> None:
    assert {rule.name for rule in rule_set(Settings()).rules} >= {"detractors", "promoters"}


def test_a_slack_base_url_without_its_final_slash_is_given_one() -> None:
    # slack-sdk joins method names onto the base: "…/api" + "chat.postMessage" would break.
    assert (
        Settings(slack_api_url="http://127.0.0.1:9/api").slack_api_url == "http://127.0.0.1:9/api/"
    )
    assert Settings().slack_api_url == "https://slack.com/api/"
