// The radio's seeds, kept for the tab (sessionStorage) so they survive navigation.

const STORAGE = "soundalike.seeds";
const listeners = [];

export function seeds() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE) || "null");
    if (stored && Array.isArray(stored.like) && Array.isArray(stored.unlike)) return stored;
  } catch {
    // an unreadable value: start again
  }
  return {like: [], unlike: []};
}

function save(value) {
  sessionStorage.setItem(STORAGE, JSON.stringify(value));
  for (const listener of listeners) listener(value);
}

export function onSeedsChange(listener) {
  listeners.push(listener);
}

function same(a, b) {
  return (a.track_id && a.track_id === b.track_id) || (a.artist && a.artist === b.artist);
}

// seed: {artist, label} or {track_id, label}; which: "like" | "unlike".
export function addSeed(seed, which) {
  const value = seeds();
  value.like = value.like.filter((s) => !same(s, seed));
  value.unlike = value.unlike.filter((s) => !same(s, seed));
  value[which].push(seed);
  value[which] = value[which].slice(-20);  // the API takes at most 20 of each
  save(value);
}

export function removeSeed(seed) {
  const value = seeds();
  value.like = value.like.filter((s) => !same(s, seed));
  value.unlike = value.unlike.filter((s) => !same(s, seed));
  save(value);
}

export function clearSeeds() {
  save({like: [], unlike: []});
}

export function asApiSeed(seed) {
  return seed.track_id ? {track_id: seed.track_id} : {artist: seed.artist};
}
