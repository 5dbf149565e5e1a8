"""Flags: a score that contradicts its comment, and urgent words that raise the priority."""

from __future__ import annotations

import pytest

from services.classifier.text import Flag, Priority, Taxonomy, analyse
from services.classifier.text.flags import score_contradicts_comment
from services.classifier.text.sentiment import Sentiment, SentimentLabel

CLEARLY_NEGATIVE = [
    ("da-DK", "Elendig service, meget skuffet"),
    ("sv-SE", "Dålig service, mycket besviken"),
    ("nb-NO", "Elendig kundeservice, veldig skuffet"),
    ("en-GB", "Terrible service, very disappointed"),
    ("de-DE", "Schrecklicher Service, sehr enttäuscht"),
]
CLEARLY_POSITIVE = [
    ("da-DK", "Fantastisk service, tusind tak"),
    ("sv-SE", "Jättebra service, tack så mycket"),
    ("nb-NO", "Kjempebra service, tusen takk"),
    ("en-GB", "Excellent service, thank you"),
    ("de-DE", "Hervorragender Service, vielen Dank"),
]


@pytest.mark.parametrize(("locale", "comment"), CLEARLY_NEGATIVE)
@pytest.mark.parametrize("score", [9, 10])
def test_a_promoter_score_with_a_clearly_negative_comment_is_a_mismatch(
    locale: str, comment: str, score: int, taxonomy: Taxonomy
) -> None:
    assert Flag.SCORE_COMMENT_MISMATCH in analyse(comment, score, locale, taxonomy).flags


@pytest.mark.parametrize(("locale", "comment"), CLEARLY_POSITIVE)
@pytest.mark.parametrize("score", [0, 3])
def test_a_very_low_score_with_a_clearly_positive_comment_is_a_mismatch(
    locale: str, comment: str, score: int, taxonomy: Taxonomy
) -> None:
    assert Flag.SCORE_COMMENT_MISMATCH in analyse(comment, score, locale, taxonomy).flags


@pytest.mark.parametrize(
    ("comment", "score"),
    [
        ("Fantastisk service, tusind tak", 10),  # agrees
        ("Elendig service, meget skuffet", 0),  # agrees
        ("Fantastisk service, tusind tak", 4),  # a detractor, but not 0-3
        ("Elendig service, meget skuffet", 8),  # a passive
        ("Lidt dyrt, men fin service i øvrigt", 10),  # mixed, not clearly negative
    ],
)
def test_no_mismatch_when_the_comment_agrees_or_is_not_extreme(
    comment: str, score: int, taxonomy: Taxonomy
) -> None:
    assert Flag.SCORE_COMMENT_MISMATCH not in analyse(comment, score, "da-DK", taxonomy).flags


def test_only_a_clear_sentiment_counts_as_evidence_against_the_score() -> None:
    mild = Sentiment(label=SentimentLabel.NEGATIVE, score=-0.39)
    clear = Sentiment(label=SentimentLabel.NEGATIVE, score=-0.4)
    assert not score_contradicts_comment(10, mild)
    assert score_contradicts_comment(10, clear)


URGENT = [
    ("da-DK", "Jeg vil opsige mit abonnement hos jer", "churn", ("opsige",)),
    ("sv-SE", "Jag säger upp mitt abonnemang nu", "churn", ("säger upp",)),
    ("nb-NO", "Jeg sier opp avtalen min med dere", "churn", ("sier opp",)),
    ("en-GB", "I want to cancel my subscription today", "churn", ("cancel my subscription",)),
    ("de-DE", "Ich kündige meinen Vertrag sofort", "churn", ("kündige",)),
    ("da-DK", "Jeg har kontaktet Forbrugerombudsmanden og en advokat", "legal",
     ("Forbrugerombudsmanden", "advokat")),
    ("sv-SE", "Jag anmäler er till ARN", "legal", ("anmäler er", "ARN")),
    ("nb-NO", "Saken går videre til Forbrukerrådet", "legal", ("Forbrukerrådet",)),
    ("en-GB", "My lawyer will be in touch about this", "legal", ("lawyer",)),
    ("de-DE", "Ich gehe damit zum Anwalt", "legal", ("Anwalt",)),
    ("da-DK", "Laderen blev varm og gik i brand, det er livsfarligt", "safety",
     ("brand", "livsfarligt")),
    ("sv-SE", "Laddaren började brinna, det är farligt", "safety", ("brinna", "farligt")),
    ("nb-NO", "Laderen tok fyr, det er farlig", "safety", ("tok fyr", "farlig")),
    ("en-GB", "The charger caught fire and my son was injured", "safety",
     ("caught fire", "injured")),
    ("de-DE", "Das Ladegerät hat Feuer gefangen, gefährlich", "safety", ("Feuer", "gefährlich")),
    ("da-DK", "Ekspedienten truede mig og kaldte mig idiot", "abuse", ("truede", "idiot")),
    ("sv-SE", "Personalen hotade mig i kassan", "abuse", ("hotade",)),
    ("nb-NO", "Den ansatte truet meg i butikken", "abuse", ("truet",)),
    ("en-GB", "The driver threatened me on my doorstep", "abuse", ("threatened",)),
    ("de-DE", "Der Fahrer hat mich bedroht und beleidigt", "abuse", ("bedroht",)),
]  # fmt: skip


@pytest.mark.parametrize(("locale", "comment", "category", "words"), URGENT)
def test_urgent_words_in_any_language_raise_the_priority_and_are_shown(
    locale: str, comment: str, category: str, words: tuple[str, ...], taxonomy: Taxonomy
) -> None:
    result = analyse(comment, 2, locale, taxonomy)
    assert Flag.URGENT in result.flags
    assert result.priority is Priority.HIGH
    assert {hit.id: hit.words for hit in result.urgent}[category] == words
    assert set(words) <= set(result.urgent_words)


def test_an_ordinary_complaint_keeps_the_normal_priority(taxonomy: Taxonomy) -> None:
    result = analyse("Leveringen tog tre uger, og ingen svarede", 2, "da-DK", taxonomy)
    assert (result.flags, result.priority, result.urgent) == (frozenset(), Priority.NORMAL, ())


def test_a_mismatch_alone_does_not_raise_the_priority(taxonomy: Taxonomy) -> None:
    result = analyse("Terrible service, very disappointed", 10, "en-GB", taxonomy)
    assert result.flags == {Flag.SCORE_COMMENT_MISMATCH}
    assert result.priority is Priority.NORMAL


def test_urgent_words_are_looked_for_in_the_comments_language_only(taxonomy: Taxonomy) -> None:
    # "fire" is four in Danish; "brand" a trademark in English.
    danish = analyse("Det tog fire dage at få pakken", 5, "da-DK", taxonomy)
    english = analyse("I love this brand and their new collection", 10, "en-GB", taxonomy)
    assert (danish.urgent, english.urgent) == ((), ())
