"""Fixtures of the comment-analysis tests: one detector and one taxonomy per session."""

from __future__ import annotations

import pytest

from services.classifier.text import Taxonomy, default_taxonomy, warm_up


@pytest.fixture(scope="session", autouse=True)
def language_detector() -> None:
    # Lingua takes about a second to load its models; the process keeps one detector,
    # so building it once here makes every test after it fast.
    warm_up()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return default_taxonomy()
