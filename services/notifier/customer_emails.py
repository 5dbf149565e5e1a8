"""What the loops email the customer, in their language: the review request and the
follow-up. Pure: texts from ``shared.i18n``, layout from ``email_layout``.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.notifier.email_layout import (
    CustomerEmail,
    button_html,
    letter_html,
    list_unsubscribe_headers,
    one_line,
    paragraphs_html,
    question_html,
    sign_off_html,
    unsubscribe_text,
    web_url,
)
from services.notifier.reviews import REVIEW_SITES
from shared.events import ClassifiedResponse
from shared.i18n import LOCALES, messages_for
from shared.nps import Category, classify


def email_locale(classified: ClassifiedResponse) -> str | None:
    """The language to write to a customer in: the response's locale, else the order's, else
    the language the comment was written in (when it is one of ours); None reads as English."""
    response = classified.response
    context_locale = classified.context.locale if classified.context else None
    if response.locale or context_locale:
        return response.locale or context_locale
    if classified.language in LOCALES:
        return classified.language
    return None


def review_request_email(
    locale: str | None,
    company_name: str,
    customer_name: str | None,
    score: int,
    links: Mapping[str, str],
    unsubscribe_url: str,
) -> CustomerEmail:
    """Thanks and one link per review site (``links``: site -> URL, see ``REVIEW_SITES``).

    A promoter is thanked for their score; anyone else the review policy asks is thanked for
    answering, and asked the same neutral question: the sites want honest reviews, not praise.
    Raises ValueError without a link, or for a site or URL that cannot be used.
    """
    if not links:
        raise ValueError("a review request needs at least one review link")
    unknown = sorted(set(links) - set(REVIEW_SITES))
    if unknown:
        raise ValueError(f"unknown review site(s) {unknown}; use {', '.join(REVIEW_SITES)}")
    messages = messages_for(locale)
    sites = [
        (messages.review_on_site.format(site=name), web_url(links[site], name))
        for site, name in REVIEW_SITES.items()
        if site in links
    ]
    unsubscribe_url = web_url(unsubscribe_url, "the unsubscribe URL")
    company = company_name.strip()
    subject = one_line(messages.review_subject.format(company=company))
    greeting = messages.greeting(customer_name)
    if classify(score) is Category.PROMOTER:
        thanks = messages.review_thanks_promoter.format(company=company, score=score)
    else:
        thanks = messages.review_thanks.format(company=company)

    text = (
        f"{greeting}\n\n{thanks}\n\n{messages.review_ask}\n\n"
        + "".join(f"{label}:\n{url}\n\n" for label, url in sites)
        + f"{messages.sign_off}\n{company}\n\n"
        + unsubscribe_text(messages, company, unsubscribe_url)
    )
    buttons = "".join(
        f'<p style="margin:0 0 12px;">{button_html(url, label)}</p>\n' for label, url in sites
    )
    body = (
        paragraphs_html([greeting, thanks, messages.review_ask])
        + buttons
        + sign_off_html(messages.sign_off, company)
    )
    return CustomerEmail(
        subject=subject,
        text=text,
        html=letter_html(messages, subject, company, body, unsubscribe_url),
        headers=list_unsubscribe_headers(unsubscribe_url),
    )


def follow_up_email(
    locale: str | None,
    company_name: str,
    customer_name: str | None,
    score: int,
    question: str | None,
    case_opened: bool,
    unsubscribe_url: str,
) -> CustomerEmail:
    """A question the customer can answer by replying.

    ``question`` is a rule's own (written to the customer as it is); without one, the
    question for their score: a passive is asked what one thing would make it a 9 or 10, a
    detractor what we could do better. A detractor is told we are sorry, and, when a case
    was opened, that someone will get in touch: only then is it a promise kept.
    """
    unsubscribe_url = web_url(unsubscribe_url, "the unsubscribe URL")
    messages = messages_for(locale)
    company = company_name.strip()
    subject = one_line(messages.follow_up_subject.format(company=company))
    greeting = messages.greeting(customer_name)
    opening = [messages.thanks_for_score.format(score=score) + "."]
    if classify(score) is Category.DETRACTOR:
        opening.append(messages.follow_up_sorry)
    if case_opened:
        opening.append(messages.follow_up_contact)
    asked = question or messages.improve_question(score)

    text = (
        f"{greeting}\n\n{' '.join(opening)}\n\n{asked}\n{messages.follow_up_reply}\n\n"
        + f"{messages.sign_off}\n{company}\n\n"
        + unsubscribe_text(messages, company, unsubscribe_url)
    )
    body = (
        paragraphs_html([greeting, " ".join(opening)])
        + question_html(asked)
        + paragraphs_html([messages.follow_up_reply])
        + sign_off_html(messages.sign_off, company)
    )
    return CustomerEmail(
        subject=subject,
        text=text,
        html=letter_html(messages, subject, company, body, unsubscribe_url),
        headers=list_unsubscribe_headers(unsubscribe_url),
    )
