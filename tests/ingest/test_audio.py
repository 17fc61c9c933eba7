"""Decoding: formats, exact window placement, policies, bad input, memory."""

from __future__ import annotations

import hashlib
import math
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import watch_opens, write_float_wav, write_hls_playlist

from soundalike.core.errors import AudioTooShort, InvalidRequest, SilentAudio, UndecodableAudio
from soundalike.ingest.audio import AUDIO_EXTENSIONS, decode_excerpt, decode_full
from soundalike.ingest.devtools.synth import write_audio
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.ingest.sources.base import content_hash

from .conftest import CLICK_SECONDS, FORMATS, SOURCE_RATES

RATE = 24000
WINDOW = 30 * RATE
CENTRE = ExcerptPolicy()
# Formats whose seek+decode reproduces the full decode to float rounding. AAC does not: its
# perceptual noise substitution draws from a random generator whose state restarts after a
# seek, so noise-filled bands differ (alignment is still exact, see test below).
EXACT_FORMATS = ("wav", "flac", "mp3", "ogg", "opus")


@pytest.mark.parametrize("rate", SOURCE_RATES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_mono_24k_float32(
    track_42s: Callable[[str, int], Path], fmt: str, rate: int
) -> None:
    decoded = decode_excerpt(track_42s(fmt, rate), policy=CENTRE)
    assert len(decoded.windows) == 1
    window = decoded.windows[0]
    assert window.dtype == np.float32 and window.ndim == 1
    assert window.size == WINDOW
    assert decoded.sample_rate == RATE
    assert decoded.channels == 2
    assert decoded.source_sample_rate == (48000 if fmt == "opus" else rate)
    assert decoded.duration_seconds == pytest.approx(42.0, abs=0.05)
    assert decoded.codec
    assert np.sqrt(np.mean(window**2)) > 0.01


@pytest.mark.parametrize("rate", SOURCE_RATES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_centre_window_is_the_full_decode_from_6_seconds(
    track_42s: Callable[[str, int], Path], fmt: str, rate: int
) -> None:
    path = track_42s(fmt, rate)
    full = decode_full(path)
    decoded = decode_excerpt(path, policy=CENTRE)
    window = decoded.windows[0]
    start = round(decoded.window_starts_seconds[0] * RATE)
    # Lossy containers report a few ms of codec padding in their length.
    assert decoded.window_starts_seconds[0] == pytest.approx(6.0, abs=0.005)
    if fmt in ("wav", "flac"):
        assert start == 6 * RATE
    reference = full[start : start + WINDOW]
    error = np.abs(window - reference)
    if fmt in EXACT_FORMATS:
        assert error.max() < 1e-4, f"max abs difference {error.max()}"
    else:
        assert np.corrcoef(window, reference)[0, 1] > 0.999
        assert np.linalg.norm(window - reference) < 0.02 * np.linalg.norm(reference)
    # A one-sample offset would be visible: the same comparison shifted by one fails.
    shifted = window - full[start + 1 : start + 1 + WINDOW]
    if fmt in EXACT_FORMATS:
        assert np.abs(shifted).max() > 1e-2
    else:
        assert np.linalg.norm(shifted) > 5 * np.linalg.norm(window - reference)


@pytest.mark.parametrize("rate", SOURCE_RATES)
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_click_lands_on_its_exact_sample(
    track_42s: Callable[[str, int], Path], fmt: str, rate: int
) -> None:
    window = decode_excerpt(track_42s(fmt, rate), policy=CENTRE).windows[0]
    assert int(np.argmax(np.abs(window))) == round((CLICK_SECONDS - 6.0) * RATE)


def test_start_policy_starts_at_zero(track_42s: Callable[[str, int], Path]) -> None:
    path = track_42s("flac", 44100)
    decoded = decode_excerpt(path, policy=ExcerptPolicy.parse("start"))
    assert decoded.window_starts_seconds == [0.0]
    assert np.abs(decoded.windows[0] - decode_full(path)[:WINDOW]).max() < 1e-4


def test_three_windows_over_100_seconds(make_audio: Callable[..., Path]) -> None:
    path = make_audio("t100.flac", 100.0, 44100, channels=1)
    decoded = decode_excerpt(path, policy=ExcerptPolicy.parse("windows:3"))
    assert decoded.window_starts_seconds == [0.0, 35.0, 70.0]
    full = decode_full(path)
    for window, start in zip(decoded.windows, decoded.window_starts_seconds, strict=True):
        assert window.size == WINDOW
        i = round(start * RATE)
        assert np.abs(window - full[i : i + WINDOW]).max() < 1e-4


def test_windows_overlap_when_the_track_is_shorter_than_their_span(
    track_42s: Callable[[str, int], Path],
) -> None:
    path = track_42s("wav", 48000)
    decoded = decode_excerpt(path, policy=ExcerptPolicy.parse("windows:3"))
    assert decoded.window_starts_seconds == [0.0, 6.0, 12.0]
    full = decode_full(path)
    for window, start in zip(decoded.windows, decoded.window_starts_seconds, strict=True):
        i = round(start * RATE)
        assert window.size == WINDOW
        assert np.abs(window - full[i : i + WINDOW]).max() < 1e-4


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
@pytest.mark.parametrize("policy", ["centre", "start", "windows:4"])
def test_short_file_is_one_unpadded_window(
    make_audio: Callable[..., Path], fmt: str, policy: str
) -> None:
    path = make_audio(f"t8.{fmt}", 8.0, 44100)
    decoded = decode_excerpt(path, policy=ExcerptPolicy.parse(policy))
    assert len(decoded.windows) == 1
    assert decoded.window_starts_seconds == [0.0]
    full = decode_full(path)
    assert decoded.windows[0].size == full.size
    assert abs(full.size - 8 * RATE) < 0.06 * RATE  # lossy codecs add a little padding
    assert np.abs(decoded.windows[0] - full).max() < 1e-4


def test_silent_file_is_refused_with_its_level(audio_dir: Path) -> None:
    path = write_audio(audio_dir / "silent.flac", np.zeros((2, 44100 * 5), np.float32), 44100)
    with pytest.raises(SilentAudio, match="silence|dBFS") as caught:
        decode_excerpt(path, policy=CENTRE)
    assert caught.value.path == str(path)


def test_quiet_but_audible_file_reports_dbfs(audio_dir: Path) -> None:
    noise = np.random.default_rng(0).standard_normal((1, 44100 * 5)).astype(np.float32) * 1e-4
    path = write_audio(audio_dir / "quiet.wav", noise, 44100)
    with pytest.raises(SilentAudio, match=r"-\d+\.\d dBFS"):
        decode_excerpt(path, policy=CENTRE)


def test_one_second_file_is_too_short(make_audio: Callable[..., Path]) -> None:
    path = make_audio("t1.ogg", 1.0, 44100)
    with pytest.raises(AudioTooShort, match=r"1\.0\d s .*minimum of 3 s"):
        decode_excerpt(path, policy=CENTRE)


def test_random_bytes_are_undecodable(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UndecodableAudio):
        decode_excerpt(path, policy=CENTRE)


def test_text_renamed_wav_is_undecodable(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are my shopping notes, not audio\n" * 50)
    with pytest.raises(UndecodableAudio) as caught:
        decode_excerpt(path, policy=CENTRE)
    assert "notes.wav" in str(caught.value)


def test_missing_and_empty_files_are_undecodable(tmp_path: Path) -> None:
    with pytest.raises(UndecodableAudio, match="no such file"):
        decode_excerpt(tmp_path / "absent.flac", policy=CENTRE)
    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(UndecodableAudio):
        decode_excerpt(tmp_path / "empty.flac", policy=CENTRE)


@pytest.mark.parametrize("fmt", ["flac", "mp3", "wav", "ogg", "m4a"])
def test_truncated_file_decodes_what_is_there_or_is_undecodable(
    track_42s: Callable[[str, int], Path], tmp_path: Path, fmt: str
) -> None:
    data = track_42s(fmt, 44100).read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: len(data) // 2])
    try:
        decoded = decode_excerpt(path, policy=CENTRE)
    except UndecodableAudio:
        return
    # What is there is about half the track: the windows are planned on the decoded length.
    assert decoded.duration_from == "decoded" or fmt == "m4a"
    assert 3.0 <= decoded.duration_seconds <= 30.0
    assert decoded.window_starts_seconds == [0.0]
    assert decoded.windows[0].size == pytest.approx(decoded.duration_seconds * RATE, abs=RATE)


def test_ten_minute_file_decodes_about_one_window(audio_dir: Path) -> None:
    rate = 22050
    t = np.arange(600 * rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * (220 + 0.5 * t) * t)  # a slow sweep: cheap to make
    path = write_audio(audio_dir / "t600.flac", tone[np.newaxis].astype(np.float32), rate)
    del t, tone
    window_bytes = WINDOW * 4
    tracemalloc.start()
    try:
        decoded = decode_excerpt(path, policy=CENTRE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.window_starts_seconds == [285.0]
    # The full decode would hold 600 s (57.6 MB at 24 kHz float32); the reader holds a window.
    assert peak < 1.5 * window_bytes, f"peak {peak / 1e6:.1f} MB"
    assert decoded.decoded_seconds < 32.0


def test_excerpt_policy_parse_accepts_valid_forms() -> None:
    assert ExcerptPolicy.parse("centre") == ExcerptPolicy("centre")
    assert ExcerptPolicy.parse(" Center ") == ExcerptPolicy("centre")
    assert str(ExcerptPolicy.parse("center")) == "centre"
    assert str(ExcerptPolicy.parse("start")) == "start"
    assert ExcerptPolicy.parse("windows:3") == ExcerptPolicy("windows", 3)
    assert str(ExcerptPolicy.parse("windows:12")) == "windows:12"
    assert ExcerptPolicy.parse(str(ExcerptPolicy("windows", 5))) == ExcerptPolicy("windows", 5)


@pytest.mark.parametrize("text", ["", "middle", "windows", "windows:", "windows:0", "windows:-2",
                                  "windows:two", "start:2", "centre:1"])  # fmt: skip
def test_excerpt_policy_parse_refuses_with_the_valid_forms(text: str) -> None:
    with pytest.raises(InvalidRequest, match="windows:N"):
        ExcerptPolicy.parse(text)


def test_content_hash_is_sha256_of_the_bytes(track_42s: Callable[[str, int], Path]) -> None:
    path = track_42s("flac", 44100)
    assert content_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert content_hash(path) != content_hash(track_42s("flac", 48000))


def test_audio_extensions_cover_common_formats() -> None:
    assert {f".{fmt}" for fmt in FORMATS} <= AUDIO_EXTENSIONS
    assert ".txt" not in AUDIO_EXTENSIONS and ".jpg" not in AUDIO_EXTENSIONS


# --- hostile input ---------------------------------------------------------------------------


def _music_mono(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[np.newaxis]


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_float_wav_with_one_non_finite_sample_is_undecodable(
    tmp_path: Path, bad_value: float
) -> None:
    samples = _music_mono(40.0, 44100)
    samples[0, 20 * 44100] = bad_value  # inside the centred window
    path = write_float_wav(tmp_path / "poisoned.wav", samples, 44100)
    with pytest.raises(UndecodableAudio, match=r"non-finite samples \(NaN/Inf\)"):
        decode_excerpt(path, policy=CENTRE)
    # The same file without the bad sample decodes: the refusal is about that sample.
    samples[0, 20 * 44100] = 0.0
    clean = write_float_wav(tmp_path / "clean.wav", samples, 44100)
    assert np.isfinite(decode_excerpt(clean, policy=CENTRE).windows[0]).all()


def test_float_wav_with_absurd_sample_values_is_undecodable(tmp_path: Path) -> None:
    samples = _music_mono(10.0, 44100) * 1e30
    path = write_float_wav(tmp_path / "loud.wav", samples, 44100)
    with pytest.raises(UndecodableAudio, match="far outside the -1..1 range"):
        decode_excerpt(path, policy=CENTRE)


def test_implausible_sample_rate_is_undecodable(tmp_path: Path) -> None:
    # 5 s of data at a claimed 1 Hz would be planned as a 67-hour track.
    path = write_float_wav(tmp_path / "slow.wav", np.full((1, 5 * 48000), 0.1, np.float32), 1)
    with pytest.raises(UndecodableAudio, match="implausible sample rate 1 Hz"):
        decode_excerpt(path, policy=CENTRE)


def test_decode_budget_refuses_files_read_from_the_start(make_audio: Callable[..., Path]) -> None:
    # Matroska's millisecond timestamps make the reader decode from the start: the centred
    # window of a 100 s file costs ~65 s of decoding, past a 40 s budget.
    path = make_audio("t100.mka", 100.0, 44100, channels=1)
    with pytest.raises(UndecodableAudio, match="more than 40 s of audio decoded"):
        decode_excerpt(path, policy=CENTRE, max_decoded_seconds=40.0)
    unbudgeted = decode_excerpt(path, policy=CENTRE)
    assert unbudgeted.decoded_seconds > 60.0
    assert decode_excerpt(path, policy=CENTRE, max_decoded_seconds=100.0).windows[0].size == WINDOW


def test_decode_budget_counts_decoded_audio_not_file_length(
    make_audio: Callable[..., Path],
) -> None:
    # A seekable FLAC of 100 s decodes about one window: a 40 s budget is enough.
    path = make_audio("t100.flac", 100.0, 44100, channels=1)
    decoded = decode_excerpt(path, policy=CENTRE, max_decoded_seconds=40.0)
    assert decoded.window_starts_seconds == [35.0]
    assert decoded.decoded_seconds < 40.0


def test_hls_playlist_is_refused_and_its_segment_never_opened(tmp_path: Path) -> None:
    segment = tmp_path / "secret.mp3"
    with watch_opens(segment) as opened:
        playlist = write_hls_playlist(tmp_path / "list.m3u8", segment)
        with pytest.raises(UndecodableAudio) as refused:
            decode_excerpt(playlist, policy=CENTRE)
    assert opened == []
    assert "not an audio file" in refused.value.detail


def test_concat_list_named_like_audio_is_refused_and_never_followed(tmp_path: Path) -> None:
    segment = tmp_path / "secret.wav"
    with watch_opens(segment) as opened:
        listing = tmp_path / "album.wav"
        listing.write_text("ffconcat version 1.0\nfile 'secret.wav'\nfile 'secret.wav'\n")
        with pytest.raises(UndecodableAudio) as refused:
            decode_excerpt(listing, policy=CENTRE)
    assert opened == []
    assert "not an audio file" in refused.value.detail


def test_local_name_that_looks_like_a_protocol_is_read_as_a_file(
    make_audio: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the file: prefix FFmpeg would read "subfile:..." as its subfile protocol.
    real = make_audio("t10.flac", 10.0, 44100)
    folder = tmp_path / "subfile:,start,0,end,0,:x"
    folder.mkdir()
    named = folder / "song.flac"
    named.write_bytes(real.read_bytes())
    monkeypatch.chdir(tmp_path)
    relative = Path(folder.name) / "song.flac"
    assert decode_excerpt(relative, policy=CENTRE).duration_seconds == pytest.approx(10.0, 0.01)


def test_non_finite_sample_in_a_later_window_is_found(tmp_path: Path) -> None:
    samples = _music_mono(100.0, 44100)
    samples[0, 90 * 44100] = math.nan  # only the last of three windows holds it
    path = write_float_wav(tmp_path / "late.wav", samples, 44100)
    with pytest.raises(UndecodableAudio, match="non-finite"):
        decode_excerpt(path, policy=ExcerptPolicy("windows", 3))
