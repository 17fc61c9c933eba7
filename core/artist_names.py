"""Artist names: the matching key and close-name suggestions.

Artists match case-, accent- and whitespace-insensitively: "Éclair  Ensemble" and
"eclair ensemble" are one artist. The key is what the store indexes and sorts by; the
display name is kept beside it.
"""

from __future__ import annotations

import unicodedata

from rapidfuzz import fuzz, process

from soundalike.core.errors import InvalidRequest

# WRatio below ~70 starts suggesting names that only share a syllable ("zz top" -> "abba").
SUGGESTION_CUTOFF = 70.0


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # casefold can emit characters that decompose again (rare ligatures), so fold twice.
    folded = unicodedata.normalize("NFKD", stripped.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(folded.split())


def artist_key(name: str) -> str:
    """The case-, accent- and whitespace-insensitive key of an artist name.

    InvalidRequest when nothing is left of the name once folded."""
    key = _fold(name)
    if not key:
        raise InvalidRequest(
            f"artist name {name!r} is empty once case, accents and spaces are removed"
        )
    return key


def key_prefix(text: str) -> str:
    """Folds a typed prefix the way `artist_key` folds names; empty text gives ""."""
    return _fold(text)


def suggest(name: str, candidates: dict[str, str], limit: int = 5) -> list[str]:
    """Display names of the candidates (key -> display name) closest to `name`, best first."""
    if limit <= 0 or not candidates:
        return []
    query = _fold(name)
    if not query:
        return []
    matches = process.extract(
        query,
        list(candidates),
        scorer=fuzz.WRatio,
        limit=limit,
        score_cutoff=SUGGESTION_CUTOFF,
    )
    # Equal scores keep a stable, readable order: closer in length first, then alphabetical.
    matches.sort(key=lambda m: (-m[1], abs(len(m[0]) - len(query)), m[0]))
    return [candidates[key] for key, _score, _index in matches]
