"""The language of a comment: detected offline when clear, else the survey's locale."""

from __future__ import annotations

import time

import pytest

from services.classifier.text import LanguageMethod, decide_language, is_warm, language
from services.classifier.text.language import MIN_LETTERS, detector, language_of_locale


@pytest.mark.parametrize(
    ("comment", "language"),
    [
        ("Leveringen tog tre uger, og ingen svarede på mine mails", "da"),
        ("Paketet kom en vecka för sent och ingen hörde av sig", "sv"),
        ("Kjempefornøyd med kjøpet, rask levering og god service", "no"),
        ("The parcel arrived a week late and nobody answered my emails", "en"),
        ("Das Paket kam eine Woche zu spät und niemand hat geantwortet", "de"),
    ],
)
def test_a_clear_comment_is_detected_in_its_own_language_whatever_the_locale(
    comment: str, language: str
) -> None:
    for locale in (None, "de-DE", "en-GB"):
        decision = decide_language(comment, locale)
        assert decision.code == language
        assert decision.method is LanguageMethod.DETECTED
        assert decision.confidence is not None and decision.confidence >= 0.6


def test_an_english_comment_in_a_danish_survey_is_english() -> None:
    decision = decide_language("The parcel arrived a week late", "da-DK")
    assert (decision.code, decision.method) == ("en", LanguageMethod.DETECTED)


@pytest.mark.parametrize(
    ("comment", "locale", "language"),
    [("Super!", "da-DK", "da"), ("Bra", "sv-SE", "sv"), ("Topp", "nb-NO", "no"),
     ("ok", "en", "en"), ("Gut", "de-AT", "de"), ("👍", "da", "da")],
)  # fmt: skip
def test_a_comment_under_ten_letters_takes_the_locales_language(
    comment: str, locale: str, language: str
) -> None:
    decision = decide_language(comment, locale)
    assert (decision.code, decision.method) == (language, LanguageMethod.LOCALE)
    assert decision.confidence is None


def test_ten_letters_is_where_detection_starts() -> None:
    assert decide_language("Gut" * 3, "de").method is LanguageMethod.LOCALE
    assert decide_language("Dankeschön", None).method is LanguageMethod.DETECTED
    assert MIN_LETTERS == 10


@pytest.mark.parametrize("comment", ["Tak!", "", "   ", "😀😀", "10/10"])
def test_a_short_comment_without_a_locale_has_an_unknown_language(comment: str) -> None:
    decision = decide_language(comment, None)
    assert (decision.code, decision.method) == (None, LanguageMethod.UNKNOWN)


def test_a_norwegian_survey_keeps_a_comment_that_only_leans_danish_norwegian() -> None:
    # "Hyggelig betjening og gode priser" is good Danish and good Norwegian; lingua
    # leans Danish with 0.64, not enough to overrule a Norwegian locale.
    comment = "Hyggelig betjening og gode priser"
    assert decide_language(comment, None).code == "da"
    decision = decide_language(comment, "nb-NO")
    assert (decision.code, decision.method) == ("no", LanguageMethod.LOCALE)


def test_a_comment_of_unclear_language_without_a_locale_is_unknown_rather_than_guessed() -> None:
    # The Danish name makes lingua lean Danish (0.40) on an English sentence.
    comment = "I have had a very bad experience at Remien Ejendomme."
    assert decide_language(comment, None).method is LanguageMethod.UNKNOWN
    assert decide_language(comment, "en-GB").code == "en"


def test_a_weakly_detected_comment_in_an_unsupported_survey_language_is_unknown() -> None:
    decision = decide_language("Kiitos nopeasta toimituksesta, kaikki meni hyvin", "fi-FI")
    assert decision.method is LanguageMethod.UNKNOWN


@pytest.mark.parametrize(
    ("locale", "language"),
    [("da-DK", "da"), ("da", "da"), ("sv_SE", "sv"), ("SV-fi", "sv"), ("nb-NO", "no"),
     ("nn", "no"), ("no", "no"), ("en-GB", "en"), ("de-CH", "de"), ("fi-FI", None),
     ("", None), (None, None)],
)  # fmt: skip
def test_locales_name_their_supported_language(locale: str | None, language: str | None) -> None:
    assert language_of_locale(locale) == language


def test_the_detector_is_built_once_per_process_and_then_answers_in_milliseconds() -> None:
    assert detector() is detector()
    started = time.perf_counter()
    decide_language("Personalen var otroligt hjälpsam och glad", None)
    assert time.perf_counter() - started < 0.1


def test_the_detector_is_warm_once_built_and_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classifier analyses in its event loop once warm, in a thread before."""
    assert is_warm()  # the session's fixture built it
    monkeypatch.setattr(language, "_detector", None)
    assert not is_warm()
