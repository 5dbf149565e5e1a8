"""analyse(): one pure call from a comment, its score and locale to everything the loop needs."""

from __future__ import annotations

import dataclasses

import pytest

from services.classifier.text import (
    MAX_CHARACTERS,
    NO_COMMENT,
    LanguageMethod,
    Priority,
    SentimentLabel,
    Taxonomy,
    analyse,
)


@pytest.mark.parametrize(
    ("comment", "locale", "language", "theme"),
    [
        ("Leveringen tog tre uger, og ingen svarede på mine mails. Elendigt!", "da-DK", "da",
         "delivery"),
        ("Paketet kom en vecka för sent och ingen hörde av sig. Mycket besviken.", "sv-SE", "sv",
         "delivery"),
        ("Pakken kom en uke for sent, og ingen svarte. Veldig skuffet.", "nb-NO", "no",
         "delivery"),
        ("The parcel arrived a week late and nobody answered. Very disappointed.", "en-GB", "en",
         "delivery"),
        ("Das Paket kam eine Woche zu spät und niemand hat geantwortet. Sehr enttäuscht.",
         "de-DE", "de", "delivery"),
    ],
)  # fmt: skip
def test_a_complaint_about_late_delivery_is_negative_and_about_delivery_in_each_language(
    comment: str, locale: str, language: str, theme: str, taxonomy: Taxonomy
) -> None:
    result = analyse(comment, 3, locale, taxonomy)
    assert result.language.code == language
    assert result.sentiment.label is SentimentLabel.NEGATIVE
    assert theme in result.theme_ids
    assert "waiting_time" in result.theme_ids
    assert result.priority is Priority.NORMAL


def test_a_danish_complaint_about_late_delivery_is_negative_and_about_delivery(
    taxonomy: Taxonomy,
) -> None:
    result = analyse("Leveringen tog tre uger. Elendigt!", 2, "da-DK", taxonomy)
    assert result.sentiment.label is SentimentLabel.NEGATIVE
    assert [(hit.id, hit.words) for hit in result.themes] == [
        ("delivery", ("Leveringen",)),
        ("waiting_time", ("tog tre uger",)),
    ]
    assert result.sentiment.words == ("Elendigt",)
    assert result.truncated is False


@pytest.mark.parametrize("comment", [None, "", "   ", "\n\t "])
def test_no_comment_gives_the_empty_analysis(comment: str | None, taxonomy: Taxonomy) -> None:
    assert analyse(comment, 7, "da-DK", taxonomy) == NO_COMMENT
    assert NO_COMMENT.language.method is LanguageMethod.UNKNOWN


@pytest.mark.parametrize(
    "comment",
    ["👍👍", "🤷", "?!?!", "…", "10/10", "x" * 5000, "\u200b\u200b", "مرحبا بكم",
     "日本語のコメント", "a\x00b", "🇩🇰 " * 100, "'-'-'", "--", "*pris*", "(((", "\\"],
)  # fmt: skip
@pytest.mark.parametrize("locale", [None, "da-DK", "xx", "", "not a locale"])
def test_odd_comments_and_locales_never_raise(
    comment: str, locale: str | None, taxonomy: Taxonomy
) -> None:
    result = analyse(comment, 5, locale, taxonomy)
    assert -1.0 <= result.sentiment.score <= 1.0


def test_a_comment_of_unknown_language_is_read_in_every_language(taxonomy: Taxonomy) -> None:
    result = analyse("I have had a very bad experience at Remien Ejendomme.", 2, None, taxonomy)
    assert result.language.method is LanguageMethod.UNKNOWN
    assert result.sentiment.label is SentimentLabel.NEGATIVE
    opsiger = analyse("Jeg opsiger!", 0, None, taxonomy)
    assert [(hit.id, hit.words) for hit in opsiger.urgent] == [("churn", ("opsiger",))]


def test_an_emoji_only_comment_has_the_emojis_sentiment(taxonomy: Taxonomy) -> None:
    result = analyse("😡😡", 1, None, taxonomy)
    assert result.language.method is LanguageMethod.UNKNOWN
    assert result.sentiment.label is SentimentLabel.NEGATIVE


@pytest.mark.parametrize("score", [-1, 11, 0, 10])
def test_a_score_outside_the_scale_is_not_the_text_analysers_problem(
    score: int, taxonomy: Taxonomy
) -> None:
    assert analyse("Fin service", score, "da-DK", taxonomy).sentiment.label is (
        SentimentLabel.POSITIVE
    )


def test_a_very_long_comment_is_analysed_on_its_first_ten_thousand_characters(
    taxonomy: Taxonomy,
) -> None:
    comment = "God service. " * 800 + "Jeg vil opsige mit abonnement."
    assert len(comment) > MAX_CHARACTERS == 10_000
    before = str(comment)
    result = analyse(comment, 9, "da-DK", taxonomy)
    assert result.truncated is True
    assert result.urgent == ()  # the churn words lie beyond the cut
    assert result.sentiment.label is SentimentLabel.POSITIVE
    assert comment == before
    assert analyse(comment[:MAX_CHARACTERS], 9, "da-DK", taxonomy).truncated is False


def test_a_comment_of_exactly_ten_thousand_characters_is_not_truncated(
    taxonomy: Taxonomy,
) -> None:
    comment = ("Fin service " * 1000)[:MAX_CHARACTERS]
    assert analyse(comment, 9, "da-DK", taxonomy).truncated is False


def test_the_analysis_is_a_frozen_value(taxonomy: Taxonomy) -> None:
    result = analyse("Fin service", 9, "da-DK", taxonomy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.priority = Priority.HIGH  # type: ignore[misc]
    assert result == analyse("Fin service", 9, "da-DK", taxonomy)
    assert hash(result) == hash(analyse("Fin service", 9, "da-DK", taxonomy))
