// The catalogue map (#/map): every artist at its 2-D position from GET /map, drawn on a
// canvas (smooth at 10k artists: one path per colour, redrawn only when something changed).
// Drag to pan, wheel or pinch (or the +/− buttons, or the keyboard) to zoom, hover for names,
// click to open an artist, and "Locate" to fly to one.

import {getJSON} from "./api.js";
import {artistHref, el, errorBox, loading} from "./ui.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939", "#e7969c", "#3182bd"];
const OTHER = "#9aa0a6";
const HIT_PIXELS = 10;
const GRID = 64;

export async function mapView(view) {
  view.replaceChildren(el("h1", {}, "Map"), loading("Drawing the catalogue…"));
  let data;
  try {
    data = await getJSON("/map");
  } catch (error) {
    view.replaceChildren(el("h1", {}, "Map"), errorBox(error));
    return;
  }
  const artists = data.artists;
  const colours = genreColours(artists);
  const canvas = el("canvas", {id: "map-canvas", tabindex: "0", "aria-label":
    `Map of ${artists.length} artists; arrow keys pan, + and − zoom, Enter opens the highlighted artist`});
  const tooltip = el("div", {class: "map-tooltip", role: "status", hidden: true});
  const locateInput = el("input", {id: "locate", type: "search", placeholder: "Find an artist",
    "aria-label": "Find an artist on the map", list: "map-names"});
  const names = el("datalist", {id: "map-names"}, artists.slice(0, 5000).map((a) => el("option", {value: a.artist})));
  const locateMessage = el("span", {class: "muted", role: "status"});
  const legend = el("ul", {class: "legend", "aria-label": "Genres"},
    [...colours.legend].map(([genre, colour]) => el("li", {}, swatch(colour), genre)));
  const zoomIn = el("button", {type: "button", "aria-label": "Zoom in"}, "+");
  const zoomOut = el("button", {type: "button", "aria-label": "Zoom out"}, "−");
  const reset = el("button", {type: "button", class: "secondary"}, "Whole map");
  const frame = el("div", {class: "map-frame"}, canvas, tooltip);
  view.replaceChildren(
    el("div", {class: "map-head"},
      el("h1", {}, "Map"),
      el("p", {class: "muted"}, `${artists.length} artists, placed by sound (${data.projection.toUpperCase()} of their centroids); colour = genre.`),
      el("form", {class: "row", onsubmit: (event) => { event.preventDefault(); locate(locateInput.value); }},
        locateInput, names, el("button", {}, "Locate"), zoomOut, zoomIn, reset, locateMessage)),
    frame, legend);
  if (!artists.length) {
    frame.replaceChildren(el("p", {class: "muted"}, "Nothing ingested yet."));
    return;
  }

  const grid = buildGrid(artists);
  const camera = {x: 0, y: 0, zoom: 1};
  let highlighted = -1;
  let hovered = -1;
  let dirty = true;
  let size = {w: 0, h: 0, base: 1};
  let observer = null;

  function resize() {
    if (!frame.isConnected && observer) {
      observer.disconnect();  // the view was left
      return;
    }
    const rect = frame.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(200, rect.width);
    const h = Math.max(240, Math.min(window.innerHeight * 0.7, w * 0.8));
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    size = {w, h, base: Math.min(w, h) / 2 * 0.92, ratio};
    redraw();
  }

  const toScreen = (a) => [
    (a.x - camera.x) * camera.zoom * size.base + size.w / 2,
    (camera.y - a.y) * camera.zoom * size.base + size.h / 2,
  ];
  const toData = (px, py) => [
    (px - size.w / 2) / (camera.zoom * size.base) + camera.x,
    camera.y - (py - size.h / 2) / (camera.zoom * size.base),
  ];

  function redraw() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(draw);
  }

  function draw() {
    dirty = false;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(size.ratio, 0, 0, size.ratio, 0, 0);
    ctx.clearRect(0, 0, size.w, size.h);
    const radius = Math.min(2 + Math.sqrt(camera.zoom), 7);
    const byColour = new Map();
    let drawn = 0;
    const visible = [];
    artists.forEach((a, i) => {
      const [px, py] = toScreen(a);
      if (px < -10 || py < -10 || px > size.w + 10 || py > size.h + 10) return;
      drawn++;
      visible.push(i);
      const colour = colours.of(a);
      if (!byColour.has(colour)) byColour.set(colour, []);
      byColour.get(colour).push(px, py);
    });
    for (const [colour, xy] of byColour) {
      ctx.fillStyle = colour;
      ctx.beginPath();
      for (let k = 0; k < xy.length; k += 2) {
        ctx.moveTo(xy[k] + radius, xy[k + 1]);
        ctx.arc(xy[k], xy[k + 1], radius, 0, Math.PI * 2);
      }
      ctx.fill();
    }
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#222";
    if (visible.length <= 120) {
      for (const i of visible) {
        const [px, py] = toScreen(artists[i]);
        ctx.fillText(artists[i].artist, px + radius + 2, py + 4);
      }
    }
    for (const [index, colour] of [[hovered, "#000"], [highlighted, "#d00"]]) {
      if (index < 0) continue;
      const [px, py] = toScreen(artists[index]);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(px, py, radius + 5, 0, Math.PI * 2);
      ctx.stroke();
      ctx.fillStyle = colour;
      ctx.fillText(artists[index].artist, px + radius + 7, py - radius - 4);
    }
    canvas.dataset.drawn = String(drawn);
  }

  function nearest(px, py) {
    const [x, y] = toData(px, py);
    const reach = HIT_PIXELS / (camera.zoom * size.base);
    let best = -1;
    let bestDistance = Infinity;
    for (const i of grid.near(x, y, reach)) {
      const [ax, ay] = toScreen(artists[i]);
      const distance = Math.hypot(ax - px, ay - py);
      if (distance <= HIT_PIXELS && distance < bestDistance) {
        best = i;
        bestDistance = distance;
      }
    }
    return best;
  }

  function zoomAt(factor, px = size.w / 2, py = size.h / 2) {
    const [x, y] = toData(px, py);
    camera.zoom = Math.min(Math.max(camera.zoom * factor, 0.5), 4000);
    const [nx, ny] = toData(px, py);
    camera.x += x - nx;
    camera.y += y - ny;
    redraw();
  }

  function showTooltip(index, px, py) {
    if (index < 0) {
      tooltip.hidden = true;
      return;
    }
    const a = artists[index];
    tooltip.textContent = `${a.artist} · ${a.track_count} tracks${a.genre ? " · " + a.genre : ""}`;
    tooltip.style.left = Math.min(px + 12, size.w - 160) + "px";
    tooltip.style.top = Math.max(py - 30, 0) + "px";
    tooltip.hidden = false;
  }

  function locate(text) {
    const wanted = fold(text);
    if (!wanted) return;
    let index = artists.findIndex((a) => fold(a.artist) === wanted);
    if (index < 0) index = artists.findIndex((a) => fold(a.artist).startsWith(wanted));
    if (index < 0) index = artists.findIndex((a) => fold(a.artist).includes(wanted));
    if (index < 0) {
      locateMessage.textContent = `No artist called “${text}” on the map.`;
      return;
    }
    locateMessage.textContent = `${artists[index].artist}: at the centre, ringed in red.`;
    highlighted = index;
    camera.x = artists[index].x;
    camera.y = artists[index].y;
    camera.zoom = Math.max(camera.zoom, 8);
    redraw();
    canvas.focus();
  }

  // Pointer input: one pointer drags (or clicks), two pinch.
  const pointers = new Map();
  let dragged = false;
  let pinch = null;
  let downAt = null;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, {x: event.offsetX, y: event.offsetY});
    dragged = false;
    downAt = {x: event.offsetX, y: event.offsetY};
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = Math.hypot(a.x - b.x, a.y - b.y);
    }
  });
  canvas.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) {
      hovered = nearest(event.offsetX, event.offsetY);
      canvas.style.cursor = hovered >= 0 ? "pointer" : "grab";
      showTooltip(hovered, event.offsetX, event.offsetY);
      redraw();
      return;
    }
    if (pointers.size === 1 && !dragged && downAt &&
        Math.hypot(event.offsetX - downAt.x, event.offsetY - downAt.y) < 4) {
      return;  // still a click, not a drag
    }
    const dx = event.offsetX - last.x;
    const dy = event.offsetY - last.y;
    pointers.set(event.pointerId, {x: event.offsetX, y: event.offsetY});
    if (pointers.size === 2 && pinch) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      zoomAt(distance / pinch, (a.x + b.x) / 2, (a.y + b.y) / 2);
      pinch = distance;
      dragged = true;
      return;
    }
    if (Math.abs(dx) + Math.abs(dy) > 0) {
      dragged = true;
      camera.x -= dx / (camera.zoom * size.base);
      camera.y += dy / (camera.zoom * size.base);
      tooltip.hidden = true;
      redraw();
    }
  });
  const release = (event) => {
    const wasDrag = dragged || pointers.size > 1;
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
    if (event.type === "pointerup" && !wasDrag) {
      const index = nearest(event.offsetX, event.offsetY);
      if (index >= 0) location.hash = artistHref(artists[index].artist);
    }
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("pointerleave", () => { tooltip.hidden = true; hovered = -1; redraw(); });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomAt(Math.exp(-event.deltaY * 0.0015), event.offsetX, event.offsetY);
  }, {passive: false});
  canvas.addEventListener("keydown", (event) => {
    const step = 40 / (camera.zoom * size.base);
    const moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step]};
    if (moves[event.key]) {
      camera.x += moves[event.key][0];
      camera.y += moves[event.key][1];
      redraw();
    } else if (event.key === "+" || event.key === "=") {
      zoomAt(1.5);
    } else if (event.key === "-") {
      zoomAt(1 / 1.5);
    } else if (event.key === "Enter" && highlighted >= 0) {
      location.hash = artistHref(artists[highlighted].artist);
    } else {
      return;
    }
    event.preventDefault();
  });
  zoomIn.addEventListener("click", () => zoomAt(1.5));
  zoomOut.addEventListener("click", () => zoomAt(1 / 1.5));
  reset.addEventListener("click", () => {
    Object.assign(camera, {x: 0, y: 0, zoom: 1});
    highlighted = -1;
    redraw();
  });
  observer = new ResizeObserver(() => resize());
  observer.observe(frame);
  dirty = false;
  resize();
}

function swatch(colour) {
  const node = el("span", {class: "swatch", "aria-hidden": "true"});
  node.style.background = colour;
  return node;
}

function fold(text) {
  return String(text).normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/\s+/g, " ").trim();
}

// The most common genres get a colour each; the rest share one.
function genreColours(artists) {
  const counts = new Map();
  for (const a of artists) if (a.genre) counts.set(a.genre, (counts.get(a.genre) || 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const legend = new Map(ranked.map(([genre], i) => [genre, PALETTE[i]]));
  if (artists.some((a) => !a.genre || !legend.has(a.genre))) legend.set("other / none", OTHER);
  return {legend, of: (a) => (a.genre && legend.has(a.genre) ? legend.get(a.genre) : OTHER)};
}

// A uniform grid over -1..1 so that hover and click look at a few artists, not all of them.
function buildGrid(artists) {
  const cells = new Map();
  const cell = (v) => Math.max(0, Math.min(GRID - 1, Math.floor((v + 1) / 2 * GRID)));
  artists.forEach((a, i) => {
    const key = cell(a.x) * GRID + cell(a.y);
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push(i);
  });
  return {
    * near(x, y, reach) {
      const [x0, x1, y0, y1] = [cell(x - reach), cell(x + reach), cell(y - reach), cell(y + reach)];
      for (let cx = x0; cx <= x1; cx++) {
        for (let cy = y0; cy <= y1; cy++) yield* (cells.get(cx * GRID + cy) || []);
      }
    },
  };
}
