// The live library (#/library): scan progress and failures, live from GET /library/events
// (server-sent events, read with fetch so the API key can be sent as a header), and the sonic
// mixes kept on the media server (mixes.js).

import {getJSON, request} from "./api.js";
import {mixesPanel, stopMixes} from "./mixes.js";
import {el, errorBox, loading} from "./ui.js";

let stream = null;

export function stopLibrary() {
  if (stream) stream.abort();
  stream = null;
  stopMixes();
}

export async function libraryView(view) {
  stopLibrary();
  const body = el("div", {id: "library-status", "aria-live": "polite"}, loading());
  view.replaceChildren(el("h1", {}, "Library"), body, mixesPanel());
  let status;
  try {
    status = await getJSON("/library");
  } catch (error) {
    body.replaceChildren(errorBox(error.status === 404
      ? {detail: "This server has no live library."} : error));
    return;
  }
  render(body, status);
  if (status.state === "off") return;
  const controller = new AbortController();
  stream = controller;
  try {
    const response = await request("/library/events", {signal: controller.signal,
                                                      headers: {Accept: "text/event-stream"}});
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (data && body.isConnected) render(body, JSON.parse(data));
      }
      if (!body.isConnected) break;
    }
  } catch (error) {
    if (error.name !== "AbortError" && body.isConnected) {
      body.append(el("p", {class: "muted"}, "Live updates stopped: " + (error.detail || error.message)));
    }
  } finally {
    controller.abort();
  }
}

function render(body, s) {
  if (s.state === "off") {
    body.replaceChildren(el("p", {}, "The live library is off: this server watches no folders " +
      "(start it with `soundalike serve --library DIR`, or set SOUNDALIKE_LIBRARY)."));
    return;
  }
  const total = Math.max(s.files_seen, s.ingested + s.failed + s.queued, 1);
  const done = s.ingested + s.failed;
  const scan = el("button", {type: "button", onclick: async () => {
    try {
      render(body, await (await request("/library/scan", {method: "POST"})).json());
    } catch (error) {
      body.append(errorBox(error));
    }
  }}, "Scan now");
  body.replaceChildren(
    el("p", {class: "facts"}, el("strong", {class: "state"}, s.state), " · ",
       s.roots.join(", ")),
    el("progress", {max: String(total), value: String(done), "aria-label": "Scan progress"}),
    el("dl", {class: "counts"},
      ...[["seen", s.files_seen], ["queued", s.queued], ["ingested", s.ingested],
          ["failed", s.failed], ["removed", s.removed]]
        .map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v))))),
    el("p", {class: "muted"},
      s.eta_seconds !== null && s.eta_seconds !== undefined ? `About ${Math.ceil(s.eta_seconds)} s left. ` : "",
      s.last_scan_finished ? `Last scan finished ${new Date(s.last_scan_finished).toLocaleString()}.` : ""),
    scan,
    s.failures.length ? el("section", {class: "panel"}, el("h2", {}, "Recent failures"),
      el("table", {class: "failures"},
        el("tr", {}, el("th", {}, "file"), el("th", {}, "why")),
        s.failures.map((f) => el("tr", {}, el("td", {}, f.path), el("td", {}, f.reason))))) : null);
}
