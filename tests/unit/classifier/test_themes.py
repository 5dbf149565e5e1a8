"""Themes found in comments: per language, word forms, phrases, and the words that matched."""

from __future__ import annotations

import pytest

from services.classifier.text import LanguageCode, Taxonomy, parse_taxonomy
from services.classifier.text.themes import KeywordHit, match_keywords
from services.classifier.text.tokens import document


def themes_of(
    comment: str, language: LanguageCode, taxonomy: Taxonomy
) -> dict[str, tuple[str, ...]]:
    return {
        hit.id: hit.words for hit in match_keywords(document(comment), taxonomy.themes, [language])
    }


@pytest.mark.parametrize(
    ("language", "comment", "expected"),
    [
        (
            "da",
            "Leveringen tog tre uger, og ingen svarede på mine mails",
            {"delivery": ("Leveringen",), "waiting_time": ("tog tre uger",),
             "communication": ("svarede", "mails")},
        ),
        (
            "sv",
            "Paketet kom en vecka för sent och kundtjänst svarade aldrig",
            {"delivery": ("Paketet",), "staff_service": ("kundtjänst",),
             "waiting_time": ("för sent",), "communication": ("svarade",)},
        ),
        (
            "no",
            "Pakken kom en uke for sent, og nettsiden var treg",
            {"delivery": ("Pakken",), "waiting_time": ("for sent",),
             "website_app": ("nettsiden",)},
        ),
        (
            "en",
            "The parcel arrived a week late and the invoice was wrong",
            {"delivery": ("parcel", "arrived"), "waiting_time": ("late",),
             "billing": ("invoice",)},
        ),
        (
            "de",
            "Die Lieferung hat drei Wochen gedauert und die Rechnung war falsch",
            {"delivery": ("Lieferung",), "waiting_time": ("Wochen",), "billing": ("Rechnung",)},
        ),
    ],
)  # fmt: skip
def test_a_comment_matches_every_theme_it_is_about_with_the_words_that_show_it(
    language: LanguageCode, comment: str, expected: dict[str, tuple[str, ...]], taxonomy: Taxonomy
) -> None:
    assert themes_of(comment, language, taxonomy) == expected


@pytest.mark.parametrize(
    ("language", "comment", "theme", "words"),
    [
        ("da", "Alt for dyrt i forhold til kvaliteten", "price", ("dyrt",)),
        ("sv", "Bra priser och stort utbud", "range", ("utbud",)),
        ("no", "Appen krasjer hele tiden", "website_app", ("Appen", "krasjer")),
        ("en", "Rude staff at the till", "staff_service", ("Rude", "staff")),
        ("de", "Schlechte Qualität, nach einer Woche kaputt", "product_quality",
         ("Qualität", "kaputt")),
        ("da", "Jeg ventede 45 minutter i telefonkøen", "waiting_time",
         ("ventede", "minutter", "telefonkøen")),
        ("sv", "Fakturan var fel och jag fick betala två gånger", "billing",
         ("Fakturan", "betala")),
        ("no", "Hyggelig og kunnskapsrik betjening", "staff_service",
         ("Hyggelig", "kunnskapsrik", "betjening")),
        ("en", "Great selection, everything in stock", "range", ("selection", "in stock")),
        ("de", "Niemand hat auf meine E-Mail geantwortet", "communication",
         ("E-Mail", "geantwortet")),
    ],
)  # fmt: skip
def test_each_theme_is_found_in_each_language(
    language: LanguageCode, comment: str, theme: str, words: tuple[str, ...], taxonomy: Taxonomy
) -> None:
    assert themes_of(comment, language, taxonomy)[theme] == words


SMALL = parse_taxonomy(
    """\
themes:
  - id: delivery
    keywords:
      da: [lever*, "*pakke", kom aldrig, tog * uger]
      de: [straße, "*liefer*"]
  - id: app
    keywords:
      da: [app]
      sv: [app]
"""
)


def test_a_trailing_wildcard_matches_word_forms() -> None:
    assert themes_of("Levering og leveringen, leveret", "da", SMALL)["delivery"] == (
        "Levering",
        "leveringen",
        "leveret",
    )


def test_a_leading_wildcard_matches_compounds() -> None:
    assert themes_of("Hjemmepakke og pakke", "da", SMALL)["delivery"] == ("Hjemmepakke", "pakke")
    assert themes_of("wurde nicht angeliefert", "de", SMALL)["delivery"] == ("angeliefert",)


def test_a_keyword_matches_whole_words_only() -> None:
    assert themes_of("Den appelsin var god", "da", SMALL) == {}
    assert themes_of("Det var knappt", "sv", SMALL) == {}
    assert themes_of("Pakkerne", "da", SMALL) == {}  # "*pakke" ends the word at pakke


def test_matching_ignores_case_and_the_sharp_s() -> None:
    assert themes_of("LEVERINGEN", "da", SMALL)["delivery"] == ("LEVERINGEN",)
    assert themes_of("Die Strasse", "de", SMALL)["delivery"] == ("Strasse",)
    assert themes_of("Die STRAẞE und die Straße", "de", SMALL)["delivery"] == ("STRAẞE", "Straße")


def test_a_phrase_matches_across_any_spaces_but_not_across_punctuation() -> None:
    assert themes_of("Varen kom \t aldrig", "da", SMALL)["delivery"] == ("kom \t aldrig",)
    assert themes_of("Den kom, aldrig igen", "da", SMALL) == {}
    assert themes_of("Den kom\naldrig igen", "da", SMALL) == {}


def test_a_lone_wildcard_in_a_phrase_is_any_one_word() -> None:
    assert themes_of("Det tog tre uger", "da", SMALL)["delivery"] == ("tog tre uger",)
    assert themes_of("Det tog over tre uger", "da", SMALL) == {}


def test_each_matched_word_is_listed_once_in_order_of_appearance() -> None:
    assert themes_of("App, app, APP og levering", "da", SMALL) == {
        "delivery": ("levering",),
        "app": ("App", "app", "APP"),
    }


def test_only_the_given_languages_keywords_are_searched() -> None:
    assert themes_of("Die Lieferung", "da", SMALL) == {}
    assert match_keywords(document("Die Lieferung"), SMALL.themes, ["da", "de"]) == (
        KeywordHit(id="delivery", label="Delivery", words=("Lieferung",)),
    )


def test_a_word_in_other_scripts_and_with_digits_does_not_break_matching(
    taxonomy: Taxonomy,
) -> None:
    comment = "Ordre #12345 — 配送 late 🙁, leveringen var 3 dage forsinket"
    assert themes_of(comment, "da", taxonomy)["delivery"] == ("leveringen",)
