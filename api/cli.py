"""The `soundalike` command line: one console script, subcommands (docs/contracts.md).

Exit codes: 0 success (bad files are reported, not fatal), 1 the job failed, 2 usage.
With `--json`, the last line of stdout is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from soundalike.api import cli_mixes, cli_radio
from soundalike.api.bench import add_bench_flags
from soundalike.api.cli_eval import cmd_eval
from soundalike.api.services import Services, open_patient_store_for
from soundalike.api.settings import Settings
from soundalike.core.errors import ArtistNotFound, InvalidRequest, SoundalikeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or settings: exit 2."""


# --- shared flag groups -------------------------------------------------------------------


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="hub id or local directory (default m-a-p/MERT-v1-95M)")
    parser.add_argument("--revision", help="hub revision of --model")
    parser.add_argument("--layer", type=int, help="transformer layer 0..12 (default 11)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="(default auto)")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="windows per forward")
    parser.add_argument("--excerpt", help="centre (default), start or windows:N")


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", help="embedded store folder")
    parser.add_argument("--qdrant-url", dest="qdrant_url", help="Qdrant server URL")
    parser.add_argument("--collection-prefix", dest="collection_prefix")


def _add_out_flag(parser: argparse.ArgumentParser, default: str, what: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help=f"{what} (./{default})")


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document on the last line")


# Where a catalogue folder's artist comes from (the library's own flag on `serve` too).
ARTIST_FROM = ["folders", "tags"]


def _add_artist_from_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artist-from", choices=ARTIST_FROM, default="folders")


def _add_workers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="decoding processes (default 2)")


def _add_server_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """`--server URL`: a running `soundalike serve` the command talks to instead of the store."""
    parser.add_argument("--server", metavar="URL", help=what)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundalike", description="Which artists sound like X? Audio similarity with MERT."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", help="embed a catalogue folder, manifest or Subsonic server into the store"
    )
    ingest.add_argument(
        "source",
        metavar="PATH",
        help="a folder (artist = first level), a .csv/.jsonl manifest, or a Subsonic server "
        "subsonic+http(s)://USER@HOST:PORT[/base] (password: SOUNDALIKE_SUBSONIC_PASSWORD)",
    )
    _add_artist_from_flag(ingest)
    _add_workers_flag(ingest)
    ingest.add_argument(
        "--force",
        action="store_true",
        help="re-embed stored tracks; rebuild the store if the spec differs",
    )
    ingest.add_argument("--shard", help="i/N: only artists whose key hashes to i of N")
    ingest.add_argument("--report", type=Path, help="append one JSON line per file to FILE")
    _add_server_flag(
        ingest, "hand the folder to the running `soundalike serve` at URL (its library scans it)"
    )
    ingest.add_argument(
        "--rebuild-centroids",
        action="store_true",
        help="recompute every artist centroid, not only those this run touched",
    )
    _add_model_flags(ingest)
    _add_store_flags(ingest)
    _add_json_flag(ingest)

    similar = commands.add_parser("similar", help="artists that sound like ARTIST")
    similar.add_argument("artist")
    similar.add_argument("--limit", type=int, default=10)
    similar.add_argument("--min-tracks", type=int, default=1, dest="min_tracks")
    _add_store_flags(similar)
    _add_json_flag(similar)

    embed = commands.add_parser("embed", help="print one audio file's vector")
    embed.add_argument("file", type=Path, help="an audio file in any format FFmpeg reads")
    _add_model_flags(embed)
    _add_json_flag(embed)

    artists = commands.add_parser("artists", help="list stored artists with track counts")
    artists.add_argument("--prefix", help="only names starting with this")
    artists.add_argument("--limit", type=int, default=1000)
    _add_store_flags(artists)
    _add_json_flag(artists)

    delete = commands.add_parser("delete", help="remove an artist, its tracks and its centroid")
    delete.add_argument("--artist", required=True)
    _add_store_flags(delete)
    _add_json_flag(delete)

    cli_radio.add_commands(commands, _add_store_flags, _add_json_flag)
    cli_mixes.add_commands(commands, _add_store_flags, _add_json_flag)

    neighbours = commands.add_parser(
        "neighbours",
        help="state of the precomputed 'artists like X' lists; --rebuild recomputes them",
    )
    neighbours.add_argument(
        "--rebuild",
        action="store_true",
        help="recompute every artist's list (after sharded ingests, which leave them stale)",
    )
    _add_store_flags(neighbours)
    _add_json_flag(neighbours)

    serve = commands.add_parser("serve", help="run the HTTP API with uvicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--http-workers",
        type=int,
        default=1,
        dest="http_workers",
        help="uvicorn worker processes (more than 1 needs a Qdrant server: --qdrant-url)",
    )
    serve.add_argument(
        "--library",
        action="append",
        metavar="DIR",
        help="a music folder to scan and keep in sync (repeatable; SOUNDALIKE_LIBRARY)",
    )
    serve.add_argument(
        "--artist-from",
        choices=ARTIST_FROM,
        dest="library_artist_from",
        help="artist of a library file: first folder level (default) or tags",
    )
    _add_model_flags(serve)
    _add_store_flags(serve)

    library = commands.add_parser("library", help="a running server's library")
    library_commands = library.add_subparsers(dest="library_command", required=True)
    library_status = library_commands.add_parser("status", help="print the library's state")
    _add_server_flag(library_status, "the server (default: the one owning the data dir)")
    library_status.add_argument("--data-dir", dest="data_dir", help="embedded store folder")
    _add_json_flag(library_status)

    demo = commands.add_parser("demo", help="generate a small catalogue, ingest it, show results")
    _add_out_flag(demo, "soundalike-demo", "folder for the catalogue and its store")
    demo.add_argument("--model", help="hub id or local directory (default m-a-p/MERT-v1-95M)")
    demo.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    _add_workers_flag(demo)

    evaluate = commands.add_parser(
        "eval", help="how well the vectors separate artists: metrics, layer sweep, chunking"
    )
    evaluate.add_argument(
        "path",
        type=Path,
        nargs="?",
        help="a folder or manifest to embed instead of the ingested catalogue",
    )
    _add_out_flag(evaluate, "soundalike-eval", "folder for report.md, report.json and the PNGs")
    evaluate.add_argument("--layers", help="11, all, or a list such as 0,3,11")
    evaluate.add_argument("--sample", type=int, help="tracks per artist to re-embed")
    evaluate.add_argument("--compare", help="chunked[:S], artist-model or precision")
    evaluate.add_argument("--reference", type=Path, help="external similar-artists CSV/JSON")
    evaluate.add_argument(
        "--centre",
        action="store_true",
        help="also measure after subtracting the catalogue mean vector",
    )
    evaluate.add_argument("--k", type=int, default=5, help="k of precision@k and overlap@k")
    _add_artist_from_flag(evaluate)
    _add_model_flags(evaluate)
    _add_store_flags(evaluate)
    _add_json_flag(evaluate)

    bench = commands.add_parser("bench", help="embedding throughput: soundalike vs the naive path")
    add_bench_flags(bench)
    _add_json_flag(bench)
    return parser


SETTINGS_FLAGS = (
    "model",
    "revision",
    "layer",
    "device",
    "precision",
    "batch_size",
    "excerpt",
    "workers",
    "data_dir",
    "qdrant_url",
    "collection_prefix",
    "host",
    "port",
    "library",
    "library_artist_from",
)


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment first, then the flags the user actually gave."""
    overrides = {
        name: getattr(args, name)
        for name in SETTINGS_FLAGS
        if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise UsageError(f"invalid settings: {problems}") from None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def emit(document: dict[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False))


# --- commands -----------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.server:
        return _ingest_via_server(args)
    from soundalike.ingest.autosize import auto_workers
    from soundalike.ingest.pipeline import IngestOptions, Shard, ingest
    from soundalike.ingest.sources import source_for

    settings = settings_from(args)
    try:
        source = source_for(
            args.source,
            artist_from=args.artist_from,
            subsonic_password=_secret(settings.subsonic_password),
            subsonic_api_key=_secret(settings.subsonic_api_key),
        )
        shard = Shard.parse(args.shard) if args.shard else None
    except InvalidRequest as error:
        raise UsageError(error.message) from None
    options = IngestOptions(
        workers=auto_workers(settings.workers, settings.device),
        force=args.force,
        shard=shard,
        rebuild_centroids=args.rebuild_centroids,
        filterable_columns=tuple(settings.filterable_columns),
    )
    # A remote source checks that it answers (and takes the credentials) before the model
    # loads: a wrong password fails in a second, not after minutes.
    source.check()
    with Services(settings, store_opener=open_patient_store_for) as services:
        # The summary, `--report` and the progress bars are sinks of the process's event
        # stream, subscribed for this run (the store's upkeep progress reaches the bar too).
        summary = ingest(
            source,
            store=services.store(),
            engine=services.engine(),
            options=options,
            events=services.events,
            origin="cli",
            report_path=args.report,
            progress=not args.json and sys.stderr.isatty(),
        )
    result = summary.to_dict()
    if args.json:
        emit(result)
    else:
        print(
            f"ingested {summary.ingested}, skipped {summary.skipped} (already stored), "
            f"failed {len(summary.failed)}, artists updated {summary.artists_updated} "
            f"in {summary.seconds:.1f} s"
        )
        for failure in summary.failed:
            print(f"  failed: {failure.path}: {failure.reason}")
    # A shard may own no artist of a small catalogue: nothing to do is its success (an indexed
    # Kubernetes Job would otherwise retry it and never start the lists' rebuild).
    empty_shard = shard is not None and not summary.failed
    nothing_usable = summary.ingested == 0 and summary.skipped == 0 and not empty_shard
    return EXIT_FAILED if nothing_usable else EXIT_OK


def _ingest_via_server(args: argparse.Namespace) -> int:
    """`ingest DIR --server URL`: the running server's library scans the folder instead."""
    from soundalike.ingest.library import client

    if not Path(args.source).is_dir():
        raise UsageError(f"{args.source}: --server hands over a folder, not a file or URL")
    settings = settings_from(args)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    state = client.hand_over(args.server, args.source, key)
    if args.json:
        emit(state)
    else:
        print(f"handed {os.path.abspath(args.source)} to {args.server}")
        print(client.describe(state))
    return EXIT_OK


def cmd_library(args: argparse.Namespace) -> int:
    from soundalike.ingest.library import client
    from soundalike.search.edge_store import read_owner_note

    settings = settings_from(args)
    url = args.server
    if url is None:
        lock_name = f"{settings.collection_prefix}soundalike.lock"
        note = read_owner_note(settings.data_dir.absolute(), lock_name)
        url = note["url"] if note else f"http://{settings.host}:{settings.port}"
    key = settings.api_key.get_secret_value() if settings.api_key else None
    state = client.status(url, key)
    if args.json:
        emit(state)
    else:
        print(client.describe(state))
    return EXIT_OK


def cmd_similar(args: argparse.Namespace) -> int:
    from soundalike.search.queries import artists_like

    if not 1 <= args.limit <= 100:
        raise UsageError("--limit must be between 1 and 100")
    with Services(settings_from(args)) as services:
        answer = artists_like(
            services.store(), args.artist, limit=args.limit, min_tracks=args.min_tracks
        )
    document: dict[str, Any] = {
        "artist": answer.artist.name,
        "results": [
            {
                "artist": hit.artist.name,
                "score": round(hit.score, 6),
                "track_count": hit.artist.track_count,
            }
            for hit in (result.hit for result in answer.results)
        ],
    }
    if args.json:
        emit(document)
    else:
        print(f"artists like {document['artist']}:")
        for rank, row in enumerate(document["results"], 1):
            print(
                f"{rank:3d}. {row['artist']:<40} {row['score']:.3f}  ({row['track_count']} tracks)"
            )
        if not document["results"]:
            print("  (no other artists in the store yet)")
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"{args.file} is not a file")
    with Services(settings_from(args)) as services:
        engine = services.engine()
        vector, _audio = engine.embed_file(args.file)
    document = {
        "vector": [float(x) for x in vector],
        "dim": int(vector.shape[0]),
        "spec": engine.spec.to_dict(),
    }
    if args.json:
        emit(document)
    else:
        head = ", ".join(f"{x:+.4f}" for x in vector[:8])
        print(f"{args.file}: {document['dim']}-d unit vector [{head}, …]")
        print(f"spec: {json.dumps(document['spec'])}")
    return EXIT_OK


def cmd_artists(args: argparse.Namespace) -> int:
    with Services(settings_from(args)) as services:
        artists, total = services.store().list_artists(
            prefix=args.prefix, limit=args.limit, offset=0
        )
    document = {"artists": [{"artist": a.name, "track_count": a.track_count} for a in artists]}
    if args.json:
        emit(document)
    else:
        for artist in artists:
            print(f"{artist.name:<40} {artist.track_count:5d} tracks")
        print(f"{total} artists" + (f" (showing {len(artists)})" if total > len(artists) else ""))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from soundalike.search.queries import resolve_artist

    with Services(settings_from(args)) as services:
        store = services.store()
        artist = resolve_artist(store, args.artist)
        removed = store.delete_artist(artist.artist_key)
        store.flush()
        # The lists that held the artist are recomputed (an incremental update).
        store.update_neighbour_lists({artist.artist_key})
    if args.json:
        emit({"artist": artist.name, "tracks_deleted": removed})
    else:
        print(f"deleted {artist.name}: {removed} tracks and its centroid")
    return EXIT_OK


def cmd_neighbours(args: argparse.Namespace) -> int:
    with Services(settings_from(args)) as services:
        store = services.store()
        document: dict[str, Any] = {}
        if args.rebuild:
            from soundalike.ingest.pipeline import listening

            # The bar is drawn from the store's UpkeepProgress events on the services' stream.
            shown = not args.json and sys.stderr.isatty()
            with listening(services.events, progress=shown):
                done = store.rebuild_neighbour_lists()
            # Every artist point was rewritten, and so left the vector index: the live search
            # (filters, lookups off) would scan every centroid until it is rebuilt.
            store.optimize()
            document["rebuilt"] = {"artists": done.artists, "seconds": round(done.seconds, 3)}
        version = store.neighbour_lists_version()
        exact = store.neighbour_lists_exact()
    document["valid"] = version is not None
    document["catalogue_version"] = version
    document["exact"] = exact if version is not None else None
    if args.json:
        emit(document)
    elif version is None:
        print("no valid neighbour lists: 'artists like X' uses the live search (--rebuild)")
    elif exact:
        print(f"neighbour lists are exact for catalogue version {version}")
    else:
        print(
            f"neighbour lists are approximate (a rebuild above "
            f"SOUNDALIKE_APPROXIMATE_NEIGHBOURS_ABOVE artists) for catalogue version {version}"
        )
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from soundalike.api.main import create_app

    settings = settings_from(args)
    if args.http_workers < 1:
        raise UsageError("--http-workers must be >= 1")
    if settings.library and args.http_workers > 1:
        raise UsageError("a library is followed by one process: --library needs --http-workers 1")
    if settings.mixes_url and args.http_workers > 1:
        # Each worker would refresh the same playlists at the same time.
        raise UsageError(
            "the mixes are kept by one process: SOUNDALIKE_MIXES_URL needs --http-workers 1 "
            "(with several replicas, run `soundalike mixes URL` on a schedule instead)"
        )
    # The JSON access log is soundalike's own (api/errors.py): uvicorn's is off.
    server: dict[str, Any] = {  # uvicorn.run's keywords, of several types
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
    }
    if args.http_workers == 1:
        uvicorn.run(create_app(settings), **server)
        return EXIT_OK
    if settings.qdrant_url is None:
        raise UsageError(
            "an embedded store belongs to one process: --http-workers above 1 needs a Qdrant "
            "server (--qdrant-url or SOUNDALIKE_QDRANT_URL)"
        )
    # Each worker process builds its own app from the environment: hand it the flags given.
    for name in SETTINGS_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"SOUNDALIKE_{name.upper()}"] = str(value)
    uvicorn.run("soundalike.api.main:create_app", factory=True, workers=args.http_workers, **server)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from soundalike.ingest.autosize import auto_workers
    from soundalike.ingest.demo import run_demo

    args.data_dir = str(args.out / "data")
    settings = settings_from(args)
    print(f"soundalike demo: model {settings.model}, store {settings.data_dir}", file=sys.stderr)
    with Services(settings) as services:
        result = run_demo(
            args.out,
            store=services.store(),
            engine=services.engine(),
            workers=auto_workers(settings.workers, settings.device),
            progress=sys.stderr.isatty(),
        )
    summary = result.summary
    print(
        f"catalogue: {result.catalogue_dir} ({summary.ingested} tracks embedded, "
        f"{summary.skipped} already stored, {len(summary.failed)} failed)"
    )
    print()
    for answer in result.neighbours:
        print(f"artists like {answer.artist.name}:")
        for rank, item in enumerate(answer.results, 1):
            print(f"  {rank}. {item.hit.artist.name:<28} {item.hit.score:.3f}")
    print()
    width = max(len(name) for name in result.artist_names)
    print("artist similarity (cosine of centroids):")
    print(" " * (width + 3) + "".join(f"{i + 1:>7}" for i in range(len(result.artist_names))))
    for index, (name, row) in enumerate(zip(result.artist_names, result.matrix, strict=True), 1):
        print(f"{index}. {name:<{width}}" + "".join(f"{value:7.3f}" for value in row))
    print()
    print("next: serve it over HTTP and open the API docs:")
    print(
        f"  soundalike serve --data-dir {settings.data_dir}"
        + (f" --model {settings.model}" if args.model else "")
    )
    print(f"  then http://{settings.host}:{settings.port}/docs")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from soundalike.api.bench import format_report, run_from_args

    if args.clips < 1:
        raise UsageError("--clips must be >= 1")
    result = run_from_args(args)
    if args.json:
        emit(result)
    else:
        print(format_report(result))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest,
    "similar": cmd_similar,
    "embed": cmd_embed,
    "artists": cmd_artists,
    "delete": cmd_delete,
    "neighbours": cmd_neighbours,
    "path": cli_radio.cmd_path,
    "radio": cli_radio.cmd_radio,
    "playlist": cli_mixes.cmd_playlist,
    "mixes": cli_mixes.cmd_mixes,
    "serve": cmd_serve,
    "library": cmd_library,
    "bench": cmd_bench,
    "demo": cmd_demo,
    "eval": cmd_eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_mode = getattr(args, "json", False)
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        return _fail(f"usage: {error}", EXIT_USAGE, json_mode)
    except ArtistNotFound as error:
        return _fail(error.message, EXIT_FAILED, json_mode, suggestions=error.suggestions)
    except SoundalikeError as error:
        return _fail(error.message, EXIT_FAILED, json_mode)
    except KeyboardInterrupt:
        print(
            "interrupted: what was reported as ingested is stored; rerun to resume", file=sys.stderr
        )
        return 130


def _fail(message: str, code: int, json_mode: bool, **extra: Any) -> int:
    print(f"soundalike: {message}", file=sys.stderr)
    if json_mode:
        emit({"error": message, **extra})
    return code


if __name__ == "__main__":
    sys.exit(main())
