// Pieces several views share: a list of playable tracks, artist links, seed buttons.

import {playList} from "./player.js";
import {addSeed} from "./seeds.js";
import {artistHref, duration, el, score, trackHref, trackLabel} from "./ui.js";

// A list of tracks; each can be played (the rest of the list follows it), opened ("tracks
// like this") and used as a radio seed.
export function trackList(tracks, {showArtist = true, showScore = false, label = "Tracks",
                                   extra = null, playOptions = {}} = {}) {
  const list = el("ol", {class: "tracks", "aria-label": label});
  tracks.forEach((track, index) => {
    const name = trackLabel(track);
    list.append(el("li", {class: "track", dataset: {trackId: track.track_id}},
      el("button", {type: "button", class: "play", "aria-label": "Play " + name, title: "Play",
                    onclick: () => playList(tracks, index, playOptions)}, "▶"),
      el("span", {class: "track-main"},
        el("a", {href: trackHref(track.track_id), class: "track-title",
                 title: "Tracks like this"}, name),
        showArtist ? el("a", {href: artistHref(track.artist), class: "track-artist"},
                        track.artist) : null,
        track.album && !showArtist ? el("span", {class: "muted"}, track.album) : null),
      showScore ? el("span", {class: "score", title: "similarity"}, score(track.score)) : null,
      extra ? extra(track, index) : null,
      el("span", {class: "muted duration"}, duration(track.duration_seconds)),
      el("button", {type: "button", class: "seed", title: "Add to radio seeds",
                    "aria-label": "Radio seed: " + name,
                    onclick: () => addSeed({track_id: track.track_id, label: name}, "like")},
         "+ radio")));
  });
  return list;
}

export function section(title, ...children) {
  return el("section", {class: "panel"}, el("h2", {}, title), ...children);
}
