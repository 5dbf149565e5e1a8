"""Review requests: which review pages each store has, and whom the review policy asks.

The review policy (NPSLOOP_REVIEW_POLICY):

- ``promoters`` (the default, as NPS practice has it): a promoter is asked where a rule
  asks for a ``review_request``; passives and detractors never are.
- ``everyone``: every customer who answers an NPS survey is asked, whatever their score and
  whatever the rules say, because choosing whom to ask by how happy they are is what
  Google's and Trustpilot's rules forbid ("review gating").
- ``sample:N``: N percent of those who answer (1-100), whatever their score. The draw is a
  hash of the response id, so a replayed or updated response is decided the same way.

Either way a customer without an email address, or whose store has no review page, is not
asked; each decision carries its reason. eNPS answers are anonymous: no decision at all.

Pure: no I/O besides reading the review links file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import urlsplit

from services.notifier.rules import Action, ReviewRequest, same_segment_value, segment_of
from shared.events import ClassifiedResponse, SurveyKind
from shared.nps import Category
from shared.send_window import sampled_in
from shared.yamlfile import YamlFileError, YamlPath, nearest_line, read_yaml

REVIEW_SITES: Final[Mapping[str, str]] = MappingProxyType(
    {"google": "Google", "facebook": "Facebook", "trustpilot": "Trustpilot"}
)
"""The review sites, in the order an email lists them, with the names customers know."""

_NOT_IN_A_LINK = re.compile(r"[\s<>\"'\x00-\x1f\x7f]")
# Records a problem at a place in the file.
_Problem = Callable[[YamlPath, str], None]


class ReviewConfigError(ValueError):
    """The review policy or links cannot be used; the message names every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --- the policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPolicy:
    """Whom review requests go to: ``promoters``, ``everyone`` or ``sample`` (a percentage)."""

    mode: Literal["promoters", "everyone", "sample"] = "promoters"
    percent: int = 100

    @classmethod
    def parse(cls, text: str) -> ReviewPolicy:
        """``promoters``, ``everyone`` or ``sample:N``; ReviewConfigError saying what is allowed."""
        value = text.strip().lower()
        if value == "promoters":
            return cls("promoters")
        if value == "everyone":
            return cls("everyone")
        name, _, number = value.partition(":")
        if name == "sample" and number.isdigit() and 1 <= int(number) <= 100:
            return cls("sample", int(number))
        raise ReviewConfigError(
            [
                f"NPSLOOP_REVIEW_POLICY is {text!r}: use 'promoters' (ask promoters only), "
                "'everyone' (ask everyone who answers) or 'sample:N' (ask N percent of those who "
                "answer, N a whole number from 1 to 100, e.g. sample:25)"
            ]
        )

    def __str__(self) -> str:
        return f"sample:{self.percent}" if self.mode == "sample" else self.mode


# --- the review pages of each store -------------------------------------------------------


@dataclass(frozen=True)
class ReviewLinks:
    """The company's review pages, and each store's own where it has them.

    ``stores`` is keyed by the store as segments are compared (``same_segment_value``); a
    store's site set to None has no page there: it gets no link, not the company's.
    """

    default: Mapping[str, str] = field(default_factory=dict)
    stores: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)

    def for_store(self, store: str | None) -> dict[str, str]:
        """site -> URL for a store (the company's pages where the store has none of its own),
        in the order of ``REVIEW_SITES``."""
        own = self.stores.get(same_segment_value(store), {}) if store else {}
        merged = {**self.default, **own}
        return {site: url for site in REVIEW_SITES if (url := merged.get(site))}


def check_review_url(url: str) -> str | None:
    """What is wrong with a review page's address, or None when it can be used."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        return f"must be an https:// address, not {url!r}"
    if _NOT_IN_A_LINK.search(url):
        return f"must not contain spaces, quotes or < >: {url!r}"
    return None


def review_links(defaults: Mapping[str, str | None], path: Path | None = None) -> ReviewLinks:
    """The company's pages (site -> URL from the settings; None: not set), overridden site by
    site by the review links file's ``default`` and completed by its ``stores``.

    ReviewConfigError names every problem, each with its setting or file line.
    """
    problems = []
    company: dict[str, str] = {}
    for site, url in defaults.items():
        if not url:
            continue
        problem = check_review_url(url)
        if problem:
            problems.append(f"NPSLOOP_REVIEW_{site.upper()}_URL {problem}")
        company[site] = url
    links = ReviewLinks(company)
    if path is not None:
        try:
            links = parse_review_links(_read(path), str(path), company)
        except ReviewConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ReviewConfigError(problems)
    return links


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReviewConfigError([f"{path}: no such review links file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewConfigError([f"{path}: cannot read the review links file: {exc}"]) from None


def parse_review_links(
    text: str, source: str = "<review links>", company: Mapping[str, str] | None = None
) -> ReviewLinks:
    """Review links given as YAML (or JSON) text; ``source`` names them in error messages::

    default:                 # optional: the company's pages, site by site
      trustpilot: https://www.trustpilot.com/evaluate/example.com
    stores:
      Aarhus C:
        google: https://g.page/r/aarhus-c/review
        facebook: null       # no Facebook page for this store: no Facebook link
    """
    try:
        document = read_yaml(text, source)
    except YamlFileError as exc:
        raise ReviewConfigError([message for _, message in exc.problems]) from None
    raw, lines = document.data, document.lines
    problems: list[tuple[int, str]] = []

    def problem(location: YamlPath, message: str) -> None:
        line = nearest_line(location, lines) or 0
        problems.append((line, f"{source}:{line}: {message}"))

    if not isinstance(raw, dict):
        raise ReviewConfigError(
            [f"{source}: a review links file is a mapping with 'default' and/or 'stores'"]
        )
    for key in raw:
        if key not in ("default", "stores"):
            hint = _did_you_mean(str(key), ["default", "stores"])
            problem(
                (key,), f"unknown key {key!r}{hint}; a review links file has 'default' and 'stores'"
            )
    default = dict(company or {})
    given_default = _sites(raw.get("default"), ("default",), "default", problem)
    default.update({site: url for site, url in given_default.items() if url})
    for site, url in given_default.items():
        if url is None:
            default.pop(site, None)
    stores: dict[str, Mapping[str, str | None]] = {}
    names: dict[str, str] = {}
    raw_stores = raw.get("stores") or {}
    if not isinstance(raw_stores, dict):
        problem(("stores",), "'stores' is a mapping of store names to their review pages")
        raw_stores = {}
    for name, sites in raw_stores.items():
        store = str(name).strip()
        location: YamlPath = ("stores", name)
        if not store:
            problem(location, "a store name is empty")
            continue
        key = same_segment_value(store)
        if key in names:
            problem(
                location,
                f"store {store!r} is given twice (as {names[key]!r} too; capitals and spaces "
                "do not count)",
            )
            continue
        names[key] = store
        stores[key] = _sites(sites, location, f"store {store!r}", problem)
    if problems:
        raise ReviewConfigError([text for _, text in sorted(problems, key=lambda item: item[0])])
    return ReviewLinks(default, stores)


def _sites(
    raw: object,
    location: YamlPath,
    what: str,
    problem: _Problem,
) -> dict[str, str | None]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problem(location, f"{what}: give its review pages as google:, facebook:, trustpilot:")
        return {}
    sites: dict[str, str | None] = {}
    for site, url in raw.items():
        here = (*location, site)
        if site not in REVIEW_SITES:
            hint = _did_you_mean(str(site), list(REVIEW_SITES))
            problem(
                here, f"{what}: {site!r} is not a review site{hint}; use {', '.join(REVIEW_SITES)}"
            )
        elif url is None:
            sites[site] = None
        elif not isinstance(url, str):
            problem(here, f"{what}: the {REVIEW_SITES[site]} page must be an https:// address")
        elif (wrong := check_review_url(url)) is not None:
            problem(here, f"{what}: the {REVIEW_SITES[site]} page {wrong}")
        else:
            sites[site] = url
    return sites


def _did_you_mean(value: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- the decision -------------------------------------------------------------------------


class ReviewReason(StrEnum):
    """Why a customer was, or was not, asked for a review: a metric label, so a closed set."""

    PROMOTER = "promoter"
    EVERYONE = "everyone"
    SAMPLED_IN = "sampled_in"
    NOT_A_PROMOTER = "not_a_promoter"
    NO_RULE = "no_rule"
    SAMPLED_OUT = "sampled_out"
    NO_EMAIL = "no_email"
    NO_REVIEW_LINKS = "no_review_links"
    SUPPRESSED = "suppressed"

    @property
    def asked(self) -> bool:
        return self in (ReviewReason.PROMOTER, ReviewReason.EVERYONE, ReviewReason.SAMPLED_IN)


@dataclass(frozen=True)
class ReviewDecision:
    """Whether one response's customer is asked for a review, and why (``detail`` in words)."""

    response_id: str
    customer_id: str
    category: Category
    store: str | None
    policy: str
    reason: ReviewReason
    detail: str
    links: Mapping[str, str] = field(default_factory=dict)

    @property
    def asked(self) -> bool:
        return self.reason.asked

    def suppressed(self) -> ReviewDecision:
        """The same decision for a customer who unsubscribed or was erased: not asked."""
        return replace(
            self,
            reason=ReviewReason.SUPPRESSED,
            detail="suppressed: the customer unsubscribed or was erased",
            links={},
        )


def decide_review(
    classified: ClassifiedResponse,
    actions: Sequence[Action],
    policy: ReviewPolicy,
    links: ReviewLinks,
) -> ReviewDecision | None:
    """Whether to ask this response's customer for a review (None for an eNPS answer).

    Whether they unsubscribed is not known here: the caller turns an asked decision into a
    suppressed one (``ReviewDecision.suppressed``).
    """
    response = classified.response
    if response.survey_kind != SurveyKind.NPS:
        return None
    category = classified.category
    store = segment_of(classified).get("store")

    def decision(
        reason: ReviewReason, detail: str, urls: Mapping[str, str] | None = None
    ) -> ReviewDecision:
        return ReviewDecision(
            response.response_id,
            response.customer_id,
            category,
            store,
            str(policy),
            reason,
            detail,
            dict(urls or {}),
        )

    if policy.mode == "promoters":
        if category is not Category.PROMOTER:
            return decision(ReviewReason.NOT_A_PROMOTER, f"policy promoters: {category} not asked")
        if not any(isinstance(action, ReviewRequest) for action in actions):
            return decision(ReviewReason.NO_RULE, "no rule asks for a review request")
        reason, detail = ReviewReason.PROMOTER, "promoter"
    elif policy.mode == "everyone":
        reason, detail = ReviewReason.EVERYONE, f"policy everyone: {category} asked"
    elif sampled_in(f"review:{response.response_id}", policy.percent / 100):
        reason, detail = ReviewReason.SAMPLED_IN, f"policy {policy}: {category} sampled in"
    else:
        return decision(ReviewReason.SAMPLED_OUT, f"policy {policy}: sampled out")
    if not response.contact.email:
        return decision(ReviewReason.NO_EMAIL, "no email address")
    urls = links.for_store(store)
    if not urls:
        where = f"store {store}" if store else "responses without a store"
        return decision(ReviewReason.NO_REVIEW_LINKS, f"no review links for {where}")
    return decision(reason, detail, urls)
