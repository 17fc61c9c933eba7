"""`soundalike playlist` and `soundalike mixes`: playlists written to the listener's Subsonic
server (mixes/), from seeds one names or from what the listener starred and played.

The server URL and its password work as for `soundalike ingest subsonic+http(s)://...`
(SOUNDALIKE_SUBSONIC_PASSWORD, or SOUNDALIKE_SUBSONIC_API_KEY); the catalogue must have been
ingested from that server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from soundalike.core.errors import InvalidRequest
from soundalike.mixes.plan import (
    DEFAULT_DISCOVERY,
    DEFAULT_MAX_PER_ARTIST,
    DEFAULT_MIX_SIZE,
    DEFAULT_MIXES,
    DEFAULT_PREFIX,
    MixOptions,
)

if TYPE_CHECKING:
    from soundalike.api.services import Services
    from soundalike.mixes.media_server import MediaServer

SERVER_HELP = "the Subsonic server, as for ingest: subsonic+http(s)://USER@HOST:PORT[/base]"


def add_commands(commands: Any, add_store_flags: Any, add_json_flag: Any) -> None:
    """Adds `playlist` and `mixes` to the CLI's subcommands."""
    playlist = commands.add_parser(
        "playlist", help="write a radio (or a sonic path) as a playlist on a Subsonic server"
    )
    playlist.add_argument("server", metavar="SUBSONIC_URL", help=SERVER_HELP)
    playlist.add_argument(
        "--like", action="append", default=[], help="a track id or artist (repeatable)"
    )
    playlist.add_argument("--unlike", action="append", default=[], help="likewise, to avoid")
    playlist.add_argument(
        "--path", nargs=2, metavar=("A", "B"), help="a sonic path from A to B instead of a radio"
    )
    playlist.add_argument("--name", required=True, help="the playlist's name on the server")
    playlist.add_argument("--limit", type=int, default=25, help="songs (path: steps)")
    playlist.add_argument(
        "--max-per-artist", type=int, default=2, dest="max_per_artist", help="0: no cap"
    )
    add_store_flags(playlist)
    add_json_flag(playlist)

    mixes = commands.add_parser(
        "mixes", help="sonic mixes from the listener's stars and plays, as server playlists"
    )
    mixes.add_argument("server", metavar="SUBSONIC_URL", help=SERVER_HELP)
    mixes.add_argument("--count", type=int, default=DEFAULT_MIXES, help="most mixes to write")
    mixes.add_argument("--size", type=int, default=DEFAULT_MIX_SIZE, help="songs per mix")
    mixes.add_argument("--prefix", default=DEFAULT_PREFIX, help="names: PREFIX 1..N")
    mixes.add_argument(
        "--max-per-artist", type=int, default=DEFAULT_MAX_PER_ARTIST, dest="max_per_artist"
    )
    mixes.add_argument(
        "--discovery",
        type=float,
        default=DEFAULT_DISCOVERY,
        help="share of each mix from artists the listener has not starred or played (0..1)",
    )
    mixes.add_argument("--dry-run", action="store_true", help="print the mixes, write nothing")
    add_store_flags(mixes)
    add_json_flag(mixes)


def cmd_playlist(args: argparse.Namespace) -> int:
    from soundalike.api.cli import EXIT_OK, Services, UsageError, emit, settings_from
    from soundalike.api.cli_radio import seed_of
    from soundalike.mixes.run import seed_playlist_songs, write_seed_playlist
    from soundalike.mixes.taste import ServerCatalogue

    if bool(args.path) == bool(args.like):
        raise UsageError("give --like SEED (repeatable) for a radio, or --path A B")
    if args.path and args.unlike:
        raise UsageError("--unlike applies to a radio (--like), not to --path")
    if args.max_per_artist < 0:
        raise UsageError("--max-per-artist must be >= 0 (0: no cap)")
    settings = settings_from(args)
    with Services(settings) as services, _media_server(services, args.server) as server:
        server.check()  # a wrong password fails before the store is read
        store = services.store()
        songs = seed_playlist_songs(
            store,
            ServerCatalogue(store, server.address),
            like=[seed_of(text) for text in args.like],
            unlike=[seed_of(text) for text in args.unlike],
            path=(seed_of(args.path[0]), seed_of(args.path[1])) if args.path else None,
            limit=args.limit,
            max_per_artist=args.max_per_artist or None,
        )
        written = write_seed_playlist(server, store, args.name, songs)
    if args.json:
        emit(written.to_dict())
    else:
        verb = "replaced" if written.replaced else "created"
        print(f"{verb} playlist {written.name!r} ({written.playlist_id}) on {server.display}:")
        for rank, song in enumerate(written.songs, 1):
            print(f"{rank:3d}. {song.track.artist} — {song.track.title or song.song_id}")
        if written.left_out:
            print(f"left out {len(written.left_out)} songs the server no longer knows")
    return EXIT_OK


def cmd_mixes(args: argparse.Namespace) -> int:
    from soundalike.api.cli import EXIT_OK, Services, UsageError, emit, settings_from
    from soundalike.mixes.run import run_mixes

    try:
        options = MixOptions(
            count=args.count,
            size=args.size,
            prefix=args.prefix,
            max_per_artist=args.max_per_artist,
            discovery=args.discovery,
        )
    except InvalidRequest as error:
        raise UsageError(error.message) from None
    settings = settings_from(args)
    with Services(settings) as services, _media_server(services, args.server) as server:
        server.check()
        report = run_mixes(server, services.store(), options, dry_run=args.dry_run)
    if args.json:
        emit({"mixes": report.mixes, "removed": report.removed, "failures": report.failures})
        return EXIT_OK
    what = "would write" if report.dry_run else "wrote"
    print(f"{what} {len(report.mixes)} mixes on {server.display}")
    for mix in report.mixes:
        seeds = ", ".join(seed["name"] for seed in mix["seeds"][:4])
        more = f" and {len(mix['seeds']) - 4} more" if len(mix["seeds"]) > 4 else ""
        print(f"\n{mix['name']} ({len(mix['songs'])} songs) — seeded by {seeds}{more}")
        for rank, song in enumerate(mix["songs"], 1):
            print(f"{rank:3d}. {song['artist']} — {song['title'] or song['id']}")
    for name in report.removed:
        print(f"removed {name!r}: no longer needed")
    for failure in report.failures:
        print(f"note: {failure}")
    return EXIT_OK


def _media_server(services: Services, url: str) -> MediaServer:
    from soundalike.api.cli import UsageError

    try:
        return services.media_server(url)
    except InvalidRequest as error:
        raise UsageError(error.message) from None
