"""How every email to a customer is laid out: invitations, review requests, follow-ups.

Built for email clients rather than browsers: table layout, inline styles, no
JavaScript, no images and no external resources, so it reads the same in
Outlook, Gmail and a phone's mail app, and with images blocked. Every email has a
plain-text part, a visible unsubscribe link and the RFC 8058 headers that let mail
providers offer unsubscribing themselves.

Texts are plain text until here: each is escaped once, as it goes into the HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shared.i18n import Messages

# Colours of the emails; the unit tests hold the text pairs to WCAG's 4.5:1.
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
"""(text, background) for every place text sits on a background in an email."""

FONT: Final = "font-family:Arial,Helvetica,sans-serif"
PARAGRAPH_STYLE: Final = f"margin:0 0 16px;{FONT};font-size:16px;line-height:24px;color:{INK};"
SMALL_STYLE: Final = f"{FONT};font-size:14px;line-height:20px;color:{MUTED};"
PRESENTATION_TABLE: Final = (
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
)
# Anything that could end a header value or an angle-bracketed URI in List-Unsubscribe.
_NOT_IN_A_HEADER_URL = re.compile(r"[\s<>,\"\x00-\x1f\x7f]")


@dataclass(frozen=True)
class CustomerEmail:
    """One email, ready for the mail provider: subject, both bodies and extra headers."""

    subject: str
    text: str
    html: str
    headers: dict[str, str]


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def web_url(url: str, what: str) -> str:
    """The URL, when it is http(s); ValueError naming ``what`` otherwise."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) URL, not {url!r}")
    return url


def one_line(text: str) -> str:
    # The subject is a header: a line break from the company name must not start a new one.
    return " ".join(text.split())


def list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    if _NOT_IN_A_HEADER_URL.search(unsubscribe_url):
        raise ValueError(f"the unsubscribe URL cannot go in a header: {unsubscribe_url!r}")
    headers = {"List-Unsubscribe": f"<{unsubscribe_url}>"}
    # RFC 8058 one-click needs an HTTPS URI; a plain-http one (a local installation) keeps the
    # List-Unsubscribe link but must not claim one-click.
    if unsubscribe_url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def paragraphs_html(paragraphs: Sequence[str]) -> str:
    return "".join(f'<p style="{PARAGRAPH_STYLE}">{escape(p)}</p>\n' for p in paragraphs)


def question_html(question: str) -> str:
    """The one question an email asks, in bold, above what answers it."""
    return (
        f'<p style="margin:0 0 8px;{FONT};font-size:20px;line-height:28px;font-weight:bold;'
        f'color:{INK};">{escape(question)}</p>\n'
    )


def sign_off_html(sign_off: str, company: str) -> str:
    return f'<p style="{PARAGRAPH_STYLE}">{escape(sign_off)}<br>{escape(company)}</p>\n'


def button_html(url: str, label: str) -> str:
    """A link as a bordered box: the whole box is the tap target."""
    return (
        f'<a href="{escape(url)}" style="display:block;padding:12px 16px;{FONT};font-size:18px;'
        f"line-height:22px;font-weight:bold;color:{ACCENT};text-decoration:none;"
        f'border:2px solid {ACCENT};border-radius:6px;background:{PAPER};">{escape(label)}</a>'
    )


def unsubscribe_text(messages: Messages, company: str, unsubscribe_url: str) -> str:
    """The plain-text part's footer."""
    prompt = messages.unsubscribe_prompt.format(company=company)
    return f"--\n{prompt} {messages.unsubscribe_link}:\n{unsubscribe_url}\n"


def letter_html(
    messages: Messages, subject: str, company: str, body: str, unsubscribe_url: str
) -> str:
    """The HTML document around ``body`` (already HTML): a card on a page, and beneath it the
    unsubscribe link."""
    prompt = messages.unsubscribe_prompt.format(company=company)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{escape(messages.html_lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(subject)}</title>\n</head>\n"
        f'<body style="margin:0;padding:0;background:{PAGE};">\n'
        f'{PRESENTATION_TABLE} style="background:{PAGE};">'
        '<tr><td align="center" style="padding:24px 8px;">\n'
        f'{PRESENTATION_TABLE} style="max-width:600px;background:{PAPER};border-radius:8px;">'
        '<tr><td style="padding:24px 16px;">\n'
        f"{body}"
        "</td></tr></table>\n"
        f'<p style="margin:16px 0 0;{SMALL_STYLE}">{escape(prompt)} '
        f'<a href="{escape(unsubscribe_url)}" style="color:{MUTED};text-decoration:underline;">'
        f"{escape(messages.unsubscribe_link)}</a></p>\n"
        "</td></tr></table>\n</body>\n</html>\n"
    )
