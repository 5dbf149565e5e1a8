"""Routing rules: which loops a classified response starts, from a file users edit.

A YAML file (the default ships as ``services/notifier/rules.yaml``; its header explains
the syntax) lists rules in order. Each rule has conditions (``when``: all must hold) and
actions (``then``): a Slack alert, an email to an owner, a case with an SLA, a review
request, a follow-up email to the customer, a kudos post. Every rule whose conditions
hold adds its actions, in rule order, until a rule that says ``stop: true``; the same
action for the same target is planned once.

Pure: no Faust and no I/O besides reading the file. The file is validated when loaded
and every problem is reported at once, each with the file, line, rule and field, so a
store manager fixing their file does not go round one error at a time.

eNPS responses are never routed. Their answers are anonymous and only counted in groups
of at least five; an alert, a case, an email or a kudos post about one answer could
point at a single employee. So evaluation does not look at the rules for an eNPS
response at all, and a rule that names ``survey_kind: enps`` is refused when the file is
loaded, rather than loaded and silently never matching.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from shared.events import ClassifiedResponse, EmailAddress, SurveyKind
from shared.nps import Category
from shared.yamlfile import YamlFileError, YamlPath, nearest_line, read_yaml

__all__ = [
    "DEFAULT_CHANNEL",
    "Action",
    "ConditionCheck",
    "Conditions",
    "EmailOwner",
    "FollowUpEmail",
    "Kudos",
    "OpenCase",
    "ReviewRequest",
    "Routing",
    "Rule",
    "RuleExplanation",
    "RuleSet",
    "RulesError",
    "ScoreRange",
    "SlackAlert",
    "default_rules",
    "format_explanation",
    "load_rules",
    "parse_rules",
    "same_segment_value",
    "segment_of",
    "slug",
]

DEFAULT_RULES = "rules.yaml"
# Where alerts go when neither a rule nor the file's defaults name a channel; the
# notifier passes its NPSLOOP_SLACK_CHANNEL instead.
DEFAULT_CHANNEL = "#customer-feedback"
ENPS_NOTE = (
    "an eNPS response is anonymous and only counted: no rule applies to it "
    "(no alert, case, email or kudos)"
)

SEGMENT_FIELDS = ("region", "business_unit", "department", "product", "store", "channel")
PLACEHOLDERS = (*SEGMENT_FIELDS, "category")
CATEGORIES = tuple(category.value for category in Category)


def _literal_values(field_name: str) -> tuple[str, ...]:
    # The classified event is the one definition of flags, priorities and languages.
    def walk(annotation: object) -> list[str]:
        if isinstance(annotation, str):
            return [annotation]
        return [value for arg in get_args(annotation) for value in walk(arg)]

    return tuple(walk(ClassifiedResponse.model_fields[field_name].annotation))


FLAGS = _literal_values("flags")
PRIORITIES = _literal_values("priority")
LANGUAGES = _literal_values("language")

# Slack: a channel name is # and up to 80 lower-case letters, digits, - and _; a
# channel id is C (public) or G (private, older workspaces) and upper-case letters/digits.
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{8,}")
_CHANNEL_NAME_CHARACTERS = re.compile(r"[a-z0-9_-]*")
_CHANNEL_NAME_MAX = 80
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_THEME_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")
# Letters NFKD does not take apart, spelled the way Nordic and German names usually are.
_TRANSLITERATION = str.maketrans(
    {"æ": "ae", "ø": "o", "ß": "ss", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "œ": "oe"}
)


class RulesError(ValueError):
    """A rules file cannot be used; the message names every problem and where it is."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the rules:\n" + "\n".join(self.problems)
        super().__init__(message)


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackAlert:
    """Post the response to a Slack channel for staff to act on.

    In a rule, ``channel`` may hold placeholders (``#store-{store}``); in a routing it is
    filled in, and ``fallback_channel`` is where to post if that channel does not exist.
    """

    channel: str
    fallback_channel: str | None = None
    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "slack_alert"

    @property
    def target(self) -> str:
        return self.channel

    def describe(self) -> str:
        return f"Slack alert in {self.channel}{_fallback_note(self.fallback_channel)}"


@dataclass(frozen=True)
class Kudos:
    """Share a promoter's praise in a Slack channel, so staff hear it too."""

    channel: str
    fallback_channel: str | None = None
    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "kudos"

    @property
    def target(self) -> str:
        return self.channel

    def describe(self) -> str:
        return f"kudos in {self.channel}{_fallback_note(self.fallback_channel)}"


@dataclass(frozen=True)
class EmailOwner:
    """Email the response to the person who owns this part of the business."""

    to: str
    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "email_owner"

    @property
    def target(self) -> str:
        return self.to.lower()

    def describe(self) -> str:
        return f"email to {self.to}"


@dataclass(frozen=True)
class OpenCase:
    """Open a follow-up case that someone must claim within ``sla_hours``.

    There is one case per response: when several rules open one, the case gets the
    shortest SLA asked for and the first question given.
    """

    sla_hours: float
    question: str | None = None
    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "open_case"

    @property
    def target(self) -> str:
        return ""

    def describe(self) -> str:
        question = f', asking "{self.question}"' if self.question else ""
        return f"open a case with an SLA of {_hours(self.sla_hours)}{question}"


@dataclass(frozen=True)
class ReviewRequest:
    """Ask the customer to review us where others look for advice (once per response)."""

    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "review_request"

    @property
    def target(self) -> str:
        return ""

    def describe(self) -> str:
        return "review request to the customer"


@dataclass(frozen=True)
class FollowUpEmail:
    """Email the customer a question (None: the notifier's standard follow-up)."""

    question: str | None = None
    rules: tuple[str, ...] = ()

    kind: ClassVar[str] = "follow_up_email"

    @property
    def target(self) -> str:
        return ""

    def describe(self) -> str:
        question = f': "{self.question}"' if self.question else ""
        return f"follow-up email to the customer{question}"


Action = SlackAlert | Kudos | EmailOwner | OpenCase | ReviewRequest | FollowUpEmail


def _fallback_note(fallback: str | None) -> str:
    return f" (if it does not exist: {fallback})" if fallback else ""


def _hours(hours: float) -> str:
    return f"{hours:g} h"


# --- conditions and rules -----------------------------------------------------------------


@dataclass(frozen=True)
class ScoreRange:
    """Scores from ``low`` to ``high``, both included."""

    low: int
    high: int

    def __contains__(self, score: object) -> bool:
        return isinstance(score, int) and self.low <= score <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class ConditionCheck:
    """Whether one condition of a rule held for a response, and why, in words."""

    condition: str
    held: bool
    reason: str


@dataclass(frozen=True)
class Conditions:
    """What a response must be for a rule to match; an empty field asks nothing."""

    category: tuple[Category, ...] = ()
    score: ScoreRange | None = None
    survey_kind: tuple[SurveyKind, ...] = ()
    # (segment field, the values it may have), in the order of SEGMENT_FIELDS.
    segment: tuple[tuple[str, tuple[str, ...]], ...] = ()
    themes: tuple[str, ...] = ()
    all_themes: tuple[str, ...] = ()
    urgent: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    is_update: bool | None = None

    def check(self, classified: ClassifiedResponse) -> tuple[ConditionCheck, ...]:
        """Each condition, in a fixed order, with whether it held for ``classified``."""
        response = classified.response
        checks = []
        if self.category:
            checks.append(_is_one_of("category", classified.category.value, _values(self.category)))
        if self.score is not None:
            held = response.score in self.score
            checks.append(
                ConditionCheck(
                    "score",
                    held,
                    f"score is {response.score}, rule wants {self.score}: {_yes(held)}",
                )
            )
        if self.survey_kind:
            checks.append(
                _is_one_of("survey_kind", response.survey_kind.value, _values(self.survey_kind))
            )
        segment = segment_of(classified)
        for name, wanted in self.segment:
            checks.append(_segment_check(name, segment.get(name), wanted))
        themes = tuple(hit.id for hit in classified.themes)
        if self.themes:
            checks.append(_any_of("themes", themes, self.themes))
        if self.all_themes:
            missing = [theme for theme in self.all_themes if theme not in themes]
            checks.append(
                ConditionCheck(
                    "all_themes",
                    not missing,
                    f"{_listed('themes', themes)}, rule wants all of "
                    f"{', '.join(self.all_themes)}: "
                    + ("yes" if not missing else f"no ({', '.join(missing)} missing)"),
                )
            )
        if self.urgent:
            urgent = tuple(hit.id for hit in classified.urgent)
            checks.append(_any_of("urgent", urgent, self.urgent, noun="urgent categories"))
        if self.flags:
            checks.append(_any_of("flags", tuple(classified.flags), self.flags))
        if self.priority:
            checks.append(_is_one_of("priority", classified.priority, self.priority))
        if self.language:
            checks.append(_is_one_of("language", classified.language, self.language))
        if self.is_update is not None:
            held = classified.is_update == self.is_update
            actual = str(classified.is_update).lower()
            wanted_text = str(self.is_update).lower()
            reason = (
                f"is_update is {actual}: yes"
                if held
                else f"is_update is {actual}, rule wants {wanted_text}: no"
            )
            checks.append(ConditionCheck("is_update", held, reason))
        return tuple(checks)


@dataclass(frozen=True)
class Rule:
    """One rule of a rules file: when its conditions hold, its actions are planned.

    The actions are as written: a channel may still hold placeholders.
    """

    name: str
    conditions: Conditions
    then: tuple[Action, ...]
    stop: bool = False
    description: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class RuleExplanation:
    """What one rule made of a response: whether it matched, why, and what it asked for.

    ``matched`` says all its conditions held; ``applied`` that its actions were planned
    (a matching rule after one that said ``stop`` is not applied; ``note`` says so).
    """

    rule: str
    line: int | None
    matched: bool
    applied: bool
    checks: tuple[ConditionCheck, ...]
    actions: tuple[Action, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Routing:
    """What to do about one response: the de-duplicated plan, and every rule's reasons."""

    response_id: str
    category: Category
    score: int
    survey_kind: SurveyKind
    source: str
    actions: tuple[Action, ...]
    explanations: tuple[RuleExplanation, ...]
    note: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, in order, ready to evaluate responses."""

    rules: tuple[Rule, ...]
    default_channel: str
    source: str

    def evaluate(self, classified: ClassifiedResponse) -> Routing:
        """Which actions ``classified`` calls for, and for every rule whether and why it
        matched. Actions come in rule order; the same action for the same target once."""
        response = classified.response
        routing = Routing(
            response_id=response.response_id,
            category=classified.category,
            score=response.score,
            survey_kind=response.survey_kind,
            source=self.source,
            actions=(),
            explanations=(),
        )
        if response.survey_kind == SurveyKind.ENPS:
            skipped = tuple(
                RuleExplanation(rule.name, rule.line, False, False, (), note="eNPS: not looked at")
                for rule in self.rules
            )
            return replace(routing, explanations=skipped, note=ENPS_NOTE)
        values = _placeholder_values(classified)
        planned: dict[tuple[str, str], Action] = {}
        explanations = []
        stopped_by: str | None = None
        for rule in self.rules:
            checks = rule.conditions.check(classified)
            matched = all(check.held for check in checks)
            actions = tuple(_render(action, values, rule.name) for action in rule.then)
            applied = matched and stopped_by is None
            note = None
            if matched and not applied:
                note = f"not applied: rule {stopped_by!r} said stop"
            if applied:
                for action in actions:
                    key = (action.kind, action.target)
                    planned[key] = _merge(planned[key], action) if key in planned else action
                if rule.stop:
                    stopped_by = rule.name
            explanations.append(
                RuleExplanation(rule.name, rule.line, matched, applied, checks, actions, note)
            )
        return replace(routing, actions=tuple(planned.values()), explanations=tuple(explanations))

    def channels(self) -> frozenset[str]:
        """Every channel these rules can post to that is written out in full (not made
        from placeholders): the default channel and every literal channel and fallback.
        The notifier checks at start that each exists in Slack."""
        channels = {self.default_channel}
        for rule in self.rules:
            for action in rule.then:
                if isinstance(action, SlackAlert | Kudos):
                    if not _PLACEHOLDER.search(action.channel):
                        channels.add(action.channel)
                    if action.fallback_channel:
                        channels.add(action.fallback_channel)
        return frozenset(channels)


def segment_of(classified: ClassifiedResponse) -> dict[str, str]:
    """The segment a response is about: the order's, as frozen into its invitation, and
    for each field the invitation leaves empty, what the response itself says."""
    frozen = classified.context.segment if classified.context else None
    own = classified.response.segment
    values = {}
    for name in SEGMENT_FIELDS:
        value = (getattr(frozen, name) if frozen else None) or getattr(own, name)
        if value:
            values[name] = value
    return values


def format_explanation(routing: Routing) -> str:
    """The routing of one response as text, for ``npsloop rules explain``."""
    lines = [
        f"response {routing.response_id}: {routing.category.value}, score {routing.score}/10, "
        f"{routing.survey_kind.value} survey (rules: {routing.source})"
    ]
    if routing.note:
        lines.append(routing.note)
    for explanation in () if routing.note else routing.explanations:
        where = f" (line {explanation.line})" if explanation.line else ""
        verdict = "matched" if explanation.matched else "did not match"
        if explanation.note:
            verdict += f", {explanation.note}"
        lines.append(f"rule {explanation.rule!r}{where}: {verdict}")
        if not explanation.checks:
            lines.append("    no conditions: every response matches")
        lines.extend(f"    {check.reason}" for check in explanation.checks)
        if explanation.applied:
            lines.extend(f"    -> {action.describe()}" for action in explanation.actions)
    if routing.actions:
        lines.append(f"plan ({len(routing.actions)} actions):")
        for action in routing.actions:
            rules = ", ".join(repr(rule) for rule in action.rules)
            lines.append(f"    {action.describe()}  [from {rules}]")
    else:
        lines.append("plan: nothing to do")
    return "\n".join(lines)


def _values(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(item) for item in items)


def _yes(held: bool) -> str:
    return "yes" if held else "no"


def _either(values: Sequence[str]) -> str:
    if len(values) == 1:
        return values[0]
    return f"{', '.join(values[:-1])} or {values[-1]}"


def _is_one_of(name: str, actual: str | None, wanted: Sequence[str]) -> ConditionCheck:
    held = actual is not None and actual in wanted
    shown = actual if actual is not None else "not known"
    if held and len(wanted) == 1:
        return ConditionCheck(name, True, f"{name} is {shown}: yes")
    return ConditionCheck(
        name, held, f"{name} is {shown}, rule wants {_either(wanted)}: {_yes(held)}"
    )


def same_segment_value(value: str) -> str:
    """A segment value as rules compare it: capitals and extra spaces do not count."""
    return " ".join(value.split()).casefold()


def _segment_check(name: str, actual: str | None, wanted: Sequence[str]) -> ConditionCheck:
    wanted_values = {same_segment_value(value) for value in wanted}
    held = actual is not None and same_segment_value(actual) in wanted_values
    shown = repr(actual) if actual is not None else "not given"
    if held and len(wanted) == 1:
        return ConditionCheck(name, True, f"{name} is {shown}: yes")
    options = _either([repr(value) for value in wanted])
    return ConditionCheck(name, held, f"{name} is {shown}, rule wants {options}: {_yes(held)}")


def _listed(noun: str, values: Sequence[str]) -> str:
    return f"{noun} are {', '.join(values)}" if values else f"no {noun}"


def _any_of(
    name: str, actual: Sequence[str], wanted: Sequence[str], noun: str | None = None
) -> ConditionCheck:
    found = [value for value in wanted if value in actual]
    return ConditionCheck(
        name,
        bool(found),
        f"{_listed(noun or name, actual)}, rule wants {_either(wanted)}: {_yes(bool(found))}",
    )


# --- filling in channels ------------------------------------------------------------------


def slug(value: str) -> str:
    """A segment value as part of a Slack channel name: 'Aarhus C' -> 'aarhus-c',
    'Malmö Triangeln' -> 'malmo-triangeln', 'Næstved' -> 'naestved'."""
    text = unicodedata.normalize("NFKD", value.lower().translate(_TRANSLITERATION))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _placeholder_values(classified: ClassifiedResponse) -> dict[str, str]:
    values = {name: slug(value) for name, value in segment_of(classified).items()}
    values["category"] = classified.category.value
    return {name: value for name, value in values.items() if value}


def _fill(template: str, values: Mapping[str, str]) -> str | None:
    """The channel with its placeholders filled in, or None when a value is missing."""
    names = _PLACEHOLDER.findall(template)
    if any(name not in values for name in names):
        return None
    filled = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    return filled[: _CHANNEL_NAME_MAX + 1].rstrip("-_")


def _render(action: Action, values: Mapping[str, str], rule: str) -> Action:
    if isinstance(action, SlackAlert | Kudos):
        channel, fallback = action.channel, action.fallback_channel
        if _PLACEHOLDER.search(channel):
            filled = _fill(channel, values)
            channel, fallback = (filled, fallback) if filled else (fallback or channel, None)
        else:
            fallback = None
        return replace(action, channel=channel, fallback_channel=fallback, rules=(rule,))
    return replace(action, rules=(rule,))


def _merge(first: Action, later: Action) -> Action:
    rules = first.rules + tuple(rule for rule in later.rules if rule not in first.rules)
    if isinstance(first, OpenCase) and isinstance(later, OpenCase):
        return replace(
            first,
            sla_hours=min(first.sla_hours, later.sla_hours),
            question=first.question or later.question,
            rules=rules,
        )
    if isinstance(first, FollowUpEmail) and isinstance(later, FollowUpEmail):
        return replace(first, question=first.question or later.question, rules=rules)
    return replace(first, rules=rules)


# --- loading ------------------------------------------------------------------------------


def load_rules(path: str | Path, *, default_channel: str = DEFAULT_CHANNEL) -> RuleSet:
    """Read and validate a rules file; raises RulesError naming what is wrong where.

    ``default_channel`` is where alerts go when the file's ``defaults`` name no channel.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError([f"{path}: no such rules file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}: cannot read the rules file: {exc}"]) from None
    return parse_rules(text, str(path), default_channel=default_channel)


@cache
def default_rules(default_channel: str = DEFAULT_CHANNEL) -> RuleSet:
    """The rules that ship with npsloop, read once per process."""
    resource = resources.files("services.notifier").joinpath(DEFAULT_RULES)
    return parse_rules(
        resource.read_text(encoding="utf-8"), DEFAULT_RULES, default_channel=default_channel
    )


def parse_rules(
    text: str, source: str = "<rules>", *, default_channel: str = DEFAULT_CHANNEL
) -> RuleSet:
    """Validate rules given as YAML text; ``source`` names them in error messages."""
    try:
        document = read_yaml(text, source)
    except YamlFileError as exc:
        raise RulesError([message for _, message in exc.problems]) from None
    raw = document.data
    if not isinstance(raw, dict):
        raise RulesError(
            [f"{source}: a rules file is a mapping with 'version: 1' and a 'rules' list"]
        )
    lines = document.lines
    problems: list[tuple[int, str]] = list(_duplicate_names(raw, lines, source))
    spec: _RulesSpec | None = None
    try:
        spec = _RulesSpec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_describe(error, raw, lines, source) for error in exc.errors())
    if problems or spec is None:
        # In file order, so a user can work down the file.
        raise RulesError([text for _, text in sorted(problems, key=lambda item: item[0])])
    channel = spec.defaults.channel or default_channel
    return RuleSet(
        rules=tuple(
            _rule(rule, channel, lines.get(("rules", index)))
            for index, rule in enumerate(spec.rules)
        ),
        default_channel=channel,
        source=source,
    )


def _rule(spec: _RuleSpec, default_channel: str, line: int | None) -> Rule:
    when = spec.when
    segment = tuple(
        (name, values) for name in SEGMENT_FIELDS if (values := getattr(when.segment, name))
    )
    return Rule(
        name=spec.name,
        conditions=Conditions(
            category=tuple(Category(value) for value in when.category),
            score=ScoreRange(*when.score) if when.score else None,
            survey_kind=tuple(SurveyKind(value) for value in when.survey_kind),
            segment=segment,
            themes=when.themes,
            all_themes=when.all_themes,
            urgent=when.urgent,
            flags=when.flags,
            priority=when.priority,
            language=when.language,
            is_update=when.is_update,
        ),
        then=tuple(action for item in spec.then for action in _actions(item, default_channel)),
        stop=spec.stop,
        description=spec.description,
        line=line,
    )


def _actions(item: _ActionSpec, default_channel: str) -> list[Action]:
    if item.slack_alert is not None:
        channel = item.slack_alert.channel or default_channel
        fallback = item.slack_alert.fallback_channel or default_channel
        return [SlackAlert(channel, fallback if _PLACEHOLDER.search(channel) else None)]
    if item.kudos is not None:
        assert item.kudos.channel is not None  # a required field: validated
        channel = item.kudos.channel
        fallback = item.kudos.fallback_channel or default_channel
        return [Kudos(channel, fallback if _PLACEHOLDER.search(channel) else None)]
    if item.email_owner is not None:
        return [EmailOwner(to) for to in dict.fromkeys(item.email_owner.to)]
    if item.open_case is not None:
        return [OpenCase(item.open_case.sla_hours, item.open_case.question)]
    if item.follow_up_email is not None:
        return [FollowUpEmail(item.follow_up_email.question)]
    return [ReviewRequest()]


# --- validation ---------------------------------------------------------------------------


def _as_list(value: object) -> object:
    # "category: detractor" and "category: [detractor, passive]" both mean a list.
    if isinstance(value, str | int | float):
        return [value]
    return value


def _number_as_text(value: object) -> object:
    # A store called 42, written without quotes, is still the store "42".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _one_line(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if _LINE_BREAK.search(value):
        raise ValueError("must be a single line")
    return value


def _choice(
    kind: str, allowed: Sequence[str], hints: Mapping[str, str] | None = None
) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            hint = (hints or {}).get(value) or _did_you_mean(value, allowed)
            raise ValueError(f"unknown {kind} {value!r}{hint}; use {_either(list(allowed))}")
        return value

    return AfterValidator(check)


def _check_survey_kind(value: str) -> str:
    if value == SurveyKind.ENPS:
        raise ValueError(
            "no rule may act on eNPS responses: their answers are anonymous and only "
            "counted, so they never alert, open a case, email or share anyone; remove 'enps'"
        )
    return value


def _check_theme(value: str) -> str:
    if not _THEME_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a theme id: ids are lower-case letters, digits and _, "
            "as in the taxonomy (delivery, staff_service)"
        )
    return value


def _score_range(value: object) -> tuple[int, int]:
    usage = "write a score range as 0-6, a single score such as 9, or {min: 0, max: 6}"
    if value is None:
        raise ValueError(f"is empty; {usage}")
    if isinstance(value, bool):
        raise ValueError(usage)
    if isinstance(value, int):
        low = high = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:[-–]\s*(\d+)\s*)?", value)
        if not match:
            raise ValueError(f"{value!r} is not a score range; {usage}")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
    elif isinstance(value, dict):
        unknown = sorted(str(key) for key in value if key not in ("min", "max"))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in the score range; {usage}")
        low, high = value.get("min", 0), value.get("max", 10)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError(f"min and max are whole numbers from 0 to 10; {usage}")
    else:
        raise ValueError(usage)
    if not (0 <= low <= 10 and 0 <= high <= 10):
        raise ValueError(f"scores go from 0 to 10, the range {low}-{high} does not fit")
    if low > high:
        raise ValueError(f"the range {low}-{high} is backwards: write {high}-{low}")
    return low, high


def _quoted_channel(value: object) -> object:
    if value is None:
        raise ValueError(
            'is empty; write the channel in quotes, as "#kudos": '
            "in YAML an unquoted # starts a comment"
        )
    if not isinstance(value, str):
        raise ValueError('must be a Slack channel in quotes, such as "#kudos"')
    return value.strip()


def _check_channel(value: str, *, placeholders: bool) -> str:
    if _CHANNEL_ID.fullmatch(value):
        return value
    if not value.startswith("#"):
        raise ValueError(
            f'{value!r} is not a Slack channel: write its name with # ("#kudos") '
            "or its id (C0123456789)"
        )
    names = _PLACEHOLDER.findall(value)
    if names and not placeholders:
        raise ValueError(
            f"{value!r}: this channel cannot have placeholders, "
            "it is used when they cannot be filled in"
        )
    for name in names:
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{name}}} in {value!r}{_did_you_mean(name, PLACEHOLDERS)}; "
                f"use {_either(['{' + p + '}' for p in PLACEHOLDERS])}"
            )
    literal = _PLACEHOLDER.sub("", value[1:])
    if "{" in literal or "}" in literal:
        raise ValueError(f"{value!r}: a placeholder is a segment field in braces, as {{store}}")
    if not _CHANNEL_NAME_CHARACTERS.fullmatch(literal):
        raise ValueError(
            f"{value!r}: Slack channel names have only lower-case letters, digits, - and _"
        )
    if not names and not literal:
        raise ValueError("'#' alone is not a channel")
    if len(literal) > _CHANNEL_NAME_MAX:
        raise ValueError(f"{value!r}: Slack channel names are at most {_CHANNEL_NAME_MAX} long")
    return value


def _channel_template(value: str | None) -> str | None:
    return None if value is None else _check_channel(value, placeholders=True)


def _literal_channel(value: str | None) -> str | None:
    return None if value is None else _check_channel(value, placeholders=False)


def _sla_hours(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number of hours, such as 48, not {value!r}")
    return value


def _not_empty(value: object) -> object:
    if value is None:
        raise ValueError("is empty: give a value, or remove the line")
    return value


def _then_list(value: object) -> object:
    return [] if value is None else value


def _empty_conditions(value: object) -> object:
    # "when:" with nothing under it: no conditions, as for "when: {}".
    return {} if value is None else value


_Values = Annotated[
    tuple[
        Annotated[
            str, BeforeValidator(_number_as_text), Field(max_length=120), AfterValidator(_one_line)
        ],
        ...,
    ],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_Categories = Annotated[
    tuple[Annotated[str, _choice("category", CATEGORIES)], ...],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_SurveyKinds = Annotated[
    tuple[
        Annotated[
            str,
            _choice("survey kind", [k.value for k in SurveyKind]),
            AfterValidator(_check_survey_kind),
        ],
        ...,
    ],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_Themes = Annotated[
    tuple[Annotated[str, AfterValidator(_check_theme)], ...],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_Flags = Annotated[
    tuple[Annotated[str, _choice("flag", FLAGS)], ...],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_Priorities = Annotated[
    tuple[Annotated[str, _choice("priority", PRIORITIES)], ...],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_Languages = Annotated[
    tuple[
        Annotated[
            str,
            _choice(
                "language", LANGUAGES, {"nb": " (Norwegian is 'no')", "nn": " (Norwegian is 'no')"}
            ),
        ],
        ...,
    ],
    BeforeValidator(_as_list),
    Field(min_length=1),
]
_ChannelTemplate = Annotated[
    str | None, BeforeValidator(_quoted_channel), AfterValidator(_channel_template)
]
_LiteralChannel = Annotated[
    str | None, BeforeValidator(_quoted_channel), AfterValidator(_literal_channel)
]
_Text = Annotated[str, Field(max_length=500), AfterValidator(_one_line)]
_Name = Annotated[
    str, BeforeValidator(_number_as_text), Field(max_length=120), AfterValidator(_one_line)
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SegmentSpec(_Spec):
    region: _Values = ()
    business_unit: _Values = ()
    department: _Values = ()
    product: _Values = ()
    store: _Values = ()
    channel: _Values = ()


class _WhenSpec(_Spec):
    category: _Categories = ()
    score: Annotated[tuple[int, int] | None, BeforeValidator(_score_range)] = None
    survey_kind: _SurveyKinds = ()
    segment: _SegmentSpec = _SegmentSpec()
    themes: _Themes = ()
    all_themes: _Themes = ()
    urgent: _Themes = ()
    flags: _Flags = ()
    priority: _Priorities = ()
    language: _Languages = ()
    is_update: Annotated[bool | None, BeforeValidator(_not_empty)] = None


class _SlackAlertSpec(_Spec):
    channel: _ChannelTemplate = None
    fallback_channel: _LiteralChannel = None


class _KudosSpec(_Spec):
    channel: _ChannelTemplate
    fallback_channel: _LiteralChannel = None


class _EmailOwnerSpec(_Spec):
    to: Annotated[tuple[EmailAddress, ...], BeforeValidator(_as_list), Field(min_length=1)]


class _OpenCaseSpec(_Spec):
    sla_hours: Annotated[float, BeforeValidator(_sla_hours), Field(gt=0, le=24 * 365)]
    question: _Text | None = None


class _FollowUpEmailSpec(_Spec):
    question: _Text | None = None


class _ReviewRequestSpec(_Spec):
    pass


class _ActionSpec(_Spec):
    slack_alert: _SlackAlertSpec | None = None
    email_owner: _EmailOwnerSpec | None = None
    open_case: _OpenCaseSpec | None = None
    review_request: _ReviewRequestSpec | None = None
    follow_up_email: _FollowUpEmailSpec | None = None
    kudos: _KudosSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _settings_may_be_left_out(cls, data: object) -> object:
        # "- review_request", "- review_request:" and "- review_request: {}" are the same.
        if isinstance(data, str):
            return {data.strip(): {}}
        if isinstance(data, dict):
            return {key: {} if value is None else value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _one_action(self) -> _ActionSpec:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"one action per item: put a '-' before each of {', '.join(given)}")
        if not given:
            raise ValueError(f"no action given; use {_either(list(ACTIONS))}")
        return self


ACTIONS = tuple(_ActionSpec.model_fields)


class _RuleSpec(_Spec):
    name: _Name
    description: Annotated[str, Field(max_length=1000)] | None = None
    when: Annotated[_WhenSpec, BeforeValidator(_empty_conditions)] = _WhenSpec()
    then: Annotated[list[_ActionSpec], BeforeValidator(_then_list), Field(min_length=1)]
    stop: bool = False


class _DefaultsSpec(_Spec):
    channel: _LiteralChannel = None


class _RulesSpec(_Spec):
    version: Literal[1] = 1
    defaults: Annotated[_DefaultsSpec, BeforeValidator(_empty_conditions)] = _DefaultsSpec()
    rules: list[_RuleSpec]


def _duplicate_names(
    raw: Mapping[str, Any], lines: Mapping[YamlPath, int], source: str
) -> list[tuple[int, str]]:
    rules = raw.get("rules")
    if not isinstance(rules, list):
        return []
    first_line: dict[str, int] = {}
    problems = []
    for index, rule in enumerate(rules):
        name = rule.get("name") if isinstance(rule, dict) else None
        if not isinstance(name, str):
            continue
        line = lines.get(("rules", index, "name"), 0)
        if name.strip() in first_line:
            problems.append(
                (
                    line,
                    f"{source}:{line}: rule {name!r}, name: is used twice "
                    f"(first on line {first_line[name.strip()]}); each rule needs its own name",
                )
            )
        else:
            first_line[name.strip()] = line
    return problems


# --- error messages -----------------------------------------------------------------------


def _known_names(parent: YamlPath) -> tuple[str, tuple[str, ...]]:
    """What the keys at ``parent`` are called, and which there are."""
    named = [part for part in parent if isinstance(part, str)]
    if not parent:
        return "field", tuple(_RulesSpec.model_fields)
    if named == ["defaults"]:
        return "default", tuple(_DefaultsSpec.model_fields)
    if named == ["rules"]:
        return "rule field", tuple(_RuleSpec.model_fields)
    if named == ["rules", "when"]:
        return "condition", tuple(_WhenSpec.model_fields)
    if named == ["rules", "when", "segment"]:
        return "segment field", SEGMENT_FIELDS
    if named == ["rules", "then"]:
        return "action", ACTIONS
    if len(named) == 3 and named[:2] == ["rules", "then"] and named[2] in ACTIONS:
        model = _ActionSpec.model_fields[named[2]].annotation
        fields = tuple(getattr(arg, "model_fields", {}) for arg in get_args(model))
        return f"{named[2]} setting", tuple(name for group in fields for name in group)
    return "field", ()


def _did_you_mean(value: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TYPE_MESSAGES = {
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "list_type": "must be a list (one item per line, each starting with '-')",
    "tuple_type": "must be a value or a list of values",
    "model_type": "must be a mapping of names to values",
    "model_attributes_type": "must be a mapping of names to values",
    "dict_type": "must be a mapping of names to values",
}


def _message(error: ErrorDetails, location: YamlPath) -> str:
    kind = error["type"]
    field = next((part for part in reversed(location) if isinstance(part, str)), "")
    if kind == "literal_error" and location == ("version",):
        return "must be 1, the only version of the rules format so far"
    if kind == "too_short":
        if field == "then":
            return "a rule needs at least one action under 'then'"
        return "is an empty list: give at least one value, or remove the line"
    if kind in _TYPE_MESSAGES:
        if error.get("input") is None:
            if location == ("rules",):
                return "is empty: list the rules under it, or write 'rules: []' for none"
            return "is empty: give a value, or remove the line"
        return f"{_TYPE_MESSAGES[kind]}, not {error['input']!r}"
    if kind == "greater_than" and field == "sla_hours":
        return "must be more than 0 hours"
    if kind == "less_than_equal" and field == "sla_hours":
        return "must be at most a year (8760 hours)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("is ") and isinstance(error.get("input"), str):
        # "'nope' is not an email address" says which value of a list is wrong.
        message = f"{error['input']!r} {message}"
    return message


def _describe(
    error: ErrorDetails, raw: Mapping[str, Any], lines: Mapping[YamlPath, int], source: str
) -> tuple[int, str]:
    location: YamlPath = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    line = nearest_line(location, lines)
    if kind in ("extra_forbidden", "missing"):
        name, parent = str(location[-1]), location[:-1]
        noun, known = _known_names(parent)
        if kind == "extra_forbidden":
            message = f"unknown {noun} {name!r}{_did_you_mean(name, known)}"
            if known:
                message += f"; use {_either(list(known))}"
            if noun == "action" and any(name in _known_names((*parent, a))[1] for a in ACTIONS):
                message += f" ('{name}' is a setting: indent it under its action)"
        else:
            message = f"missing {noun} {name!r}"
            line = nearest_line(parent, lines)
        location = parent
    else:
        message = _message(error, location)
    where = f"{source}:{line}" if line else source
    return line or 0, f"{where}: {_context(location, raw)}{message}"


def _context(location: YamlPath, raw: Mapping[str, Any]) -> str:
    """'rule 'detractors', when.category: ' for a location inside a rule."""
    if not location:
        return ""
    if location[0] != "rules" or len(location) < 2 or not isinstance(location[1], int):
        return f"{'.'.join(str(part) for part in location if isinstance(part, str))}: "
    index = location[1]
    rules = raw.get("rules")
    rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
    name = rule.get("name") if isinstance(rule, dict) else None
    subject = f"rule {name!r}" if isinstance(name, str) and name.strip() else f"rule #{index + 1}"
    field = ".".join(part for part in location[2:] if isinstance(part, str))
    return f"{subject}, {field}: " if field else f"{subject}: "
