"""Which themes (or urgent categories) of a taxonomy a comment matches, and on which words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.classifier.text.language import LanguageCode
from services.classifier.text.taxonomy import KeywordSet
from services.classifier.text.tokens import Document


@dataclass(frozen=True)
class KeywordHit:
    """A theme or urgent category a comment matched, with the words that matched it.

    ``words`` are as the customer wrote them ("Leveringen", "opsige mit abonnement"),
    each once, in the order they first appear.
    """

    id: str
    label: str
    words: tuple[str, ...]


def match_keywords(
    comment: Document, sets: Iterable[KeywordSet], languages: Iterable[LanguageCode]
) -> tuple[KeywordHit, ...]:
    """Every set in ``sets`` whose keywords in any of ``languages`` occur in ``comment``.

    Hits keep the order of ``sets`` (the taxonomy's order), so results are stable.
    """
    codes = tuple(languages)
    hits = []
    for keyword_set in sets:
        words: dict[str, None] = {}
        for code in codes:
            pattern = keyword_set.patterns.get(code)
            if pattern is None:
                continue
            for match in pattern.finditer(comment.search):
                words[comment.original(match.start(), match.end())] = None
        if words:
            hits.append(KeywordHit(id=keyword_set.id, label=keyword_set.label, words=tuple(words)))
    return tuple(hits)
