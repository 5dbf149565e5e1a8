"""What deserves attention beyond the score: a misread scale, and urgent words."""

from __future__ import annotations

from enum import StrEnum

from services.classifier.text.sentiment import Sentiment


class Flag(StrEnum):
    SCORE_COMMENT_MISMATCH = "score_comment_mismatch"
    URGENT = "urgent"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


def score_contradicts_comment(score: int, sentiment: Sentiment) -> bool:
    """A promoter's score with a clearly negative comment, or 0-3 with a clearly positive one.

    Then the respondent most likely read the scale the wrong way round. Only the
    extremes count: a 4-6 with praise is an ordinary mixed opinion, and only a clear
    comment (``sentiment.CLEAR``) is strong enough evidence to doubt the score.
    """
    if score >= 9:
        return sentiment.clearly_negative
    if 0 <= score <= 3:
        return sentiment.clearly_positive
    return False


def priority_of(flags: frozenset[Flag]) -> Priority:
    """High when something urgent was said; a misread scale alone changes nothing."""
    return Priority.HIGH if Flag.URGENT in flags else Priority.NORMAL
