// "Save as playlist" under a radio or a path: written to the media server the catalogue came
// from (POST /playlists) when the server has one (GET /mixes names it), otherwise downloaded
// as an M3U8 file (POST /playlists/m3u8) for players on the machine with the music. The file
// is fetched with the API key in a header and handed to the browser as a blob: the key never
// goes into a URL.

import {getJSON, postJSON, request} from "./api.js";
import {el, errorBox} from "./ui.js";

const MAX_NAME = 200;  // the API's limit
const M3U8_TYPE = "audio/x-mpegurl";

// The media server playlists are written to (as GET /mixes shows it, no secret), or null.
async function mediaServer() {
  const state = await getJSON("/mixes");
  return state.enabled && state.server ? state.server : null;
}

// A file name for the playlist: characters that file systems (or Chromium's download code)
// refuse are replaced, "Radio: X" becomes "Radio - X.m3u8".
export function m3u8FileName(name) {
  const safe = name.trim()
    .replace(/\s*:\s*/g, " - ")
    .replace(/[\u0000-\u001f\u007f"*/<>?\\|]+/g, "_")
    .replace(/^[.\s]+/, "")
    .trim();
  return (safe || "playlist") + ".m3u8";
}

function saveFile(text, fileName) {
  const url = URL.createObjectURL(new Blob([text], {type: M3U8_TYPE}));
  const link = el("a", {href: url, download: fileName, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);  // long after the download started
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// The control: a name (prefilled with `defaultName`), a button, and a line saying where the
// playlist goes and then what happened. `tracks()` gives the tracks in the order shown;
// `prefix` names the elements (`${prefix}-save-name`, `${prefix}-save`, `${prefix}-save-status`).
export function savePlaylistControl(prefix, defaultName, tracks) {
  const nameId = `${prefix}-save-name`;
  const input = el("input", {id: nameId, type: "text", maxlength: String(MAX_NAME), required: true,
                             autocomplete: "off", value: defaultName.slice(0, MAX_NAME)});
  const button = el("button", {id: `${prefix}-save`, type: "submit", class: "secondary"},
                    "Save as playlist");
  const where = el("small", {class: "muted save-target"});
  const status = el("div", {id: `${prefix}-save-status`, class: "save-status",
                            role: "status", "aria-live": "polite"});

  mediaServer().then((server) => {
    where.textContent = server ? `to ${server}` : "as an M3U8 file for players on this machine";
  }, () => {});  // only a hint: saving says what is wrong

  async function save(event) {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      status.replaceChildren(errorBox({detail: "Give the playlist a name."}));
      input.focus();
      return;
    }
    const body = {name, track_ids: tracks().map((t) => t.track_id).slice(0, 200)};
    button.disabled = true;
    status.replaceChildren(el("span", {class: "muted"}, "Saving…"));
    try {
      const server = await mediaServer();
      if (server) {
        const saved = await postJSON("/playlists", body);
        status.replaceChildren(el("span", {class: "saved"},
          `Saved to ${saved.server} as “${saved.name}” (${plural(saved.songs.length, "song")})` +
          (saved.replaced ? ", replacing the one saved earlier" : "") +
          (saved.left_out ? `; ${plural(saved.left_out, "track")} left out (not songs of that server)` : "") +
          "."));
      } else {
        const text = await (await request("/playlists/m3u8", {method: "POST", json: body})).text();
        const entries = text.split(/\r?\n/).filter((line) => line && !line.startsWith("#"));
        const fileName = m3u8FileName(name);
        saveFile(text, fileName);
        const relative = entries.every((entry) => !entry.startsWith("/") && !/^[A-Za-z]:[\\/]/.test(entry));
        const left = body.track_ids.length - entries.length;
        status.replaceChildren(el("span", {class: "saved"},
          `Downloaded “${fileName}” (${plural(entries.length, "track")}` +
          (left > 0 ? `; ${left} not files on this machine, left out` : "") + "). " +
          (relative
            ? "Put it in the music folder: its entries are paths relative to that folder."
            : "Its entries are the files' full paths on the server's machine.")));
      }
    } catch (error) {
      status.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  }

  return el("div", {class: "save-playlist"},
    el("form", {class: "row", "aria-label": "Save as playlist", onsubmit: save},
      el("label", {for: nameId}, "Playlist name"), input, button, where),
    status);
}
