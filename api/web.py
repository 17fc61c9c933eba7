"""A one-page front end at `/`: a search box and an upload form calling the JSON API."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soundalike</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; }
  input, button { font: inherit; padding: .3rem .5rem; }
  table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
  td, th { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid #ddd; }
  .error { color: #a00; }
  small { color: #666; }
</style>
</head>
<body>
<h1>soundalike</h1>
<p>Which artists sound like &hellip; <small>(<a href="/docs">API docs</a>)</small></p>
<form id="by-name">
  <input id="artist" name="artist" placeholder="an artist" required autofocus>
  <button>Find similar artists</button>
</form>
<form id="by-audio">
  <p>&hellip; or like this clip: <input id="clip" type="file" accept="audio/*" required>
  <button>Search</button></p>
</form>
<p><small>API key (only if the server needs one):
  <input id="key" type="password" size="12"></small></p>
<div id="out"></div>
<script>
const out = document.getElementById("out");
function headers() {
  const key = document.getElementById("key").value;
  return key ? {"Authorization": "Bearer " + key} : {};
}
function rounded(rows) { return rows.map(r => ({...r, score: r.score.toFixed(3)})); }
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
function table(rows, columns) {
  const t = document.createElement("table");
  const head = document.createElement("tr");
  for (const c of columns) {
    const th = document.createElement("th"); th.textContent = c; head.append(th);
  }
  t.append(head);
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) tr.append(cell(r[c] ?? ""));
    t.append(tr);
  }
  return t;
}
async function show(response, render) {
  out.replaceChildren();
  const body = await response.json();
  if (!response.ok) {
    const p = document.createElement("p"); p.className = "error";
    p.textContent = body.detail;
    out.append(p); return;
  }
  render(body);
}
document.getElementById("by-name").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("artist").value;
  const url = "/artists/" + encodeURIComponent(name) + "/similar?limit=20";
  const response = await fetch(url, {headers: headers()});
  await show(response, (body) => {
    const h = document.createElement("h2"); h.textContent = "Artists like " + body.artist;
    out.append(h, table(rounded(body.results), ["artist", "score", "track_count"]));
  });
});
document.getElementById("by-audio").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("file", document.getElementById("clip").files[0]);
  const response = await fetch("/search/audio", {method: "POST", body: form, headers: headers()});
  await show(response, (body) => {
    const a = document.createElement("h2"); a.textContent = "Artists";
    const t = document.createElement("h2"); t.textContent = "Tracks";
    out.append(a, table(rounded(body.artists), ["artist", "score", "track_count"]),
               t, table(rounded(body.tracks), ["title", "artist", "score"]));
  });
});
</script>
</body>
</html>
"""


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse(PAGE)
