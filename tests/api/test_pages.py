"""The browser front end: real files under api/web/, served by api/routes/pages.py.

Covers what a user of the page would notice (the page loads with its stylesheet and script, the
script talks to the JSON routes the app really has, the key box still authorises), what a
deployer would notice (a built wheel carries and serves the files) and what a strict
Content-Security-Policy needs (no inline script or style).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from soundalike.api.routes import pages

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "api" / "web"
FRONT_END_FILES = tuple(
    sorted(p.name for p in WEB_DIR.iterdir() if p.suffix in (".html", ".css", ".js", ".svg"))
)
SCRIPTS = tuple(name for name in FRONT_END_FILES if name.endswith(".js"))


class PageOutline(HTMLParser):
    """What index.html links, which element ids it has, and anything inline a CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.script_sources: list[str] = []
        self.stylesheets: list[str] = []
        self.element_ids: set[str] = set()
        self.inline_code: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.element_ids.add(values["id"])
        self.inline_code += [f"{tag} {n}=" for n in values if n.startswith("on") or n == "style"]
        if tag == "style":
            self.inline_code.append("<style>")
        if tag == "script":
            self._in_script = True
            if "src" in values:
                self.script_sources.append(values["src"])
            else:
                self.inline_code.append("<script> without src")
        if tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_code.append("script body")


def outline(html: str) -> PageOutline:
    parsed = PageOutline()
    parsed.feed(html)
    parsed.close()
    return parsed


@pytest.fixture()
def pages_client() -> TestClient:
    app = FastAPI()
    app.include_router(pages.router)
    return TestClient(app)


def test_index_links_its_stylesheet_and_script_which_are_served(pages_client: TestClient) -> None:
    page = pages_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == (WEB_DIR / "index.html").read_text(encoding="utf-8")
    linked = outline(page.text)
    assert linked.stylesheets == ["/assets/app.css"] and linked.script_sources == ["/assets/app.js"]

    css = pages_client.get("/assets/app.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.content == (WEB_DIR / "app.css").read_bytes()
    script = pages_client.get("/assets/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.content == (WEB_DIR / "app.js").read_bytes()


def test_page_has_no_inline_script_or_style_for_a_strict_csp() -> None:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    assert outline(html).inline_code == []


def test_scripts_only_look_up_elements_the_page_has() -> None:
    looked_up = {
        found
        for name in SCRIPTS
        for found in re.findall(r"getElementById\(\"([^\"]+)\"\)", (WEB_DIR / name).read_text())
    }
    page_ids = outline((WEB_DIR / "index.html").read_text(encoding="utf-8")).element_ids
    # The search box, the view, the player and the key dialog must all still be wired.
    assert {"q", "suggestions", "view", "audio", "key", "key-dialog", "banner"} <= looked_up
    missing = looked_up - page_ids
    assert not missing, f"the scripts look up ids that index.html lacks: {missing}"


def test_every_imported_module_is_shipped() -> None:
    for name in SCRIPTS:
        for imported in re.findall(
            r"^import .* from \"([^\"]+)\";", (WEB_DIR / name).read_text(), re.M
        ):
            assert imported.startswith("./"), f"{name} imports {imported} from elsewhere"
            assert (WEB_DIR / imported[2:]).is_file(), f"{name} imports a missing {imported}"


def test_front_end_is_self_contained() -> None:
    for name in FRONT_END_FILES:
        text = (WEB_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), f"{name} loads a remote file"
        assert not re.search(r"(?:import|fetch)\s*\(\s*[\"'](?:https?:)?//", text), name
        assert not re.search(r"from\s+[\"'](?:https?:)?//", text), name
        assert "@import" not in text, name
        assert "url(" not in text or name != "app.css", "the stylesheet loads nothing"


def test_served_files_revalidate_cheaply_with_an_etag(pages_client: TestClient) -> None:
    for url in ("/", "/assets/app.js", "/assets/app.css"):
        first = pages_client.get(url)
        assert first.headers["cache-control"] == "no-cache", url
        etag = first.headers["etag"]
        again = pages_client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", url
        assert again.headers["etag"] == etag
        stale = pages_client.get(url, headers={"If-None-Match": '"an-older-version"'})
        assert stale.status_code == 200 and stale.content == first.content, url


def test_assets_outside_the_web_folder_or_of_unknown_type_are_not_served(
    pages_client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = tmp_path / "web"
    (web / "icons").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>t</title>", encoding="utf-8")
    (web / "icons" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    (web / "notes.py").write_text("SECRET = 1\n", encoding="utf-8")
    (web / ".hidden.css").write_text("a{}", encoding="utf-8")
    (tmp_path / "outside.css").write_text("b{}", encoding="utf-8")
    monkeypatch.setattr(pages, "web_root", lambda: web)

    nested = pages_client.get("/assets/icons/logo.svg")
    assert nested.status_code == 200 and nested.headers["content-type"] == "image/svg+xml"
    for url in (
        "/assets/notes.py",
        "/assets/.hidden.css",
        "/assets/%2E%2E/outside.css",
        "/assets/icons/%2E%2E/%2E%2E/outside.css",
        "/assets/index.html/",
        "/assets/",
        "/assets/icons",
        "/assets/missing.js",
    ):
        response = pages_client.get(url)
        assert response.status_code == 404, url
        assert b"b{}" not in response.content and b"SECRET" not in response.content


def test_pages_stay_out_of_the_openapi_schema(pages_client: TestClient) -> None:
    assert pages_client.get("/openapi.json").json().get("paths", {}) == {}


def test_the_app_serves_the_page_and_its_script_uses_the_apps_json_routes(
    tmp_path: Path,
) -> None:
    from soundalike.api.main import create_app
    from soundalike.api.settings import Settings

    # The page is where the key is typed, so it and its assets must load without one.
    settings = Settings(data_dir=tmp_path / "data", api_key="s3cret-key-for-tests", cors_origins=[])
    app = create_app(settings)
    client = TestClient(app)  # no lifespan: serving files must not need the store
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = client.get(outline(page.text).script_sources[0])
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    css = client.get(outline(page.text).stylesheets[0])
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/artists/{artist}/similar"] and "post" in paths["/search/audio"]
    assert not any(path == "/" or path.startswith("/assets") for path in paths)
    scripts = {name: client.get(f"/assets/{name}") for name in SCRIPTS}
    assert all(r.status_code == 200 for r in scripts.values())
    text = "\n".join(r.text for r in scripts.values())
    # The JSON routes the scripts call are routes of this app.
    for route in (
        "/artists/{artist}",
        "/artists/{artist}/similar",
        "/tracks",
        "/tracks/{track_id}",
        "/tracks/{track_id}/similar",
        "/tracks/{track_id}/audio",
        "/search/audio",
        "/map",
        "/radio",
        "/paths",
    ):
        assert route in paths, route
    for called in (
        '"/artists"',
        "/similar",
        '"/tracks"',
        "/audio",
        '"/search/audio',
        '"/map"',
        '"/radio"',
        '"/paths"',
    ):
        assert called in text, called
    assert '{"Authorization": "Bearer " + key}' in text
    assert "sessionStorage" in text and "localStorage" not in text


def test_no_python_source_holds_an_html_document() -> None:
    offenders = [
        str(source.relative_to(ROOT))
        for package in ("core", "api", "ingest", "search", "mixes")
        for source in (ROOT / package).rglob("*.py")
        if re.search(r"<!doctype html|<html[\s>]", source.read_text(encoding="utf-8"), re.I)
    ]
    assert offenders == [], "HTML belongs in api/web/, not in Python strings"


# Run with the installed wheel first on the path: proves the package data, not the checkout,
# is what importlib.resources finds and what the router serves.
INSTALLED_CHECK = textwrap.dedent(
    """
    import json, sys
    from importlib.resources import files
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    import soundalike.api
    from soundalike.api.routes import pages

    app = FastAPI()
    app.include_router(pages.router)
    client = TestClient(app)
    served = {url: client.get(url) for url in ("/", "/assets/app.js", "/assets/app.css")}
    print(json.dumps({
        "package": soundalike.api.__file__,
        "index": str(files("soundalike.api") / "web" / "index.html"),
        "served": {
            url: [r.status_code, r.headers.get("content-type"), r.text]
            for url, r in served.items()
        },
    }))
    """
)


@pytest.mark.slow
def test_a_built_wheel_carries_and_serves_the_front_end(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout and
    # could pick stale files up from an earlier build/.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("core", "api", "ingest", "search", "mixes"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-deps", "--no-index"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", *offline, "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("soundalike-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"soundalike/api/web/{name}" for name in FRONT_END_FILES} <= names
    assert "soundalike/api/routes/pages.py" in names and "soundalike/api/web.py" not in names

    target = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", *offline, "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    run = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(run.stdout)
    assert Path(report["package"]).is_relative_to(target)
    index = Path(report["index"])
    assert index.is_relative_to(target) and index.is_file()
    installed_web = target / "soundalike" / "api" / "web"
    expected = {
        "/": ("text/html; charset=utf-8", "index.html"),
        "/assets/app.js": ("text/javascript; charset=utf-8", "app.js"),
        "/assets/app.css": ("text/css; charset=utf-8", "app.css"),
    }
    assert set(report["served"]) == set(expected)
    for url, (status, content_type, body) in report["served"].items():
        expected_type, file_name = expected[url]
        assert status == 200 and content_type == expected_type, url
        assert body == (installed_web / file_name).read_text(encoding="utf-8"), url
