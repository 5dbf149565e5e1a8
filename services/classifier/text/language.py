"""Which language a comment is written in, decided offline.

Detection uses lingua (high-accuracy mode) restricted to the five languages npsloop
supports. Its language models take 1-2 seconds and 160-250 MB of memory to load, so
one detector is built lazily, once per process, and kept (``detector()``); a worker
calls ``warm_up()`` at start (off the event loop) so that the first response does not
wait for it. Lingua's low-accuracy mode needs only about 20 MB, but on the short
comments below it chose the right language for 72 of 80 whole comments against 76,
and was far worse on fragments, which is where NPS comments live.

Short comments carry too little evidence: "ok", "tak", "bra" and "super" are words in
several of these languages. Measured on short NPS-style comments we wrote in all five
languages (every word prefix of 80 comments, 590 snippets), lingua picked the right
language for 64-87 % of snippets under 10 letters; at 10 letters or more, whenever its
confidence was at least 0.6, it was right 98.9 % of the time (55 % of snippets). Below
either bar the survey's locale is the better guess, so it decides; without a usable
locale the language is unknown (and the rest of the analysis reads the comment in
every language, which suits a comment whose language is unclear better than a weak
guess: an English review naming "Jørgen" or "Næstved" can lean Danish).

Danish, Norwegian and Swedish share much of their vocabulary, and every wrong
detection at 0.6 or more in that measurement was Norwegian read as Danish. So to
overrule a Scandinavian locale with another Scandinavian language lingua must be
surer (0.8: no wrong overrides in the same data); to overrule it with English or
German, 0.6 is enough.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from services.classifier.text.tokens import count_letters

LanguageCode = Literal["da", "sv", "no", "en", "de"]
SUPPORTED_LANGUAGES: tuple[LanguageCode, ...] = get_args(LanguageCode)

MIN_LETTERS = 10
"""Fewer letters than this: the locale decides (see the module docstring)."""

MIN_CONFIDENCE = 0.6
"""Lower confidence than this: the locale decides, or without one the language is unknown."""

MIN_CONFIDENCE_AGAINST_NEIGHBOUR = 0.8
"""Confidence needed to overrule a Scandinavian locale with another Scandinavian language."""

_SCANDINAVIAN: frozenset[LanguageCode] = frozenset({"da", "sv", "no"})

_LINGUA: dict[Language, LanguageCode] = {
    Language.DANISH: "da",
    Language.SWEDISH: "sv",
    Language.BOKMAL: "no",
    Language.ENGLISH: "en",
    Language.GERMAN: "de",
}

# Locale language subtags that mean a supported language: Norwegian comes as "no",
# "nb" (Bokmål) or "nn" (Nynorsk, close enough in writing to share its word lists).
_LOCALE_LANGUAGES: dict[str, LanguageCode] = {
    "da": "da",
    "sv": "sv",
    "no": "no",
    "nb": "no",
    "nn": "no",
    "en": "en",
    "de": "de",
}


class LanguageMethod(StrEnum):
    DETECTED = "detected"
    LOCALE = "locale"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LanguageDecision:
    """The language of a comment (ISO 639-1, "no" for Norwegian) and how it was decided.

    ``confidence`` is lingua's confidence in ``code`` when it was detected, else None.
    """

    code: LanguageCode | None
    method: LanguageMethod
    confidence: float | None = None


UNKNOWN = LanguageDecision(code=None, method=LanguageMethod.UNKNOWN)

_detector: LanguageDetector | None = None
_detector_lock = threading.Lock()


def detector() -> LanguageDetector:
    """The process's one lingua detector for the supported languages, built on first use."""
    global _detector
    # Double-checked: the build takes a second, and two threads must not both pay it.
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                _detector = (
                    LanguageDetectorBuilder.from_languages(*_LINGUA)
                    .with_preloaded_language_models()
                    .build()
                )
    return _detector


def warm_up() -> None:
    """Build the detector now (about a second), so that the first comment does not wait."""
    detector()


def is_warm() -> bool:
    """Whether the detector is built: from then on, a comment takes milliseconds."""
    return _detector is not None


def language_of_locale(locale: str | None) -> LanguageCode | None:
    """The supported language a locale such as "da-DK", "nb_NO" or "sv" names, if any."""
    if not locale:
        return None
    subtag = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return _LOCALE_LANGUAGES.get(subtag)


def decide_language(text: str, locale: str | None) -> LanguageDecision:
    """The language of ``text``: detected when the evidence is clear, else the locale's.

    Never raises: without clear evidence and without a usable locale (none, or one of
    a language we do not support) the language is unknown.
    """
    fallback = language_of_locale(locale)
    if count_letters(text) < MIN_LETTERS:
        return _from_locale(fallback)
    confidences = detector().compute_language_confidence_values(text)
    if not confidences or confidences[0].value <= 0.0:
        return _from_locale(fallback)
    best = confidences[0]
    detected = _LINGUA[best.language]
    needed = MIN_CONFIDENCE
    if fallback is not None and fallback != detected and {fallback, detected} <= _SCANDINAVIAN:
        needed = MIN_CONFIDENCE_AGAINST_NEIGHBOUR
    if best.value < needed:
        return _from_locale(fallback)
    return LanguageDecision(code=detected, method=LanguageMethod.DETECTED, confidence=best.value)


def _from_locale(code: LanguageCode | None) -> LanguageDecision:
    if code is None:
        return UNKNOWN
    return LanguageDecision(code=code, method=LanguageMethod.LOCALE)
