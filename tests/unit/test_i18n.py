"""The customer-facing texts: which locale a tag reads as, and that every locale is complete."""

from __future__ import annotations

import dataclasses
from string import Formatter

import pytest

from shared.i18n import (
    DANISH,
    ENGLISH,
    HEARD_FROM_KEYS,
    LOCALES,
    NORWEGIAN,
    SWEDISH,
    Messages,
    messages_for,
    normalise_locale,
)

ALL = (DANISH, SWEDISH, NORWEGIAN, ENGLISH)
TRANSLATIONS = (DANISH, SWEDISH, NORWEGIAN)


def texts(messages: Messages) -> dict[str, str]:
    """Every customer-facing text of a locale, heard-from labels included, by field name."""
    found = {
        f.name: getattr(messages, f.name)
        for f in dataclasses.fields(messages)
        if isinstance(getattr(messages, f.name), str) and f.name not in ("locale", "html_lang")
    }
    found.update({f"heard_from:{key}": label for key, label in messages.heard_from_labels.items()})
    return found


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


@pytest.mark.parametrize("tag", [None, "", "   "])
def test_a_missing_locale_reads_as_english(tag: str | None) -> None:
    assert normalise_locale(tag) == "en"
    assert messages_for(tag) is ENGLISH


@pytest.mark.parametrize("tag", ["de", "fr-FR", "fi_FI", "x", "dan", "english", "-da"])
def test_an_unsupported_locale_falls_back_to_english(tag: str) -> None:
    assert normalise_locale(tag) == "en"
    assert messages_for(tag) is ENGLISH


@pytest.mark.parametrize(
    ("tag", "locale"),
    [
        ("da", "da"),
        ("da-DK", "da"),
        ("DA_dk", "da"),
        ("sv", "sv"),
        ("sv_SE", "sv"),
        ("sv-FI", "sv"),
        (" sv-SE ", "sv"),
        ("en", "en"),
        ("en-GB", "en"),
        ("en_US", "en"),
    ],
)
def test_a_tag_with_a_region_or_an_underscore_reads_as_its_language(tag: str, locale: str) -> None:
    assert normalise_locale(tag) == locale


@pytest.mark.parametrize("tag", ["no", "nb", "nn", "nb-NO", "nn_NO", "NO"])
def test_bokmal_and_nynorsk_read_as_norwegian(tag: str) -> None:
    assert normalise_locale(tag) == "no"
    assert messages_for(tag) is NORWEGIAN


def test_each_supported_locale_has_its_own_messages() -> None:
    assert [messages_for(locale) for locale in LOCALES] == [DANISH, SWEDISH, NORWEGIAN, ENGLISH]
    assert [messages.locale for messages in ALL] == list(LOCALES)


def test_norwegian_pages_are_marked_as_bokmal_for_screen_readers() -> None:
    assert [messages.html_lang for messages in ALL] == ["da", "sv", "nb", "en"]


@pytest.mark.parametrize("messages", ALL, ids=LOCALES)
def test_every_locale_has_every_text(messages: Messages) -> None:
    assert tuple(messages.heard_from_labels) == HEARD_FROM_KEYS
    empty = [name for name, text in texts(messages).items() if not text.strip()]
    assert empty == []


@pytest.mark.parametrize("messages", TRANSLATIONS, ids=LOCALES[:3])
def test_every_translated_text_differs_from_the_english(messages: Messages) -> None:
    english = texts(ENGLISH)
    untranslated = [name for name, text in texts(messages).items() if text == english[name]]
    assert untranslated == []


@pytest.mark.parametrize("messages", TRANSLATIONS, ids=LOCALES[:3])
def test_every_locale_fills_in_the_same_placeholders_as_english(messages: Messages) -> None:
    english = texts(ENGLISH)
    different = {
        name: placeholders(text)
        for name, text in texts(messages).items()
        if placeholders(text) != placeholders(english[name])
    }
    assert different == {}


def test_the_danish_texts_use_the_wording_of_danish_nps_practice() -> None:
    assert DANISH.question("nps", "Fakta") == (
        "Hvor sandsynligt er det, at du vil anbefale Fakta til en ven eller kollega?"
    )
    assert DANISH.reason_question == "Hvad er den primære årsag til din score?"
    assert DANISH.improve_question(3) == "Hvad kunne vi gøre bedre?"


def test_the_swedish_question_uses_the_wording_of_swedish_nps_practice() -> None:
    assert SWEDISH.question("nps", "Ica") == (
        "Hur troligt är det att du skulle rekommendera Ica till en vän eller kollega?"
    )
    assert "bättre" in SWEDISH.improve_question(3)


@pytest.mark.parametrize(
    ("messages", "workplace"),
    [
        (DANISH, "som arbejdsplads"),
        (SWEDISH, "som arbetsplats"),
        (NORWEGIAN, "som arbeidsplass"),
        (ENGLISH, "as a place to work"),
    ],
    ids=LOCALES,
)
def test_the_employee_question_asks_about_the_company_as_a_workplace(
    messages: Messages, workplace: str
) -> None:
    question = messages.question("enps", "Acme")
    assert workplace in question
    assert "Acme" in question
    assert question != messages.question("nps", "Acme")


@pytest.mark.parametrize("messages", ALL, ids=LOCALES)
def test_a_passive_is_asked_what_would_make_them_give_a_9_or_10(messages: Messages) -> None:
    assert messages.improve_question(7) == messages.improve_question(8)
    assert "9" in messages.improve_question(7)
    assert "10" in messages.improve_question(8)


@pytest.mark.parametrize("messages", ALL, ids=LOCALES)
def test_detractors_and_promoters_each_get_their_own_improve_question(messages: Messages) -> None:
    assert {messages.improve_question(score) for score in range(7)} == {
        messages.improve_question_detractor
    }
    assert messages.improve_question(9) == messages.improve_question(10)
    assert messages.improve_question(10) == messages.improve_question_promoter
    assert len({messages.improve_question(score) for score in (0, 7, 10)}) == 3


def test_a_company_name_with_braces_is_shown_as_it_is() -> None:
    assert "{0} & {company}" in ENGLISH.question("nps", "{0} & {company}")


def test_a_survey_kind_other_than_nps_or_enps_is_refused() -> None:
    with pytest.raises(ValueError, match="survey kind"):
        ENGLISH.question("csat", "Acme")


@pytest.mark.parametrize("messages", ALL, ids=LOCALES)
def test_the_greeting_names_the_customer_or_does_without_a_name(messages: Messages) -> None:
    assert "Kirsten" in messages.greeting(" Kirsten ")
    assert messages.greeting(None) == messages.greeting_anonymous
    assert messages.greeting("  ") == messages.greeting_anonymous
    assert "{" not in messages.greeting_anonymous


def test_an_unknown_heard_from_answer_is_refused() -> None:
    assert DANISH.heard_from_label("local_paper") == "Lokalavisen"
    with pytest.raises(ValueError, match="tiktok"):
        DANISH.heard_from_label("tiktok")
