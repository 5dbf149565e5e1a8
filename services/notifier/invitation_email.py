"""The survey invitation email: the question with eleven one-click scores, 0 to 10.

Laid out like every customer email (``email_layout``); a plain-text part carries every
score's link on its own line.

Each score is its own link, so answering takes one click; the page the link opens
records the score and asks the follow-up questions. Unsubscribing is one visible
link plus the RFC 8058 headers that let mail providers offer it themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from services.notifier.email_layout import (
    ACCENT,
    FONT,
    PAPER,
    PRESENTATION_TABLE,
    SMALL_STYLE,
    CustomerEmail,
    escape,
    letter_html,
    list_unsubscribe_headers,
    one_line,
    paragraphs_html,
    question_html,
    sign_off_html,
    unsubscribe_text,
    web_url,
)
from shared.events import SurveyKind
from shared.i18n import messages_for

SCORES: Final = range(11)


def _score_cell(score: int, url: str) -> str:
    # The link fills the cell and carries the padding, so the whole box is the tap target.
    return (
        '<td align="center" width="9%" style="padding:0 2px;">'
        f'<a href="{escape(url)}" style="display:block;padding:12px 0;{FONT};font-size:18px;'
        f"line-height:22px;font-weight:bold;color:{ACCENT};text-decoration:none;"
        f'border:2px solid {ACCENT};border-radius:6px;background:{PAPER};">{score}</a>'
        "</td>"
    )


def invitation_email(
    locale: str | None,
    company_name: str,
    customer_name: str | None,
    survey_kind: SurveyKind | Literal["nps", "enps"],
    score_urls: Sequence[str],
    unsubscribe_url: str,
) -> CustomerEmail:
    """The invitation in the customer's language, with ``score_urls[n]`` as the link of score n.

    Raises ValueError unless there are exactly eleven score URLs (for 0 to 10), or when a URL is
    not http(s).
    """
    if isinstance(score_urls, str) or len(score_urls) != len(SCORES):
        raise ValueError(f"an invitation needs exactly 11 score URLs (0 to 10), not {score_urls!r}")
    urls = [web_url(url, f"the URL of score {score}") for score, url in enumerate(score_urls)]
    unsubscribe_url = web_url(unsubscribe_url, "the unsubscribe URL")
    if survey_kind not in (SurveyKind.NPS, SurveyKind.ENPS):
        raise ValueError(f"a survey kind is 'nps' or 'enps', not {survey_kind!r}")
    enps = survey_kind == SurveyKind.ENPS

    messages = messages_for(locale)
    company = company_name.strip()
    subject_template = messages.email_subject_enps if enps else messages.email_subject_nps
    subject = one_line(subject_template.format(company=company))
    greeting = messages.greeting(customer_name)
    intro = (messages.email_intro_enps if enps else messages.email_intro_nps).format(
        company=company
    )
    # An employee is told up front that the answer is anonymous: it is why they answer honestly.
    paragraphs = [intro, messages.enps_anonymous] if enps else [intro]
    question = messages.question(survey_kind, company)
    low = f"0 = {messages.scale_low}"
    high = f"10 = {messages.scale_high}"

    text_scores = "\n".join(f"{score:>2}: {url}" for score, url in enumerate(urls))
    text = (
        f"{greeting}\n\n"
        + "".join(f"{paragraph}\n\n" for paragraph in paragraphs)
        + f"{question}\n"
        f"{messages.click_a_number}\n"
        f"({low}, {high})\n\n"
        f"{text_scores}\n\n"
        f"{messages.sign_off}\n{company}\n\n" + unsubscribe_text(messages, company, unsubscribe_url)
    )

    cells = "".join(_score_cell(score, url) for score, url in enumerate(urls))
    body = (
        paragraphs_html([greeting, *paragraphs])
        + question_html(question)
        + paragraphs_html([messages.click_a_number])
        + f"{PRESENTATION_TABLE}><tr>{cells}</tr></table>\n"
        f'{PRESENTATION_TABLE} style="margin:0 0 24px;"><tr>'
        f'<td align="left" style="padding:8px 2px 0;{SMALL_STYLE}">{escape(low)}</td>'
        f'<td align="right" style="padding:8px 2px 0;{SMALL_STYLE}">{escape(high)}</td>'
        "</tr></table>\n" + sign_off_html(messages.sign_off, company)
    )
    return CustomerEmail(
        subject=subject,
        text=text,
        html=letter_html(messages, subject, company, body, unsubscribe_url),
        headers=list_unsubscribe_headers(unsubscribe_url),
    )
