"""What the loops say to staff: the results digest in Slack and the owner's email (the
alerts are in ``alerts``, what customers are emailed in ``customer_emails``).

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


def slack_escape(text: str) -> str:
    """Slack's own escaping: with <, > and & escaped no mention, broadcast or link can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack refuses a section whose text is over 3,000 characters; escaping can lengthen a comment.
SECTION_LIMIT = 3000


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
