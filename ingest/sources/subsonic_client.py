"""The Subsonic REST API, as a client: where a server is, how to authenticate, what a failed
response means, and every song it lists. ingest/sources/subsonic.py builds the catalogue source
and the audio proxy on it.

Credentials travel in every request's query (the protocol's way); they never reach an error
message, and the `httpx` logger's request lines are redacted (`redact`)."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from soundalike.core.errors import InvalidRequest, NotFound, SoundalikeError, StoreError

SCHEMES = {"subsonic+http": "http", "subsonic+https": "https"}
CLIENT_NAME = "soundalike"
# Token authentication (t = md5(password + salt), s = salt) arrived with API 1.13.0; older
# servers (Supysonic speaks 1.12) take the password hex-encoded as p=enc:HEX.
TOKEN_API_VERSION = "1.13.0"
LEGACY_API_VERSION = "1.12.0"
# Connections one client opens to its server at a time (the listing runs this many requests in
# parallel, an ingest's downloads a few).
MAX_CONNECTIONS = 4
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# Transient failures (connection refused/reset, timeouts, 5xx, 429) are retried with
# exponential backoff: 0.5 s, 1 s, 2 s.
ATTEMPTS = 4
BACKOFF_S = 0.5
DOWNLOAD_CHUNK = 1 << 16
# Subsonic error codes (http://www.subsonic.org/pages/api.jsp, "Error handling").
CODE_MISSING_PARAMETER = 10
CODE_SERVER_MUST_UPGRADE = 30
CODE_WRONG_CREDENTIALS = 40
CODE_TOKEN_NOT_SUPPORTED = 41
CODE_NOT_AUTHORISED = 50
CODE_NOT_FOUND = 70

AuthMode = Literal["token", "password", "api_key"]
# A request's parameters: a mapping, or pairs when a name repeats.
QueryParams = dict[str, str] | list[tuple[str, str]]


# --- errors ------------------------------------------------------------------------------


class SubsonicError(SoundalikeError):
    """A Subsonic server refused a request; `code` is the server's error code when it sent
    one. The message never carries a credential."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SubsonicUnavailable(SubsonicError, StoreError):
    """The server does not answer, or refuses our credentials or rights (HTTP: 503)."""


class SubsonicNotFound(SubsonicError, NotFound):
    """The server does not know the id (HTTP: 404)."""


# --- where the server is -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerAddress:
    """`subsonic+http(s)://[USER@]HOST[:PORT][/base]`, parsed; never holds a password."""

    scheme: str  # http or https
    host: str
    port: int | None
    base_path: str  # "" or "/base"
    username: str | None

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        # Messages name the parts, never echo the URL: it may hold a password by mistake.
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise InvalidRequest("not a valid subsonic+http(s):// URL (bad host or port)") from None
        scheme = SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise InvalidRequest("a Subsonic server URL starts with subsonic+http:// or https://")
        if parts.password is not None:
            raise InvalidRequest(
                "the Subsonic URL must not carry a password (it would end up in shell history "
                "and process lists): give USER@HOST and set SOUNDALIKE_SUBSONIC_PASSWORD"
            )
        if not parts.hostname:
            raise InvalidRequest("the Subsonic URL has no host: subsonic+http://USER@HOST:PORT")
        if parts.query or parts.fragment:
            raise InvalidRequest("the Subsonic URL takes no query or fragment")
        base = parts.path.rstrip("/")
        if base.endswith("/rest"):  # people paste the API root; the base is above it
            base = base[: -len("/rest")]
        username = parts.username or None
        return cls(scheme, parts.hostname.lower(), port, base, username)

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def server_key(self) -> str:
        """What names the server in a track's identity: scheme-less, user-less."""
        return f"{self._netloc}{self.base_path}"

    @property
    def api_root(self) -> str:
        return f"{self.scheme}://{self._netloc}{self.base_path}/rest/"

    @property
    def display(self) -> str:
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        return f"subsonic+{self.scheme}://{user}{self._netloc}{self.base_path}"

    def location(self, song_id: str) -> str:
        """The stored location of one song: readable, and enough to stream it again."""
        return f"{self.display}?id={quote(song_id, safe='')}"

    def identity(self, song_id: str) -> str:
        return f"subsonic:{self.server_key}:{song_id}"


def is_subsonic_url(target: object) -> bool:
    return isinstance(target, str) and target.strip().lower().startswith(
        tuple(f"{scheme}://" for scheme in SCHEMES)
    )


def parse_location(location: str | None) -> tuple[ServerAddress, str] | None:
    """(server, song id) of a stored location written by `ServerAddress.location`, else None."""
    if not location or not is_subsonic_url(location):
        return None
    head, sep, query = location.partition("?")
    if not sep:
        return None
    song_ids = parse_qs(query).get("id")
    if not song_ids or not song_ids[0]:
        return None
    try:
        return ServerAddress.parse(head), song_ids[0]
    except InvalidRequest:
        return None


# --- credentials never logged --------------------------------------------------------------

_SECRET_PARAMS = re.compile(r"(?i)\b(p|t|s|apiKey)=[^&\s\"']*")


def redact(text: str) -> str:
    """Text with every Subsonic credential parameter's value replaced by ***."""
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}=***", text)


class _RedactCredentials(logging.Filter):
    """httpx logs each request's full URL at INFO; ours carry credentials in the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(str(a)) if "=" in str(a) else a for a in args)
        record.msg = redact(str(record.msg))
        return True


logging.getLogger("httpx").addFilter(_RedactCredentials())


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    """One song as the server lists it."""

    song_id: str
    artist: str
    title: str | None
    album: str | None
    genre: str | None
    year: int | None
    duration: int | None
    suffix: str | None
    path: str | None
    artist_id: str | None
    album_id: str | None
    album_artist: str | None
    musicbrainz_id: str | None
    isrc: list[str] | str | None


# Negotiated authentication per server (a token-less server is probed once per process).
_AUTH_MODES: dict[tuple[str, str | None], AuthMode] = {}
_AUTH_LOCK = threading.Lock()


class SubsonicClient:
    """The Subsonic REST API of one server, JSON responses, credentials in every request.

    Authentication: the OpenSubsonic `apiKey` when one is given; otherwise the salted token
    (`t`, `s`), and for servers that lack it (API < 1.13, or LDAP users: error 41) the
    hex-encoded password (`p=enc:HEX`). Failed responses (HTTP 200, `"status": "failed"`)
    become SubsonicError subclasses with readable messages."""

    def __init__(
        self,
        address: ServerAddress,
        *,
        password: str | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        if api_key is None and password is None:
            raise InvalidRequest(
                f"{address.display}: no credentials; set SOUNDALIKE_SUBSONIC_PASSWORD (or "
                "SOUNDALIKE_SUBSONIC_API_KEY for an OpenSubsonic API key)"
            )
        if api_key is None and not address.username:
            raise InvalidRequest(
                "the Subsonic URL needs a user name: subsonic+http://USER@HOST:PORT"
            )
        self.address = address
        self._password = password
        self._api_key = api_key
        self.attempts = max(1, attempts)
        self._download_denied = False
        # Audio bytes received (downloads and ranges): what a run cost the network.
        self.bytes_fetched = 0
        self.backoff_s = backoff_s
        self._http = httpx.Client(
            base_url=address.api_root,
            transport=transport,
            timeout=timeout or httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SubsonicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- authentication ------------------------------------------------------------------

    @property
    def _auth_key(self) -> tuple[str, str | None]:
        return (self.address.api_root, self.address.username)

    @property
    def auth_mode(self) -> AuthMode:
        if self._api_key is not None:
            return "api_key"
        with _AUTH_LOCK:
            known = _AUTH_MODES.get(self._auth_key)
        return known or self._negotiate()

    def _negotiate(self) -> AuthMode:
        """Token first; the enc: password when the server says it cannot check tokens."""
        document = self._send("ping", {}, "token")
        body = document.get("subsonic-response") or {}
        mode: AuthMode = "token"
        if body.get("status") != "ok":
            code = _error_code(body)
            legacy = _version_below(body.get("version"), TOKEN_API_VERSION)
            if legacy or code in (
                CODE_TOKEN_NOT_SUPPORTED,
                CODE_MISSING_PARAMETER,
                CODE_SERVER_MUST_UPGRADE,
            ):
                mode = "password"
                self._checked(self._send("ping", {}, mode), "ping")
            else:
                self._checked(document, "ping")
        with _AUTH_LOCK:
            _AUTH_MODES[self._auth_key] = mode
        return mode

    def _auth_params(self, mode: AuthMode) -> dict[str, str]:
        params = {"c": CLIENT_NAME, "f": "json"}
        if mode == "api_key":
            assert self._api_key is not None
            params.update(apiKey=self._api_key, v=TOKEN_API_VERSION)
            return params
        assert self._password is not None and self.address.username
        params["u"] = self.address.username
        if mode == "token":
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's
            params.update(t=token, s=salt, v=TOKEN_API_VERSION)
        else:
            params.update(p="enc:" + self._password.encode("utf-8").hex(), v=LEGACY_API_VERSION)
        return params

    # --- requests ------------------------------------------------------------------------

    def _send(self, method: str, params: QueryParams, mode: AuthMode) -> dict[str, Any]:
        """One API call's JSON document, retrying transient failures."""
        response = self._request(method, params, mode, stream=False)
        try:
            document = response.json()
        except ValueError:
            raise SubsonicUnavailable(
                f"{self.address.display}: {method} did not answer JSON (HTTP "
                f"{response.status_code}); is this the server's base URL?"
            ) from None
        if not isinstance(document, dict) or "subsonic-response" not in document:
            raise SubsonicUnavailable(
                f"{self.address.display}: {method} did not answer a Subsonic response"
            )
        return document

    def _request(
        self,
        method: str,
        params: QueryParams,
        mode: AuthMode,
        *,
        stream: bool,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        last = "no answer"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            pairs: list[tuple[str, str | int | float | bool | None]] = list(
                params.items() if isinstance(params, dict) else params
            )
            request = self._http.build_request(
                "GET", method, params=pairs + list(self._auth_params(mode).items()),
                headers=headers,
            )  # fmt: skip
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                # The exception's text may hold the URL, and the URL the credentials.
                last = transport_reason(error)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                response.close()
                continue
            if response.status_code == 401:
                response.close()
                what = "the API key was refused" if self._api_key else "wrong user name or password"
                raise SubsonicUnavailable(
                    f"{self.address.display}: {what} (HTTP 401)", CODE_WRONG_CREDENTIALS
                )
            # Other statuses (a 404 may carry a Subsonic error document) are the caller's.
            return response
        raise SubsonicUnavailable(
            f"{self.address.display}: the server did not answer {method} "
            f"({last}, {self.attempts} attempts)"
        )

    def call(self, method: str, **params: str) -> dict[str, Any]:
        """The `subsonic-response` body of a successful call (raises SubsonicError)."""
        return self._checked(self._send(method, params, self.auth_mode), method)

    def call_multi(self, method: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """`call` with repeated parameters (`songId` of createPlaylist, in order)."""
        return self._checked(self._send(method, params, self.auth_mode), method)

    def _checked(self, document: dict[str, Any], method: str) -> dict[str, Any]:
        body = document.get("subsonic-response") or {}
        if body.get("status") == "ok":
            return body
        raise self._error(body, method)

    def _error(self, body: dict[str, Any], method: str) -> SubsonicError:
        code = _error_code(body)
        server_says = redact(str((body.get("error") or {}).get("message") or "")).strip()
        where = f"{self.address.display}: {method}"
        if code == CODE_WRONG_CREDENTIALS:
            what = "the API key was refused" if self._api_key else "wrong user name or password"
            return SubsonicUnavailable(f"{where}: {what} (Subsonic error 40)", code)
        if code == CODE_TOKEN_NOT_SUPPORTED:
            return SubsonicUnavailable(
                f"{where}: the server refuses token authentication (error 41)", code
            )
        if code in (42, 43, 44):  # OpenSubsonic: auth mechanism unsupported / conflicting / key
            return SubsonicUnavailable(
                f"{where}: the server refused the API key ({server_says or 'error'} {code}); "
                "unset SOUNDALIKE_SUBSONIC_API_KEY to use the password",
                code,
            )
        if code == CODE_NOT_AUTHORISED:
            return SubsonicUnavailable(
                f"{where}: the user lacks the rights for this (Subsonic error 50: "
                f"{server_says or 'not authorised'})",
                code,
            )
        if code == CODE_NOT_FOUND:
            return SubsonicNotFound(
                f"{where}: unknown id ({server_says or 'not found'}, Subsonic error 70)", code
            )
        return SubsonicError(
            f"{where} failed: {server_says or 'no message'} (Subsonic error {code})", code
        )

    # --- listing -------------------------------------------------------------------------

    def songs(self) -> Iterator[Song]:
        """Every song: getArtists, then getArtist and getAlbum for each (in parallel, at most
        MAX_CONNECTIONS at once), in the server's artist and album order."""
        artists_body = self.call("getArtists").get("artists") or {}
        artist_ids = [
            str(artist["id"])
            for index in _as_list(artists_body.get("index"))
            for artist in _as_list(index.get("artist"))
            if artist.get("id") is not None
        ]
        with ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="subsonic-list") as pool:
            artists = pool.map(lambda i: self.call("getArtist", id=i).get("artist") or {},
                               artist_ids)  # fmt: skip
            album_ids = [
                str(album["id"])
                for artist in artists
                for album in _as_list(artist.get("album"))
                if album.get("id") is not None
            ]
            albums = pool.map(
                lambda i: self.call("getAlbum", id=i).get("album") or {},
                list(dict.fromkeys(album_ids)),
            )
            seen: set[str] = set()
            for album in albums:
                for entry in _as_list(album.get("song")):
                    song = _song(entry, album)
                    if song is not None and song.song_id not in seen:
                        seen.add(song.song_id)
                        yield song

    # --- audio ---------------------------------------------------------------------------

    def open_audio(
        self, song_id: str, *, range_header: str | None = None, raw_stream: bool = False
    ) -> httpx.Response:
        """An open streaming response with the song's bytes (`download`, or `stream` with
        format=raw), the Range header passed on. The caller closes it."""
        method, params = ("stream", {"id": song_id, "format": "raw"}) if raw_stream else (
            "download", {"id": song_id})  # fmt: skip
        headers = {"Range": range_header} if range_header else None
        response = self._request(method, params, self.auth_mode, stream=True, headers=headers)
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/json", "text/xml", "application/xml"):
            # Errors come as a Subsonic document instead of audio.
            try:
                response.read()
                document = response.json()
            except (ValueError, httpx.HTTPError):
                document = {}
            finally:
                response.close()
            body = (document or {}).get("subsonic-response") or {}
            raise self._error(body, method)
        if response.status_code >= 400 and response.status_code != 416:
            response.close()
            if response.status_code == 404:
                raise SubsonicNotFound(f"{self.address.display}: {method}: unknown id (HTTP 404)")
            raise SubsonicError(f"{self.address.display}: {method} answered HTTP "
                                f"{response.status_code}")  # fmt: skip
        return response

    def _open_song(self, song_id: str, range_header: str | None = None) -> httpx.Response:
        """`download` (the original file, no play counted); `stream` with format=raw (the
        same bytes) once the server said the user lacks the download right."""
        if not self._download_denied:
            try:
                return self.open_audio(song_id, range_header=range_header)
            except SubsonicUnavailable as error:
                if error.code != CODE_NOT_AUTHORISED:
                    raise
                self._download_denied = True
        return self.open_audio(song_id, range_header=range_header, raw_stream=True)

    def read_range(self, song_id: str, start: int, end: int) -> tuple[bytes, int] | None:
        """Bytes [start, end) of the song and the file's total size, or None when the server
        does not honour the Range (it answered the whole file, or another range)."""
        response = self._open_song(song_id, f"bytes={start}-{end - 1}")
        try:
            match = re.fullmatch(
                r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("content-range", "").strip()
            )
            if response.status_code != 206 or match is None or int(match[1]) != start:
                return None
            body = bytearray()
            for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                body += chunk
                if len(body) > end - start:
                    return None
        except httpx.TransportError as error:
            raise SubsonicUnavailable(
                f"{self.address.display}: reading {song_id} broke off ({transport_reason(error)})"
            ) from None
        finally:
            response.close()
        self.bytes_fetched += len(body)
        return bytes(body), int(match[3])

    def download(self, song_id: str, destination: Path) -> int:
        """Writes the song's bytes to `destination`; returns their count."""
        response = self._open_song(song_id)
        written = 0
        try:
            with open(destination, "wb") as out:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    self.bytes_fetched += len(chunk)
        except httpx.TransportError as error:
            raise SubsonicUnavailable(
                f"{self.address.display}: the download of {song_id} broke off "
                f"({transport_reason(error)})"
            ) from None
        finally:
            response.close()
        expected = response.headers.get("content-length")
        plain = "content-encoding" not in response.headers  # else the length is compressed
        if plain and expected is not None and expected.isdigit() and int(expected) != written:
            raise SubsonicUnavailable(
                f"{self.address.display}: the download of {song_id} stopped at {written} of "
                f"{expected} bytes"
            )
        return written


def transport_reason(error: httpx.TransportError) -> str:
    kinds = {
        httpx.ConnectError: "connection refused or host unreachable",
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "no answer in time",
        httpx.RemoteProtocolError: "the connection was cut",
        httpx.ReadError: "the connection was cut",
    }
    for kind, reason in kinds.items():
        if isinstance(error, kind):
            return reason
    return type(error).__name__


def _error_code(body: dict[str, Any]) -> int | None:
    code = (body.get("error") or {}).get("code")
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _version_below(version: object, floor: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    if not isinstance(version, str) or not re.match(r"^\d", version):
        return False
    return parts(version) < parts(floor)


def _as_list(value: Any) -> list[dict[str, Any]]:
    # Some servers send one element as an object instead of a list of one.
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and str(value).strip() else None
    except (TypeError, ValueError):
        return None


def _song(entry: dict[str, Any], album: dict[str, Any]) -> Song | None:
    song_id = _text(entry.get("id"))
    if song_id is None or entry.get("isDir") is True or entry.get("isVideo") is True:
        return None
    artist = _text(entry.get("artist")) or _text(album.get("artist")) or ""
    isrc = entry.get("isrc")
    return Song(
        song_id=song_id,
        artist=artist,
        title=_text(entry.get("title")),
        album=_text(entry.get("album")) or _text(album.get("name")),
        genre=_text(entry.get("genre")),
        year=_int(entry.get("year")),
        duration=_int(entry.get("duration")),
        suffix=_text(entry.get("suffix")),
        path=_text(entry.get("path")),
        artist_id=_text(entry.get("artistId")) or _text(album.get("artistId")),
        album_id=_text(entry.get("albumId")) or _text(album.get("id")),
        album_artist=_text(album.get("artist")),
        musicbrainz_id=_text(entry.get("musicBrainzId")),
        isrc=isrc if isrc else None,
    )
