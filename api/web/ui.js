// Small DOM helpers: elements are built with properties and text nodes, never innerHTML, so
// names from the catalogue can never inject markup.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name in node && typeof value !== "string") {
      node[name] = value;
    } else {
      node.setAttribute(name, value === true ? "" : value);
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function score(value) {
  return typeof value === "number" ? value.toFixed(3) : "";
}

export function duration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "";
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

export function artistHref(name) {
  return "#/artist/" + encodeURIComponent(name);
}

export function trackHref(id) {
  return "#/track/" + encodeURIComponent(id);
}

export function trackLabel(track) {
  return track.title || "(untitled)";
}

// A readable sentence for any failure: the server's `detail`, or what went wrong on the way.
export function describe(error) {
  if (error && error.detail) return error.detail;
  if (error instanceof TypeError) return "The server cannot be reached (" + error.message + ").";
  return String((error && error.message) || error);
}

export function errorBox(error) {
  const box = el("p", {class: "error", role: "alert"}, describe(error));
  if (error && Array.isArray(error.suggestions) && error.suggestions.length) {
    box.append(" Did you mean: ");
    error.suggestions.forEach((name, i) => {
      if (i) box.append(", ");
      box.append(el("a", {href: artistHref(name), class: "suggestion"}, name));
    });
    box.append("?");
  }
  return box;
}

export function loading(text = "Loading…") {
  return el("p", {class: "loading", role: "status"}, text);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
