"""The survey pages as HTML: complete, escaped, labelled, readable and free of JavaScript."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from services.ingest.pages import (
    ANSWER_MAX_LENGTH,
    CSS,
    NON_TEXT_COLOUR_PAIRS,
    TEXT_COLOUR_PAIRS,
    SurveyPage,
    render_link_problem,
    render_survey,
    render_thanks,
    render_unsubscribe,
)
from shared.events import FollowUpAnswers, SurveyKind
from shared.i18n import HEARD_FROM_KEYS, messages_for

HOSTILE = "\"><script>alert(1)</script><img src=x onerror=alert(2)>'&amp;"
ACTION = "https://feedback.example.com/s/abc.def?x=1&y=2"


# --- reading a page ----------------------------------------------------------------------------

VOID = {"meta", "input", "br", "img", "link", "hr", "source", "area", "base", "col", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parents: tuple[str, ...]
    text: str = ""


@dataclass
class Page(HTMLParser):
    """A rendered page, parsed: its elements, with their attributes and their own text."""

    source: str
    elements: list[Element] = field(default_factory=list)
    doctype: str = ""
    _open: list[Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.feed(self.source)
        self.close()

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parents = tuple(f"{e.tag}#{e.attrs.get('id', '')}" for e in self._open)
        element = Element(tag, {name: value or "" for name, value in attrs}, parents)
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(name) == value for name, value in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def text_of(self, tag: str, **attrs: str) -> str:
        return " ".join(self.one(tag, **attrs).text.split())

    @property
    def lang(self) -> str:
        return self.one("html").attrs.get("lang", "")


def survey_page(**overrides: object) -> SurveyPage:
    values: dict[str, object] = {
        "locale": "da",
        "company_name": "Lund & Søn",
        "survey_kind": "nps",
        "score": 7,
        "action_url": ACTION,
        "heard_from_options": ("recommendation", "google", "local_paper", "other"),
        **overrides,
    }
    return SurveyPage(**values)  # type: ignore[arg-type]


def every_page() -> dict[str, str]:
    return {
        "survey": render_survey(survey_page()),
        "enps survey": render_survey(survey_page(survey_kind="enps", saved=True)),
        "thanks": render_thanks("sv", "Ica"),
        "expired": render_link_problem("en", "expired"),
        "invalid": render_link_problem("no", "invalid"),
        "unsubscribe": render_unsubscribe("da", "Fakta", ACTION, done=False),
        "unsubscribed": render_unsubscribe("da", "Fakta", ACTION, done=True),
    }


PAGES = every_page()


# --- every page --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_every_page_is_a_complete_document_for_a_phone(name: str) -> None:
    page = Page(PAGES[name])
    assert PAGES[name].startswith("<!DOCTYPE html>")
    assert page.doctype.lower() == "doctype html"
    assert page.lang in {"da", "sv", "nb", "en"}
    assert page.one("meta", charset="utf-8")
    assert "width=device-width" in page.one("meta", name="viewport").attrs["content"]
    assert page.text_of("title")
    assert page.one("style").text.strip() == CSS


@pytest.mark.parametrize("name", PAGES)
def test_no_page_runs_javascript_or_loads_anything(name: str) -> None:
    page = Page(PAGES[name])
    assert page.all("script") == []
    assert [e.tag for e in page.elements if any(a.startswith("on") for a in e.attrs)] == []
    assert [e.tag for e in page.elements if "src" in e.attrs or e.tag == "link"] == []
    assert "url(" not in CSS


@pytest.mark.parametrize("name", PAGES)
def test_no_page_pulls_a_control_out_of_the_reading_order(name: str) -> None:
    page = Page(PAGES[name])
    assert [e.attrs for e in page.elements if int(e.attrs.get("tabindex", "0")) > 0] == []


@pytest.mark.parametrize("name", PAGES)
def test_every_page_has_one_h1_first_and_skips_no_heading_level(name: str) -> None:
    levels = [int(e.tag[1]) for e in Page(PAGES[name]).elements if re.fullmatch(r"h[1-6]", e.tag)]
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert all(later <= earlier + 1 for earlier, later in itertools.pairwise(levels))


@pytest.mark.parametrize("name", PAGES)
def test_every_form_control_has_a_label_and_every_button_a_name(name: str) -> None:
    page = Page(PAGES[name])
    labels = {e.attrs.get("for"): " ".join(e.text.split()) for e in page.all("label")}
    controls = [
        e
        for e in page.elements
        if e.tag in ("textarea", "select") or (e.tag == "input" and e.attrs.get("type") != "hidden")
    ]
    unlabelled = [e.attrs for e in controls if not labels.get(e.attrs.get("id"))]
    assert unlabelled == []
    assert [b for b in page.all("button") if not b.text.strip()] == []
    ids = [e.attrs["id"] for e in page.elements if "id" in e.attrs]
    assert len(ids) == len(set(ids)), "an id is used twice"


def test_a_page_is_in_the_language_of_its_locale_and_falls_back_to_english() -> None:
    assert Page(render_survey(survey_page(locale="sv-SE"))).lang == "sv"
    assert Page(render_survey(survey_page(locale="nb-NO"))).lang == "nb"
    assert Page(render_thanks("en-GB", "Acme")).lang == "en"
    assert Page(render_thanks("de-DE", "Acme")).lang == "en"
    assert Page(render_unsubscribe(None, "Acme", ACTION, done=False)).lang == "en"


# --- the survey page ---------------------------------------------------------------------------


def test_the_survey_page_thanks_for_the_score_and_asks_the_question_in_danish() -> None:
    page = Page(render_survey(survey_page(score=3)))
    assert page.text_of("h1") == "Tak – du gav os 3 ud af 10"
    assert page.all("legend")[0].text.startswith(
        "Hvor sandsynligt er det, at du vil anbefale Lund & Søn til en ven eller kollega?"
    )
    assert page.text_of("title") == "Din feedback til Lund & Søn"


def test_the_score_is_eleven_radios_from_0_to_10_with_the_given_score_checked() -> None:
    page = Page(render_survey(survey_page(score=8)))
    radios = page.all("input", name="score")
    assert [r.attrs["value"] for r in radios] == [str(n) for n in range(11)]
    assert {r.attrs["type"] for r in radios} == {"radio"}
    assert [r.attrs["value"] for r in radios if "checked" in r.attrs] == ["8"]
    assert all(any(p.startswith("fieldset") for p in r.parents) for r in radios)
    labels = {e.attrs["for"]: e.text for e in page.all("label")}
    assert [labels[r.attrs["id"]] for r in radios] == [str(n) for n in range(11)]


def test_the_ends_of_the_scale_are_named() -> None:
    page = Page(render_survey(survey_page(locale="en")))
    ends = page.one("p", id="score-ends").text
    assert "0 = Not at all likely" in ends
    assert "10 = Extremely likely" in ends


def test_the_form_posts_score_reason_improve_and_heard_from_to_the_action_url() -> None:
    page = Page(render_survey(survey_page()))
    form = page.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", ACTION)
    names = [e.attrs["name"] for e in page.elements if e.tag in ("input", "textarea")]
    assert list(dict.fromkeys(names)) == ["score", "reason", "improve", "heard_from"]
    assert page.one("button").attrs["type"] == "submit"
    assert page.text_of("button") == "Send svar"


def test_the_answers_are_free_text_labelled_with_the_follow_up_questions() -> None:
    page = Page(render_survey(survey_page(locale="en", score=2)))
    assert page.text_of("label", **{"for": "reason"}).startswith(
        "What is the main reason for your score?"
    )
    assert page.text_of("label", **{"for": "improve"}).startswith("What could we do better?")
    assert page.one("textarea", name="reason").attrs["maxlength"] == str(ANSWER_MAX_LENGTH)


@pytest.mark.parametrize(
    ("score", "question"),
    [
        (0, "What could we do better?"),
        (6, "What could we do better?"),
        (7, "What is the one thing that would make you give us a 9 or 10?"),
        (8, "What is the one thing that would make you give us a 9 or 10?"),
        (9, "Is there anything we could do even better?"),
    ],
)
def test_the_improve_question_fits_the_score(score: int, question: str) -> None:
    page = Page(render_survey(survey_page(locale="en", score=score)))
    assert page.text_of("label", **{"for": "improve"}).startswith(question)


def test_the_heard_from_question_lists_the_configured_answers_in_order() -> None:
    page = Page(render_survey(survey_page(heard_from_options=("store", "google", "other"))))
    radios = page.all("input", name="heard_from")
    assert [r.attrs["value"] for r in radios] == ["store", "google", "other"]
    labels = {e.attrs["for"]: e.text for e in page.all("label")}
    assert [labels[r.attrs["id"]] for r in radios] == [
        "I en af jeres butikker",
        "Jeg søgte på Google",
        "Andet",
    ]
    assert "Hvordan hørte du første gang om os?" in page.all("legend")[1].text


def test_the_heard_from_question_is_left_out_when_no_answers_are_configured() -> None:
    page = Page(render_survey(survey_page(heard_from_options=())))
    assert page.all("input", name="heard_from") == []
    assert len(page.all("fieldset")) == 1


def test_an_employee_survey_asks_about_the_workplace_says_it_is_anonymous_and_not_heard_from() -> (
    None
):
    page = Page(render_survey(survey_page(locale="en", survey_kind=SurveyKind.ENPS)))
    assert "as a place to work" in page.text_of("legend")
    assert "anonymous" in page.text_of("p", **{"class": "note"})
    assert "neither your name nor your email" in page.text_of("p", **{"class": "note"})
    assert page.all("input", name="heard_from") == []
    customer = Page(render_survey(survey_page(locale="en")))
    assert customer.all("p", **{"class": "note"}) == []


def test_a_returning_visitor_sees_their_answers_again() -> None:
    answers = FollowUpAnswers(
        reason="Venlig betjening", improve="Flere kasser", heard_from="google"
    )
    page = Page(render_survey(survey_page(prefill=answers)))
    assert page.one("textarea", name="reason").text == "\nVenlig betjening"
    assert page.one("textarea", name="improve").text == "\nFlere kasser"
    checked = [
        r.attrs["value"] for r in page.all("input", name="heard_from") if "checked" in r.attrs
    ]
    assert checked == ["google"]


def test_an_answer_that_starts_with_a_line_break_keeps_it() -> None:
    # Browsers drop one newline after <textarea>: the page writes one of its own first.
    answers = FollowUpAnswers(reason="\nfirst line was empty")
    source = render_survey(survey_page(prefill=answers))
    assert ">\n\nfirst line was empty</textarea>" in source


def test_a_saved_answer_is_confirmed_in_a_status_region() -> None:
    saved = Page(render_survey(survey_page(saved=True)))
    assert saved.text_of("div", role="status") == "Tak, dit svar er opdateret."
    unsaved = Page(render_survey(survey_page(saved=False)))
    assert unsaved.text_of("div", role="status") == ""


def test_hostile_text_in_the_company_name_answers_and_url_is_shown_not_run() -> None:
    answers = FollowUpAnswers(reason=f"</textarea>{HOSTILE}", improve=HOSTILE, heard_from='"x')
    source = render_survey(
        survey_page(company_name=HOSTILE, prefill=answers, action_url=f'{ACTION}"><script>')
    )
    assert "<script" not in source.lower()
    assert "<img" not in source.lower()
    assert "</textarea><" not in source
    page = Page(source)
    assert page.text_of("p", **{"class": "brand"}) == " ".join(HOSTILE.split())
    assert page.one("textarea", name="reason").text == f"\n</textarea>{HOSTILE}"
    assert page.one("textarea", name="improve").text == f"\n{HOSTILE}"
    assert page.one("form").attrs["action"] == f'{ACTION}"><script>'
    assert HOSTILE in page.text_of("title")


@pytest.mark.parametrize(
    "render",
    [
        lambda name: render_thanks("da", name),
        lambda name: render_unsubscribe("sv", name, ACTION, done=False),
        lambda name: render_unsubscribe("sv", name, ACTION, done=True),
    ],
    ids=["thanks", "unsubscribe", "unsubscribed"],
)
def test_a_hostile_company_name_is_escaped_on_every_page(render: object) -> None:
    source = render(HOSTILE)  # type: ignore[operator]
    assert "<script" not in source.lower()
    assert HOSTILE in Page(source).text_of("p", **{"class": "brand"})


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"score": 11}, ValueError),
        ({"score": -1}, ValueError),
        ({"score": True}, TypeError),
        ({"score": 7.0}, TypeError),
        ({"survey_kind": "csat"}, ValueError),
        ({"heard_from_options": ("google", "tiktok")}, ValueError),
    ],
)
def test_a_survey_page_that_cannot_be_shown_is_refused(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        survey_page(**overrides)


def test_the_answer_fields_accept_exactly_what_a_response_event_accepts() -> None:
    FollowUpAnswers(reason="x" * ANSWER_MAX_LENGTH)
    with pytest.raises(ValueError):
        FollowUpAnswers(reason="x" * (ANSWER_MAX_LENGTH + 1))


# --- the other pages ---------------------------------------------------------------------------


def test_the_thank_you_page_thanks_and_says_where_the_answers_go() -> None:
    page = Page(render_thanks("sv", "Ica Maxi"))
    assert page.text_of("h1") == "Stort tack!"
    assert "Dina svar går direkt till dem på Ica Maxi som kan göra något åt dem." in [
        " ".join(p.text.split()) for p in page.all("p")
    ]
    assert page.all("form") == []


def test_an_expired_and_an_invalid_link_are_explained_differently_with_what_to_do() -> None:
    expired = Page(render_link_problem("en", "expired"))
    invalid = Page(render_link_problem("en", "invalid"))
    assert expired.text_of("h1") == "This link has expired"
    assert invalid.text_of("h1") == "This link does not work"
    assert "saved" in expired.source
    assert "click the link" in invalid.source
    expired_text = [" ".join(p.text.split()) for p in expired.all("p")]
    invalid_text = [" ".join(p.text.split()) for p in invalid.all("p")]
    assert len(expired_text) == len(invalid_text) == 2
    assert set(expired_text).isdisjoint(invalid_text)


def test_the_link_problem_page_is_in_the_customers_language() -> None:
    assert Page(render_link_problem("da-DK", "expired")).text_of("h1") == "Linket er udløbet"
    assert Page(render_link_problem("sv", "invalid")).text_of("h1") == "Länken fungerar inte"


def test_a_link_problem_other_than_expired_or_invalid_is_refused() -> None:
    with pytest.raises(ValueError, match="link problem"):
        render_link_problem("en", "stolen")  # type: ignore[arg-type]


def test_the_unsubscribe_page_asks_and_posts_one_button_to_the_action_url() -> None:
    page = Page(render_unsubscribe("da", "Fakta", ACTION, done=False))
    assert page.text_of("h1") == "Afmeld undersøgelser"
    assert "Fakta" in page.source
    form = page.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", ACTION)
    assert [b.text for b in page.all("button")] == ["Ja, afmeld mig"]
    assert [e for e in page.elements if e.tag in ("input", "textarea", "select")] == []


def test_once_unsubscribed_the_page_confirms_it_in_a_status_region_and_asks_nothing() -> None:
    page = Page(render_unsubscribe("en", "Acme", ACTION, done=True))
    assert page.text_of("h1") == "You are unsubscribed"
    assert page.text_of("div", role="status") == "You will not get any more surveys from Acme."
    assert page.all("form") == []


# --- readable by everyone ----------------------------------------------------------------------


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour written #rrggbb."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio, (L1 + 0.05) / (L2 + 0.05) with L1 the lighter: from 1 to 21."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_the_contrast_formula_gives_wcags_known_values() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#777777", "#777777") == pytest.approx(1)
    # #767676 on white is the classic lightest grey that still passes 4.5:1.
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") < 4.5


@pytest.mark.parametrize(("text", "background"), TEXT_COLOUR_PAIRS)
def test_text_has_a_contrast_of_at_least_4_5_to_1(text: str, background: str) -> None:
    assert contrast_ratio(text, background) >= 4.5


@pytest.mark.parametrize(("line", "background"), NON_TEXT_COLOUR_PAIRS)
def test_control_borders_and_the_focus_ring_have_a_contrast_of_at_least_3_to_1(
    line: str, background: str
) -> None:
    assert contrast_ratio(line, background) >= 3


def css_rules() -> list[tuple[str, dict[str, str]]]:
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS):
        declarations = dict(
            (name.strip(), value.strip())
            for name, value in (d.split(":", 1) for d in body.split(";") if ":" in d)
        )
        rules.append((selectors.strip(), declarations))
    return rules


def test_the_css_uses_no_colour_whose_contrast_is_not_checked() -> None:
    checked = {colour for pair in (*TEXT_COLOUR_PAIRS, *NON_TEXT_COLOUR_PAIRS) for colour in pair}
    used = set(re.findall(r"#[0-9a-fA-F]{6}\b", CSS))
    assert used and used <= checked
    assert re.findall(r"#[0-9a-fA-F]{3}\b", CSS) == []


def test_every_css_rule_that_sets_both_text_and_background_colour_is_a_checked_pair() -> None:
    pairs = [
        (rule["color"], rule["background"])
        for _, rule in css_rules()
        if "color" in rule and "background" in rule
    ]
    assert len(pairs) >= 4
    assert [pair for pair in pairs if pair not in TEXT_COLOUR_PAIRS] == []


def test_no_text_is_smaller_than_16px() -> None:
    sizes = re.findall(r"font-size:([^;}]+)", CSS)
    assert sizes
    assert [s for s in sizes if not s.endswith("px") or float(s[:-2]) < 16] == []


def declared(selector: str, prop: str) -> list[float]:
    """Every px value the CSS gives ``prop`` in a rule that names ``selector``."""
    return [
        float(rule[prop].removesuffix("px"))
        for selectors, rule in css_rules()
        if selector in (s.strip() for s in selectors.split(",")) and prop in rule
    ]


def test_every_control_is_a_tap_target_of_at_least_44px() -> None:
    for selector in (".scale label", ".choices label", "button", "textarea"):
        heights = declared(selector, "min-height")
        assert heights and min(heights) >= 44, selector
    widths = declared(".scale label", "min-width")
    assert widths and min(widths) >= 44


def test_the_keyboard_focus_is_drawn_as_a_clear_outline() -> None:
    focus_rules = {selector: rule for selector, rule in css_rules() if ":focus-visible" in selector}
    selectors = ",".join(focus_rules)
    for focused in (".option input:focus-visible+label", "textarea:focus-visible", "button:"):
        assert focused in selectors
    outlines = [rule.get("outline", "") for rule in focus_rules.values()]
    assert all(re.match(r"[3-9]px solid #", outline) for outline in outlines), outlines
    assert "outline:none" not in CSS.replace(" ", "")


def test_the_same_page_in_two_languages_has_the_same_structure() -> None:
    def shape(source: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        return [
            (e.tag, tuple(sorted((k, v) for k, v in e.attrs.items() if k in ("name", "type"))))
            for e in Page(source).elements
        ]

    assert shape(render_survey(survey_page(locale="da"))) == shape(
        render_survey(survey_page(locale="en"))
    )


def test_heard_from_keys_are_the_ones_the_texts_know() -> None:
    page = Page(render_survey(survey_page(heard_from_options=HEARD_FROM_KEYS)))
    labels = [e.text for e in page.all("label") if e.attrs["for"].startswith("heard-from-")]
    assert labels == [messages_for("da").heard_from_labels[key] for key in HEARD_FROM_KEYS]
