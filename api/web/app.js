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
