"""Synthetic music for tests, the demo and benchmarks.

Each artist has a fixed timbre (harmonic profile, brightness, drum colour), a home tempo and a
home key; each track varies the tempo and key a little and draws its own melody, so tracks of
one artist resemble each other more than tracks of another artist. Everything is deterministic
in the seeds.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from soundalike.core.errors import InvalidRequest

# Names with accents, spaces and punctuation so that discovery and artist keys meet real names.
ARTIST_NAMES: tuple[str, ...] = (
    "Éclair Ensemble",
    "The Quiet Harbour",
    "Møller & Sons",
    "Señora Luna",
    "Dvořák Street Band",
    "Ana Björk Trio",
    "Zoë's Machines",
    "Kōhī Club",
)
GENRES: tuple[str, ...] = ("ambient", "jazz", "folk", "electronic", "rock", "classical")
_TITLE_WORDS: tuple[str, ...] = (
    "Morning", "Harbour", "Glass", "River", "Échos", "Night", "Paper", "Garden", "Signal",
    "Winter", "Café", "Lanterns", "Orbit", "Salt", "Velvet", "Drift",
)  # fmt: skip

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


@dataclass(frozen=True)
class _ArtistStyle:
    harmonics: np.ndarray  # relative amplitude of partials 1..n
    tempo_bpm: float
    root_midi: int
    scale: np.ndarray
    attack_s: float
    decay_s: float
    drum_tilt: float  # >0 brighter noise, <0 darker
    drum_level: float
    vibrato_hz: float
    pan: float  # -1 left .. 1 right for the melody
    formants_hz: tuple[float, ...]  # resonances fixed in frequency: the body of the instrument

    def formant_gain(self, freq: float) -> float:
        """Gain of the instrument body at `freq`: what keeps the timbre across keys."""
        octaves = np.log2(freq / np.asarray(self.formants_hz))
        return float(0.15 + np.exp(-0.5 * (octaves / 0.35) ** 2).sum())


def _artist_style(artist_seed: int) -> _ArtistStyle:
    rng = np.random.default_rng([artist_seed, 0x5EED])
    partials = 12
    rolloff = rng.uniform(0.4, 2.2)
    harmonics = (np.arange(1, partials + 1) ** -rolloff) * rng.uniform(0.2, 1.0, partials)
    if rng.random() < 0.5:  # clarinet-like: odd partials dominate
        harmonics[1::2] *= 0.15
    harmonics /= harmonics.max()
    return _ArtistStyle(
        harmonics=harmonics,
        tempo_bpm=float(rng.uniform(72, 156)),
        root_midi=int(rng.integers(45, 60)),
        scale=_MAJOR if rng.random() < 0.5 else _MINOR,
        attack_s=float(rng.uniform(0.003, 0.08)),
        decay_s=float(rng.uniform(0.08, 0.6)),
        drum_tilt=float(rng.uniform(-1.5, 1.5)),
        drum_level=float(rng.uniform(0.15, 0.6)),
        vibrato_hz=float(rng.uniform(0.0, 6.0)),
        pan=float(rng.uniform(-0.6, 0.6)),
        formants_hz=tuple(float(f) for f in np.geomspace(200, 6000, 8)[rng.choice(8, 2, False)]),
    )


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _tilted_noise(rng: np.random.Generator, n: int, tilt: float, sample_rate: int) -> np.ndarray:
    """White noise with a spectral slope of `tilt` (log-frequency), made in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum *= (np.maximum(freqs, 50.0) / 1000.0) ** (tilt / 2.0)
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-12)


def synth_track(
    *,
    artist_seed: int,
    track_seed: int,
    seconds: float,
    sample_rate: int = 44100,
    channels: int = 2,
) -> np.ndarray:
    """A music-like signal, shape (channels, samples), float32, peak 0.5."""
    if seconds <= 0 or sample_rate <= 0 or channels < 1:
        raise InvalidRequest("seconds and sample_rate must be positive and channels >= 1")
    style = _artist_style(artist_seed)
    rng = np.random.default_rng([artist_seed, track_seed, 0x7AC])
    n = int(round(seconds * sample_rate))
    tempo = style.tempo_bpm * rng.uniform(0.94, 1.06)
    beat_s = 60.0 / tempo
    root = style.root_midi + int(rng.integers(-1, 2))
    melody = np.zeros(n)
    bass = np.zeros(n)
    drums = np.zeros(n)

    # Melody: a random walk over the scale, notes of a half or a whole beat.
    degree = int(rng.integers(0, 7))
    t0 = 0.0
    while t0 < seconds:
        length = beat_s * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 12))
        octave, step = divmod(degree, 7)
        freq = _midi_hz(root + 12 + 12 * octave + style.scale[step])
        _add_note(melody, t0, length, freq, style, sample_rate, gain=0.6)
        t0 += length

    # Bass: the root or the fifth on every other beat, the same timbre an octave and a half down.
    for beat, start in enumerate(np.arange(0.0, seconds, 2 * beat_s)):
        interval = 0 if beat % 2 == 0 else 7
        _add_note(bass, start, 2 * beat_s, _midi_hz(root - 12 + interval), style, sample_rate, 0.5)

    # Drums: a noise burst on every beat coloured by the artist, a kick on beats 1 and 3.
    burst_n = int(0.12 * sample_rate)
    burst_env = np.exp(-np.arange(burst_n) / (0.025 * sample_rate))
    kick_t = np.arange(burst_n) / sample_rate
    kick = np.sin(2 * np.pi * (55 * kick_t + 60 * (1 - np.exp(-kick_t / 0.03)) * 0.03))
    kick *= np.exp(-kick_t / 0.06)
    for beat, start in enumerate(np.arange(0.0, seconds, beat_s)):
        i = int(start * sample_rate)
        m = min(burst_n, n - i)
        if m <= 0:
            break
        noise = _tilted_noise(rng, burst_n, style.drum_tilt, sample_rate)
        drums[i : i + m] += style.drum_level * (noise * burst_env)[:m]
        if beat % 2 == 0:
            drums[i : i + m] += 0.8 * kick[:m]

    out = np.empty((channels, n), dtype=np.float64)
    for c in range(channels):
        # Channel position from -1 (first) to 1 (last); the melody sits at the artist's pan.
        position = 0.0 if channels == 1 else -1.0 + 2.0 * c / (channels - 1)
        melody_gain = 1.0 - 0.5 * abs(position - style.pan) / 2.0
        out[c] = melody_gain * melody + bass + drums
    out *= 0.5 / (np.abs(out).max() + 1e-12)
    return out.astype(np.float32)


def _add_note(
    target: np.ndarray,
    start_s: float,
    length_s: float,
    freq: float,
    style: _ArtistStyle,
    sample_rate: int,
    gain: float,
) -> None:
    i0 = int(start_s * sample_rate)
    m = min(int(length_s * sample_rate), target.size - i0)
    if m <= 0:
        return
    t = np.arange(m) / sample_rate
    envelope = np.minimum(t / style.attack_s, 1.0) * np.exp(-t / (style.decay_s + length_s / 2))
    phase = 2 * np.pi * freq * t + 0.3 * np.sin(2 * np.pi * style.vibrato_hz * t)
    nyquist = sample_rate / 2
    tone = np.zeros(m)
    for k, amp in enumerate(style.harmonics, start=1):
        if freq * k >= nyquist:
            break
        tone += amp * style.formant_gain(freq * k) * np.sin(k * phase)
    target[i0 : i0 + m] += gain * envelope * tone


# --- encoding ----------------------------------------------------------------------------

# extension -> (container format, codec, codec options, rate the codec needs or None)
_ENCODINGS: dict[str, tuple[str, str, dict[str, str], int | None]] = {
    ".wav": ("wav", "pcm_s16le", {}, None),
    ".flac": ("flac", "flac", {}, None),
    ".mp3": ("mp3", "libmp3lame", {}, None),
    ".ogg": ("ogg", "libvorbis", {}, None),
    ".oga": ("ogg", "libvorbis", {}, None),
    ".opus": ("opus", "libopus", {}, 48000),
    ".m4a": ("ipod", "aac", {}, None),
    ".mp4": ("mp4", "aac", {}, None),
    ".aac": ("adts", "aac", {}, None),
    ".webm": ("webm", "libopus", {}, 48000),
    ".mka": ("matroska", "flac", {}, None),
    ".aiff": ("aiff", "pcm_s16be", {}, None),
    ".aif": ("aiff", "pcm_s16be", {}, None),
}
# Fallbacks when a wheel lacks the preferred encoder; FFmpeg's own Vorbis encoder is marked
# experimental (it works, at a lower quality per bit than libvorbis).
_FALLBACK_CODECS: dict[str, str] = {"libvorbis": "vorbis"}
_EXPERIMENTAL_CODECS = frozenset({"vorbis"})
_TAG_KEYS = ("artist", "album_artist", "title", "album", "genre", "date")


def _encoder_for(codec: str, suffix: str) -> str:
    def has_encoder(name: str) -> bool:
        try:
            av.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for unknown codecs
            return False
        return True

    if has_encoder(codec):
        return codec
    fallback = _FALLBACK_CODECS.get(codec)
    if fallback and has_encoder(fallback):
        return fallback
    raise RuntimeError(
        f"cannot write {suffix} files: the installed PyAV/FFmpeg has no {codec!r} encoder"
    )


def write_audio(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    *,
    tags: dict[str, str] | None = None,
) -> Path:
    """Encode (channels, samples) float audio to `path`; the codec follows the extension.

    Tags (artist, album_artist, title, album, genre, date) become container metadata that
    mutagen reads; WAV gets an ID3 chunk written with mutagen, since FFmpeg's WAV muxer only
    writes RIFF INFO, which mutagen ignores.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _ENCODINGS:
        raise InvalidRequest(
            f"cannot write {path.name}: unknown extension; use {sorted(_ENCODINGS)}"
        )
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[np.newaxis, :]
    if data.ndim != 2 or data.shape[0] not in (1, 2):
        raise InvalidRequest("samples must be shaped (channels, samples) with 1 or 2 channels")
    container_format, codec, options, codec_rate = _ENCODINGS[suffix]
    codec = _encoder_for(codec, suffix)
    layout = "mono" if data.shape[0] == 1 else "stereo"
    rate = codec_rate or sample_rate
    metadata = {k: str(v) for k, v in (tags or {}).items() if k in _TAG_KEYS and v is not None}

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        # `codec` is any name to PyAV's stubs; the writer only ever asks for audio codecs.
        if not isinstance(stream, av.AudioStream):
            raise ValueError(f"{codec} is not an audio codec")
        codec_options = dict(options)
        if codec in _EXPERIMENTAL_CODECS:
            codec_options["strict"] = "experimental"
        stream.codec_context.options = codec_options
        # Vorbis comments live on the stream in Ogg; other muxers read the container's.
        container.metadata.update(metadata)
        stream.metadata.update(metadata)
        chunk = 4096
        pts = 0
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=rate)
        for offset in range(0, data.shape[1], chunk):
            block = np.ascontiguousarray(data[:, offset : offset + chunk])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = pts
            frame.time_base = Fraction(1, sample_rate)
            pts += block.shape[1]
            for converted in resampler.resample(frame):
                container.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))

    if metadata and suffix in (".wav", ".aiff", ".aif"):
        _write_id3_chunk(path, metadata)
    return path


def _write_id3_chunk(path: Path, metadata: dict[str, str]) -> None:
    from mutagen import File as MutagenFile
    from mutagen.id3 import TALB, TCON, TDRC, TIT2, TPE1, TPE2

    frames = {"artist": TPE1, "album_artist": TPE2, "title": TIT2, "album": TALB, "genre": TCON}
    audio = MutagenFile(str(path))
    if audio.tags is None:
        audio.add_tags()
    for key, value in metadata.items():
        if key == "date":
            audio.tags.add(TDRC(encoding=3, text=[value]))
        else:
            audio.tags.add(frames[key](encoding=3, text=[value]))
    audio.save()


# --- catalogues --------------------------------------------------------------------------


@dataclass
class WrittenTrack:
    """One file `write_catalogue` wrote, with the metadata it used."""

    path: Path
    artist: str
    title: str
    album: str
    genre: str
    artist_seed: int
    track_seed: int
    extra: dict[str, Any] = field(default_factory=dict)


def _safe_filename(text: str) -> str:
    cleaned = "".join(ch for ch in text if ch not in '/\\:*?"<>|').strip()
    return unicodedata.normalize("NFC", cleaned) or "untitled"


def write_catalogue(
    root: str | Path,
    *,
    artists: int = 4,
    tracks_per_artist: int = 3,
    seconds: float = 12.0,
    formats: tuple[str, ...] = ("flac", "mp3", "ogg", "wav"),
    with_tags: bool = True,
    seed: int = 0,
    sample_rate: int = 44100,
) -> list[WrittenTrack]:
    """Write root/<Artist Name>/<title>.<ext> for a small synthetic catalogue.

    Formats cycle across all tracks written; artist names come from `ARTIST_NAMES` (numbered
    beyond eight artists). Returns what was written, in writing order.
    """
    if artists < 1 or tracks_per_artist < 1 or not formats:
        raise InvalidRequest("need at least one artist, one track per artist and one format")
    root = Path(root)
    written: list[WrittenTrack] = []
    rng = np.random.default_rng([seed, 0xCA7])
    for a in range(artists):
        base = ARTIST_NAMES[a % len(ARTIST_NAMES)]
        artist = base if a < len(ARTIST_NAMES) else f"{base} {a // len(ARTIST_NAMES) + 1}"
        artist_seed = seed * 1000 + a
        genre = GENRES[a % len(GENRES)]
        album = f"{artist} — Vol. {seed + 1}"
        for t in range(tracks_per_artist):
            words = rng.choice(len(_TITLE_WORDS), size=2, replace=False)
            title = f"{t + 1:02d} {_TITLE_WORDS[words[0]]} {_TITLE_WORDS[words[1]]}"
            ext = formats[len(written) % len(formats)].lstrip(".").lower()
            path = root / _safe_filename(artist) / f"{_safe_filename(title)}.{ext}"
            audio = synth_track(
                artist_seed=artist_seed, track_seed=t, seconds=seconds, sample_rate=sample_rate
            )
            tags = None
            if with_tags:
                tags = {
                    "artist": artist,
                    "album_artist": artist,
                    "title": title,
                    "album": album,
                    "genre": genre,
                    "date": str(2000 + seed + a),
                }
            write_audio(path, audio, sample_rate, tags=tags)
            written.append(
                WrittenTrack(path, artist, title, album, genre, artist_seed, track_seed=t)
            )
    return written
