// Every call to the JSON API goes through here: the API key (kept in sessionStorage, for this
// tab only) is sent as `Authorization: Bearer`, and failures become ApiError with the
// server's `detail` sentence.

const KEY_STORAGE = "soundalike.key";
const unauthorizedListeners = [];

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && typeof body.detail === "string")
      ? body.detail : `The server answered ${status}.`;
    super(detail);
    this.status = status;
    this.detail = detail;
    this.suggestions = (body && body.suggestions) || [];
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = apiKey();
  return key ? {"Authorization": "Bearer " + key} : {};
}

export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

export async function request(path, {method = "GET", json, body, headers = {}, signal} = {}) {
  const options = {method, headers: {...authHeaders(), ...headers}, signal};
  if (json !== undefined) {
    options.body = JSON.stringify(json);
    options.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    options.body = body;
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    const error = new ApiError(401, await parse(response));
    for (const listener of unauthorizedListeners) listener(error);
    throw error;
  }
  if (!response.ok) throw new ApiError(response.status, await parse(response));
  return response;
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

export async function postJSON(path, json) {
  return (await request(path, {method: "POST", json})).json();
}

async function parse(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.append(name, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}
