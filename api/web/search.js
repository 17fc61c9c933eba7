// Search: the box in the header suggests artists (by name prefix, then close names for typos)
// and tracks (by title, artist or album) as you type; arrows, Enter and Escape drive it.
// Submitting opens the results page, #/search/<text>.

import {ApiError, getJSON, query} from "./api.js";
import {section, trackList} from "./components.js";
import {artistHref, debounce, el, errorBox, loading, trackHref} from "./ui.js";

const form = document.getElementById("search");
const input = document.getElementById("q");
const listbox = document.getElementById("suggestions");
let options = [];  // [{label, hint, href, kind}]
let active = -1;
let lastAsked = "";

// Artists whose names start with `text`; when none, the close names an unknown artist's 404
// suggests (typos).
export async function findArtists(text, limit = 8) {
  const found = await getJSON("/artists" + query({q: text, limit}));
  if (found.artists.length) return {artists: found.artists, suggested: false};
  try {
    const exact = await getJSON(`/artists/${encodeURIComponent(text)}` + query({limit: 1}));
    return {artists: [{artist: exact.artist, track_count: exact.track_count}], suggested: false};
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return {artists: error.suggestions.map((artist) => ({artist})), suggested: true};
    }
    throw error;
  }
}

export async function findTracks(text, limit = 8) {
  return (await getJSON("/tracks" + query({q: text, limit}))).tracks;
}

async function suggest() {
  const text = input.value.trim();
  lastAsked = text;
  if (!text) return close();
  try {
    const [artists, tracks] = await Promise.all([findArtists(text, 6), findTracks(text, 6)]);
    if (text !== lastAsked) return;  // the user typed on meanwhile
    options = [
      ...artists.artists.map((a) => ({
        kind: "artist", label: a.artist, href: artistHref(a.artist),
        hint: artists.suggested ? "did you mean?" : `artist · ${a.track_count} tracks`,
      })),
      ...tracks.map((t) => ({
        kind: "track", label: t.title || "(untitled)", href: trackHref(t.track_id),
        hint: "track · " + t.artist, track: t,
      })),
    ];
    render();
  } catch (error) {
    if (text !== lastAsked) return;
    options = [];
    listbox.replaceChildren(el("li", {class: "error", role: "presentation"}, error.detail || String(error)));
    open();
  }
}

function render() {
  active = -1;
  if (!options.length) {
    listbox.replaceChildren(el("li", {class: "muted", role: "presentation"}, "No artist or track matches."));
    open();
    return;
  }
  listbox.replaceChildren(...options.map((option, i) => el("li", {
    id: "suggestion-" + i, role: "option", class: "option " + option.kind,
    "aria-selected": "false",
    onmousedown: (event) => { event.preventDefault(); choose(i); },
  }, el("span", {class: "option-label"}, option.label), el("small", {}, option.hint))));
  open();
}

function open() {
  listbox.hidden = false;
  input.setAttribute("aria-expanded", "true");
}

export function close() {
  listbox.hidden = true;
  input.setAttribute("aria-expanded", "false");
  input.removeAttribute("aria-activedescendant");
  active = -1;
}

function highlight(index) {
  active = index;
  listbox.querySelectorAll("[role=option]").forEach((node, i) => {
    node.setAttribute("aria-selected", String(i === index));
    node.classList.toggle("active", i === index);
  });
  if (index >= 0) input.setAttribute("aria-activedescendant", "suggestion-" + index);
}

function choose(index) {
  const option = options[index];
  close();
  if (!option) return;
  input.value = "";
  location.hash = option.href;
}

input.addEventListener("input", debounce(suggest, 150));
input.addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown" && options.length) {
    event.preventDefault();
    if (listbox.hidden) open();
    highlight((active + 1) % options.length);
  } else if (event.key === "ArrowUp" && options.length) {
    event.preventDefault();
    highlight(active <= 0 ? options.length - 1 : active - 1);
  } else if (event.key === "Escape") {
    close();
  } else if (event.key === "Enter" && active >= 0) {
    event.preventDefault();
    choose(active);
  }
});
input.addEventListener("blur", () => setTimeout(close, 100));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  close();
  if (text) location.hash = "#/search/" + encodeURIComponent(text);
});

// #/search/<text>: every artist and track the text finds.
export async function searchView(view, text) {
  view.replaceChildren(el("h1", {}, `Search: “${text}”`), loading());
  const [artists, tracks] = await Promise.allSettled([findArtists(text, 50), findTracks(text, 50)]);
  const parts = [el("h1", {}, `Search: “${text}”`)];
  if (artists.status === "fulfilled") {
    const found = artists.value;
    parts.push(section(found.suggested ? "No artist by that name. Did you mean…" : "Artists",
      found.artists.length
        ? el("ul", {class: "artists"}, found.artists.map((a) => el("li", {},
            el("a", {href: artistHref(a.artist), class: "artist-link"}, a.artist),
            a.track_count !== undefined ? el("span", {class: "muted"}, ` ${a.track_count} tracks`) : null)))
        : el("p", {class: "muted"}, "No artist matches.")));
  } else {
    parts.push(errorBox(artists.reason));
  }
  if (tracks.status === "fulfilled") {
    parts.push(section("Tracks", tracks.value.length
      ? trackList(tracks.value, {label: "Matching tracks"})
      : el("p", {class: "muted"}, "No track title, artist or album matches.")));
  } else {
    parts.push(errorBox(tracks.reason));
  }
  view.replaceChildren(...parts);
}
