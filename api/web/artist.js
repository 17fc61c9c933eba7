// The artist page (#/artist/<name>) and the track page (#/track/<id>, "tracks like this").

import {getJSON, query} from "./api.js";
import {section, trackList} from "./components.js";
import {playList, playTrack} from "./player.js";
import {addSeed} from "./seeds.js";
import {artistHref, duration, el, errorBox, loading, score, trackHref} from "./ui.js";

export async function artistView(view, name) {
  view.replaceChildren(el("h1", {}, name), loading());
  const path = `/artists/${encodeURIComponent(name)}`;
  const [artist, similar] = await Promise.allSettled([
    getJSON(path + query({limit: 500})),
    getJSON(path + "/similar" + query({limit: 12, explain: true})),
  ]);
  if (artist.status === "rejected") {
    view.replaceChildren(el("h1", {}, name), errorBox(artist.reason));
    return;
  }
  const a = artist.value;
  document.title = a.artist + " · soundalike";
  const header = el("div", {class: "artist-head"},
    el("h1", {}, a.artist),
    el("p", {class: "facts"},
      `${a.track_count} track${a.track_count === 1 ? "" : "s"}`,
      a.genres.length ? " · " : "",
      a.genres.map((g, i) => [i ? ", " : "", el("span", {class: "genre"}, g)])),
    el("div", {class: "row"},
      el("button", {type: "button", onclick: () => playList(a.tracks, 0)}, "Play all"),
      el("button", {type: "button", class: "secondary",
                    onclick: () => { addSeed({artist: a.artist, label: a.artist}, "like"); location.hash = "#/radio"; }},
         "Radio from this artist"),
      el("a", {class: "button secondary", href: "#/radio?from=" + encodeURIComponent(a.artist)},
         "Path from here…")));
  const tracks = section("Tracks", trackList(a.tracks, {showArtist: false, label: "Tracks of " + a.artist}));
  const like = similar.status === "fulfilled"
    ? section("Sounds like", similarList(a.artist, similar.value.results))
    : section("Sounds like", errorBox(similar.reason));
  view.replaceChildren(header, el("div", {class: "columns"}, like, tracks));
}

// Similar artists, each with its "why": the closest pairs of tracks, each playable.
function similarList(artist, results) {
  if (!results.length) return el("p", {class: "muted"}, "No other artist in the catalogue yet.");
  return el("ol", {class: "similar", "aria-label": "Similar artists"}, results.map((result) => {
    const pairs = result.closest_pairs || [];
    return el("li", {class: "similar-artist"},
      el("div", {class: "similar-head"},
        el("a", {href: artistHref(result.artist), class: "artist-link"}, result.artist),
        el("span", {class: "score", title: "similarity of the artists' centroids"}, score(result.score)),
        el("span", {class: "muted"}, `${result.track_count} tracks`)),
      pairs.length ? el("details", {class: "why"},
        el("summary", {}, "Why: the closest tracks"),
        el("ul", {class: "pairs"}, pairs.map((pair) => el("li", {class: "pair"},
          el("div", {class: "pair-tracks"},
            pairButton(pair.track, artist),
            pairButton(pair.other_track, result.artist)),
          el("span", {class: "score", title: "similarity of the two tracks"}, score(pair.score)))))) : null);
  }));
}

function pairButton(ref, artist) {
  const title = ref.title || "(untitled)";
  return el("span", {class: "pair-track"},
    el("button", {type: "button", class: "play", "aria-label": `Play ${title} by ${artist}`,
                  onclick: () => playTrack({track_id: ref.track_id, title: ref.title, artist})}, "▶"),
    el("a", {href: trackHref(ref.track_id), title: "Tracks like this"}, title),
    el("a", {href: artistHref(artist), class: "pair-artist"}, artist));
}

export async function trackView(view, id) {
  view.replaceChildren(loading());
  const base = `/tracks/${encodeURIComponent(id)}`;
  let track;
  try {
    track = await getJSON(base);
  } catch (error) {
    view.replaceChildren(el("h1", {}, "Track"), errorBox(error));
    return;
  }
  document.title = (track.title || "Track") + " · soundalike";
  const head = el("div", {class: "artist-head"},
    el("h1", {}, track.title || "(untitled)"),
    el("p", {class: "facts"}, "by ", el("a", {href: artistHref(track.artist)}, track.artist),
      track.album ? ` · ${track.album}` : "", track.year ? ` · ${track.year}` : "",
      track.genre ? ` · ${track.genre}` : "", track.duration_seconds ? ` · ${duration(track.duration_seconds)}` : ""),
    el("div", {class: "row"},
      el("button", {type: "button", onclick: () => playTrack(track)}, "Play"),
      el("button", {type: "button", class: "secondary", title: "Exactly the part that was embedded",
                    onclick: () => playTrack(track, {excerpt: true})}, "Play the embedded excerpt"),
      el("button", {type: "button", class: "secondary",
                    onclick: () => { addSeed({track_id: track.track_id, label: track.title || track.track_id}, "like"); location.hash = "#/radio"; }},
         "Radio from this track")));
  view.replaceChildren(head, loading("Finding tracks like this…"));
  try {
    const similar = await getJSON(base + "/similar" + query({limit: 20, max_per_artist: 3}));
    view.replaceChildren(head, section("Tracks like this",
      similar.results.length
        ? trackList(similar.results, {showScore: true, label: "Tracks like this"})
        : el("p", {class: "muted"}, "No other track in the catalogue yet.")));
  } catch (error) {
    view.replaceChildren(head, errorBox(error));
  }
}
