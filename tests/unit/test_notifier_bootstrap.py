"""The notifier refuses, at start, rules it cannot use; a Slack that is only having a bad
moment does not stop it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.notifier.bootstrap import CHANNEL_CHECK_ATTEMPTS, rule_set, slack_channels
from shared.settings import Settings
from tests.fakes import SLACK_TEST_TOKEN, FakeSlack, RateLimited, ServerError, fake_slack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = fake_slack()
    yield server
    server.stop()


def _with(slack: FakeSlack, token: str = SLACK_TEST_TOKEN, **settings: object) -> Settings:
    return Settings(
        slack_bot_token=token,
        slack_api_url=slack.url + "/api/",
        delivery_timeout_seconds=1,
        **settings,  # type: ignore[arg-type]
    )


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


def test_the_rules_channels_are_checked_once_slack_answers_after_a_500_and_a_429(
    slack: FakeSlack, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: 1\nrules:\n  - name: x\n    then: [slack_alert: {channel: "#nowhere"}]\n'
    )
    slack.fail_next(1, ServerError(), path="conversations.list")
    slack.fail_next(1, RateLimited(retry_after=1), path="conversations.list")
    with pytest.raises(SystemExit, match="#nowhere"):
        rule_set(_with(slack, rules_file=rules))
    assert len(slack.received("/api/conversations.list")) == 3


def test_a_slack_that_keeps_failing_is_asked_a_few_times_then_left_unchecked(
    slack: FakeSlack,
) -> None:
    slack.fail_randomly(1.0, (ServerError(503),), path="conversations.list")
    waits: list[float] = []
    assert slack_channels(_with(slack), sleep=waits.append) is None
    assert len(slack.received("/api/conversations.list")) == CHANNEL_CHECK_ATTEMPTS
    assert waits == sorted(waits) and len(waits) == CHANNEL_CHECK_ATTEMPTS - 1


def test_a_refused_token_stops_the_notifier_at_once(slack: FakeSlack) -> None:
    with pytest.raises(SystemExit, match="invalid_auth"):
        slack_channels(_with(slack, token="xoxb-wrong"), sleep=lambda _: None)
    assert len(slack.received("/api/conversations.list")) == 1
