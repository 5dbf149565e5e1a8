"""The notifier's pages: a case, behind the signed link each alert carries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from services.notifier.case_page import render_case_page
from services.notifier.case_store import SqlCases
from shared.events import ClassifiedResponse
from shared.signing import SignatureError, TokenExpired, TokenSigner


class CaseRoutes:
    def __init__(self, cases: SqlCases, signer: TokenSigner, clock: Callable[[], datetime]) -> None:
        self.cases = cases
        self.signer = signer
        self.clock = clock

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/cases/{token}", self.case_page)

    async def case_page(self, request: web.Request) -> web.Response:
        try:
            payload = self.signer.verify(request.match_info["token"])
        except TokenExpired:
            return _text(410, "This case link has expired.")
        except SignatureError:
            return _text(403, "This case link is not genuine.")
        case_id = payload.get("case")
        if not isinstance(case_id, str):
            return _text(403, "This case link is not genuine.")
        case = await asyncio.to_thread(self.cases.get, case_id)
        if case is None:
            return _text(404, "No such case here.")
        steps = await asyncio.to_thread(self.cases.steps, case_id)
        posted = await asyncio.to_thread(self.cases.alert, case.response_id)
        classified = (
            None if posted is None else ClassifiedResponse.model_validate(posted.classified)
        )
        page = render_case_page(case, steps, classified, self.clock())
        return web.Response(
            text=page,
            content_type="text/html",
            # Customer text: never cached by a proxy, never framed elsewhere.
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
            },
        )


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")
