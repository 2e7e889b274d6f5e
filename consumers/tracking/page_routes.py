"""The tracking page's routes (thin: ``page.py`` renders, the app's ``load_view`` reads and authorises).

- ``GET /track/TN``: the page with the parcel's current state rendered (200), the same page saying
  "not found" for an unknown parcel or missing or wrong credentials (404, one body for all), or
  "not a valid tracking number" (422). The language: ``?lang=``, which is then remembered in a
  cookie, else that cookie, else Accept-Language, else English.
- ``GET /track/TN/view``: only the parcel's part, which the page's script swaps in on live updates.
- ``/static/track.js``, ``/static/track.css``: the script and style sheet (no other resources).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Cookie, FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, Response

from consumers.read_model import InvalidRecordError, normalize_tracking_number
from consumers.tracking import i18n
from consumers.tracking.page import SCRIPT, SECURITY_HEADERS, STYLE, render_page, render_view

#: ``load_view(request, tracking_number, postcode, token)``: the public view, or None when unknown or not allowed.
ViewLoader = Callable[[Request, str, str | None, str | None], Awaitable[dict[str, Any] | None]]

LANGUAGE_COOKIE_MAX_AGE = 365 * 86_400

Lang = Annotated[str | None, Query(max_length=10)]
Postcode = Annotated[str | None, Query(max_length=20)]
Token = Annotated[str | None, Query(max_length=100)]
AcceptLanguage = Annotated[str | None, Header(max_length=500)]
RememberedLanguage = Annotated[str | None, Cookie(alias=i18n.LANGUAGE_COOKIE, max_length=10)]


def _credentials(postcode: str | None, token: str | None) -> dict[str, str]:
    return {name: value for name, value in (("token", token), ("postcode", postcode)) if value is not None}


def install_page(app: FastAPI, load_view: ViewLoader) -> None:
    @app.get("/track/{tracking_number}/view", response_class=HTMLResponse, include_in_schema=False)
    async def tracking_view(
        request: Request,
        tracking_number: str,
        lang: Lang = None,
        postcode: Postcode = None,
        token: Token = None,
        accept_language: AcceptLanguage = None,
        remembered: RememberedLanguage = None,
    ) -> HTMLResponse:
        language = i18n.choose_language(lang, accept_language, remembered)
        try:
            normalized = normalize_tracking_number(tracking_number)
        except InvalidRecordError:
            return HTMLResponse("", status_code=422, headers=SECURITY_HEADERS)
        view = await load_view(request, normalized, postcode, token)
        if view is None:
            return HTMLResponse("", status_code=404, headers=SECURITY_HEADERS)
        return HTMLResponse(render_view(view, language), headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    @app.get("/track/{tracking_number:path}", response_class=HTMLResponse, include_in_schema=False)
    async def tracking_page(
        request: Request,
        tracking_number: str,
        lang: Lang = None,
        postcode: Postcode = None,
        token: Token = None,
        accept_language: AcceptLanguage = None,
        remembered: RememberedLanguage = None,
    ) -> HTMLResponse:
        language = i18n.choose_language(lang, accept_language, remembered)
        view = None
        try:
            shown, valid = normalize_tracking_number(tracking_number), True
        except InvalidRecordError:
            shown, valid = tracking_number[:60], False
        if valid:
            view = await load_view(request, shown, postcode, token)
        page = render_page(
            language=language, tracking_number=shown, valid=valid, view=view, credentials=_credentials(postcode, token)
        )
        status = 422 if not valid else 404 if view is None else 200
        response = HTMLResponse(page, status_code=status, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
        if lang is not None and lang.lower() == language:
            response.set_cookie(
                i18n.LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_MAX_AGE, path="/track", samesite="lax"
            )
        return response

    @app.get("/static/track.js", include_in_schema=False)
    async def tracking_script() -> Response:
        return Response(SCRIPT, media_type="text/javascript", headers=SECURITY_HEADERS)

    @app.get("/static/track.css", include_in_schema=False)
    async def tracking_style() -> Response:
        return Response(STYLE, media_type="text/css", headers=SECURITY_HEADERS)
