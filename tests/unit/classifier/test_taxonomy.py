"""The theme taxonomy file: the default one, a user's own, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.classifier.text import (
    SUPPORTED_LANGUAGES,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
    parse_taxonomy,
)

REQUIRED_THEMES = {
    "price",
    "delivery",
    "product_quality",
    "staff_service",
    "waiting_time",
    "communication",
    "website_app",
    "range",
    "billing",
}

SMALL = """\
version: 1
themes:
  - id: delivery
    label: Delivery
    keywords:
      da: [lever*, pakke*]
      no: [lever*]
urgent:
  - id: churn
    keywords:
      en: [cancel my subscription]
"""


def test_the_default_taxonomy_has_every_required_theme_in_every_language(
    taxonomy: Taxonomy,
) -> None:
    assert {theme.id for theme in taxonomy.themes} >= REQUIRED_THEMES
    for theme in taxonomy.themes:
        assert set(theme.keywords) == set(SUPPORTED_LANGUAGES), theme.id
        assert all(len(words) >= 5 for words in theme.keywords.values()), theme.id


def test_the_default_taxonomy_has_urgent_categories_in_every_language(
    taxonomy: Taxonomy,
) -> None:
    assert {category.id for category in taxonomy.urgent} == {"churn", "legal", "safety", "abuse"}
    for category in taxonomy.urgent:
        assert set(category.keywords) == set(SUPPORTED_LANGUAGES), category.id


def test_a_user_points_at_their_own_taxonomy_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(SMALL, encoding="utf-8")
    mine = load_taxonomy(path)
    assert [theme.id for theme in mine.themes] == ["delivery"]
    assert mine.themes[0].keywords == {"da": ("lever*", "pakke*"), "no": ("lever*",)}
    assert mine.urgent[0].label == "Churn"  # from the id when no label is given
    assert mine.source == str(path)


def test_norwegian_written_as_a_bare_no_stays_norwegian_not_false() -> None:
    # YAML 1.1 reads a bare "no" as false; the taxonomy's reader must not.
    assert "no" in parse_taxonomy(SMALL).themes[0].keywords


def test_keywords_are_matched_case_insensitively_so_they_are_stored_folded() -> None:
    text = SMALL.replace("[lever*, pakke*]", "[Lever*, STRASSE, Straße]")
    assert parse_taxonomy(text).themes[0].keywords["da"] == ("lever*", "strasse")


def _error(text: str) -> str:
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(text, source="mine.yaml")
    return str(caught.value)


def test_an_unknown_language_code_is_named_with_its_theme_and_line() -> None:
    message = _error(SMALL.replace("      no: [lever*]", "      dk: [lever*]"))
    assert message == (
        "mine.yaml:7: theme 'delivery', language 'dk': unknown language 'dk'; "
        "use one of da, sv, no, en, de"
    )


def test_nb_for_norwegian_is_refused_with_a_hint() -> None:
    assert "(Norwegian is 'no')" in _error(SMALL.replace("      no: [", "      nb: ["))


def test_an_empty_keyword_list_is_named_with_its_line() -> None:
    message = _error(SMALL.replace("[lever*, pakke*]", "[]"))
    assert message.startswith("mine.yaml:6: theme 'delivery', language 'da': ")
    assert "at least 1 item" in message


def test_a_theme_without_keywords_is_an_error() -> None:
    message = _error(
        SMALL.replace("    keywords:\n      da: [lever*, pakke*]\n      no: [lever*]\n", "")
    )
    assert message == "mine.yaml:3: theme 'delivery': missing field 'keywords'"


def test_a_duplicate_theme_id_is_named_with_the_line_of_the_second() -> None:
    text = SMALL.replace("urgent:", "  - id: delivery\n    keywords:\n      en: [parcel]\nurgent:")
    assert _error(text) == "mine.yaml:8: theme id 'delivery' is used twice"


@pytest.mark.parametrize(
    ("keyword", "complaint"),
    [
        ("lever(ing|et)", "not ( ) |; keywords are words, not regular expressions"),
        ("lever.*", "not ."),
        ("lev**", "write one * for any letters, not **"),
        ('"*"', "only wildcards"),
        ('"* *"', "only wildcards"),
        ("a*", "at least 2 letters beside it"),
        ("-lever", "a hyphen or apostrophe must stand between two letters"),
        ("' '", "an empty keyword"),
    ],
)
def test_a_bad_keyword_is_named_with_its_theme_language_and_line(
    keyword: str, complaint: str
) -> None:
    message = _error(SMALL.replace("[lever*, pakke*]", f"[pakke*, {keyword}]"))
    assert message.startswith("mine.yaml:6: theme 'delivery', language 'da': ")
    assert complaint in message


def test_a_phrase_of_wildcards_and_words_is_fine() -> None:
    text = SMALL.replace("[lever*, pakke*]", "[tog * uger, kom aldrig, hjemme-levering]")
    assert parse_taxonomy(text).themes[0].keywords["da"] == (
        "tog * uger",
        "kom aldrig",
        "hjemme-levering",
    )


def test_a_language_given_twice_in_one_theme_is_an_error_not_a_silent_overwrite() -> None:
    message = _error(SMALL.replace("      no: [lever*]", "      da: [levering]"))
    assert message == "mine.yaml:7: 'da' appears twice here"


def test_every_problem_is_reported_at_once() -> None:
    text = SMALL.replace("      no: [lever*]", "      dk: [lever*]").replace("pakke*]", "x(]")
    lines = _error(text).splitlines()
    assert lines[0] == "2 problems in the taxonomy:"
    assert lines[1].startswith("mine.yaml:6: theme 'delivery', language 'da': 'x(': ")
    assert lines[2].startswith("mine.yaml:7: theme 'delivery', language 'dk': unknown language")


def test_a_misspelt_field_is_an_error_rather_than_silently_ignored() -> None:
    message = _error(SMALL.replace("    label: Delivery", "    lable: Delivery"))
    assert message == "mine.yaml:4: theme 'delivery': unknown field 'lable'"


def test_an_id_must_be_a_simple_name() -> None:
    assert _error(SMALL.replace("id: delivery", "id: Levering!")) == (
        "mine.yaml:3: theme 'Levering!', id: "
        "must be lower-case letters, digits and _ (at most 64), starting with a letter"
    )


def test_invalid_yaml_is_reported_with_its_line() -> None:
    message = _error(SMALL.replace("      no: [lever*]", "      no: [lever*"))
    assert message.startswith("mine.yaml:")
    assert "not valid YAML" in message


def test_a_file_that_is_not_a_mapping_of_themes_is_refused() -> None:
    assert "a taxonomy is a mapping with a 'themes' list" in _error("- just\n- a list\n")
    assert "missing field 'themes'" in _error("version: 1\n")


def test_a_missing_taxonomy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match=r"nowhere\.yaml: no such taxonomy file"):
        load_taxonomy(tmp_path / "nowhere.yaml")
