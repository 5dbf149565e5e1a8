"""Comment sentiment per language: word lists, negation, intensifiers, contrast, emoji."""

from __future__ import annotations

import pytest

from services.classifier.text import SUPPORTED_LANGUAGES, LanguageCode, SentimentLabel
from services.classifier.text import score_sentiment as sentiment_of
from services.classifier.text.lexicon import LexiconError, lexicon, parse_lexicon

POSITIVE = [
    ("da", "Meget venlig og hjælpsom ekspedient, kan varmt anbefales"),
    ("sv", "Supertrevlig personal och snabb leverans"),
    ("no", "Kjempefornøyd med kjøpet, anbefales"),
    ("en", "Friendly staff and fast delivery, highly recommended"),
    ("de", "Sehr freundliche Beratung und schnelle Lieferung"),
]
NEGATIVE = [
    ("da", "Elendig service og pakken kom alt for sent"),
    ("sv", "Dålig kvalitet och otrevligt bemötande"),
    ("no", "Treg levering og frekk kundeservice"),
    ("en", "Terrible service, I would not recommend them"),
    ("de", "Schlechte Qualität und unfreundliches Personal"),
]
NEGATED = [
    ("da", "Maden var god", "Maden var ikke god"),
    ("sv", "Maten var bra", "Maten var inte bra"),
    ("no", "Maten var bra", "Maten var ikke bra"),
    ("en", "The food was good", "The food was not good"),
    ("de", "Das Essen war gut", "Das Essen war nicht gut"),
]
# Verb-second word order: the negator follows the verb it negates.
NEGATED_AFTER = [
    ("da", "Jeg anbefaler jer ikke"),
    ("sv", "Jag rekommenderar er inte"),
    ("no", "Jeg anbefaler dere ikke"),
    ("de", "Ich empfehle euch nicht"),
]
INTENSIFIED = [
    ("da", "Leveringen i går var hurtig", "Leveringen i går var meget hurtig"),
    ("sv", "Leveransen i går var snabb", "Leveransen i går var väldigt snabb"),
    ("no", "Leveringen i går var rask", "Leveringen i går var veldig rask"),
    ("en", "The delivery yesterday was quick", "The delivery yesterday was really quick"),
    ("de", "Die Lieferung gestern war schnell", "Die Lieferung gestern war sehr schnell"),
]
NOTHING_TO_SAY = [
    ("da", "Ingen kommentarer"),
    ("sv", "Inget att tillägga"),
    ("no", "Ingen kommentar"),
    ("en", "Nothing to add"),
    ("de", "Keine Anmerkungen"),
]


@pytest.mark.parametrize(("language", "comment"), POSITIVE)
def test_praise_is_clearly_positive(language: LanguageCode, comment: str) -> None:
    result = sentiment_of(comment, language)
    assert result.label is SentimentLabel.POSITIVE
    assert result.clearly_positive


@pytest.mark.parametrize(("language", "comment"), NEGATIVE)
def test_a_complaint_is_clearly_negative(language: LanguageCode, comment: str) -> None:
    result = sentiment_of(comment, language)
    assert result.label is SentimentLabel.NEGATIVE
    assert result.clearly_negative


@pytest.mark.parametrize(("language", "plain", "negated"), NEGATED)
def test_a_negator_before_a_word_turns_it_around(
    language: LanguageCode, plain: str, negated: str
) -> None:
    assert sentiment_of(plain, language).label is SentimentLabel.POSITIVE
    assert sentiment_of(negated, language).label is SentimentLabel.NEGATIVE


@pytest.mark.parametrize(("language", "comment"), NEGATED_AFTER)
def test_a_negator_after_the_verb_turns_it_around_in_verb_second_languages(
    language: LanguageCode, comment: str
) -> None:
    assert sentiment_of(comment, language).label is SentimentLabel.NEGATIVE


def test_a_negator_does_not_reach_across_a_comma() -> None:
    assert sentiment_of("Ikke dyrt, god service", "da").label is SentimentLabel.POSITIVE
    assert sentiment_of("Not at all, good service", "en").label is SentimentLabel.POSITIVE


def test_a_negation_further_away_than_three_words_does_not_count() -> None:
    assert sentiment_of("No idea why people say it is bad", "en").label is (SentimentLabel.NEGATIVE)


def test_not_only_is_no_negation() -> None:
    assert sentiment_of("Ikke kun billig, men også god", "da").label is SentimentLabel.POSITIVE
    assert sentiment_of("Nicht nur günstig", "de").label is SentimentLabel.POSITIVE


def test_a_phrase_with_its_own_negation_is_not_negated_twice() -> None:
    assert sentiment_of("Pakken kom aldri og ingen svarte", "no").label is (SentimentLabel.NEGATIVE)


@pytest.mark.parametrize(("language", "plain", "intensified"), INTENSIFIED)
def test_an_intensifier_makes_the_word_after_it_stronger(
    language: LanguageCode, plain: str, intensified: str
) -> None:
    assert sentiment_of(intensified, language).score > sentiment_of(plain, language).score > 0


def test_a_downtoner_makes_the_word_after_it_weaker() -> None:
    assert sentiment_of("Lidt dyrt", "da").score > sentiment_of("Dyrt", "da").score
    assert sentiment_of("Etwas teuer", "de").score > sentiment_of("Teuer", "de").score


@pytest.mark.parametrize(
    ("language", "compound"),
    [("no", "Kjempebra"), ("sv", "Jättebra"), ("da", "Supergod"), ("de", "Superschnell")],
)
def test_an_intensifying_prefix_of_a_compound_counts_like_an_intensifier(
    language: LanguageCode, compound: str
) -> None:
    assert sentiment_of(compound, language).clearly_positive


def test_what_follows_but_weighs_more_than_what_comes_before() -> None:
    praise_then_complaint = sentiment_of("Good price, but the delivery was awful", "en")
    complaint_then_praise = sentiment_of("The delivery was awful, but good price", "en")
    assert praise_then_complaint.label is SentimentLabel.NEGATIVE
    assert complaint_then_praise.label is SentimentLabel.POSITIVE
    assert sentiment_of("God pris, men elendig levering", "da").label is (SentimentLabel.NEGATIVE)


@pytest.mark.parametrize(("language", "comment"), NOTHING_TO_SAY)
def test_a_comment_without_sentiment_words_is_neutral_at_zero(
    language: LanguageCode, comment: str
) -> None:
    result = sentiment_of(comment, language)
    assert (result.label, result.score, result.words) == (SentimentLabel.NEUTRAL, 0.0, ())


def test_the_words_behind_a_sentiment_are_kept_as_written() -> None:
    assert sentiment_of("Elendig service, ALT FOR DYRT!", "da").words == (
        "Elendig",
        "ALT FOR DYRT",
    )


def test_a_long_comment_with_one_mild_complaint_is_milder_than_the_complaint_alone() -> None:
    alone = sentiment_of("Lidt dyrt.", "da")
    diluted = sentiment_of("Vi købte en sofa og to stole i butikken i lørdags. Lidt dyrt.", "da")
    assert alone.score < diluted.score < 0


def test_scores_stay_between_minus_one_and_one() -> None:
    for comment in ("Elendig! " * 200, "Fantastisk! " * 200, "😡" * 50):
        assert -1.0 <= sentiment_of(comment, "da").score <= 1.0


@pytest.mark.parametrize(("comment", "label"), [("👍", "positive"), ("❤️❤️", "positive"),
                         ("😡", "negative"), ("Tja :-(", "negative")])  # fmt: skip
def test_emoji_and_emoticons_count_in_every_language(comment: str, label: str) -> None:
    for language in (*SUPPORTED_LANGUAGES, None):
        assert sentiment_of(comment, language).label == label


def test_an_emoticon_must_stand_alone_so_a_link_is_not_a_frown() -> None:
    assert sentiment_of("Se https://example.com/ordre", "da").label is SentimentLabel.NEUTRAL


def test_with_the_language_unknown_languages_that_agree_decide() -> None:
    assert sentiment_of("Elendig!", None).label is SentimentLabel.NEGATIVE
    assert sentiment_of("Bra", None).label is SentimentLabel.POSITIVE


def test_with_the_language_unknown_languages_that_disagree_give_neutral() -> None:
    # "Gift" is married in Danish, poison in German; "rar" nice in Danish, odd in Norwegian.
    assert sentiment_of("rar", "da").label is SentimentLabel.POSITIVE
    assert sentiment_of("rar", "no").label is SentimentLabel.NEGATIVE
    assert sentiment_of("rar", None).label is SentimentLabel.NEUTRAL


def test_norwegian_reads_danish_words_and_its_own() -> None:
    norwegian = lexicon("no")
    assert norwegian.score_of("elendig") == lexicon("da").score_of("elendig")  # from Danish
    assert norwegian.score_of("fornøyd") is not None  # Norwegian spelling
    assert lexicon("da").score_of("fornøyd") is None


def test_danish_expensive_is_negative_not_dear() -> None:
    assert sentiment_of("Dyrt", "da").label is SentimentLabel.NEGATIVE


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_language_has_a_word_list_of_some_size(language: LanguageCode) -> None:
    words = lexicon(language)
    assert len(words.words) + len(words.prefixes) > 150
    assert words.symbols  # emoticons and emoji


def test_a_malformed_word_list_names_its_line() -> None:
    with pytest.raises(LexiconError, match=r"de\.tsv, line 3: 'gut' is not a number"):
        parse_lexicon("# comment\nprima\t3\nsuper\tgut\n", "de.tsv")
    with pytest.raises(LexiconError, match=r"line 1: score 9\.0 is outside -5\.\.5"):
        parse_lexicon("toll\t9\n", "de.tsv")
    with pytest.raises(LexiconError, match="line 1: expected 'word<TAB>score'"):
        parse_lexicon("toll 3\n", "de.tsv")
