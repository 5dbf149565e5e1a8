"""What the loops say: the Slack alert (Block Kit) and the review-request email.

Customer text is never trusted: in Slack it is escaped so that a comment cannot
ping @channel, mention a user or smuggle a link; in HTML it is entity-escaped.
"""

from __future__ import annotations

import html
from typing import Any

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, SectionBlock
from slack_sdk.models.blocks.basic_components import MarkdownTextObject, PlainTextObject

from shared.events import ClassifiedResponse, Digest
from shared.nps import Category

_HEADLINE = {
    Category.DETRACTOR: "Detractor",
    Category.PASSIVE: "Passive",
    Category.PROMOTER: "Promoter",
}
_REVIEW_SITES = {"google": "Google", "facebook": "Facebook"}


def slack_escape(text: str) -> str:
    """Slack's own escaping: with <, > and & escaped no mention, broadcast or link can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack refuses a section whose text is over 3,000 characters; escaping can lengthen a comment.
SECTION_LIMIT = 3000


def review_request(
    classified: ClassifiedResponse, company_name: str, review_links: dict[str, str]
) -> dict[str, Any]:
    """The email asking a promoter to tell others, with the configured review links."""
    response = classified.response
    name = response.contact.name
    greeting = f"Hi {name}," if name else "Hi,"
    sites = [(_REVIEW_SITES.get(site, site.title()), url) for site, url in review_links.items()]
    text_links = "\n".join(f"- {label}: {url}" for label, url in sites)
    text = (
        f"{greeting}\n\n"
        f"Thank you for giving {company_name} a {response.score} out of 10. "
        "It means a lot to us.\n\n"
        "Would you share your experience where others look for advice? It takes a minute:\n"
        f"{text_links}\n\n"
        f"Thank you,\n{company_name}\n"
    )
    html_links = "".join(
        f'<li><a href="{html.escape(url, quote=True)}">Review us on {html.escape(label)}</a></li>'
        for label, url in sites
    )
    body_html = (
        f"<p>{html.escape(greeting)}</p>"
        f"<p>Thank you for giving {html.escape(company_name)} a {response.score} out of 10. "
        "It means a lot to us.</p>"
        "<p>Would you share your experience where others look for advice? It takes a minute:</p>"
        f"<ul>{html_links}</ul>"
        f"<p>Thank you,<br>{html.escape(company_name)}</p>"
    )
    return {
        "to_email": response.contact.email,
        "to_name": name,
        "subject": f"Thank you! Would you recommend {company_name} to others?",
        "text": text,
        "html": body_html,
    }


def digest_message(digest: Digest, channel: str) -> dict[str, Any]:
    """chat.postMessage arguments for a results digest, split into sections Slack accepts."""
    text = slack_escape(digest.text)
    chunks = [text[i : i + SECTION_LIMIT] for i in range(0, len(text), SECTION_LIMIT)] or [""]
    period = f"{digest.period_start:%Y-%m-%d} to {digest.period_end:%Y-%m-%d}"
    blocks = [
        HeaderBlock(text=PlainTextObject(text=digest.title[:150])),
        ContextBlock(elements=[MarkdownTextObject(text=period)]),
        *(SectionBlock(text=MarkdownTextObject(text=chunk)) for chunk in chunks[:40]),
    ]
    return {
        "channel": channel,
        "text": slack_escape(f"{digest.title} ({period})"),
        "blocks": [block.to_dict() for block in blocks],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def owner_email(classified: ClassifiedResponse, address: str) -> dict[str, Any]:
    """The response, emailed to the person who owns this part of the business."""
    response = classified.response
    segment = classified.context.segment if classified.context else response.segment
    where = ", ".join(
        value for value in (segment.region, segment.department, segment.store) if value
    )
    subject = f"{_HEADLINE[classified.category]} {response.score}/10" + (
        f" ({where})" if where else ""
    )
    comment = response.comment or "(no comment)"
    themes = ", ".join(f"{hit.label}: {', '.join(hit.words)}" for hit in classified.themes)
    lines = [
        f"Score: {response.score}/10 ({classified.category})",
        f"Where: {where or 'not given'}",
        f"Comment: {comment}",
        *([f"Themes: {themes}"] if themes else []),
        *([f"Priority: {classified.priority}"] if classified.priority == "high" else []),
        f"Response: {response.response_id}",
    ]
    text = "\n".join(lines) + "\n"
    body_html = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return {
        "to_email": address,
        "to_name": None,
        "subject": subject,
        "text": text,
        "html": body_html,
    }
