"""The theme taxonomy: what comments are about, and which words make one urgent.

A YAML file users can edit (the default ships as ``services/classifier/taxonomy.yaml``;
its header explains the syntax). It is validated when loaded, and every problem is
reported at once with the file, line, theme, language and keyword it concerns, so a
user fixing their file does not have to go round one error at a time.

Keywords are words, not regular expressions (regular expressions are easy to get
subtly wrong and slow to run over every comment):

- ``pris`` matches the whole word "pris" in any case, not "prisen";
- ``*`` stands for any letters within a word: ``lever*`` matches levering and
  leveringen, ``*levering`` matches hjemmelevering, ``*pris*`` both;
- several words are a phrase, matched in order across any spaces but not across
  punctuation (``kom aldrig``); a ``*`` on its own in a phrase is any one word
  (``tog * uger``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from services.classifier.text.language import SUPPORTED_LANGUAGES, LanguageCode
from services.classifier.text.tokens import WORD, normalise
from shared.yamlfile import YamlFileError, YamlPath, nearest_line, read_yaml

DEFAULT_TAXONOMY = "taxonomy.yaml"

_IN_WORD = r"[\w'-]"
_KEYWORD_WORD = re.compile(WORD)
_MIN_STEM = 2

# Where a value sits in the YAML document: keys and list indices from the root.


class TaxonomyError(ValueError):
    """A taxonomy file cannot be used; the message names every problem and where it is."""


@dataclass(frozen=True)
class KeywordSet:
    """A theme (or an urgent category) with its keywords per language, compiled."""

    id: str
    label: str
    keywords: Mapping[LanguageCode, tuple[str, ...]]
    patterns: Mapping[LanguageCode, re.Pattern[str]]


@dataclass(frozen=True)
class Taxonomy:
    """The themes comments are sorted into and the urgent categories, from one file."""

    themes: tuple[KeywordSet, ...]
    urgent: tuple[KeywordSet, ...]
    source: str


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and validate a taxonomy file; raises TaxonomyError naming what is wrong where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(f"{path}: no such taxonomy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{path}: cannot read the taxonomy file: {exc}") from None
    return parse_taxonomy(text, source=str(path))


@cache
def default_taxonomy() -> Taxonomy:
    """The taxonomy that ships with npsloop, read once per process."""
    resource = resources.files("services.classifier").joinpath(DEFAULT_TAXONOMY)
    return parse_taxonomy(resource.read_text(encoding="utf-8"), source=DEFAULT_TAXONOMY)


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> Taxonomy:
    """Validate a taxonomy given as YAML text; ``source`` names it in error messages."""
    try:
        document = read_yaml(text, source)
    except YamlFileError as exc:
        raise TaxonomyError(_join([message for _, message in exc.problems])) from None
    raw = document.data
    if not isinstance(raw, dict):
        raise TaxonomyError(
            f"{source}: a taxonomy is a mapping with a 'themes' list (and optionally 'urgent')"
        )
    lines = document.lines
    try:
        spec = _TaxonomySpec.model_validate(raw)
    except ValidationError as exc:
        described = [_describe(error, raw, lines, source) for error in exc.errors()]
        # In file order, so a user can work down the file.
        problems = [text for _, text in sorted(described, key=lambda item: item[0] or 0)]
        raise TaxonomyError(_join(problems)) from None
    problems = [
        *_duplicate_ids(spec.themes, "themes", lines, source),
        *_duplicate_ids(spec.urgent, "urgent", lines, source),
    ]
    if problems:
        raise TaxonomyError(_join(problems))
    return Taxonomy(
        themes=tuple(_compile(entry) for entry in spec.themes),
        urgent=tuple(_compile(entry) for entry in spec.urgent),
        source=source,
    )


def keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression matching any of ``keywords`` in a Document's search text."""
    # Phrases and longer keywords first, so that at one position the fullest match wins.
    ordered = sorted(keywords, key=lambda keyword: (-len(keyword.split()), -len(keyword)))
    alternatives = "|".join(_keyword_regex(keyword) for keyword in ordered)
    return re.compile(rf"(?<!{_IN_WORD})(?:{alternatives})(?!{_IN_WORD})")


def _keyword_regex(keyword: str) -> str:
    words = []
    for word in keyword.split():
        if word == "*":
            words.append(rf"{_IN_WORD}+")
        else:
            words.append(f"{_IN_WORD}*".join(re.escape(part) for part in word.split("*")))
    return " ".join(words)


# --- validation ---------------------------------------------------------------------------


def _check_language(code: str) -> str:
    if code not in SUPPORTED_LANGUAGES:
        hint = " (Norwegian is 'no')" if code in ("nb", "nn", "nor") else ""
        raise ValueError(
            f"unknown language {code!r}{hint}; use one of {', '.join(SUPPORTED_LANGUAGES)}"
        )
    return code


def _check_keyword(keyword: str) -> str:
    words = keyword.split()
    if not words:
        raise ValueError("an empty keyword")
    if all(word == "*" for word in words):
        raise ValueError(f"{keyword!r} is only wildcards and would match every comment")
    for word in words:
        if word == "*":
            continue
        if "**" in word:
            raise ValueError(f"{keyword!r}: write one * for any letters, not **")
        stripped = word.replace("*", "")
        bad = sorted({c for c in stripped if not (c.isalnum() or c in "'’-")})
        if bad:
            raise ValueError(
                f"{keyword!r}: only letters, digits, hyphens, apostrophes and * wildcards are "
                f"allowed, not {' '.join(bad)}; keywords are words, not regular expressions"
            )
        if not all(_KEYWORD_WORD.fullmatch(part) for part in word.split("*") if part):
            raise ValueError(f"{keyword!r}: a hyphen or apostrophe must stand between two letters")
        if "*" in word and len(stripped) < _MIN_STEM:
            raise ValueError(
                f"{keyword!r}: a wildcard needs at least {_MIN_STEM} letters beside it, "
                "or it matches almost any word"
            )
    return " ".join(words)


def _check_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", value):
        raise ValueError(
            "must be lower-case letters, digits and _ (at most 64), starting with a letter"
        )
    return value


Keyword = Annotated[str, AfterValidator(_check_keyword)]
Language = Annotated[str, AfterValidator(_check_language)]
Keywords = Annotated[list[Keyword], Field(min_length=1)]


class _KeywordSetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, AfterValidator(_check_id)]
    label: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    keywords: Annotated[dict[Language, Keywords], Field(min_length=1)]


class _TaxonomySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    themes: Annotated[list[_KeywordSetSpec], Field(min_length=1)]
    urgent: list[_KeywordSetSpec] = []


def _compile(spec: _KeywordSetSpec) -> KeywordSet:
    keywords: dict[LanguageCode, tuple[str, ...]] = {}
    for code in SUPPORTED_LANGUAGES:
        if code in spec.keywords:
            normalised = (normalise(keyword) for keyword in spec.keywords[code])
            keywords[code] = tuple(dict.fromkeys(normalised))
    return KeywordSet(
        id=spec.id,
        label=spec.label or spec.id.replace("_", " ").capitalize(),
        keywords=MappingProxyType(keywords),
        patterns=MappingProxyType(
            {code: keyword_pattern(words) for code, words in keywords.items()}
        ),
    )


def _duplicate_ids(
    entries: list[_KeywordSetSpec],
    section: str,
    lines: Mapping[YamlPath, int],
    source: str,
) -> list[str]:
    seen: set[str] = set()
    problems = []
    for index, entry in enumerate(entries):
        if entry.id in seen:
            line = lines.get((section, index, "id"))
            where = f"{source}:{line}" if line else source
            problems.append(f"{where}: {_kind(section)} id {entry.id!r} is used twice")
        seen.add(entry.id)
    return problems


# --- error messages -----------------------------------------------------------------------


def _describe(
    error: Any, raw: Mapping[str, Any], lines: Mapping[YamlPath, int], source: str
) -> tuple[int | None, str]:
    location = tuple(part for part in error["loc"] if part != "[key]")
    message = str(error["msg"]).removeprefix("Value error, ")
    line = nearest_line(location, lines)
    if error["type"] in ("extra_forbidden", "missing"):
        problem = "unknown" if error["type"] == "extra_forbidden" else "missing"
        message = f"{problem} field {location[-1]!r}"
        location = location[:-1]
        if problem == "missing":
            line = nearest_line(location, lines)
    where = f"{source}:{line}" if line else source
    return line, f"{where}: {_context(location, raw)}{message}"


def _context(location: YamlPath, raw: Mapping[str, Any]) -> str:
    if not location:
        return ""
    if location[0] not in ("themes", "urgent") or len(location) < 2:
        return f"{'.'.join(str(part) for part in location)}: "
    section, index = str(location[0]), location[1]
    entries = raw.get(section)
    entry = entries[index] if isinstance(entries, list) and isinstance(index, int) else None
    name = entry.get("id") if isinstance(entry, dict) else None
    number = index + 1 if isinstance(index, int) else index
    subject = f"{_kind(section)} {name!r}" if name else f"{_kind(section)} #{number}"
    if len(location) >= 4 and location[2] == "keywords":
        return f"{subject}, language {location[3]!r}: "
    if len(location) >= 3:
        return f"{subject}, {location[2]}: "
    return f"{subject}: "


def _kind(section: str) -> str:
    return "theme" if section == "themes" else "urgent category"


def _join(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in the taxonomy:\n" + "\n".join(problems)
