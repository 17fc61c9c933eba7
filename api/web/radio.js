// Radio (#/radio): seeds to like and to steer away from give a playlist (POST /radio) that
// plays in sequence and refills itself; a path from one artist to another (POST /paths) plays
// the steps in order. Both can be saved as a playlist (playlist.js).

import {ApiError, getJSON, postJSON, query} from "./api.js";
import {section, trackList} from "./components.js";
import {playList, replaceUpcoming} from "./player.js";
import {savePlaylistControl} from "./playlist.js";
import {findArtists, findTracks} from "./search.js";
import {addSeed, asApiSeed, clearSeeds, onSeedsChange, removeSeed, seeds} from "./seeds.js";
import {debounce, el, errorBox, loading, score} from "./ui.js";

let picker = 0;
// The seed chips of the radio view on screen, redrawn when the seeds change.
let showSeeds = null;
onSeedsChange(() => {
  if (showSeeds) showSeeds();
});

// A text box suggesting artists and tracks; resolve() gives {artist} or {track_id} seeds.
function seedPicker(id, placeholder, withTracks = true) {
  const listId = `${id}-options-${++picker}`;
  const input = el("input", {id, type: "search", placeholder, list: listId, autocomplete: "off"});
  const options = el("datalist", {id: listId});
  let tracks = new Map();
  input.addEventListener("input", debounce(async () => {
    const text = input.value.trim();
    if (!text) return;
    try {
      const [artists, found] = await Promise.all([findArtists(text, 6),
        withTracks ? findTracks(text, 6) : Promise.resolve([])]);
      tracks = new Map(found.map((t) => [`${t.title || "(untitled)"} — ${t.artist}`, t]));
      options.replaceChildren(...artists.artists.map((a) => el("option", {value: a.artist})),
        ...[...tracks.keys()].map((label) => el("option", {value: label})));
    } catch {
      // suggestions are a convenience: resolve() reports real problems
    }
  }, 150));
  async function resolve() {
    const text = input.value.trim();
    if (!text) throw new ApiError(422, {detail: `Type an artist${withTracks ? " or a track" : ""} first.`});
    const track = tracks.get(text);
    if (track) return {track_id: track.track_id, label: text};
    const artist = await getJSON(`/artists/${encodeURIComponent(text)}` + query({limit: 1}));
    return {artist: artist.artist, label: artist.artist};
  }
  return {node: el("span", {class: "picker"}, input, options), input, resolve};
}

export function radioView(view, params) {
  const message = el("div", {role: "status", "aria-live": "polite"});
  const chips = el("div", {class: "seeds"});
  const playlist = el("div", {id: "radio-playlist"});
  const pick = seedPicker("seed-input", "Artist or track…");
  const limit = el("input", {id: "radio-limit", type: "number", min: "1", max: "200", value: "20"});
  const perArtist = el("input", {id: "radio-per-artist", type: "number", min: "1", max: "200", value: "2"});

  const add = async (which) => {
    message.replaceChildren();
    try {
      addSeed(await pick.resolve(), which);
      pick.input.value = "";
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };

  function renderSeeds() {
    if (!chips.isConnected && chips.parentNode) return;  // another view replaced this one
    const value = seeds();
    const chip = (seed, which) => el("li", {class: "chip " + which},
      el("span", {}, (which === "unlike" ? "less like: " : "") + (seed.track_id ? "♪ " : "") + seed.label),
      el("button", {type: "button", class: "link", "aria-label": "Remove " + seed.label,
                    onclick: () => removeSeed(seed)}, "×"));
    chips.replaceChildren(value.like.length || value.unlike.length
      ? el("ul", {class: "chips", "aria-label": "Seeds"},
          value.like.map((s) => chip(s, "like")), value.unlike.map((s) => chip(s, "unlike")))
      : el("p", {class: "muted"}, "No seeds yet: add an artist or a track you like."));
  }
  showSeeds = renderSeeds;
  renderSeeds();

  const played = new Set();
  const body = () => {
    const value = seeds();
    const cap = Number(perArtist.value);
    return {
      like: value.like.map(asApiSeed),
      unlike: value.unlike.map(asApiSeed),
      limit: Math.min(Math.max(Number(limit.value) || 20, 1), 200),
      max_per_artist: cap >= 1 ? Math.min(cap, 200) : null,
      exclude_track_ids: [...played],
    };
  };

  async function makePlaylist() {
    if (!seeds().like.length) {
      playlist.replaceChildren(errorBox({detail: "Add at least one artist or track to like."}));
      return;
    }
    playlist.replaceChildren(loading("Tuning in…"));
    played.clear();
    const named = "Radio: " + seeds().like.map((s) => s.label).join(", ");
    try {
      const {tracks} = await postJSON("/radio", body());
      const options = {
        onNeedMore: async (queue) => {  // the radio never stops: more like the seeds
          queue.forEach((t) => played.add(t.track_id));
          return (await postJSON("/radio", body())).tracks;
        },
        onLess: async (track) => {  // steer away from this one: new seeds, new upcoming tracks
          addSeed({track_id: track.track_id, label: track.title || track.track_id}, "unlike");
          played.add(track.track_id);
          try {
            replaceUpcoming((await postJSON("/radio", body())).tracks);
          } catch (error) {
            message.replaceChildren(errorBox(error));
          }
        },
      };
      playlist.replaceChildren(
        el("div", {class: "row"},
          el("button", {id: "radio-play", type: "button", onclick: () => playList(tracks, 0, options)}, "▶ Play the radio"),
          el("span", {class: "muted"}, `${tracks.length} tracks; more come when these run out.`)),
        ...(tracks.length ? [savePlaylistControl("radio", named, () => tracks)] : []),
        trackList(tracks, {showScore: true, label: "Radio playlist", playOptions: options}));
    } catch (error) {
      playlist.replaceChildren(errorBox(error));
    }
  }

  // The path from artist A to artist B.
  const from = seedPicker("path-from", "From artist…", false);
  const to = seedPicker("path-to", "To artist…", false);
  if (params.get("from")) from.input.value = params.get("from");
  const steps = el("input", {id: "path-steps", type: "number", min: "2", max: "50", value: "8"});
  const pathResult = el("div", {id: "path-result"});
  async function makePath(event) {
    event.preventDefault();
    pathResult.replaceChildren(loading("Finding the way…"));
    try {
      const [start, end] = await Promise.all([from.resolve(), to.resolve()]);
      const path = await postJSON("/paths", {start: asApiSeed(start), end: asApiSeed(end),
        steps: Math.min(Math.max(Number(steps.value) || 8, 2), 50), max_per_artist: null});
      pathResult.replaceChildren(
        el("div", {class: "row"},
          el("button", {id: "path-play", type: "button", onclick: () => playList(path.tracks, 0)}, "▶ Play the path"),
          el("span", {class: "muted"}, `${path.tracks.length} steps, total distance ${score(path.total_distance)}`)),
        ...(path.tracks.length
          ? [savePlaylistControl("path", `Path: ${start.label} → ${end.label}`, () => path.tracks)] : []),
        trackList(path.tracks, {label: `Path from ${start.label} to ${end.label}`,
          extra: (t) => el("span", {class: "score", title: "similarity to the previous step"},
                            t.hop_score === null ? "start" : "↳ " + score(t.hop_score))}));
    } catch (error) {
      pathResult.replaceChildren(errorBox(error));
    }
  }

  view.replaceChildren(
    el("h1", {}, "Radio"),
    section("Seeds",
      el("form", {class: "row", onsubmit: (event) => { event.preventDefault(); add("like"); }},
        pick.node,
        el("button", {id: "seed-like", type: "submit"}, "Like"),
        el("button", {id: "seed-unlike", type: "button", class: "secondary", onclick: () => add("unlike")}, "Less like this"),
        el("button", {type: "button", class: "secondary", onclick: () => clearSeeds()}, "Clear")),
      message, chips,
      el("div", {class: "row"},
        el("label", {}, "Tracks ", limit), el("label", {}, "At most per artist ", perArtist),
        el("button", {id: "radio-make", type: "button", onclick: makePlaylist}, "Make a playlist")),
      playlist),
    section("A path from one artist to another",
      el("form", {class: "row", onsubmit: makePath},
        from.node, el("span", {"aria-hidden": "true"}, "→"), to.node,
        el("label", {}, "Steps ", steps), el("button", {id: "path-make"}, "Find the path")),
      pathResult));
}
