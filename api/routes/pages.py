"""The browser front end: `GET /` is api/web/index.html, `GET /assets/<path>` the rest of api/web/.

The files are package data, found through importlib.resources so that an installed wheel serves
its own copy (and a zipped install works too: files are read, never handed out by filesystem
path). None of these routes appear in the OpenAPI schema.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(include_in_schema=False)

INDEX_NAME = "index.html"
ASSETS_PREFIX = "/assets"

# Explicit, rather than the mimetypes module: its answers depend on the host's /etc/mime.types
# (some systems still map .js to text/plain or application/x-javascript).
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}

# Asset names carry no version, so a browser must revalidate before reusing a copy (or it would
# keep running an old app.js after an upgrade); the ETag makes that revalidation a bodiless 304.
CACHE_CONTROL = "no-cache"


def web_root() -> Traversable:
    """The folder of front-end files inside the installed soundalike.api package."""
    return files("soundalike.api") / "web"


@router.get("/")
def index(request: Request) -> Response:
    return _serve(web_root() / INDEX_NAME, request)


@router.get(ASSETS_PREFIX + "/{asset_path:path}")
def asset(asset_path: str, request: Request) -> Response:
    return _serve(_resolve_asset(asset_path), request)


def _resolve_asset(asset_path: str) -> Traversable:
    """The file under web/ named by a URL path; 404 for anything that could step outside it."""
    segments = asset_path.split("/")
    if any(not s or s in (".", "..") or s.startswith(".") or "\\" in s for s in segments):
        raise HTTPException(status_code=404, detail="Not Found")
    found = web_root()
    for segment in segments:
        found = found / segment
    return found


def _serve(resource: Traversable, request: Request) -> Response:
    content_type = CONTENT_TYPES.get(_suffix(resource.name))
    if content_type is None or not resource.is_file():
        raise HTTPException(status_code=404, detail="Not Found")
    body = resource.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    known = _etags(request.headers.get("if-none-match", ""))
    if etag in known or "*" in known:
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=content_type, headers=headers)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _etags(if_none_match: str) -> set[str]:
    """The entity tags of an If-None-Match header, weak ones compared as strong (RFC 9110)."""
    return {tag.strip().removeprefix("W/") for tag in if_none_match.split(",") if tag.strip()}
