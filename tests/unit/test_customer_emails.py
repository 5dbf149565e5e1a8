"""What the loops email a customer: the review request and the follow-up, in their language."""

from __future__ import annotations

import re

import pytest

from services.classifier.domain import classify_response
from services.notifier.customer_emails import email_locale, follow_up_email, review_request_email
from services.notifier.email_layout import TEXT_COLOUR_PAIRS, CustomerEmail
from shared.events import ResponseContext
from tests.unit.builders import a_response
from tests.unit.test_pages import Page

LINKS = {
    "trustpilot": "https://www.trustpilot.com/evaluate/lund.example",
    "google": "https://g.page/r/lund-aarhus/review",
    "facebook": "https://www.facebook.com/lund.aarhus/reviews",
}
UNSUBSCRIBE_URL = "https://feedback.example.com/u/tok.en"
HOSTILE = '"><script>alert(1)</script><a href="https://evil.example">'


def review(
    locale: str | None = "da",
    score: int = 10,
    links: dict[str, str] = LINKS,
    name: str | None = "Kirsten",
    company: str = "Lund & Søn",
) -> CustomerEmail:
    return review_request_email(locale, company, name, score, links, UNSUBSCRIBE_URL)


def follow_up(
    locale: str | None = "da",
    score: int = 7,
    question: str | None = None,
    case_opened: bool = False,
    name: str | None = "Kirsten",
) -> CustomerEmail:
    return follow_up_email(
        locale, "Lund & Søn", name, score, question, case_opened, UNSUBSCRIBE_URL
    )


# --- the review request -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "lang", "words"),
    [
        ("da-DK", "da", ("Hej Kirsten", "10 ud af 10", "Anmeld os på Google", "Afmeld her")),
        ("sv", "sv", ("Hej Kirsten!", "10 av 10", "Recensera oss på Google", "Avregistrera")),
        ("nb", "nb", ("Hei Kirsten", "10 av 10", "Gi oss en anmeldelse på Google", "Meld deg av")),
        ("en", "en", ("Hi Kirsten,", "10 out of 10", "Review us on Google", "Unsubscribe here")),
        ("de", "en", ("Hi Kirsten,", "10 out of 10", "Review us on Google", "Unsubscribe here")),
    ],
)
def test_the_review_request_is_written_in_the_customers_language(
    locale: str, lang: str, words: tuple[str, ...]
) -> None:
    message = review(locale)
    assert Page(message.html).lang == lang
    for word in words:
        assert word in message.text
        assert word in Page(message.html).one("body").text
    assert "Lund & Søn" in message.subject


def test_the_review_request_links_every_site_in_a_fixed_order_in_both_parts() -> None:
    message = review("en")
    hrefs = [a.attrs["href"] for a in Page(message.html).all("a")]
    assert hrefs == [LINKS["google"], LINKS["facebook"], LINKS["trustpilot"], UNSUBSCRIBE_URL]
    labels = [a.text for a in Page(message.html).all("a")][:3]
    assert labels == ["Review us on Google", "Review us on Facebook", "Review us on Trustpilot"]
    lines = message.text.splitlines()
    assert [line for line in lines if line.startswith("https://")] == [
        LINKS["google"],
        LINKS["facebook"],
        LINKS["trustpilot"],
        UNSUBSCRIBE_URL,
    ]


def test_a_store_with_one_review_page_gets_one_link() -> None:
    message = review("en", links={"trustpilot": LINKS["trustpilot"]})
    assert [a.text for a in Page(message.html).all("a")] == [
        "Review us on Trustpilot",
        "Unsubscribe here",
    ]


def test_a_promoter_is_thanked_for_the_score_anyone_else_for_answering() -> None:
    assert "Thank you for giving Lund & Søn 9 out of 10" in review("en", score=9).text
    neutral = review("en", score=4).text
    assert "Thank you for taking the time to answer Lund & Søn." in neutral
    assert "4 out of 10" not in neutral


def test_the_review_request_can_be_unsubscribed_from_in_one_click() -> None:
    assert review().headers == {
        "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "Vil du ikke have flere undersøgelser fra Lund & Søn? Afmeld her:" in review().text


def test_names_and_links_cannot_inject_html_into_the_review_request() -> None:
    message = review(
        name=f"Kirsten {HOSTILE}",
        company=f"Acme {HOSTILE}",
        links={"google": f"https://g.page/r/x{HOSTILE}"},
    )
    assert "<script" not in message.html.lower()
    assert "evil.example" not in [a.attrs.get("href", "") for a in Page(message.html).all("a")]
    assert "\n" not in message.subject


@pytest.mark.parametrize(
    ("links", "error"),
    [
        ({}, "at least one review link"),
        ({"yelp": "https://yelp.example/x"}, "unknown review site"),
        ({"google": "javascript:alert(1)"}, "Google must be an http"),
    ],
)
def test_a_review_request_without_usable_links_is_refused(
    links: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        review(links=links)


# --- the follow-up ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "lang", "question"),
    [
        ("da", "da", "Hvad skulle der til, for at du ville give os 9 eller 10?"),
        ("sv-FI", "sv", "Vad skulle krävas för att du skulle ge oss 9 eller 10?"),
        ("no", "nb", "Hva skal til for at du gir oss 9 eller 10?"),
        (None, "en", "What is the one thing that would make you give us a 9 or 10?"),
    ],
)
def test_a_passive_is_asked_in_their_language_what_would_make_them_a_promoter(
    locale: str | None, lang: str, question: str
) -> None:
    message = follow_up(locale, score=8)
    assert Page(message.html).lang == lang
    assert question in message.text
    bold = [p.text for p in Page(message.html).all("p") if "font-weight:bold" in p.attrs["style"]]
    assert bold == [question]


def test_a_passive_is_not_apologised_to_nor_promised_a_call() -> None:
    text = follow_up("en", score=7).text
    assert "sorry" not in text and "contact you" not in text
    assert "Feel free to reply to this email" in text


def test_a_detractor_gets_an_apology_and_is_told_someone_will_call_when_a_case_is_open() -> None:
    with_case = follow_up("da", score=3, case_opened=True).text
    assert "Vi er kede af, at vi ikke levede op til dine forventninger." in with_case
    assert "En af vores medarbejdere kontakter dig snarest." in with_case
    assert "Hvad kunne vi gøre bedre?" in with_case
    assert "Svar gerne direkte på denne e-mail" in with_case
    without_case = follow_up("da", score=3, case_opened=False).text
    assert "kontakter dig" not in without_case
    assert "Vi er kede af" in without_case


def test_a_rules_own_question_is_asked_as_it_is_written() -> None:
    message = follow_up("sv", score=6, question="Vad hände med leveransen?")
    assert "Vad hände med leveransen?" in message.text
    assert "Vad kan vi göra bättre?" not in message.text


def test_the_follow_up_carries_the_unsubscribe_link_and_headers() -> None:
    message = follow_up("en")
    assert message.headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"
    assert [a.text for a in Page(message.html).all("a")] == ["Unsubscribe here"]


def test_without_a_name_the_follow_up_greets_without_one() -> None:
    assert follow_up("en", name=None).text.startswith("Hello,\n")


# --- both ---------------------------------------------------------------------------------


@pytest.mark.parametrize("message", [review(), follow_up(score=2, case_opened=True)])
def test_the_emails_use_only_colours_whose_contrast_is_checked_and_fetch_nothing(
    message: CustomerEmail,
) -> None:
    checked = {colour for pair in TEXT_COLOUR_PAIRS for colour in pair}
    used = set(re.findall(r"#[0-9a-fA-F]{3,6}\b", message.html))
    assert used and used <= checked
    page = Page(message.html)
    assert [e.tag for e in page.elements if e.tag in ("script", "img", "link", "style")] == []


def test_the_language_is_the_responses_locale_else_the_orders_else_the_comments() -> None:
    swedish = a_response(10, comment="Fantastisk service").model_copy(update={"locale": "sv"})
    assert email_locale(classify_response(swedish)) == "sv"
    from_order = classify_response(a_response(10, comment=None)).model_copy(
        update={"context": ResponseContext(locale="nb")}
    )
    assert email_locale(from_order) == "nb"
    danish_comment = classify_response(
        a_response(10, comment="Rigtig god og venlig betjening, tusind tak for hjælpen")
    )
    assert danish_comment.language == "da"
    assert email_locale(danish_comment) == "da"
    assert email_locale(classify_response(a_response(10, comment=None))) is None
