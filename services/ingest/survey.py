"""The pages customers reach from an invitation: the survey (GET/POST /s/{token}) and
unsubscribe (GET/POST /u/{token}). No JavaScript; every answer is journaled like a webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from pydantic import ValidationError

from services.ingest.domain import now, response_from_link
from services.ingest.pages import (
    SurveyPage,
    render_link_problem,
    render_survey,
    render_thanks,
    render_unsubscribe,
)
from services.ingest.store import Inbound
from services.ingest.web import Journal
from shared import topics
from shared.events import ContactPreference, FollowUpAnswers, ResponseSource
from shared.ids import event_id
from shared.signing import SignatureError, TokenExpired, TokenSigner


@dataclass(frozen=True)
class SurveyConfig:
    company_name: str
    heard_from_options: tuple[str, ...]


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _browser_locale(request: web.Request) -> str | None:
    accept = request.headers.get("Accept-Language", "")
    first = accept.split(",")[0].split(";")[0].strip()
    return first or None


class SurveyRoutes:
    """Survey and unsubscribe handlers; the journal and signer are passed in."""

    def __init__(
        self,
        journal: Journal,
        signer: TokenSigner,
        config: SurveyConfig,
        on_accepted: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.signer = signer
        self.config = config
        self.on_accepted = on_accepted

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/s/{token}", self.open_survey)
        router.add_post("/s/{token}", self.answer_survey)
        router.add_get("/u/{token}", self.open_unsubscribe)
        router.add_post("/u/{token}", self.unsubscribe)

    def _link(self, request: web.Request, needs: str) -> dict[str, object] | web.Response:
        token = request.match_info["token"]
        try:
            link = self.signer.verify(token)
        except TokenExpired:
            return _html(render_link_problem(_browser_locale(request), "expired"), status=410)
        except SignatureError:
            return _html(render_link_problem(_browser_locale(request), "invalid"), status=403)
        if needs not in link:
            return _html(render_link_problem(_browser_locale(request), "invalid"), status=403)
        return link

    async def _journal(self, inbound: Inbound, at: datetime) -> None:
        await asyncio.to_thread(self.journal.accept, [inbound], None, at)
        self.on_accepted()

    async def open_survey(self, request: web.Request) -> web.Response:
        """A click on a score in the email: the score is recorded at once."""
        link = self._link(request, "s")
        if isinstance(link, web.Response):
            return link
        score = link["s"]
        if not isinstance(score, int) or not 0 <= score <= 10:
            return _html(render_link_problem(_browser_locale(request), "invalid"), status=403)
        received_at = now()
        response = response_from_link(
            link, score, FollowUpAnswers(), ResponseSource.EMAIL_CLICK, received_at
        )
        await self._journal(
            Inbound(topics.RESPONSES, response.customer_id, response.customer_id, response),
            received_at,
        )
        return _html(render_survey(self._page(request, link, score)))

    async def answer_survey(self, request: web.Request) -> web.Response:
        """The follow-up answers (and perhaps a changed score): the same response, updated."""
        link = self._link(request, "i")
        if isinstance(link, web.Response):
            return link
        form = await request.post()
        try:
            score = int(str(form.get("score", link.get("s", ""))))
            if not 0 <= score <= 10:
                raise ValueError(score)
        except ValueError:
            page = self._page(request, link, int(str(link.get("s", 0))))
            return _html(render_survey(page), status=422)
        heard_from = str(form.get("heard_from") or "") or None
        if heard_from is not None and heard_from not in self.config.heard_from_options:
            heard_from = None
        try:
            answers = FollowUpAnswers(
                reason=str(form.get("reason") or "").strip() or None,
                improve=str(form.get("improve") or "").strip() or None,
                heard_from=heard_from,
            )
        except ValidationError:
            return _html(render_survey(self._page(request, link, score)), status=422)
        received_at = now()
        response = response_from_link(link, score, answers, ResponseSource.WEB, received_at)
        await self._journal(
            Inbound(topics.RESPONSES, response.customer_id, response.customer_id, response),
            received_at,
        )
        return _html(render_thanks(_locale(link), self.config.company_name))

    async def open_unsubscribe(self, request: web.Request) -> web.Response:
        link = self._link(request, "u")
        if isinstance(link, web.Response):
            return link
        action = f"/u/{request.match_info['token']}"
        return _html(render_unsubscribe(_locale(link), self.config.company_name, action, False))

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """The button on the page, or a mail client's RFC 8058 one-click POST."""
        link = self._link(request, "u")
        if isinstance(link, web.Response):
            return link
        customer_id = str(link["u"])
        received_at = now()
        preference = ContactPreference(
            event_id=event_id("unsubscribe", customer_id, {"token": request.match_info["token"]}),
            occurred_at=received_at,
            customer_id=customer_id,
            action="unsubscribed",
        )
        await self._journal(
            Inbound(topics.CONTACT_PREFERENCES, customer_id, customer_id, preference), received_at
        )
        action = f"/u/{request.match_info['token']}"
        return _html(render_unsubscribe(_locale(link), self.config.company_name, action, True))

    def _page(self, request: web.Request, link: dict[str, object], score: int) -> SurveyPage:
        kind = str(link.get("k", "nps"))
        return SurveyPage(
            locale=_locale(link),
            company_name=self.config.company_name,
            survey_kind="enps" if kind == "enps" else "nps",
            score=score,
            action_url=f"/s/{request.match_info['token']}",
            heard_from_options=self.config.heard_from_options if kind != "enps" else (),
        )


def _locale(link: dict[str, object]) -> str | None:
    locale = link.get("l")
    return str(locale) if locale else None
