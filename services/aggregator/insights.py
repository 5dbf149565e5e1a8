"""What else the responses tell: response rate, how customers heard of us, themes. Pure.

Response rate is by cohort: the invitations sent in a period, and how many of those
were answered (whenever the answer came). Numerator and denominator are the same
invitations, so the rate never exceeds 1; a recent period reads low until its
invitations have had time to be answered.

"How did you first hear about us?" describes how a customer was won, once: a
customer's source is their earliest answer to the question, and they count as a new
customer of the period in which they first gave it. The aggregator knows no "customer
since" date; the first answer is the closest thing it has. NPS by source is every NPS
response of the period, cut by its customer's source (``unanswered`` when the customer
never said), so the cuts add up to the whole.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.aggregator.domain import DEFAULT_RULES, Figures, Period, Rules
from services.aggregator.responses import InvitationFact, ResponseFact, Theme
from shared.events import SurveyKind
from shared.nps import Category, Counts

RECOMMENDATION = "recommendation"
UNANSWERED = "unanswered"


@dataclass(frozen=True)
class ResponseRate:
    """Invitations sent in a period, how many of them were answered, and the share."""

    sent: int
    answered: int

    @property
    def rate(self) -> float | None:
        return None if self.sent == 0 else self.answered / self.sent


def response_rate(
    invitations: Iterable[InvitationFact],
    responses: Iterable[ResponseFact],
    period: Period,
    survey_kind: SurveyKind,
) -> ResponseRate:
    """The share of the invitations sent in ``period`` that have a response."""
    answered_ids = {
        fact.invitation_id
        for fact in responses
        if fact.invitation_id is not None and fact.survey_kind == survey_kind
    }
    cohort = {
        invitation.invitation_id
        for invitation in invitations
        if invitation.survey_kind == survey_kind and invitation.sent_at in period
    }
    return ResponseRate(sent=len(cohort), answered=len(cohort & answered_ids))


@dataclass(frozen=True)
class SourceFigures:
    """One answer to "how did you hear about us?": new customers won by it, and its NPS."""

    source: str
    new_customers: int
    share_of_new: float | None
    figures: Figures


@dataclass(frozen=True)
class Acquisition:
    """How the period's new customers heard of us, and the NPS of each source's customers."""

    new_customers: int
    by_recommendation: int
    sources: tuple[SourceFigures, ...]

    @property
    def recommendation_share(self) -> float | None:
        if self.new_customers == 0:
            return None
        return self.by_recommendation / self.new_customers


def customer_sources(responses: Iterable[ResponseFact]) -> dict[str, ResponseFact]:
    """Each customer's earliest NPS response that says how they heard of us."""
    first: dict[str, ResponseFact] = {}
    for fact in responses:
        if fact.heard_from is None or fact.survey_kind != SurveyKind.NPS:
            continue
        kept = first.get(fact.customer_id)
        if kept is None or (fact.responded_at, fact.response_id) < (
            kept.responded_at,
            kept.response_id,
        ):
            first[fact.customer_id] = fact
    return first


def acquisition(
    responses: Iterable[ResponseFact],
    period: Period,
    recommendation: frozenset[str] = frozenset({RECOMMENDATION}),
    rules: Rules = DEFAULT_RULES,
) -> Acquisition:
    """Who came by recommendation among the period's new customers, and NPS by source.

    ``recommendation`` names the answers that mean "someone recommended us".
    """
    responses = list(responses)
    sources = customer_sources(responses)
    new = Counter(
        str(first.heard_from) for first in sources.values() if first.responded_at in period
    )
    counts: dict[str, Counts] = defaultdict(Counts)
    for fact in responses:
        if fact.survey_kind != SurveyKind.NPS or fact.responded_at not in period:
            continue
        first = sources.get(fact.customer_id)
        source = UNANSWERED if first is None else str(first.heard_from)
        counts[source] += Counts.tally([fact.category])
    total_new = sum(new.values())
    rows = tuple(
        SourceFigures(
            source,
            new[source],
            None if total_new == 0 else new[source] / total_new,
            Figures.of(counts.get(source, Counts()), rules.min_sample),
        )
        for source in sorted(set(new) | set(counts), key=lambda name: (-new[name], name))
    )
    by_recommendation = sum(new[source] for source in recommendation)
    return Acquisition(total_new, by_recommendation, rows)


@dataclass(frozen=True)
class ThemeCount:
    """A theme within one category: how many responses named it, and their share of it."""

    theme: Theme
    responses: int
    share: float


@dataclass(frozen=True)
class CategoryThemes:
    """The top themes of one category's comments in a period."""

    category: Category
    responses: int
    top: tuple[ThemeCount, ...]


def themes_by_category(
    responses: Iterable[ResponseFact],
    period: Period,
    survey_kind: SurveyKind,
    top: int = 5,
    rules: Rules = DEFAULT_RULES,
) -> tuple[CategoryThemes, ...]:
    """The most named themes of promoters, passives and detractors, with counts and shares.

    A theme counts once per response; the share is of all the category's responses in the
    period, with or without a comment. Equal counts are ordered by theme id. A category
    with fewer responses than the survey kind's smallest group (eNPS) shows no themes.
    """
    in_category: Counter[Category] = Counter()
    named: dict[Category, Counter[str]] = defaultdict(Counter)
    labels: dict[str, tuple[tuple[datetime, str, str], Theme]] = {}
    for fact in responses:
        if fact.survey_kind != survey_kind or fact.responded_at not in period:
            continue
        in_category[fact.category] += 1
        for theme in fact.themes:
            named[fact.category][theme.id] += 1
            # The label of the latest response naming the theme: a renamed theme reads
            # the same on every worker, whatever order the responses came in.
            rank = (*fact.version, fact.response_id)
            if theme.id not in labels or labels[theme.id][0] < rank:
                labels[theme.id] = (rank, theme)
    k = rules.min_group(survey_kind)
    result = []
    for category in Category:
        total = in_category[category]
        ranked = sorted(named[category].items(), key=lambda item: (-item[1], item[0]))
        rows = (
            ()
            if total < k
            else tuple(
                ThemeCount(labels[theme_id][1], count, count / total)
                for theme_id, count in ranked[:top]
            )
        )
        result.append(CategoryThemes(category, total, rows))
    return tuple(result)
