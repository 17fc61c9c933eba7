// The player: one <audio> element and a queue. A track plays from GET /tracks/{id}/audio;
// when ended, the next one in the queue starts (radio and paths play in sequence).
//
// <audio> cannot send headers. Without an API key the element streams the URL itself (byte
// ranges, so seeking works before the whole file arrived). With a key the audio is fetched
// with the header and played from a blob URL: the key never goes into a URL, where it would
// be logged.

import {apiKey, request} from "./api.js";
import {describe} from "./ui.js";

const audio = document.getElementById("audio");
const nowTitle = document.getElementById("now-title");
const nowArtist = document.getElementById("now-artist");
const lessButton = document.getElementById("less");

const state = {queue: [], index: -1, blobUrl: null, onNeedMore: null, onLess: null, loadId: 0};
const listeners = [];

export function onChange(listener) {
  listeners.push(listener);
}

function changed() {
  for (const listener of listeners) listener(current());
  lessButton.hidden = !state.onLess || !current();
}

export function current() {
  return state.queue[state.index] || null;
}

export function queue() {
  return state.queue.slice();
}

// Plays `tracks` from `index`. `options.onNeedMore(queue)` may return more tracks to append
// when the queue runs out (the radio); `options.onLess(track)` enables "Less like this".
export function playList(tracks, index = 0, options = {}) {
  state.queue = tracks.slice();
  state.onNeedMore = options.onNeedMore || null;
  state.onLess = options.onLess || null;
  return playAt(index, options.excerpt);
}

export function playTrack(track, options = {}) {
  return playList([track], 0, options);
}

export function replaceUpcoming(tracks) {
  state.queue = state.queue.slice(0, state.index + 1).concat(tracks);
  changed();
}

export async function next() {
  if (state.index + 1 >= state.queue.length && state.onNeedMore) {
    try {
      const more = await state.onNeedMore(state.queue.slice());
      if (more && more.length) state.queue = state.queue.concat(more);
    } catch (error) {
      showProblem(describe(error));
    }
  }
  if (state.index + 1 < state.queue.length) return playAt(state.index + 1);
  changed();
}

export function previous() {
  if (state.index > 0) return playAt(state.index - 1);
}

async function playAt(index, excerpt = false) {
  state.index = index;
  const track = current();
  if (!track) return;
  const loadId = ++state.loadId;
  nowTitle.textContent = track.title || "(untitled)";
  nowArtist.textContent = track.artist ? " — " + track.artist : "";
  nowTitle.title = excerpt ? "the embedded excerpt" : "";
  changed();
  const url = `/tracks/${encodeURIComponent(track.track_id)}/audio` + (excerpt ? "?excerpt=true" : "");
  if (state.blobUrl) {
    URL.revokeObjectURL(state.blobUrl);
    state.blobUrl = null;
  }
  try {
    if (apiKey()) {
      const response = await request(url);
      const blob = await response.blob();
      if (loadId !== state.loadId) return;  // another track was asked for meanwhile
      state.blobUrl = URL.createObjectURL(blob);
      audio.src = state.blobUrl;
    } else {
      audio.src = url;
    }
    audio.dataset.trackId = track.track_id;
    await audio.play();
  } catch (error) {
    if (error && error.name === "AbortError") return;  // replaced by a newer play()
    if (error && error.name === "NotAllowedError") {
      showProblem("The browser blocked playback: press play.");
    } else if (error && error.status !== undefined) {
      showProblem(describe(error));  // the server refused (ApiError)
    } else if (error instanceof TypeError) {
      showProblem(describe(error));  // the network
    }
    // Anything else is a media error: the element's "error" event reports it.
  }
}

audio.addEventListener("ended", () => next());
audio.addEventListener("error", async () => {
  // The element only says "failed": ask the server why (a 401, a moved file, ...).
  const track = current();
  if (!track || !audio.src || audio.src.startsWith("blob:")) {
    if (audio.src) showProblem("This track cannot be played in this browser.");
    return;
  }
  try {
    await request(`/tracks/${encodeURIComponent(track.track_id)}/audio`, {headers: {Range: "bytes=0-0"}});
    showProblem("This track cannot be played in this browser.");
  } catch (error) {
    showProblem(describe(error));
  }
});

document.getElementById("next").addEventListener("click", () => next());
document.getElementById("prev").addEventListener("click", () => previous());
lessButton.addEventListener("click", () => {
  const track = current();
  if (track && state.onLess) state.onLess(track);
});

let problemListener = () => {};
export function onProblem(listener) {
  problemListener = listener;
}

function showProblem(text) {
  problemListener(text);
}
