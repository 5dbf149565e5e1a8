"""The case page behind an alert's "Open the case" link: what the customer said, where the
case stands, and every step with who and when. Pure: renders HTML, no I/O.

Everything from outside (the comment, names, segment values) is HTML-escaped where it is
interpolated. The page is a capability: its link carries a signed token (``shared.links``),
so only someone handed the link (in the alert's channel) can read it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from services.notifier.case_store import CaseStep
from services.notifier.cases import Case
from shared.events import ClassifiedResponse

_STEP_NAMES = {
    "opened": "Opened",
    "claimed": "Claimed",
    "contacted": "Contacted",
    "resolved": "Resolved",
    "reopened": "Reopened",
    "escalated": "Escalated",
}

_CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1b1f24;background:#eef1f5;margin:0}"
    "main{max-width:46rem;margin:0 auto;padding:1.5rem}"
    "section{background:#fff;border-radius:.5rem;padding:1rem 1.25rem;margin:0 0 1rem}"
    "blockquote{margin:0;padding-left:1rem;border-left:4px solid #6b7280;white-space:pre-wrap}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;"
    "border-bottom:1px solid #d1d5db}.muted{color:#4b5563}.late{color:#9b1c1c;font-weight:600}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(at: datetime | None) -> str:
    return "" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def render_case_page(
    case: Case,
    steps: Sequence[CaseStep],
    classified: ClassifiedResponse | None,
    now: datetime,
) -> str:
    """The whole HTML document of a case."""
    title = f"Case of response {case.response_id}"
    parts: list[str] = []
    if classified is not None:
        response = classified.response
        comment = (response.comment or "").strip()
        said = f"<blockquote>{_e(comment)}</blockquote>" if comment else "<p>No comment.</p>"
        title = f"{classified.category.value.capitalize()} {response.score}/10"
        segment = (
            classified.context.segment if classified.context else response.segment
        ).model_dump(exclude_none=True)
        where = "".join(
            f"<tr><th scope='row'>{_e(name.replace('_', ' '))}</th><td>{_e(value)}</td></tr>"
            for name, value in segment.items()
        )
        parts.append(
            f"<section aria-labelledby='said'><h2 id='said'>What the customer said</h2>{said}"
            f"<p class='muted'>Answered {_e(_when(response.responded_at))}</p>"
            + (f"<table>{where}</table>" if where else "")
            + "</section>"
        )
    breached = case.breached(now)
    due = (
        f"<span class='late'>{_e(_when(case.sla_due_at))}, breached</span>"
        if breached
        else (_e(_when(case.sla_due_at)))
    )
    owner = f"<p>Claimed by {_e(case.claimed_by)}</p>" if case.claimed_by else ""
    question = f"<p>Ask: {_e(case.question)}</p>" if case.question else ""
    parts.append(
        "<section aria-labelledby='state'><h2 id='state'>Where the case stands</h2>"
        f"<p><strong>{_e(case.state.value.capitalize())}</strong></p>{owner}{question}"
        f"<p>Claim by {due}</p></section>"
    )
    rows = "".join(
        f"<tr><td>{_e(_STEP_NAMES.get(step.action, step.action))}</td>"
        f"<td>{_e(step.actor or '')}</td><td>{_e(_when(step.at))}</td>"
        f"<td>{_e('' if step.outcome == 'applied' else step.note or step.outcome)}</td></tr>"
        for step in steps
    )
    parts.append(
        "<section aria-labelledby='history'><h2 id='history'>History</h2><table>"
        "<thead><tr><th scope='col'>Step</th><th scope='col'>Who</th><th scope='col'>When</th>"
        f"<th scope='col'>Not applied because</th></tr></thead><tbody>{rows}</tbody></table>"
        "</section>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{_e(title)}: npsloop case</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{_e(title)}</h1>{''.join(parts)}</main></body></html>"
    )
