"""The survey invitation: eleven one-click scores and an unsubscribe, in the right language."""

from __future__ import annotations

import re

import pytest

from services.notifier.email_layout import TEXT_COLOUR_PAIRS, CustomerEmail
from services.notifier.invitation_email import invitation_email
from shared.events import SurveyKind
from shared.i18n import messages_for
from tests.unit.test_pages import Page, contrast_ratio

SCORE_URLS = [f"https://feedback.example.com/s/{score}?t=tok.en&n={score}" for score in range(11)]
UNSUBSCRIBE_URL = "https://feedback.example.com/unsubscribe?t=tok.en&c=1"
HOSTILE = '"><script>alert(1)</script><a href="https://evil.example">'


def email(
    locale: str | None = "da",
    company_name: str = "Lund & Søn",
    customer_name: str | None = "Kirsten",
    survey_kind: str = "nps",
    score_urls: list[str] = SCORE_URLS,
    unsubscribe_url: str = UNSUBSCRIBE_URL,
) -> CustomerEmail:
    return invitation_email(
        locale,
        company_name,
        customer_name,
        survey_kind,  # type: ignore[arg-type]
        score_urls,
        unsubscribe_url,
    )


def test_the_html_has_one_link_per_score_from_0_to_10_in_order_in_one_table_row() -> None:
    page = Page(email().html)
    links = page.all("a")
    assert [a.attrs["href"] for a in links[:11]] == SCORE_URLS
    assert [a.text for a in links[:11]] == [str(score) for score in range(11)]
    rows = {a.parents[:-1] for a in links[:11]}
    assert len(rows) == 1 and next(iter(rows))[-1].startswith("tr")


def test_the_text_part_has_each_scores_link_on_its_own_line_in_order() -> None:
    lines = email().text.splitlines()
    positions = [lines.index(f"{score:>2}: {url}") for score, url in enumerate(SCORE_URLS)]
    assert positions == sorted(positions)
    assert positions == list(range(positions[0], positions[0] + 11))


def test_the_scale_ends_are_named_in_both_parts() -> None:
    message = email(locale="en")
    assert "0 = Not at all likely" in message.text
    assert "10 = Extremely likely" in message.text
    cells = [" ".join(td.text.split()) for td in Page(message.html).all("td")]
    assert "0 = Not at all likely" in cells
    assert "10 = Extremely likely" in cells


def test_it_carries_both_list_unsubscribe_headers_of_rfc_8058() -> None:
    assert email().headers == {
        "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_plain_http_unsubscribe_link_is_listed_but_not_claimed_as_one_click() -> None:
    # RFC 8058 one-click needs HTTPS; a local installation's http:// link must not claim it.
    local = "http://127.0.0.1:6066/unsubscribe?t=x"
    assert email(unsubscribe_url=local).headers == {"List-Unsubscribe": f"<{local}>"}


def test_the_unsubscribe_link_is_visible_in_both_parts() -> None:
    message = email()
    links = Page(message.html).all("a", href=UNSUBSCRIBE_URL)
    assert [a.text for a in links] == ["Afmeld her"]
    assert UNSUBSCRIBE_URL in message.text.splitlines()
    assert "Vil du ikke have flere undersøgelser fra Lund & Søn? Afmeld her:" in message.text


def test_the_customers_name_and_the_company_name_are_escaped_in_the_html() -> None:
    message = email(company_name=f"Acme {HOSTILE}", customer_name=f"Kirsten {HOSTILE}")
    assert "<script" not in message.html.lower()
    assert "evil.example" not in [a.attrs.get("href", "") for a in Page(message.html).all("a")]
    paragraphs = [p.text for p in Page(message.html).all("p")]
    assert f"Hej Kirsten {HOSTILE}" in paragraphs
    # The text part is plain text: shown as written, never interpreted.
    assert message.text.startswith(f"Hej Kirsten {HOSTILE}\n")


def test_urls_with_quotes_and_ampersands_are_escaped_in_the_html() -> None:
    urls = [f'https://x.example/s/{n}?a=1&b="2"' for n in range(11)]
    message = email(score_urls=urls)
    assert 'href="https://x.example/s/0?a=1&amp;b=&quot;2&quot;"' in message.html
    assert [a.attrs["href"] for a in Page(message.html).all("a")[:11]] == urls


@pytest.mark.parametrize(
    ("locale", "lang", "words"),
    [
        ("da-DK", "da", ("anbefale", "til en ven eller kollega", "Klik på et tal")),
        ("sv_SE", "sv", ("rekommendera", "till en vän eller kollega", "Klicka på en siffra")),
        ("nb", "nb", ("anbefale", "til en venn eller kollega", "Klikk på et tall")),
        ("en-GB", "en", ("recommend", "to a friend or colleague", "Click a number")),
        ("de", "en", ("recommend", "to a friend or colleague", "Click a number")),
        (None, "en", ("recommend", "to a friend or colleague", "Click a number")),
    ],
)
def test_the_email_is_written_in_the_customers_language(
    locale: str | None, lang: str, words: tuple[str, ...]
) -> None:
    message = email(locale=locale)
    page = Page(message.html)
    assert page.lang == lang
    for word in words:
        assert word in message.text
        assert word in message.html
    assert message.subject == messages_for(locale).email_subject_nps.format(company="Lund & Søn")


def test_without_a_name_the_greeting_does_without_one() -> None:
    assert email(locale="en", customer_name=None).text.startswith("Hello,\n")
    assert email(locale="sv", customer_name="  ").text.startswith("Hej!\n")
    assert email(locale="sv", customer_name="Anna").text.startswith("Hej Anna!\n")


def test_an_employee_invitation_asks_about_the_workplace_and_promises_anonymity() -> None:
    message = email(locale="en", survey_kind=SurveyKind.ENPS)
    assert "as a place to work" in message.text
    assert "anonymous" in message.subject
    assert "we store neither your name nor your email address" in message.html
    assert "anonymous" not in email(locale="en").text


@pytest.mark.parametrize("count", [0, 10, 12])
def test_anything_but_eleven_score_urls_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="exactly 11"):
        email(score_urls=[f"https://x.example/{n}" for n in range(count)])


def test_a_single_string_is_not_mistaken_for_eleven_urls() -> None:
    with pytest.raises(ValueError, match="exactly 11"):
        email(score_urls="https://x.e")  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.example/s", "//x.example/s"])
def test_a_score_link_that_is_not_a_web_address_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="score 4"):
        email(score_urls=[*SCORE_URLS[:4], url, *SCORE_URLS[5:]])


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/u\r\nBcc: everyone@example.com",
        "https://x.example/u>, <mailto:x@example.com",
        "https://x.example/u t=1",
    ],
)
def test_an_unsubscribe_url_that_would_break_the_header_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="header"):
        email(unsubscribe_url=url)


def test_a_line_break_in_the_company_name_cannot_reach_the_subject_header() -> None:
    subject = email(locale="en", company_name="Acme\r\nBcc: everyone@example.com").subject
    assert "\n" not in subject and "\r" not in subject
    assert subject == "A quick question from Acme Bcc: everyone@example.com"


def test_a_survey_kind_other_than_nps_or_enps_is_refused() -> None:
    with pytest.raises(ValueError, match="survey kind"):
        email(survey_kind="csat")


def test_the_html_has_no_javascript_no_images_and_nothing_to_fetch() -> None:
    message = email()
    page = Page(message.html)
    assert [e.tag for e in page.elements if e.tag in ("script", "img", "link", "style")] == []
    assert [e.tag for e in page.elements if any(a.startswith("on") for a in e.attrs)] == []
    assert [e.tag for e in page.elements if "src" in e.attrs] == []
    assert "url(" not in message.html


def test_the_html_is_laid_out_with_presentation_tables_and_inline_styles() -> None:
    page = Page(email().html)
    tables = page.all("table")
    assert len(tables) >= 3
    assert {t.attrs.get("role") for t in tables} == {"presentation"}
    assert all("style" in a.attrs for a in page.all("a"))


def test_the_score_links_are_big_enough_to_tap() -> None:
    styles = [a.attrs["style"] for a in Page(email().html).all("a")[:11]]
    for style in styles:
        assert "display:block" in style
        assert int(re.search(r"font-size:(\d+)px", style).group(1)) >= 16  # type: ignore[union-attr]
        assert int(re.search(r"padding:(\d+)px", style).group(1)) >= 10  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "background"), TEXT_COLOUR_PAIRS)
def test_the_emails_text_has_a_contrast_of_at_least_4_5_to_1(text: str, background: str) -> None:
    assert contrast_ratio(text, background) >= 4.5


def test_the_email_uses_no_colour_whose_contrast_is_not_checked() -> None:
    checked = {colour for pair in TEXT_COLOUR_PAIRS for colour in pair}
    used = set(re.findall(r"#[0-9a-fA-F]{3,6}\b", email().html))
    assert used and used <= checked
