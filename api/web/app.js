// soundalike's front end: a hash router over the views, the API-key dialog and the banner for
// errors. Plain JavaScript modules, no build step, nothing loaded from elsewhere.

import {apiKey, getJSON, onUnauthorized, setApiKey} from "./api.js";
import {artistView, trackView} from "./artist.js";
import {clipView} from "./clip.js";
import {libraryView, stopLibrary} from "./library.js";
import {mapView} from "./map.js";
import {onProblem} from "./player.js";
import {radioView} from "./radio.js";
import {close as closeSuggestions, searchView} from "./search.js";
import {artistHref, describe, el, errorBox} from "./ui.js";

const view = document.getElementById("view");
const banner = document.getElementById("banner");
const keyDialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key");
const keyReason = document.getElementById("key-reason");

function showBanner(text) {
  banner.replaceChildren(el("span", {}, text),
    el("button", {type: "button", class: "link", "aria-label": "Dismiss",
                  onclick: () => { banner.hidden = true; }}, "×"));
  banner.hidden = false;
}

onProblem(showBanner);
window.addEventListener("error", (event) => showBanner("Something went wrong: " + event.message));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  showBanner(describe(event.reason));
});

// --- the API key --------------------------------------------------------------------------

function askForKey(reason) {
  keyReason.textContent = reason;
  keyInput.value = apiKey();
  if (!keyDialog.open) keyDialog.showModal();
  keyInput.focus();
}

onUnauthorized((error) => askForKey(error.detail.includes("wrong")
  ? "That key was refused. Check it and try again."
  : "This server needs an API key."));
document.getElementById("key-button").addEventListener("click", () => askForKey(
  apiKey() ? "A key is set for this tab." : "Only needed when the server has one."));
document.getElementById("key-form").addEventListener("submit", () => {
  setApiKey(keyInput.value.trim());
  render();
});
document.getElementById("key-forget").addEventListener("click", () => {
  setApiKey("");
  keyDialog.close();
  render();
});
document.getElementById("key-cancel").addEventListener("click", () => keyDialog.close());

// --- routes -------------------------------------------------------------------------------

async function home(target) {
  target.replaceChildren(
    el("h1", {}, "Which artists sound like…"),
    el("p", {class: "lead"}, "Type an artist or a track above, or wander the catalogue by sound:"),
    el("ul", {class: "cards"},
      el("li", {}, el("a", {href: "#/map"}, el("strong", {}, "Map")), " every artist placed by sound"),
      el("li", {}, el("a", {href: "#/clip"}, el("strong", {}, "Clip")), " what does this recording sound like?"),
      el("li", {}, el("a", {href: "#/radio"}, el("strong", {}, "Radio")), " a playlist from seeds, or a path from one artist to another"),
      el("li", {}, el("a", {href: "#/library"}, el("strong", {}, "Library")), " scan progress of the watched folders, and your sonic mixes")));
  try {
    const first = await getJSON("/artists?limit=24");
    if (!target.isConnected) return;
    target.append(el("section", {class: "panel"},
      el("h2", {}, `Artists (${first.total})`),
      first.artists.length
        ? el("ul", {class: "artist-cloud"}, first.artists.map((a) =>
            el("li", {}, el("a", {href: artistHref(a.artist)}, a.artist))))
        : el("p", {class: "muted"}, "Nothing ingested yet: run `soundalike ingest PATH`.")));
  } catch (error) {
    target.append(errorBox(error));
  }
}

const ROUTES = [
  [/^$/, (target) => home(target)],
  [/^artist\/(.+)$/, (target, m) => artistView(target, m[1])],
  [/^track\/(.+)$/, (target, m) => trackView(target, m[1])],
  [/^search\/(.+)$/, (target, m) => searchView(target, m[1])],
  [/^map$/, (target) => mapView(target)],
  [/^clip$/, (target) => clipView(target)],
  [/^radio$/, (target, m, params) => radioView(target, params)],
  [/^library$/, (target) => libraryView(target)],
];

async function render() {
  closeSuggestions();
  stopLibrary();
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  let decoded;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    decoded = path;
  }
  document.title = "soundalike";
  for (const [pattern, show] of ROUTES) {
    const match = decoded.match(pattern);
    if (!match) continue;
    try {
      await show(view, match, new URLSearchParams(search));
    } catch (error) {
      view.replaceChildren(errorBox(error));
    }
    return;
  }
  view.replaceChildren(el("h1", {}, "Not found"),
    el("p", {}, "Nothing lives at this address. ", el("a", {href: "#/"}, "Start again.")));
}

window.addEventListener("hashchange", () => {
  render();
  view.focus({preventScroll: true});
});
render();
