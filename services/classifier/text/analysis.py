"""Everything the classifier understands of a comment, in one pure call."""

from __future__ import annotations

from dataclasses import dataclass

from services.classifier.text.flags import Flag, Priority, priority_of, score_contradicts_comment
from services.classifier.text.language import (
    SUPPORTED_LANGUAGES,
    UNKNOWN,
    LanguageCode,
    LanguageDecision,
    decide_language,
)
from services.classifier.text.sentiment import NEUTRAL, Sentiment, score_sentiment
from services.classifier.text.taxonomy import Taxonomy
from services.classifier.text.themes import KeywordHit, match_keywords
from services.classifier.text.tokens import document

MAX_CHARACTERS = 10_000
"""Longer comments are analysed on their first this many characters."""


@dataclass(frozen=True)
class TextAnalysis:
    """What a comment says: its language, sentiment, themes, urgent words and flags."""

    language: LanguageDecision
    sentiment: Sentiment
    themes: tuple[KeywordHit, ...]
    urgent: tuple[KeywordHit, ...]
    flags: frozenset[Flag]
    priority: Priority
    truncated: bool = False

    @property
    def urgent_words(self) -> tuple[str, ...]:
        """Every urgent word found, once each, in category order."""
        return tuple(dict.fromkeys(word for hit in self.urgent for word in hit.words))

    @property
    def theme_ids(self) -> tuple[str, ...]:
        return tuple(hit.id for hit in self.themes)


NO_COMMENT = TextAnalysis(
    language=UNKNOWN,
    sentiment=NEUTRAL,
    themes=(),
    urgent=(),
    flags=frozenset(),
    priority=Priority.NORMAL,
)


def analyse(
    comment: str | None, score: int, locale: str | None, taxonomy: Taxonomy
) -> TextAnalysis:
    """Analyse a response's comment given its score (0-10) and the survey's locale.

    Pure and total: no I/O beyond the process's one language detector, and no input
    raises; an absent or blank comment gives ``NO_COMMENT``. A comment longer than
    ``MAX_CHARACTERS`` is analysed on a truncated copy (``truncated`` says so).
    """
    if not isinstance(comment, str) or not comment.strip():
        return NO_COMMENT
    truncated = len(comment) > MAX_CHARACTERS
    text = comment[:MAX_CHARACTERS]
    language = decide_language(text, locale)
    sentiment = score_sentiment(text, language.code)
    searched = document(text)
    languages = _search_languages(language.code)
    themes = match_keywords(searched, taxonomy.themes, languages)
    urgent = match_keywords(searched, taxonomy.urgent, languages)
    flags = set()
    if urgent:
        flags.add(Flag.URGENT)
    if isinstance(score, int) and score_contradicts_comment(score, sentiment):
        flags.add(Flag.SCORE_COMMENT_MISMATCH)
    frozen = frozenset(flags)
    return TextAnalysis(
        language=language,
        sentiment=sentiment,
        themes=themes,
        urgent=urgent,
        flags=frozen,
        priority=priority_of(frozen),
        truncated=truncated,
    )


def _search_languages(code: LanguageCode | None) -> tuple[LanguageCode, ...]:
    # Keywords of one language only: "fire" is four in Danish and Norwegian, "brand" is a
    # fire in Danish and a trademark in English. Unknown: every language, since a short
    # comment ("opsiger!") is better matched loosely than not at all.
    return (code,) if code is not None else SUPPORTED_LANGUAGES
