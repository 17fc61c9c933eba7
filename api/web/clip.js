// Clip search (#/clip): drop or choose a file, or record from the microphone, and see the
// tracks and artists it sounds like (POST /search/audio).

import {request} from "./api.js";
import {section, trackList} from "./components.js";
import {artistHref, el, errorBox, loading, score} from "./ui.js";

let recorder = null;

export function clipView(view) {
  const results = el("div", {id: "clip-results", "aria-live": "polite"});
  const file = el("input", {id: "clip-file", type: "file", accept: "audio/*,video/*",
                            class: "visually-hidden"});
  const drop = el("label", {for: "clip-file", class: "drop", tabindex: "-1"},
    el("strong", {}, "Drop an audio file here"), el("span", {}, " or click to choose one"));
  const record = el("button", {id: "record", type: "button"}, "● Record from the microphone");
  const status = el("span", {class: "muted", role: "status"});

  const search = async (blob, name) => {
    results.replaceChildren(loading(`Listening to ${name}…`));
    const form = new FormData();
    form.append("file", blob, name);
    try {
      const body = await (await request("/search/audio?limit=10", {method: "POST", body: form})).json();
      results.replaceChildren(
        section("Artists it sounds like", el("ol", {class: "artists", "aria-label": "Matching artists"},
          body.artists.map((a) => el("li", {},
            el("a", {href: artistHref(a.artist), class: "artist-link"}, a.artist),
            el("span", {class: "score"}, " " + score(a.score)),
            el("span", {class: "muted"}, ` ${a.track_count} tracks`))))),
        section("Tracks it sounds like", trackList(body.tracks, {showScore: true, label: "Matching tracks"})));
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  };

  file.addEventListener("change", () => {
    if (file.files[0]) search(file.files[0], file.files[0].name);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const dropped = event.dataTransfer && event.dataTransfer.files[0];
    if (dropped) search(dropped, dropped.name);
  });
  record.addEventListener("click", async () => {
    if (recorder && recorder.state === "recording") {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      status.textContent = "This browser cannot record audio here (it needs HTTPS or localhost).";
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: true});
    } catch (error) {
      status.textContent = "No microphone: " + error.message;
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((track) => track.stop());
      record.textContent = "● Record from the microphone";
      status.textContent = "";
      const type = recorder.mimeType || "audio/webm";
      search(new Blob(chunks, {type}), "recording." + (type.includes("ogg") ? "ogg" : "webm"));
    });
    recorder.start();
    record.textContent = "■ Stop and search";
    status.textContent = "Recording… play the music near the microphone for 10 seconds or more.";
  });

  view.replaceChildren(
    el("h1", {}, "What does this sound like?"),
    el("p", {class: "muted"}, "A few seconds are enough; the clip is embedded like the catalogue was."),
    file, drop, el("div", {class: "row"}, record, status), results);
}
