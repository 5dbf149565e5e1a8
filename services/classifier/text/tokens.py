"""Words of a comment, with where they stand in it, for every matcher to share.

Matching works on casefolded words rather than on the raw text, so that case, the
German sharp s (``Straße`` and ``Strasse``) and curly apostrophes never decide a
match, while every hit can still be shown exactly as the customer wrote it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# A word is a run of letters or digits, possibly joined by an apostrophe or a hyphen
# ("don't", "e-mail", "Preis-Leistungs-Verhältnis"); \w is Unicode-aware, so æøåäöüß
# are letters like any other.
WORD = r"[^\W_]+(?:['’\-][^\W_]+)*"
_WORD = re.compile(WORD)
# Punctuation that ends a clause: negation and intensifiers do not reach across it,
# and a phrase does not match across it. A sentence ends at a full stop, question or
# exclamation mark or line break (a customer who presses Enter starts a new point):
# the reach of a contrast ("but") is its sentence.
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]{}\"“”«»…–—/|\n\r]|\s-\s")
_SENTENCE_BREAK = re.compile(r"[.!?…\n\r]")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a comment: as written, normalised for matching, and where it is."""

    text: str
    norm: str
    start: int
    end: int
    clause: int
    sentence: int


def normalise(word: str) -> str:
    """The form used for matching: casefolded, with typographic apostrophes made plain."""
    return word.casefold().replace("’", "'")


def tokenize(text: str) -> tuple[Token, ...]:
    """The words of ``text`` in order, each with its clause and sentence number."""
    tokens: list[Token] = []
    clause = 0
    sentence = 0
    previous_end = 0
    for match in _WORD.finditer(text):
        if tokens and _CLAUSE_BREAK.search(text, previous_end, match.start()):
            clause += 1
            if _SENTENCE_BREAK.search(text, previous_end, match.start()):
                sentence += 1
        tokens.append(
            Token(
                text=match.group(),
                norm=normalise(match.group()),
                start=match.start(),
                end=match.end(),
                clause=clause,
                sentence=sentence,
            )
        )
        previous_end = match.end()
    return tuple(tokens)


@dataclass(frozen=True)
class Document:
    """A comment prepared for keyword search.

    ``search`` holds the normalised words, one space apart within a clause and
    ``" | "`` between clauses, so that a keyword pattern can run over it with one
    regular expression and a phrase never matches across punctuation; ``offsets`` says
    where in ``search`` each token begins.
    """

    text: str
    tokens: tuple[Token, ...]
    search: str
    offsets: tuple[int, ...]

    def original(self, start: int, end: int) -> str:
        """The comment's own text behind the span ``start:end`` of ``search``."""
        first = bisect.bisect_right(self.offsets, start) - 1
        last = bisect.bisect_right(self.offsets, max(start, end - 1)) - 1
        return self.text[self.tokens[first].start : self.tokens[last].end]


def document(text: str) -> Document:
    """``text`` tokenised and laid out for keyword search."""
    tokens = tokenize(text)
    parts: list[str] = []
    offsets: list[int] = []
    position = 0
    for index, token in enumerate(tokens):
        if index:
            separator = " " if token.clause == tokens[index - 1].clause else " | "
            parts.append(separator)
            position += len(separator)
        offsets.append(position)
        parts.append(token.norm)
        position += len(token.norm)
    return Document(text=text, tokens=tokens, search="".join(parts), offsets=tuple(offsets))


def count_letters(text: str) -> int:
    """How many letters (in any script) ``text`` has; digits, emoji and spaces do not count."""
    return len(_LETTER.findall(text))
