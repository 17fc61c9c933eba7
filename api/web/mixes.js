// The sonic mixes panel of the library page: what the last refresh wrote on the media server
// (GET /mixes), and "Refresh now" (POST /mixes/refresh), followed until it is over. Polling
// stops when the view is left (stopMixes, called by the router through stopLibrary).

import {getJSON, request} from "./api.js";
import {el, errorBox, loading} from "./ui.js";

const POLL_MS = 1500;
const SEEDS_SHOWN = 3;
const TRIGGERS = {schedule: "scheduled", library: "after library changes", request: "asked for"};
const SEED_KINDS = {song: "song", album: "album", artist: "artist"};

let timer = null;
let generation = 0;  // bumped when the panel is left: late answers and timers do nothing

export function stopMixes() {
  clearTimeout(timer);
  timer = null;
  generation += 1;
}

// A section for the library page; it fills itself in.
export function mixesPanel() {
  stopMixes();
  const mine = generation;
  const body = el("div", {id: "mixes-status"}, loading());
  const panel = el("section", {class: "panel", id: "mixes", "aria-labelledby": "mixes-title"},
    el("h2", {id: "mixes-title"}, "Sonic mixes"), body);
  const alive = () => mine === generation && body.isConnected;
  let refocus = false;  // the refresh button had the focus: the new one gets it once it is over

  async function poll() {
    if (!alive()) return;
    try {
      follow(await getJSON("/mixes"));
    } catch (error) {
      if (alive()) body.replaceChildren(errorBox(error));
    }
  }

  function follow(state) {
    if (!alive()) return;
    clearTimeout(timer);
    timer = null;
    render(body, state, refresh);
    if (state.enabled && (state.running || state.requested)) {
      timer = setTimeout(poll, POLL_MS);
    } else if (refocus) {
      refocus = false;
      const button = body.querySelector("#mixes-refresh");
      if (button) button.focus();
    }
  }

  async function refresh(button) {
    refocus = document.activeElement === button;
    button.disabled = true;
    try {
      follow(await (await request("/mixes/refresh", {method: "POST"})).json());
    } catch (error) {
      button.disabled = false;
      if (alive()) body.append(errorBox(error));
    }
  }

  // The caller puts the panel on the page before the first answer can arrive.
  getJSON("/mixes").then(follow, (error) => {
    if (alive()) body.replaceChildren(errorBox(error));
  });
  return panel;
}

function every(seconds) {
  const units = [[86400, "d"], [3600, "h"], [60, "min"]];
  for (const [size, unit] of units) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
  }
  return seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : `${Math.round(seconds)} s`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function render(body, s, refresh) {
  if (!s.enabled) {
    body.replaceChildren(el("p", {class: "mixes-off"},
      "Sonic mixes are off: this server keeps no playlists on a media server. Set " +
      "SOUNDALIKE_MIXES_URL to your Subsonic server (subsonic+http(s)://USER@HOST:PORT) and " +
      "SOUNDALIKE_SUBSONIC_PASSWORD, then restart `soundalike serve`: it keeps “Sonic Mix” " +
      "playlists grown from what you star and play there, and “Save as playlist” on the radio " +
      "writes there too (without it, it downloads an M3U8 file)."));
    return;
  }
  const busy = s.running || s.requested;
  const schedule = [
    s.every_seconds ? `every ${every(s.every_seconds)}` : null,
    s.after_tracks ? `after ${s.after_tracks} new tracks` : null,
    s.next_run_at ? `next ${when(s.next_run_at)}` : null,
  ].filter(Boolean);
  const button = el("button", {id: "mixes-refresh", type: "button", disabled: busy,
                               onclick: () => refresh(button)}, "Refresh now");
  const parts = [
    el("p", {class: "facts"}, "Kept as playlists on ", el("strong", {}, s.server),
       schedule.length ? " · refreshed " + schedule.join(", ") : " · refreshed when asked"),
    el("div", {class: "row"}, button,
       el("span", {class: "mixes-state muted", role: "status"},
          s.running ? "Refreshing…" : s.requested ? "Refresh requested…" : "")),
  ];
  const run = s.last_run;
  if (!run) {
    parts.push(el("p", {class: "muted"}, "No refresh yet."));
    body.replaceChildren(...parts);
    return;
  }
  const seconds = typeof run.seconds === "number" ? ` in ${run.seconds.toFixed(1)} s` : "";
  parts.push(el("p", {class: "muted mixes-last"},
    `Last refresh ${when(run.finished_at || run.started_at)} (${TRIGGERS[run.trigger] || run.trigger})` +
    (run.ok ? `: ${run.mixes.length} mix${run.mixes.length === 1 ? "" : "es"}${seconds}` : "") +
    (run.dry_run ? ", a dry run: nothing was written" : "") + "."));
  if (!run.ok) {
    parts.push(el("p", {class: "error", role: "alert"},
      `The last refresh failed: ${run.error || "no reason given"}. The playlists were left as they were.`));
  }
  if (run.mixes.length) {
    parts.push(el("ol", {class: "mixes", "aria-label": "Mixes"}, run.mixes.map((mix) => {
      const seeds = mix.seeds.slice(0, SEEDS_SHOWN)
        .map((seed) => `${seed.name} (${SEED_KINDS[seed.kind] || seed.kind})`).join(", ");
      const more = mix.seeds.length - SEEDS_SHOWN;
      return el("li", {class: "mix"},
        el("div", {class: "mix-head"},
          el("strong", {class: "mix-name"}, mix.name),
          el("span", {class: "muted mix-count"}, `${mix.songs.length} song${mix.songs.length === 1 ? "" : "s"}`)),
        seeds ? el("p", {class: "mix-seeds"}, "From " + seeds + (more > 0 ? ` and ${more} more` : "")) : null,
        mix.songs.length ? el("details", {class: "mix-songs"}, el("summary", {}, "Songs"),
          el("ol", {}, mix.songs.map((song) =>
            el("li", {}, song.title || "(untitled)", el("span", {class: "muted"}, " — " + song.artist))))) : null);
    })));
  }
  if (run.removed.length) {
    parts.push(el("p", {class: "muted"}, "Removed (fewer mixes needed): " + run.removed.join(", ") + "."));
  }
  if (run.failures.length) {
    parts.push(el("div", {class: "mix-failures"}, el("h3", {}, "Problems"),
      el("ul", {}, run.failures.map((text) => el("li", {}, text)))));
  }
  body.replaceChildren(...parts);
}
