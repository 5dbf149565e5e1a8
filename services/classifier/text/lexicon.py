"""Sentiment word lists: AFINN where it exists, our own curated lists elsewhere.

The PyPI release of AFINN (``afinn`` 0.1) ships word lists for English
(AFINN-en-165) and Danish (AFINN-da-32) only, plus emoticons; the Swedish, German and
Norwegian lists exist only in AFINN's source repository, unreleased. So:

- en: AFINN-en-165, then ``lexicons/en.tsv`` (review vocabulary AFINN lacks);
- da: AFINN-da-32, then ``lexicons/da.tsv`` (review vocabulary and corrections);
- no: the Danish layers, then ``lexicons/no.tsv``. Written Bokmål shares most of its
  evaluative vocabulary with Danish (god, dårlig, elendig, skuffet, fantastisk,
  anbefale...); ``no.tsv`` holds the common words that are spelled differently
  (fornøyd, treg, kjempebra...) and the few false friends;
- sv: ``lexicons/sv.tsv``, our own curated list;
- de: ``lexicons/de.tsv``, our own curated list;
- every language: AFINN's emoticons and ``lexicons/emoji.tsv``.

A later layer overrides an earlier one. Each file is ``word<TAB>score`` on AFINN's
scale (-5 to +5); a word may be a phrase of several words, and may end in ``*`` to
match every word form it begins (``skuffe*``). Lines starting with ``#`` are comments.

AFINN is by Finn Årup Nielsen and made available under the Open Database License
(ODbL); it is read from the installed ``afinn`` package, never copied here, and its
code is never imported.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from services.classifier.text.language import LanguageCode
from services.classifier.text.tokens import WORD, normalise

_AFINN_FILES: dict[str, str] = {
    "afinn:en": "AFINN-en-165.txt",
    "afinn:da": "AFINN-da-32.txt",
    "afinn:emoticons": "AFINN-emoticon-8.txt",
}

_LAYERS: dict[LanguageCode, tuple[str, ...]] = {
    "en": ("afinn:emoticons", "emoji", "afinn:en", "en"),
    "da": ("afinn:emoticons", "emoji", "afinn:da", "da"),
    "no": ("afinn:emoticons", "emoji", "afinn:da", "da", "no"),
    "sv": ("afinn:emoticons", "emoji", "sv"),
    "de": ("afinn:emoticons", "emoji", "de"),
}


_WORDS = re.compile(rf"{WORD}(?: {WORD})*")
_PREFIX = re.compile(rf"{WORD}\*")
_VARIATION_SELECTOR = "\ufe0f"


class LexiconError(ValueError):
    """A word list is malformed (a packaging error: the lists ship with npsloop)."""


@dataclass(frozen=True)
class Lexicon:
    """Scores of words, phrases, word-form prefixes, emoticons and emoji in one language."""

    words: Mapping[str, float]
    phrases: Mapping[tuple[str, ...], float]
    prefixes: tuple[tuple[str, float], ...]
    longest_phrase: int
    symbols: Mapping[str, float]
    symbol_pattern: re.Pattern[str] | None

    def score_of(self, word: str) -> float | None:
        """The score of one normalised word: listed as it is, or by its longest listed prefix."""
        found = self.words.get(word)
        if found is not None:
            return found
        for prefix, score in self.prefixes:
            if word.startswith(prefix):
                return score
        return None


@cache
def lexicon(language: LanguageCode) -> Lexicon:
    """The sentiment lexicon of ``language``, read once per process."""
    entries: dict[str, float] = {}
    for layer in _LAYERS[language]:
        entries.update(_read_layer(layer))
    return build_lexicon(entries)


def build_lexicon(entries: Mapping[str, float]) -> Lexicon:
    """A lexicon from ``entry -> score``.

    An entry made of words is a word or a phrase (normalised); a single word ending in
    ``*`` is a prefix; anything else (``:-)``, ``👍``) is a symbol, matched as written.
    """
    words: dict[str, float] = {}
    phrases: dict[tuple[str, ...], float] = {}
    prefixes: dict[str, float] = {}
    symbols: dict[str, float] = {}
    for entry, score in entries.items():
        if _PREFIX.fullmatch(entry):
            prefixes[normalise(entry[:-1])] = score
        elif _WORDS.fullmatch(entry):
            parts = tuple(normalise(part) for part in entry.split())
            if len(parts) > 1:
                phrases[parts] = score
            else:
                words[parts[0]] = score
        elif not entry[0].isdigit():
            # "8)" and "8(" would fire on enumerations such as "point 8)".
            symbols[entry.replace(_VARIATION_SELECTOR, "")] = score
    return Lexicon(
        words=MappingProxyType(words),
        phrases=MappingProxyType(phrases),
        # Longest first, so that the most specific prefix decides.
        prefixes=tuple(sorted(prefixes.items(), key=lambda item: -len(item[0]))),
        longest_phrase=max((len(phrase) for phrase in phrases), default=1),
        symbols=MappingProxyType(symbols),
        symbol_pattern=_symbol_pattern(symbols),
    )


def strip_variation_selectors(text: str) -> str:
    """``text`` without emoji presentation selectors, so that ❤️ and ❤ are one symbol."""
    return text.replace(_VARIATION_SELECTOR, "")


def _symbol_pattern(symbols: Mapping[str, float]) -> re.Pattern[str] | None:
    if not symbols:
        return None
    # Longest first: ":-)))" before ":-)". ASCII emoticons must stand alone (":/" is in
    # every "https://"); emoji are unambiguous wherever they are.
    ordered = sorted(symbols, key=len, reverse=True)
    emoticons = [re.escape(symbol) for symbol in ordered if symbol.isascii()]
    emoji = [re.escape(symbol) for symbol in ordered if not symbol.isascii()]
    alternatives = []
    if emoticons:
        alternatives.append(rf"(?<!\S)(?:{'|'.join(emoticons)})(?![^\s.,!?])")
    if emoji:
        alternatives.append(f"(?:{'|'.join(emoji)})")
    return re.compile("|".join(alternatives))


def parse_lexicon(text: str, source: str) -> dict[str, float]:
    """``word<TAB>score`` lines into a mapping; errors name the file and line."""
    entries: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, separator, score = line.rstrip("\r\n").rpartition("\t")
        if not separator or not word.strip():
            raise LexiconError(f"{source}, line {number}: expected 'word<TAB>score'")
        try:
            value = float(score)
        except ValueError:
            raise LexiconError(f"{source}, line {number}: {score!r} is not a number") from None
        if not -5 <= value <= 5:
            raise LexiconError(f"{source}, line {number}: score {value} is outside -5..5")
        entries[" ".join(word.split())] = value
    return entries


@cache
def _read_layer(layer: str) -> Mapping[str, float]:
    if layer in _AFINN_FILES:
        path = _afinn_data_dir() / _AFINN_FILES[layer]
        return MappingProxyType(parse_lexicon(path.read_text(encoding="utf-8"), path.name))
    resource = resources.files("services.classifier.text").joinpath(f"lexicons/{layer}.tsv")
    return MappingProxyType(parse_lexicon(resource.read_text(encoding="utf-8"), resource.name))


def _afinn_data_dir() -> Path:
    # find_spec locates the installed package without running its (Python 2 era) code.
    spec = importlib.util.find_spec("afinn")
    if spec is None or not spec.submodule_search_locations:
        raise LexiconError("the afinn package is not installed; pip install 'afinn>=0.1'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"
