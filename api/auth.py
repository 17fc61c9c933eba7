"""The API key: the one place that decides which requests need it and checks it.

Every route needs the key (when the server has one) unless its router is declared open when
the app is assembled (`KeyCheck.open`): health probes, the web page and its assets, AudioMuse's
health check, the OpenAPI documents. The check runs as the outermost middleware but the request
context, before any routing, body parsing or the artists-like-X fast path, so a client without
the key learns nothing about the body it sent (401, never 400 or 422) and a new route family is
protected without a line of its own. A route that shows more to key holders (`/readyz`) asks
`KeyCheck.has_key`. A refused request is answered in the error shape of the contract it called
(AudioMuse's `{"error"}` under `/api/`, soundalike's `{"detail"}` elsewhere): the contracts
register their refusal with `refuse_under`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRouter
from pydantic import SecretStr
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from soundalike.api.errors import Unauthorized, domain_error_handler

Refusal = Callable[[Request, Unauthorized], Response | Awaitable[Response]]

SECURITY_SCHEME = "HTTPBearer"


class KeyCheck:
    """Which requests need `Authorization: Bearer <key>`, and whether one carries it."""

    def __init__(self, api_key: SecretStr | None) -> None:
        self._expected = None if api_key is None else api_key.get_secret_value().encode("utf-8")
        self._open_paths: set[str] = set()
        self._routes: list[BaseRoute] = []  # every route included through this check
        self._open_routes: list[BaseRoute] = []
        self._refusals: list[tuple[str, Refusal]] = []

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    # --- assembly -------------------------------------------------------------------------

    def include(self, app: FastAPI, router: APIRouter) -> None:
        """Includes `router` in `app`; its routes need the key."""
        app.include_router(router)
        self._routes += router.routes

    def open(self, app: FastAPI, router: APIRouter) -> None:
        """Includes `router` in `app` as open to everyone (no key needed)."""
        self.include(app, router)
        self._open_routes += router.routes
        self._open_paths.update(getattr(route, "path_format", "") for route in router.routes)

    def open_paths(self, app: FastAPI, *paths: str | None) -> None:
        """Paths the framework serves itself (the OpenAPI document and its pages)."""
        served = [r for r in app.routes if getattr(r, "path", None) in paths]
        self._routes += served
        self._open_routes += served
        self._open_paths.update(path for path in paths if path)

    def refuse_under(self, prefix: str, refusal: Refusal) -> None:
        """Requests under `prefix` are refused in that contract's own error shape."""
        self._refusals.append((prefix, refusal))

    def seal(self, app: FastAPI) -> None:
        """Documents the key in the OpenAPI schema of every operation but the open ones. Call
        once every router is included."""
        if self.enabled:
            _document_security(app, self._open_paths)

    # --- per request ----------------------------------------------------------------------

    def needs_key(self, scope: Scope) -> bool:
        if self._expected is None:
            return False
        return not any(route.matches(scope)[0] != Match.NONE for route in self._open_routes)

    def method_not_allowed(self, scope: Scope) -> bool:
        """True when a route has this path but not this method. Routing answers those 405
        before any key is asked for, as the contract says (the methods a path takes are in the
        public OpenAPI document anyway). Asked only of requests about to be refused."""
        found = {route.matches(scope)[0] for route in self._routes}
        return Match.PARTIAL in found and Match.FULL not in found

    def has_key(self, scope: Scope) -> bool:
        """True when no key is configured or the request carries the exact key. The comparison
        runs in constant time on the raw header bytes (a non-ASCII key is sent as its UTF-8
        bytes), so no header decoding can make two different keys look alike."""
        if self._expected is None:
            return True
        scheme, _, given = (_authorization(scope) or b"").strip().partition(b" ")
        matches = hmac.compare_digest(given.strip(), self._expected)
        return scheme.lower() == b"bearer" and matches

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        error = Unauthorized(
            "missing API key: send `Authorization: Bearer <key>`"
            if _authorization(scope) is None
            else "wrong API key"
        )
        path: str = scope["path"]
        refusal: Refusal = next(
            (answer for prefix, answer in self._refusals if path.startswith(prefix)),
            domain_error_handler,
        )
        # Labelled with the route it was refused on (metrics, logs): matched only when refused.
        scope["route"] = next((r for r in self._routes if r.matches(scope)[0] == Match.FULL), None)
        response = refusal(request, error)
        if not isinstance(response, Response):
            response = await response
        await response(scope, receive, send)


class KeyCheckMiddleware:
    """Runs `KeyCheck` on every HTTP request before anything else of the app sees it."""

    def __init__(self, app: ASGIApp, check: KeyCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = self.check
        if (
            scope["type"] == "http"
            and check.needs_key(scope)
            and not check.has_key(scope)
            and not check.method_not_allowed(scope)
        ):
            await check.refuse(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _authorization(scope: Scope) -> bytes | None:
    return next((value for name, value in scope["headers"] if name == b"authorization"), None)


def _document_security(app: FastAPI, open_paths: Iterable[str]) -> None:
    """Declares the bearer scheme, and requires it on every operation but the open ones."""
    build = app.openapi
    open_set = set(open_paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "Only when the server sets SOUNDALIKE_API_KEY: "
            "`Authorization: Bearer <key>`.",
        }
        for path, item in document.get("paths", {}).items():
            if path in open_set:
                continue
            for operation in item.values():
                operation["security"] = [{SECURITY_SCHEME: []}]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
