"""Ingest from a real Subsonic server (Supysonic on loopback, tests/supysonic_server.py).

Supysonic speaks API 1.12: no token authentication, so these runs take the `p=enc:` path after
the token probe. The token and apiKey paths are in test_subsonic_auth.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from supysonic_server import SupysonicFactory, SupysonicServer

from soundalike.api.cli import main
from soundalike.core.artist_names import artist_key
from soundalike.core.errors import InvalidRequest
from soundalike.core.types import Track
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.ingest.pipeline import IngestOptions, IngestSummary, ingest
from soundalike.ingest.sources import SubsonicSource, source_for
from soundalike.ingest.sources.subsonic import (
    PARALLEL_DOWNLOADS,
    SubsonicNotFound,
    SubsonicUnavailable,
    stream_for_track,
)
from soundalike.ingest.sources.subsonic_excerpt import parse_wav_header
from soundalike.search.centroids import artist_centroid
from soundalike.search.store import Store, open_store


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the API methods sent (and optionally acting before one)."""

    def __init__(self, before: Callable[[str, Counter[str]], None] | None = None) -> None:
        super().__init__()
        self.methods: Counter[str] = Counter()
        self.before = before
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1].removesuffix(".view")
        with self._lock:
            self.methods[method] += 1
            if self.before is not None:
                self.before(method, self.methods)
        return super().handle_request(request)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(data_dir=tmp_path / "data")
    yield opened
    opened.close()


def source_of(
    server: SupysonicServer,
    transport: httpx.BaseTransport | None = None,
    password: str | None = None,
) -> SubsonicSource:
    # Fast retries: a server that is down is noticed in a fraction of a second.
    return SubsonicSource(
        server.url,
        password=server.password if password is None else password,
        transport=transport,
        attempts=2,
        backoff_s=0.05,
    )


def run(
    source: SubsonicSource, store: Store, engine: VectorEngine, report: Path | None = None
) -> IngestSummary:
    try:
        return ingest(
            source, store=store, engine=engine, options=IngestOptions(workers=1),
            report_path=report,
        )  # fmt: skip
    finally:
        source.close()


def stored_tracks(store: Store) -> list[Track]:
    return [
        t for a in store.list_artists(limit=100)[0] for t in store.tracks_of_artist(a.artist_key)
    ]


def test_ingest_keeps_the_servers_tags_and_ids_and_a_rerun_downloads_nothing(
    supysonic: SupysonicServer, store: Store, tiny_engine: VectorEngine, tmp_path: Path
) -> None:
    counting = CountingTransport()
    summary = run(source_of(supysonic, counting), store, tiny_engine, tmp_path / "report.jsonl")
    assert (summary.ingested, summary.skipped, summary.failed) == (6, 0, [])
    assert counting.methods["download"] == 6  # one download per song, nothing else fetched
    assert summary.artists_updated == 3

    tracks = stored_tracks(store)
    by_title = {t.title: t for t in tracks}
    assert set(by_title) == {written.title for written in supysonic.tracks}
    for written in supysonic.tracks:
        track = by_title[written.title]
        assert track.artist == written.artist
        assert track.artist_key == artist_key(written.artist)
        assert track.album == written.album
        assert track.genre == written.genre
        assert track.year is not None and 2000 <= track.year < 2010
        uuid.UUID(track.item_id)  # Supysonic's song ids are UUIDs
        assert track.path == f"{supysonic.url}?id={track.item_id}"
        assert track.content_hash == f"subsonic:127.0.0.1:{supysonic.port}:{track.item_id}"
        assert track.extra["suffix"] == written.path.suffix.lstrip(".")
        relative = written.path.relative_to(supysonic.music).as_posix()
        assert track.extra["server_path"] == relative
        uuid.UUID(track.extra["artist_id"])
        uuid.UUID(track.extra["album_id"])
        # The whole file was decoded: the duration is the file's.
        assert track.duration_seconds == pytest.approx(6.0, abs=0.1)
    # One artist id per artist, one album id per album.
    assert len({t.extra["artist_id"] for t in tracks}) == 3
    assert store.tracks_by_item_ids([tracks[0].item_id])[tracks[0].item_id].title == tracks[0].title

    lines = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert sorted(line["path"] for line in lines) == sorted(t.path for t in tracks)

    rerun_counting = CountingTransport()
    rerun = run(source_of(supysonic, rerun_counting), store, tiny_engine)
    assert (rerun.ingested, rerun.skipped, rerun.failed) == (0, 6, [])
    assert rerun_counting.methods["download"] == rerun_counting.methods["stream"] == 0
    assert set(rerun_counting.methods) <= {"ping", "getArtists", "getArtist", "getAlbum"}
    assert store.count_tracks() == 6


def test_the_same_audio_from_the_server_and_from_the_folder_gives_the_same_vector(
    supysonic: SupysonicServer, store: Store, tiny_engine: VectorEngine, tmp_path: Path
) -> None:
    run(source_of(supysonic), store, tiny_engine)
    with open_store(data_dir=tmp_path / "folder-data") as folder_store:
        ingest(source_for(supysonic.music), store=folder_store, engine=tiny_engine,
               options=IngestOptions(workers=1))  # fmt: skip
        for written in supysonic.tracks:
            [from_server] = [
                t
                for t in store.tracks_of_artist(artist_key(written.artist), with_vectors=True)
                if t.title == written.title
            ]
            [from_folder] = [
                t
                for t in folder_store.tracks_of_artist(
                    artist_key(written.artist), with_vectors=True
                )
                if t.path == str(written.path)
            ]
            assert np.allclose(from_server.vector, from_folder.vector, atol=1e-6)


def test_a_song_the_server_no_longer_lists_leaves_the_store_and_its_artist_is_updated(
    supysonic_factory: SupysonicFactory, store: Store, tiny_engine: VectorEngine
) -> None:
    server = supysonic_factory.start("removal", artists=2, tracks_per_artist=2)
    run(source_of(server), store, tiny_engine)
    assert store.count_tracks() == 4
    first, second = server.tracks[0], server.tracks[1]  # both of the first artist
    assert first.artist == second.artist
    first.path.unlink()
    server.scan()

    summary = run(source_of(server), store, tiny_engine)
    assert (summary.ingested, summary.skipped) == (0, 3)
    assert store.count_tracks() == 3
    left = store.tracks_of_artist(artist_key(first.artist), with_vectors=True)
    assert [t.title for t in left] == [second.title]
    artist = store.get_artist(artist_key(first.artist), with_centroid=True)
    assert artist is not None and artist.track_count == 1
    expected = artist_centroid(np.asarray([left[0].vector], np.float32))
    assert np.allclose(artist.centroid, expected, atol=1e-5)

    # The artist's last song goes too: the artist goes with it.
    second.path.unlink()
    server.scan()
    run(source_of(server), store, tiny_engine)
    assert store.get_artist(artist_key(first.artist)) is None
    assert {a.name for a in store.list_artists(limit=10)[0]} == {server.tracks[2].artist}


def test_a_server_that_goes_down_mid_ingest_fails_the_rest_fast_and_a_rerun_resumes(
    supysonic_factory: SupysonicFactory, store: Store, tiny_engine: VectorEngine
) -> None:
    # Twelve songs: with PARALLEL_DOWNLOADS fetching at once, six could all start before three
    # failures were counted, and none would ever be refused up front.
    songs = 12
    server = supysonic_factory.start("outage", artists=3, tracks_per_artist=4)

    def stop_at_third_download(method: str, seen: Counter[str]) -> None:
        if method == "download" and seen["download"] == 3:
            server.stop()

    counting = CountingTransport(stop_at_third_download)
    summary = run(source_of(server, counting), store, tiny_engine)
    # Downloads run ahead of the decoder: the two before the outage may be cut off too.
    assert summary.ingested <= 2
    assert summary.ingested + len(summary.failed) == songs
    assert all(f.reason.startswith(("download failed", "not downloaded")) for f in summary.failed)
    assert any("rerun to resume" in f.reason for f in summary.failed)
    # After a few songs in a row without a server, the rest are not even tried.
    assert counting.methods["download"] < songs * 2

    server.start()
    rerun = run(source_of(server), store, tiny_engine)
    assert (rerun.ingested, rerun.skipped, rerun.failed) == (
        songs - summary.ingested,
        summary.ingested,
        [],
    )
    tracks = stored_tracks(store)
    assert len(tracks) == len({t.item_id for t in tracks}) == songs
    assert all(a.track_count == 4 for a in store.list_artists(limit=10)[0])


def test_a_server_down_before_listing_is_a_clear_error_and_nothing_is_removed(
    supysonic_factory: SupysonicFactory, store: Store, tiny_engine: VectorEngine
) -> None:
    server = supysonic_factory.start("down", artists=1, tracks_per_artist=2)
    run(source_of(server), store, tiny_engine)
    server.stop()
    with pytest.raises(SubsonicUnavailable, match="did not answer"):
        run(source_of(server), store, tiny_engine)
    assert store.count_tracks() == 2
    server.start()


def test_a_wrong_password_is_a_clear_error_that_never_shows_the_password(
    supysonic: SupysonicServer, store: Store, tiny_engine: VectorEngine
) -> None:
    wrong = "not-the-Password-42"
    with pytest.raises(SubsonicUnavailable) as raised:
        run(source_of(supysonic, password=wrong), store, tiny_engine)
    assert "wrong user name or password" in raised.value.message
    assert supysonic.url.removeprefix("subsonic+http://") in raised.value.message
    assert wrong not in str(raised.value) and wrong.encode().hex() not in str(raised.value)
    assert store.count_tracks() == 0


def test_urls_with_a_password_or_without_credentials_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidRequest) as raised:
        source_for("subsonic+http://me:Secret-123@localhost:4533")
    assert "Secret-123" not in raised.value.message
    assert "SOUNDALIKE_SUBSONIC_PASSWORD" in raised.value.message
    with pytest.raises(InvalidRequest, match="SOUNDALIKE_SUBSONIC_PASSWORD"):
        source_for("subsonic+https://me@localhost:4533/music")
    with pytest.raises(InvalidRequest, match="user name"):
        source_for("subsonic+http://localhost:4533", subsonic_password="x")
    source = source_for("subsonic+https://Me@Music.Example:4533/navi/rest/", subsonic_password="x")
    assert isinstance(source, SubsonicSource)
    assert source.address.api_root == "https://music.example:4533/navi/rest/"
    assert source.description == "Subsonic server subsonic+https://Me@music.example:4533/navi"
    source.close()


def test_cli_ingest_from_a_server_keeps_the_password_out_of_output_reports_logs_and_payloads(
    supysonic: SupysonicServer,
    tiny_mert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "data"
    report = tmp_path / "report.jsonl"
    flags = ["--model", str(tiny_mert_dir), "--device", "cpu", "--workers", "1"]
    flags += ["--data-dir", str(data_dir), "--json"]
    secrets = [supysonic.password, supysonic.password.encode().hex()]

    monkeypatch.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", "wrong-" + supysonic.password)
    assert main(["ingest", supysonic.url, *flags]) == 1
    failed = capsys.readouterr()
    assert "wrong user name or password" in json.loads(failed.out.splitlines()[-1])["error"]

    monkeypatch.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", supysonic.password)
    assert main(["ingest", supysonic.url, *flags, "--report", str(report)]) == 0
    done = capsys.readouterr()
    assert json.loads(done.out.splitlines()[-1])["ingested"] == 6

    with open_store(data_dir=data_dir) as store:
        payloads = json.dumps(
            [t.__dict__ for t in stored_tracks(store)], ensure_ascii=False, default=str
        )
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)
    seen = {
        "stdout/stderr": failed.out + failed.err + done.out + done.err,
        "report": report.read_text(),
        "logs": "\n".join(record.getMessage() for record in caplog.records),
        "payloads": payloads,
    }
    for where, text in seen.items():
        for secret in secrets:
            assert secret not in text, f"the password shows in the {where}"
    assert "enc:" not in seen["logs"] and "p=***" in seen["logs"]


def test_stream_for_track_proxies_the_servers_audio_with_range(
    supysonic: SupysonicServer, store: Store, tiny_engine: VectorEngine
) -> None:
    run(source_of(supysonic), store, tiny_engine)
    track = next(t for t in stored_tracks(store) if t.extra["suffix"] == "wav")
    written = next(w for w in supysonic.tracks if w.title == track.title)
    original = written.path.read_bytes()

    whole = stream_for_track(track, supysonic.password, None, None)
    assert whole is not None
    try:
        assert whole.status == 200
        assert whole.headers["Content-Type"] == "audio/x-wav"
        assert whole.headers["Accept-Ranges"] == "bytes"
        assert b"".join(whole) == original
    finally:
        whole.close()

    part = stream_for_track(track, supysonic.password, None, "bytes=100-1099")
    assert part is not None
    try:
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 100-1099/{len(original)}"
        assert part.headers["Content-Length"] == "1000"
        assert b"".join(part.chunks) == original[100:1100]
    finally:
        part.close()

    folder_track = Track(track_id=track.track_id, artist="x", artist_key="x", vector=None,
                         path=str(written.path))  # fmt: skip
    assert stream_for_track(folder_track, supysonic.password, None, None) is None

    unknown = Track(track_id=track.track_id, artist="x", artist_key="x", vector=None,
                    path=f"{supysonic.url}?id={uuid.uuid4()}")  # fmt: skip
    with pytest.raises(SubsonicNotFound, match="unknown id"):
        stream_for_track(unknown, supysonic.password, None, None)
    with pytest.raises(SubsonicUnavailable, match="wrong user name or password") as raised:
        stream_for_track(track, "nope-" + supysonic.password, None, None)
    assert supysonic.password not in str(raised.value)
    with pytest.raises(SubsonicUnavailable, match="no credentials"):
        stream_for_track(track, None, None, None)


@pytest.mark.parametrize("excerpt", ["centre", "windows:2"])
def test_a_long_wav_is_read_as_its_excerpt_only_and_embeds_exactly_like_the_whole_file(
    excerpt: str,
    supysonic_factory: SupysonicFactory,
    tiny_embedder: MertEmbedder,
    tmp_path: Path,
) -> None:
    server = supysonic_factory.start(
        f"long-{excerpt.replace(':', '')}",
        artists=1,
        tracks_per_artist=2,
        seconds=150.0,
        formats=("wav", "flac"),
        sample_rate=22050,
    )
    engine = VectorEngine(tiny_embedder, Decoding(excerpt=ExcerptPolicy.parse(excerpt)))
    wav, flac = server.tracks
    source = source_of(server)
    with open_store(data_dir=tmp_path / "server") as store:
        summary = ingest(source, store=store, engine=engine, options=IngestOptions(workers=1))
        fetched = source.client.bytes_fetched
        source.close()
        assert (summary.ingested, summary.failed) == (2, [])
        from_server = {
            t.title: t for t in store.tracks_of_artist(artist_key(wav.artist), with_vectors=True)
        }
    # The FLAC whole, the WAV only around its windows (each 30 s + 3 s of margins, of 150 s).
    wav_share = fetched - flac.path.stat().st_size
    assert 0 < wav_share < 0.5 * wav.path.stat().st_size
    assert from_server[wav.title].duration_seconds == pytest.approx(150.0, abs=0.01)

    with open_store(data_dir=tmp_path / "folder") as folder_store:
        ingest(source_for(server.music), store=folder_store, engine=engine,
               options=IngestOptions(workers=1))  # fmt: skip
        from_folder = {
            t.title: t
            for t in folder_store.tracks_of_artist(artist_key(wav.artist), with_vectors=True)
        }
    for written in (wav, flac):
        assert np.allclose(
            from_server[written.title].vector, from_folder[written.title].vector, atol=1e-6
        )


def test_wav_headers_that_are_not_plain_pcm_are_downloaded_whole() -> None:
    pcm = b"RIFF" + (0).to_bytes(4, "little") + b"WAVE"
    fmt = (
        b"fmt "
        + (16).to_bytes(4, "little")
        + bytes.fromhex("0100 0200 44ac0000 10b10200 0400 1000".replace(" ", ""))
    )
    data = b"data" + (4000).to_bytes(4, "little")
    layout = parse_wav_header(pcm + fmt + data, 44 + 4000)
    assert layout is not None
    assert (layout.data_offset, layout.frames, layout.sample_rate) == (44, 1000, 44100)
    assert parse_wav_header(b"RF64" + pcm[4:] + fmt + data, 4044) is None  # 64-bit sizes
    adpcm = fmt[:8] + (2).to_bytes(2, "little") + fmt[10:]
    assert parse_wav_header(pcm + adpcm + data, 4044) is None  # compressed samples
    assert parse_wav_header(pcm + fmt, 4044) is None  # no data chunk in the bytes read


def test_downloads_run_ahead_in_parallel_and_leave_no_file_behind(
    supysonic: SupysonicServer, store: Store, tiny_engine: VectorEngine, tmp_path: Path
) -> None:
    in_flight = 0
    most = 0
    guard = threading.Lock()

    class SlowDownloads(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, most
            if not request.url.path.endswith("/download"):
                return super().handle_request(request)
            with guard:
                in_flight += 1
                most = max(most, in_flight)
            try:
                time.sleep(0.3)  # a slow link: downloads overlap if they run in parallel
                response = super().handle_request(request)
                response.read()
                return response
            finally:
                with guard:
                    in_flight -= 1

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = SubsonicSource(supysonic.url, password=supysonic.password,
                            transport=SlowDownloads(), scratch_dir=scratch)  # fmt: skip
    summary = run(source, store, tiny_engine)
    assert (summary.ingested, summary.failed) == (6, [])
    assert 2 <= most <= PARALLEL_DOWNLOADS
    assert list(scratch.iterdir()) == []  # every song's file and the source's folder removed
