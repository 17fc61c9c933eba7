"""`soundalike path A B` and `soundalike radio --like … --unlike …`: the sonic path and radio
of the HTTP API (POST /paths, POST /radio) from the command line.

A seed is a track id (a UUID, as /artists/{artist} lists them) or an artist name."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from soundalike.search.radio import MAX_RADIO_LIMIT, Seed, radio
from soundalike.search.sonic_paths import MAX_STEPS, path_from_seeds


def seed_of(text: str) -> Seed:
    """A track id when `text` is a UUID, else an artist name."""
    try:
        return Seed(track_id=str(uuid.UUID(text)))
    except ValueError:
        return Seed(artist=text)


def add_commands(commands: Any, add_store_flags: Any, add_json_flag: Any) -> None:
    """Adds `path` and `radio` to the CLI's subcommands."""
    path = commands.add_parser("path", help="a smooth path of tracks from A to B")
    path.add_argument("start", help="a track id or an artist name")
    path.add_argument("end", help="a track id or an artist name")
    path.add_argument("--steps", type=int, default=10, help="tracks, both ends counted")
    path.add_argument("--max-per-artist", type=int, dest="max_per_artist")
    add_store_flags(path)
    add_json_flag(path)

    station = commands.add_parser("radio", help="tracks like --like seeds, unlike --unlike ones")
    station.add_argument(
        "--like", action="append", required=True, help="a track id or artist (repeatable)"
    )
    station.add_argument("--unlike", action="append", default=[], help="likewise, to avoid")
    station.add_argument("--limit", type=int, default=20)
    station.add_argument(
        "--max-per-artist", type=int, default=2, dest="max_per_artist", help="0: no cap"
    )
    station.add_argument("--exclude", action="append", default=[], help="a track id to skip")
    add_store_flags(station)
    add_json_flag(station)


def _row(track: Any) -> dict[str, Any]:
    return {"track_id": track.track_id, "artist": track.artist, "title": track.title}


def cmd_path(args: argparse.Namespace) -> int:
    from soundalike.api.cli import EXIT_OK, Services, UsageError, emit, settings_from

    if not 2 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be between 2 and {MAX_STEPS}")
    with Services(settings_from(args)) as services:
        found = path_from_seeds(
            services.store(),
            seed_of(args.start),
            seed_of(args.end),
            steps=args.steps,
            max_per_artist=args.max_per_artist,
        )
    document: dict[str, Any] = {
        "tracks": [
            {
                **_row(step.track),
                "hop_score": round(step.hop_score, 6) if step.hop_score is not None else None,
            }
            for step in found.steps
        ],
        "total_distance": round(found.total_distance, 6),
    }
    if args.json:
        emit(document)
    else:
        for rank, row in enumerate(document["tracks"], 1):
            hop = "" if row["hop_score"] is None else f"  (hop {row['hop_score']:.3f})"
            print(f"{rank:3d}. {row['artist']} — {row['title'] or row['track_id']}{hop}")
        print(f"total distance {document['total_distance']:.3f}")
    return EXIT_OK


def cmd_radio(args: argparse.Namespace) -> int:
    from soundalike.api.cli import EXIT_OK, Services, UsageError, emit, settings_from

    if not 1 <= args.limit <= MAX_RADIO_LIMIT:
        raise UsageError(f"--limit must be between 1 and {MAX_RADIO_LIMIT}")
    if args.max_per_artist < 0:
        raise UsageError("--max-per-artist must be >= 0 (0: no cap)")
    with Services(settings_from(args)) as services:
        hits = radio(
            services.store(),
            [seed_of(text) for text in args.like],
            [seed_of(text) for text in args.unlike],
            limit=args.limit,
            max_per_artist=args.max_per_artist or None,
            exclude_track_ids=args.exclude,
        )
    document = {"tracks": [{**_row(h.track), "score": round(h.score, 6)} for h in hits]}
    if args.json:
        emit(document)
    else:
        for rank, row in enumerate(document["tracks"], 1):
            name = row["title"] or row["track_id"]
            print(f"{rank:3d}. {row['artist']} — {name}  {row['score']:.3f}")
    return EXIT_OK
