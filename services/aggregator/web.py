"""The aggregator's web edge: the JSON API (figures, history, loop health, money, themes)
and the dashboard page, server-rendered behind a plain GET form.

Plain aiohttp handlers on the worker's own web server; each asks ``queries`` (or the
dashboard's view) in a thread (the database and the counting are blocking) and answers,
or 400 with the reason when the question names an unknown window, survey kind, dimension
or segment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web

from services.aggregator import queries
from services.aggregator.adapters import ReadModel
from services.aggregator.dashboard import (
    DEFAULT_WINDOW,
    DashboardQuery,
    DashboardView,
    render_bad_query,
    render_dashboard,
)
from services.aggregator.domain import all_windows
from services.aggregator.figures import ALL
from services.aggregator.queries import QueryError
from services.aggregator.report import ReportingConfig
from services.aggregator.segments import DIMENSIONS
from services.aggregator.service import Clock, utc_now
from shared.events import SurveyKind

T = TypeVar("T")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity; a figure that is not a number is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def as_json(answer: Any) -> str:
    body = (
        [dataclasses.asdict(item) for item in answer]
        if isinstance(answer, list)
        else dataclasses.asdict(answer)
    )
    return json.dumps(_finite(body), default=_plain)


class AggregatorRoutes:
    def __init__(
        self, read_model: ReadModel, config: ReportingConfig, clock: Clock = utc_now
    ) -> None:
        self.read_model = read_model
        self.config = config
        self.clock = clock

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/nps", self.nps)
        router.add_get("/v1/nps/history", self.history)
        router.add_get("/v1/loop", self.loop)
        router.add_get("/v1/money", self.money)
        router.add_get("/v1/themes", self.themes)

    async def _answer(self, ask: Callable[[], T]) -> web.Response:
        try:
            answer = await asyncio.to_thread(ask)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.Response(text=as_json(answer), content_type="application/json")

    async def nps(self, request: web.Request) -> web.Response:
        query = request.query
        return await self._answer(
            lambda: queries.nps_figures(
                self.read_model,
                self.config,
                self.clock(),
                window=query.get("window", "30d"),
                kind=query.get("kind", "nps"),
                dimension=query.get("dimension", ALL),
                segment=query.get("segment"),
            )
        )

    async def history(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            weeks = int(query.get("weeks", "12"))
        except ValueError:
            return web.json_response(
                {"error": f"weeks is a whole number, not {query.get('weeks')!r}"}, status=400
            )
        return await self._answer(
            lambda: queries.nps_history(
                self.read_model,
                self.config,
                self.clock(),
                weeks=weeks,
                kind=query.get("kind", "nps"),
                dimension=query.get("dimension", ALL),
                segment=query.get("segment"),
            )
        )

    async def loop(self, request: web.Request) -> web.Response:
        window = request.query.get("window", "30d")
        return await self._answer(
            lambda: queries.loop(self.read_model, self.config, self.clock(), window=window)
        )

    async def money(self, _request: web.Request) -> web.Response:
        return await self._answer(lambda: queries.money(self.read_model, self.config, self.clock()))

    async def themes(self, request: web.Request) -> web.Response:
        query = request.query
        return await self._answer(
            lambda: queries.themes(
                self.read_model,
                self.config,
                self.clock(),
                window=query.get("window", "30d"),
                kind=query.get("kind", "nps"),
            )
        )


WINDOW_NAMES: tuple[str, ...] = tuple(window.name for window in all_windows(UTC))
"""The windows the dashboard offers: the names do not depend on the time zone."""

MAX_PARAMETER = 200

# A page of figures and segment names: not cached by a proxy, not framed elsewhere, and,
# having no script, allowed to run none.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class BadQuery(ValueError):
    """A dashboard request that names a window, survey kind or dimension there is not."""


def parse_query(
    params: Mapping[str, str],
    windows: Sequence[str] = WINDOW_NAMES,
    dimensions: Sequence[str] = DIMENSIONS,
) -> DashboardQuery:
    """The query of ``?window=&kind=&dimension=&segment=``; a missing one is the default.

    Raises ``BadQuery`` with a reason a person can act on. Any segment is accepted: which
    segments have figures is the data's business, and the view says when one has none.
    """
    window = params.get("window") or DEFAULT_WINDOW
    kind = params.get("kind") or SurveyKind.NPS.value
    dimension = params.get("dimension") or ALL
    segment = params.get("segment") or ALL
    for name, value in (
        ("window", window),
        ("kind", kind),
        ("dimension", dimension),
        ("segment", segment),
    ):
        if len(value) > MAX_PARAMETER:
            raise BadQuery(f"The {name} is longer than {MAX_PARAMETER} characters.")
    if window not in windows:
        raise BadQuery(f"There is no window “{window}”. The windows are {', '.join(windows)}.")
    kinds = [known.value for known in SurveyKind]
    if kind not in kinds:
        raise BadQuery(f"There is no survey kind “{kind}”. The kinds are {', '.join(kinds)}.")
    if dimension != ALL and dimension not in dimensions:
        raise BadQuery(
            f"There is no dimension “{dimension}”. "
            f"The dimensions are {', '.join((ALL, *dimensions))}."
        )
    return DashboardQuery(window, SurveyKind(kind), dimension, segment)


class DashboardRoutes:
    """``GET /dashboard``: the dashboard of the window, survey kind and cut asked for.

    ``view_for`` builds the view of a query from whatever holds the figures (the read
    model); it may block, so it runs in a thread. ``dimensions`` are those the read model
    cuts by (the segment policy's).
    """

    def __init__(
        self,
        view_for: Callable[[DashboardQuery], DashboardView],
        windows: Sequence[str] = WINDOW_NAMES,
        dimensions: Sequence[str] = DIMENSIONS,
    ) -> None:
        self.view_for = view_for
        self.windows = tuple(windows)
        self.dimensions = tuple(dimensions)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/dashboard", self.dashboard)

    async def dashboard(self, request: web.Request) -> web.Response:
        try:
            query = parse_query(request.query, self.windows, self.dimensions)
        except BadQuery as problem:
            return _page(400, render_bad_query(str(problem)))
        view = await asyncio.to_thread(self.view_for, query)
        return _page(200, render_dashboard(view))


def _page(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/html", headers=HEADERS)
