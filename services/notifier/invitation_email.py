"""The survey invitation email: the question with eleven one-click scores, 0 to 10.

Built for email clients rather than browsers: table layout, inline styles, no
JavaScript, no images and no external resources, so it reads the same in
Outlook, Gmail and a phone's mail app, and with images blocked. A plain-text
part carries every score's link on its own line.

Each score is its own link, so answering takes one click; the page the link opens
records the score and asks the follow-up questions. Unsubscribing is one visible
link plus the RFC 8058 headers that let mail providers offer it themselves.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from shared.events import SurveyKind
from shared.i18n import messages_for

SCORES: Final = range(11)

# Colours of the email; the unit tests hold the text pairs to WCAG's 4.5:1.
INK: Final = "#1b1f24"
MUTED: Final = "#4b5563"
PAPER: Final = "#ffffff"
PAGE: Final = "#eef1f5"
ACCENT: Final = "#0b57a4"
TEXT_COLOUR_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    (INK, PAPER),
    (MUTED, PAPER),
    (ACCENT, PAPER),
    (MUTED, PAGE),
)
"""(text, background) for every place text sits on a background in the email."""

_FONT = "font-family:Arial,Helvetica,sans-serif"
# Anything that could end a header value or an angle-bracketed URI in List-Unsubscribe.
_NOT_IN_A_HEADER_URL = re.compile(r"[\s<>,\"\x00-\x1f\x7f]")


@dataclass(frozen=True)
class InvitationEmail:
    """One invitation, ready for the mail provider: subject, both bodies and extra headers."""

    subject: str
    text: str
    html: str
    headers: dict[str, str]


def _web_url(url: str, what: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) URL, not {url!r}")
    return url


def _one_line(text: str) -> str:
    # The subject is a header: a line break from the company name must not start a new one.
    return " ".join(text.split())


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    if _NOT_IN_A_HEADER_URL.search(unsubscribe_url):
        raise ValueError(f"the unsubscribe URL cannot go in a header: {unsubscribe_url!r}")
    headers = {"List-Unsubscribe": f"<{unsubscribe_url}>"}
    # RFC 8058 one-click needs an HTTPS URI; a plain-http one (a local installation) keeps the
    # List-Unsubscribe link but must not claim one-click.
    if unsubscribe_url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def _score_cell(score: int, url: str) -> str:
    # The link fills the cell and carries the padding, so the whole box is the tap target.
    return (
        '<td align="center" width="9%" style="padding:0 2px;">'
        f'<a href="{_e(url)}" style="display:block;padding:12px 0;{_FONT};font-size:18px;'
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
) -> InvitationEmail:
    """The invitation in the customer's language, with ``score_urls[n]`` as the link of score n.

    Raises ValueError unless there are exactly eleven score URLs (for 0 to 10), or when a URL is
    not http(s).
    """
    if isinstance(score_urls, str) or len(score_urls) != len(SCORES):
        raise ValueError(f"an invitation needs exactly 11 score URLs (0 to 10), not {score_urls!r}")
    urls = [_web_url(url, f"the URL of score {score}") for score, url in enumerate(score_urls)]
    unsubscribe_url = _web_url(unsubscribe_url, "the unsubscribe URL")
    if survey_kind not in (SurveyKind.NPS, SurveyKind.ENPS):
        raise ValueError(f"a survey kind is 'nps' or 'enps', not {survey_kind!r}")
    enps = survey_kind == SurveyKind.ENPS

    messages = messages_for(locale)
    company = company_name.strip()
    subject_template = messages.email_subject_enps if enps else messages.email_subject_nps
    subject = _one_line(subject_template.format(company=company))
    greeting = messages.greeting(customer_name)
    intro = (messages.email_intro_enps if enps else messages.email_intro_nps).format(
        company=company
    )
    # An employee is told up front that the answer is anonymous: it is why they answer honestly.
    paragraphs = [intro, messages.enps_anonymous] if enps else [intro]
    question = messages.question(survey_kind, company)
    low = f"0 = {messages.scale_low}"
    high = f"10 = {messages.scale_high}"
    unsubscribe_prompt = messages.unsubscribe_prompt.format(company=company)

    text_scores = "\n".join(f"{score:>2}: {url}" for score, url in enumerate(urls))
    text = (
        f"{greeting}\n\n"
        + "".join(f"{paragraph}\n\n" for paragraph in paragraphs)
        + f"{question}\n"
        f"{messages.click_a_number}\n"
        f"({low}, {high})\n\n"
        f"{text_scores}\n\n"
        f"{messages.sign_off}\n{company}\n\n"
        "--\n"
        f"{unsubscribe_prompt} {messages.unsubscribe_link}:\n{unsubscribe_url}\n"
    )

    paragraph_style = f"margin:0 0 16px;{_FONT};font-size:16px;line-height:24px;color:{INK};"
    small_style = f"{_FONT};font-size:14px;line-height:20px;color:{MUTED};"
    cells = "".join(_score_cell(score, url) for score, url in enumerate(urls))
    body_html = (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(messages.html_lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(subject)}</title>\n</head>\n"
        f'<body style="margin:0;padding:0;background:{PAGE};">\n'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="background:{PAGE};"><tr><td align="center" style="padding:24px 8px;">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="max-width:600px;background:{PAPER};border-radius:8px;">'
        '<tr><td style="padding:24px 16px;">\n'
        f'<p style="{paragraph_style}">{_e(greeting)}</p>\n'
        + "".join(f'<p style="{paragraph_style}">{_e(p)}</p>\n' for p in paragraphs)
        + f'<p style="margin:0 0 8px;{_FONT};font-size:20px;line-height:28px;font-weight:bold;'
        f'color:{INK};">{_e(question)}</p>\n'
        f'<p style="{paragraph_style}">{_e(messages.click_a_number)}</p>\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">'
        f"<tr>{cells}</tr></table>\n"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="margin:0 0 24px;"><tr>'
        f'<td align="left" style="padding:8px 2px 0;{small_style}">{_e(low)}</td>'
        f'<td align="right" style="padding:8px 2px 0;{small_style}">{_e(high)}</td>'
        "</tr></table>\n"
        f'<p style="{paragraph_style}">{_e(messages.sign_off)}<br>{_e(company)}</p>\n'
        "</td></tr></table>\n"
        f'<p style="margin:16px 0 0;{small_style}">{_e(unsubscribe_prompt)} '
        f'<a href="{_e(unsubscribe_url)}" style="color:{MUTED};text-decoration:underline;">'
        f"{_e(messages.unsubscribe_link)}</a></p>\n"
        "</td></tr></table>\n</body>\n</html>\n"
    )
    return InvitationEmail(
        subject=subject,
        text=text,
        html=body_html,
        headers=_list_unsubscribe_headers(unsubscribe_url),
    )
