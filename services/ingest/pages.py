"""The survey pages customers see: complete HTML documents, rendered by pure functions.

No JavaScript anywhere: every page works as a plain form post, with a keyboard,
with a screen reader and on a phone. Every value that comes from outside this
module (the company name, prefilled answers, URLs) is HTML-escaped where it is
interpolated, after any placeholder is filled in.

The routes that serve these pages (and decide the HTTP status, e.g. 410 for an
expired link) live with ingest's HTTP edge; nothing here does I/O.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from string import Template
from typing import Final, Literal

from shared.events import FollowUpAnswers, SurveyKind
from shared.i18n import HEARD_FROM_KEYS, Messages, messages_for

LinkProblem = Literal["expired", "invalid"]

# Free-text answers are FreeText in shared.events (at most 10,000 characters); the same limit
# in the browser means a long answer is cut while typing instead of refused with a 422.
ANSWER_MAX_LENGTH: Final = 10_000

# The palette. Text pairs are checked for WCAG contrast (4.5:1) by the unit tests, and the
# non-text pairs (control borders, the focus ring) for 3:1; the CSS uses only these colours.
INK: Final = "#1b1f24"
MUTED: Final = "#4b5563"
PAPER: Final = "#ffffff"
PAGE: Final = "#eef1f5"
LINE: Final = "#6b7280"
ACCENT: Final = "#0b57a4"
ACCENT_DARK: Final = "#084582"
ON_ACCENT: Final = "#ffffff"
NOTICE_BACKGROUND: Final = "#e3f4e8"
NOTICE_INK: Final = "#14532d"
FOCUS: Final = "#0b57a4"

TEXT_COLOUR_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    (INK, PAPER),
    (INK, PAGE),
    (MUTED, PAPER),
    (MUTED, PAGE),
    (ON_ACCENT, ACCENT),
    (ON_ACCENT, ACCENT_DARK),
    (NOTICE_INK, NOTICE_BACKGROUND),
)
"""(text, background) for every place text sits on a background in the CSS."""

NON_TEXT_COLOUR_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    (LINE, PAPER),
    (ACCENT, PAPER),
    (FOCUS, PAPER),
    (FOCUS, PAGE),
)
"""(control border or focus ring, background) pairs, which need 3:1 (WCAG 1.4.11)."""

# Sizes are in px so that the tests can hold every font to 16px or more (smaller text in a
# form also makes iOS zoom in on focus) and every control to a 44px tap target.
_CSS_TEMPLATE = Template(
    """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:$page;color:$ink;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-size:18px;line-height:1.5}
main{max-width:680px;margin:0 auto;padding:16px 12px 48px}
.card{background:$paper;color:$ink;border-radius:12px;padding:24px 20px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
.brand{margin:0 0 8px;color:$muted;font-size:16px;font-weight:600}
h1{font-size:26px;line-height:1.25;margin:0 0 16px;text-wrap:balance}
p{margin:0 0 16px}
.card>:last-child{margin-bottom:0}
.status{background:$notice_background;color:$notice_ink;border-radius:8px;padding:12px 16px;
margin:0 0 20px;font-weight:600}
.status:empty{display:none}
.note{color:$muted;font-size:16px}
form+.note{margin-top:20px}
fieldset{border:0;margin:0 0 28px;padding:0;min-width:0}
legend{font-weight:700;padding:0;margin:0 0 8px}
.hint{color:$muted;font-size:16px;margin:0 0 12px}
.option{position:relative}
.option input{position:absolute;top:0;left:0;width:1px;height:1px;margin:0;opacity:0}
.scale{display:grid;grid-template-columns:repeat(6,minmax(44px,1fr));gap:8px}
.scale label{display:flex;align-items:center;justify-content:center;min-width:44px;
min-height:52px;border:2px solid $line;border-radius:8px;background:$paper;color:$ink;
font-size:20px;font-weight:700;cursor:pointer;user-select:none}
.scale input:checked+label{background:$accent;border-color:$accent;color:$on_accent}
.ends{display:flex;justify-content:space-between;gap:16px;margin:10px 0 0;color:$muted;
font-size:16px}
.ends span:last-child{text-align:right}
.field{margin:0 0 28px}
.field label{display:block;font-weight:700;margin:0 0 8px}
.optional{font-weight:400;color:$muted;font-size:16px}
textarea{display:block;width:100%;min-height:128px;margin:0;padding:12px;font:inherit;
font-size:18px;color:$ink;background:$paper;border:2px solid $line;border-radius:8px;
resize:vertical}
.choices .option{margin:0 0 8px}
.choices label{display:flex;align-items:center;gap:12px;min-height:52px;padding:10px 14px;
border:2px solid $line;border-radius:8px;background:$paper;color:$ink;cursor:pointer}
.choices label::before{content:"";flex:none;width:22px;height:22px;border:2px solid $line;
border-radius:50%;background:$paper}
.choices input:checked+label{border-color:$accent}
.choices input:checked+label::before{border:7px solid $accent}
button{display:block;width:100%;min-height:52px;margin:0;padding:12px 24px;font:inherit;
font-size:18px;font-weight:700;color:$on_accent;background:$accent;border:0;border-radius:8px;
cursor:pointer}
button:hover{background:$accent_dark}
.option input:focus-visible+label,textarea:focus-visible,button:focus-visible{
outline:3px solid $focus;outline-offset:3px}
@media (min-width:600px){
main{padding:40px 16px 64px}
.card{padding:32px}
.scale{grid-template-columns:repeat(11,minmax(44px,1fr));gap:6px}
button{width:auto}
}
@media (forced-colors:active){
.scale input:checked+label,.choices input:checked+label{outline:4px double CanvasText}
}
"""
)

CSS: Final = " ".join(
    _CSS_TEMPLATE.substitute(
        ink=INK,
        muted=MUTED,
        paper=PAPER,
        page=PAGE,
        line=LINE,
        accent=ACCENT,
        accent_dark=ACCENT_DARK,
        on_accent=ON_ACCENT,
        notice_background=NOTICE_BACKGROUND,
        notice_ink=NOTICE_INK,
        focus=FOCUS,
    ).split()
)
"""The stylesheet every page inlines (whitespace collapsed)."""


@dataclass(frozen=True)
class SurveyPage:
    """The survey page after a score was recorded: change the score, answer the follow-ups.

    ``heard_from_options`` are keys of ``shared.i18n.HEARD_FROM_KEYS``, in the order to
    show them; empty leaves the question out, and an eNPS survey never asks it.
    ``prefill`` holds what a returning visitor answered before; ``saved`` says the
    answers were just saved, so the page confirms it.
    """

    locale: str | None
    company_name: str
    survey_kind: SurveyKind | Literal["nps", "enps"]
    score: int
    action_url: str
    heard_from_options: tuple[str, ...] = ()
    prefill: FollowUpAnswers = field(default_factory=FollowUpAnswers)
    saved: bool = False

    def __post_init__(self) -> None:
        if self.survey_kind not in (SurveyKind.NPS, SurveyKind.ENPS):
            raise ValueError(f"a survey kind is 'nps' or 'enps', not {self.survey_kind!r}")
        if isinstance(self.score, bool) or not isinstance(self.score, int):
            raise TypeError(f"a score is a whole number from 0 to 10, not {self.score!r}")
        if not 0 <= self.score <= 10:
            raise ValueError(f"a score is a whole number from 0 to 10, not {self.score}")
        unknown = [key for key in self.heard_from_options if key not in HEARD_FROM_KEYS]
        if unknown:
            raise ValueError(
                f"unknown heard-from options {unknown}; "
                f"the options are {', '.join(HEARD_FROM_KEYS)}"
            )


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _document(messages: Messages, title: str, body: str) -> str:
    # The survey links carry a signed token: keep them out of search engines and out of
    # Referer headers.
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_text(messages.html_lang)}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_text(title)}</title>\n"
        f"<style>{CSS}</style>\n"
        "</head>\n"
        "<body>\n"
        f'<main>\n<div class="card">\n{body}</div>\n</main>\n'
        "</body>\n"
        "</html>\n"
    )


def _brand(company_name: str) -> str:
    return f'<p class="brand">{_text(company_name)}</p>\n'


def _status(notice: str) -> str:
    # Always present, so that assistive technology knows the region before it has news.
    return f'<div class="status" role="status">{_text(notice)}</div>\n'


def _score_fieldset(page: SurveyPage, messages: Messages) -> str:
    options = "".join(
        '<div class="option">'
        f'<input type="radio" id="score-{value}" name="score" value="{value}"'
        f"{' checked' if value == page.score else ''}>"
        f'<label for="score-{value}">{value}</label>'
        "</div>\n"
        for value in range(11)
    )
    question = messages.question(page.survey_kind, page.company_name)
    # The legend names the group for screen readers; the hint is tied to it so that it is read
    # when the group is entered. The scale ends are written out ("0 = ...") because on a phone
    # the eleven buttons wrap onto two rows and the ends are no longer under 0 and 10.
    return (
        '<fieldset aria-describedby="score-hint score-ends">\n'
        f"<legend>{_text(question)}</legend>\n"
        f'<p class="hint" id="score-hint">{_text(messages.change_score)}</p>\n'
        f'<div class="scale">\n{options}</div>\n'
        '<p class="ends" id="score-ends">'
        f"<span>0 = {_text(messages.scale_low)}</span>"
        f"<span>10 = {_text(messages.scale_high)}</span>"
        "</p>\n"
        "</fieldset>\n"
    )


def _textarea(name: str, question: str, messages: Messages, prefill: str | None) -> str:
    # A newline straight after <textarea> is dropped by every HTML parser, so an answer that
    # itself starts with a line break keeps it.
    return (
        '<div class="field">\n'
        f'<label for="{name}">{_text(question)} '
        f'<span class="optional">({_text(messages.optional)})</span></label>\n'
        f'<textarea id="{name}" name="{name}" rows="4" maxlength="{ANSWER_MAX_LENGTH}">\n'
        f"{_text(prefill or '')}</textarea>\n"
        "</div>\n"
    )


def _heard_from_fieldset(page: SurveyPage, messages: Messages) -> str:
    options = "".join(
        '<div class="option">'
        f'<input type="radio" id="heard-from-{key}" name="heard_from" value="{_text(key)}"'
        f"{' checked' if key == page.prefill.heard_from else ''}>"
        f'<label for="heard-from-{key}">{_text(messages.heard_from_label(key))}</label>'
        "</div>\n"
        for key in page.heard_from_options
    )
    return (
        '<fieldset class="choices">\n'
        f"<legend>{_text(messages.heard_from_question)} "
        f'<span class="optional">({_text(messages.optional)})</span></legend>\n'
        f"{options}"
        "</fieldset>\n"
    )


def render_survey(page: SurveyPage) -> str:
    """The survey page: thanks for the score, the score to change, the follow-up questions."""
    messages = messages_for(page.locale)
    enps = page.survey_kind == SurveyKind.ENPS
    parts = [
        _brand(page.company_name),
        f"<h1>{_text(messages.thanks_for_score.format(score=page.score))}</h1>\n",
        _status(messages.answer_updated if page.saved else ""),
    ]
    if enps:
        parts.append(f'<p class="note">{_text(messages.enps_anonymous)}</p>\n')
    parts.append(f'<form method="post" action="{_text(page.action_url)}">\n')
    parts.append(_score_fieldset(page, messages))
    parts.append(_textarea("reason", messages.reason_question, messages, page.prefill.reason))
    parts.append(
        _textarea("improve", messages.improve_question(page.score), messages, page.prefill.improve)
    )
    # Where a customer heard of the business says nothing about an employee's workplace.
    if page.heard_from_options and not enps:
        parts.append(_heard_from_fieldset(page, messages))
    parts.append(f'<button type="submit">{_text(messages.submit)}</button>\n')
    parts.append("</form>\n")
    title = messages.survey_title.format(company=page.company_name)
    return _document(messages, title, "".join(parts))


def render_thanks(locale: str | None, company_name: str) -> str:
    """The page after the answers are in."""
    messages = messages_for(locale)
    body = (
        _brand(company_name)
        + f"<h1>{_text(messages.thanks_title)}</h1>\n"
        + f"<p>{_text(messages.thanks_body.format(company=company_name))}</p>\n"
        + f'<p class="note">{_text(messages.thanks_close)}</p>\n'
    )
    return _document(messages, messages.thanks_title, body)


def render_link_problem(locale: str | None, problem: LinkProblem) -> str:
    """Why a survey link cannot be used (expired, or invalid or tampered with) and what to do."""
    messages = messages_for(locale)
    if problem == "expired":
        title = messages.link_expired_title
        explanation = messages.link_expired_explanation
        next_step = messages.link_expired_next_step
    elif problem == "invalid":
        title = messages.link_invalid_title
        explanation = messages.link_invalid_explanation
        next_step = messages.link_invalid_next_step
    else:
        raise ValueError(f"a link problem is 'expired' or 'invalid', not {problem!r}")
    body = f"<h1>{_text(title)}</h1>\n<p>{_text(explanation)}</p>\n<p>{_text(next_step)}</p>\n"
    return _document(messages, title, body)


def render_unsubscribe(locale: str | None, company_name: str, action_url: str, done: bool) -> str:
    """The unsubscribe page: one button that posts to ``action_url``, or, when done, the receipt.

    The question is asked on a page, never acted on by a GET: mail scanners open every link
    in an email, and would otherwise unsubscribe people who never asked to be.
    """
    messages = messages_for(locale)
    if done:
        body = (
            _brand(company_name)
            + f"<h1>{_text(messages.unsubscribed_title)}</h1>\n"
            + _status(messages.unsubscribed_body.format(company=company_name))
        )
        return _document(messages, messages.unsubscribed_title, body)
    body = (
        _brand(company_name)
        + f"<h1>{_text(messages.unsubscribe_title)}</h1>\n"
        + f"<p>{_text(messages.unsubscribe_question.format(company=company_name))}</p>\n"
        + f'<form method="post" action="{_text(action_url)}">\n'
        + f'<button type="submit">{_text(messages.unsubscribe_button)}</button>\n'
        + "</form>\n"
        + f'<p class="note">{_text(messages.unsubscribe_keep)}</p>\n'
    )
    return _document(messages, messages.unsubscribe_title, body)
