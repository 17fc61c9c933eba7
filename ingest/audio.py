"""Audio decoding with PyAV: any format FFmpeg reads, to mono float32 at the model's rate.

Only the excerpt is decoded: the reader seeks to a little before each window (a pre-roll that
warms up the codec and the resampler), drops samples before the exact start using frame
timestamps, and stops as soon as the window is full, so a 10-minute file costs about one
window of memory. Downmix and resampling happen in one pass through `av.AudioResampler`.

Exactness, measured against a full decode through the same resampler (tests/ingest), stereo
44.1 and 48 kHz sources, window at 6.0 s of a 42 s file:
- wav, flac, aiff, ogg/vorbis, opus, mp3: bit-identical to the full decode (max abs
  difference 0.0), from the first sample of the window.
- m4a/aac: sample-aligned (a one-sample shift is 5x+ worse), but not bit-identical: AAC's
  perceptual noise substitution draws from a random generator whose state restarts after a
  seek, so noise-filled bands differ (max abs ~4e-3 on music, relative error < 2%).
- mp3 and ADTS aac are not sought with the demuxer: FFmpeg's MP3 seek can land on timestamps
  estimated from the byte position (VBR tables of contents), so the reader demuxes packets
  from the start without decoding them and decodes from a second before the pre-roll.
- Matroska/WebM timestamps are in milliseconds (coarser than a sample), so those files are
  decoded from the start and samples counted; exact, but slower for late windows.
Duration comes from the container/stream metadata. When it is missing, the file is decoded
once to count its samples (nothing is kept); when it is too long (a truncated file, Opus
pre-skip, a bitrate estimate), the end of the data found while reading a window gives the true
duration and the windows are planned again. A header that is too short only moves a window off
centre (ADTS .aac: ~1 s on a 42 s file), except for tracks it calls shorter than one window,
which are read to their end and counted.

Files are untrusted input: FFmpeg opens them through the `file` protocol only and accepts only
the audio container formats in AUDIO_CONTAINER_FORMATS, so a playlist or a concat list (an
`.m3u8` renamed `.mp3`) cannot make it open other files or URLs. A reader can be given a budget
of source audio to decode (`max_decoded_seconds`): a file whose layout forces decoding from the
start (Matroska, no duration) can decode to hours of samples from a few megabytes.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from soundalike.core.errors import AudioTooShort, SilentAudio, UndecodableAudio
from soundalike.ingest.defaults import (
    DEFAULT_MIN_DURATION_SECONDS,
    DEFAULT_SILENCE_RMS,
    DEFAULT_WINDOW_SECONDS,
)
from soundalike.ingest.excerpt import DecodedAudio, ExcerptPolicy

__all__ = [
    "AUDIO_CONTAINER_FORMATS",
    "AUDIO_EXTENSIONS",
    "decode_excerpt",
    "decode_full",
    "undecodable_reason",
]

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav", ".wave", ".flac", ".mp3", ".mp2", ".ogg", ".oga", ".opus", ".m4a", ".m4b",
        ".aac", ".mp4", ".aiff", ".aif", ".aifc", ".wma", ".webm", ".mka", ".ape", ".wv",
        ".ac3", ".dts", ".amr", ".caf", ".spx", ".tta", ".au", ".snd",
    }
)  # fmt: skip

# FFmpeg demuxers (AVInputFormat names) a file may be opened with. An allow-list, not a
# deny-list: playlists and indirections (hls, concat, image2, sdp, tee, ...) open other files or
# URLs named inside the data, and FFmpeg has many of them.
AUDIO_CONTAINER_FORMATS: frozenset[str] = frozenset(
    {
        "wav", "w64", "flac", "mp3", "ogg", "mov", "aac", "matroska", "aiff", "asf", "ape", "wv",
        "ac3", "eac3", "dts", "dtshd", "amr", "amrnb", "amrwb", "caf", "tta", "au", "mpc", "mpc8",
        "tak", "truehd", "mlp", "loas", "voc", "dsf", "shn", "xwma", "oma", "ircam", "sox",
    }
)  # fmt: skip
_OPEN_OPTIONS: dict[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(sorted(AUDIO_CONTAINER_FORMATS)),
}
# Source sample rates a real file can have; others are damaged headers (a rate of 0 divides by
# zero, a huge one makes the resampler allocate gigabytes).
_PLAUSIBLE_SOURCE_RATES = range(1000, 1_536_001)
# Decoded float audio lives in -1..1; a file whose samples go this far beyond it is not audio
# (and squaring such samples overflows float32 in the model's normalisation).
MAX_SAMPLE_MAGNITUDE = 1000.0
PREROLL_SECONDS = 0.5
# Demuxers whose seeks land on estimated timestamps; for these the reader skips packets
# (reading, not decoding) from the start instead of seeking.
_INEXACT_SEEK_FORMATS = frozenset({"mp3", "mp2", "mpeg", "aac", "adts", "ac3", "eac3", "dts"})
# Errors FFmpeg/PyAV raise for bad input, besides av.FFmpegError itself.
_BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    av.FFmpegError,
    OSError,
    ValueError,
    EOFError,
    IndexError,
    UnicodeDecodeError,
)


def _plain(error: BaseException) -> str:
    """What FFmpeg (or the OS) said, without errno noise or repeated file names."""
    if isinstance(error, av.FFmpegError):
        text = error.strerror or str(error)
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return text.rstrip(".")


def _open_container(path: Path) -> av.container.InputContainer:
    """The file opened for reading as an audio container, or UndecodableAudio.

    The `file:` prefix keeps a local name such as `concat:a|b` from selecting a protocol."""
    try:
        return av.open(f"file:{path}", metadata_errors="replace", options=dict(_OPEN_OPTIONS))
    except av.FFmpegError as error:
        if error.errno in (errno.EINVAL, errno.EPERM):
            # avformat_open_input refuses a probed format or protocol off the whitelists with
            # EINVAL/EPERM before the demuxer reads anything.
            raise UndecodableAudio(
                str(path),
                "not an audio file (FFmpeg reads it as a format that is not an audio "
                "container, such as a playlist or a list of other files)",
            ) from error
        raise


class _EndOfData(Exception):
    """The data ended (EOF, or a read error after some audio) while reading a window."""


class _Reader:
    """One open file: seeks, decodes and resamples spans of the output timeline.

    Positions are sample indices on two timelines that start at the first decoded sample:
    the source timeline (source rate) and the output timeline (target rate).
    """

    def __init__(
        self, path: Path, sample_rate: int, max_decoded_seconds: float | None = None
    ) -> None:
        self.path = path
        self.target_rate = sample_rate
        self.decoded_samples = 0  # source samples decoded, all reads together
        self.max_decoded_seconds = max_decoded_seconds
        self._max_decoded_samples: int | None = None
        self.container: av.container.InputContainer | None = None
        container = self._open()
        first = self._first_frame()
        if first is None:
            raise UndecodableAudio(str(path), "no audio could be decoded (empty or damaged file)")
        frame, pts = first
        self.source_rate = int(frame.sample_rate)
        if self.source_rate not in _PLAUSIBLE_SOURCE_RATES:
            raise UndecodableAudio(str(path), f"implausible sample rate {self.source_rate} Hz")
        if max_decoded_seconds is not None:
            self._max_decoded_samples = math.ceil(max_decoded_seconds * self.source_rate)
        self.channels = len(frame.layout.channels)
        self.origin_pts = pts
        step = math.gcd(self.source_rate, self.target_rate)
        # Starting the resampler on a multiple of `src_step` source samples puts its output on
        # the same grid as a decode from the first sample: src_step source samples are exactly
        # out_step output samples.
        self.src_step = self.source_rate // step
        self.out_step = self.target_rate // step
        format_names = set(container.format.name.split(","))
        # How a read finds its start: "seek" (the demuxer seeks, frame timestamps place the
        # samples), "skip" (read packets from the start, decode from a second before the
        # pre-roll) or "count" (timestamps coarser than a sample, e.g. Matroska's
        # milliseconds, or missing: decode from the start and count samples).
        self.mode: Literal["seek", "skip", "count"] = "seek"
        if self.time_base > Fraction(1, self.source_rate) or frame.pts is None:
            self.mode = "count"
        elif format_names & _INEXACT_SEEK_FORMATS:
            self.mode = "skip"

    # --- container handling ----------------------------------------------------------------

    def _open(self) -> av.container.InputContainer:
        if self.container is not None:
            self.container.close()
        container = self.container = _open_container(self.path)
        if not container.streams.audio:
            raise UndecodableAudio(str(self.path), "the file has no audio stream")
        self.stream = container.streams.audio[0]
        self.time_base = self.stream.time_base or Fraction(1, self.stream.rate or 1)
        return container

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    @property
    def codec_name(self) -> str:
        return self.stream.codec_context.name

    @property
    def format_name(self) -> str:
        assert self.container is not None
        return self.container.format.name

    def metadata_duration(self) -> float | None:
        """Seconds from the stream or container header, None when absent or nonsense."""
        candidates: list[float] = []
        if self.stream.duration and self.stream.duration > 0:
            start = self.stream.start_time or 0
            candidates.append(
                float((self.stream.duration + start - self.origin_pts) * self.time_base)
            )
        if self.container is not None and self.container.duration:
            candidates.append(self.container.duration / av.time_base)
        for seconds in candidates:
            if math.isfinite(seconds) and seconds > 0:
                return seconds
        return None

    def _packets(self) -> Iterator[av.Packet[av.AudioStream]]:
        """Demuxed packets of the audio stream; a read error after the start ends the data."""
        assert self.container is not None
        iterator = self.container.demux(self.stream)
        while True:
            try:
                packet = next(iterator)
            except StopIteration:
                return
            except _BAD_INPUT_ERRORS as error:
                raise _EndOfData(_plain(error)) from error
            yield packet

    def _decode(self, packet: av.Packet[av.AudioStream]) -> list[av.AudioFrame]:
        try:
            frames = packet.decode()
        except _BAD_INPUT_ERRORS as error:
            # A damaged packet: skip it, as FFmpeg's own tools do, and keep going.
            self.last_error = _plain(error)
            return []
        return [f for f in frames if f.samples > 0]

    def _first_frame(self) -> tuple[av.AudioFrame, int] | None:
        self.last_error = ""
        try:
            for packet in self._packets():
                for frame in self._decode(packet):
                    return frame, frame.pts if frame.pts is not None else 0
        except _EndOfData as error:
            self.last_error = str(error)
        if self.last_error:
            raise UndecodableAudio(str(self.path), f"FFmpeg could not decode it: {self.last_error}")
        return None

    def _position_to_pts(self, source_index: int) -> int:
        return self.origin_pts + math.floor(
            Fraction(source_index, self.source_rate) / self.time_base
        )

    def _pts_to_position(self, pts: int) -> int:
        return round((pts - self.origin_pts) * self.time_base * self.source_rate)

    def _seek(self, source_index: int) -> bool:
        """Move near (at or before) `source_index`; False when the reader had to rewind."""
        if source_index <= 0 or self.mode != "seek":
            self._open()
            return False
        try:
            assert self.container is not None
            self.container.seek(
                self._position_to_pts(source_index), backward=True, stream=self.stream
            )
        except _BAD_INPUT_ERRORS:
            self._open()
            return False
        return True

    # --- reading ---------------------------------------------------------------------------

    def read_span(self, start_out: int, length_out: int) -> tuple[np.ndarray, int | None]:
        """Output samples [start_out, start_out + length_out), and the output length of the
        whole track when the data ended before the span was full (else None)."""
        preroll_src = math.floor(
            (Fraction(start_out, self.target_rate) - Fraction(PREROLL_SECONDS)) * self.source_rate
        )
        start_src = math.floor(Fraction(start_out, self.target_rate) * self.source_rate)
        aligned_src = max(0, preroll_src // self.src_step * self.src_step)
        for back_off in (0.0, 2.0, 10.0, None):
            if back_off is None:
                target = 0
            else:
                target = max(0, aligned_src - round(back_off * self.source_rate))
            sought = self._seek(target)
            result = self._read_from_seek(start_out, length_out, aligned_src, start_src, sought)
            if result is not None:
                return result
        raise UndecodableAudio(str(self.path), "seeking inside the file failed")

    def _read_from_seek(
        self,
        start_out: int,
        length_out: int,
        aligned_src: int,
        start_src: int,
        sought: bool,
    ) -> tuple[np.ndarray, int | None] | None:
        """None when the seek landed after the window start (the caller seeks further back)."""
        window = np.empty(length_out, dtype=np.float32)
        filled = 0
        end_out = start_out + length_out
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self.target_rate)
        position: int | None = None  # source index of the next decoded sample
        out_position = 0  # output index of the next resampled sample
        feeding = False

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal filled, out_position
            for out in frames:
                samples = out.to_ndarray().reshape(-1)
                lo = max(start_out, out_position)
                hi = min(end_out, out_position + samples.size)
                if hi > lo:
                    window[lo - start_out : hi - start_out] = samples[
                        lo - out_position : hi - out_position
                    ]
                    filled = hi - start_out
                out_position += samples.size

        try:
            for packet in self._packets():
                if (
                    self.mode == "skip"
                    and position is None
                    and self._skippable(packet, aligned_src)
                ):
                    # Reading from the start where seeking is inexact: packets long before the
                    # pre-roll are read but not decoded; a second of them still warms the codec.
                    continue
                for frame in self._decode(packet):
                    if position is None:
                        if self.mode == "count":
                            position = 0
                        elif frame.pts is not None:
                            position = self._pts_to_position(frame.pts)
                        else:  # no timestamps: only counting from the first sample works
                            self.mode = "count"
                            return None
                        if sought and position > min(
                            aligned_src, start_src - self.source_rate // 10
                        ):
                            return None
                    frame_start = position
                    position += frame.samples
                    self._count_decoded(frame.samples)
                    if not feeding:
                        if position <= aligned_src:
                            continue
                        # Start the resampler on the output grid: at aligned_src, or at the next
                        # grid point when the data begins later.
                        first = max(aligned_src, -(-frame_start // self.src_step) * self.src_step)
                        if first >= position:
                            continue
                        if first > frame_start:
                            frame = _trim_front(frame, first - frame_start)
                        out_position = first // self.src_step * self.out_step
                        feeding = True
                    take(resampler.resample(frame))
                    if filled >= length_out:
                        return window, None
        except _EndOfData:
            pass  # a read error after some audio: what was decoded so far is the track
        except ValueError as error:  # the resampler refuses a frame: the format changed
            raise UndecodableAudio(
                str(self.path), f"the audio changed format mid-stream ({error})"
            ) from error
        if feeding:
            take(resampler.resample(None))
        if filled >= length_out:
            return window, None
        if feeding:
            track_out = out_position
        else:
            track_out = math.ceil(Fraction(position or 0, self.source_rate) * self.target_rate)
        return window[:filled], track_out

    def _count_decoded(self, samples: int) -> None:
        self.decoded_samples += samples
        if self._max_decoded_samples is not None and self.decoded_samples > (
            self._max_decoded_samples
        ):
            raise UndecodableAudio(
                str(self.path),
                f"finding the excerpt would need more than {self.max_decoded_seconds:g} s of "
                "audio decoded (the file must be read from its start, or its length is unknown)",
            )

    def _skippable(self, packet: av.Packet, aligned_src: int) -> bool:
        if packet.pts is None or not packet.duration or aligned_src < 2 * self.source_rate:
            return False
        end = self._pts_to_position(packet.pts + packet.duration)
        return end < aligned_src - self.source_rate

    def count_output_samples(self) -> int:
        """Decode the whole file, keeping nothing, and return its length on the output grid."""
        self._open()
        total = 0
        try:
            for packet in self._packets():
                for frame in self._decode(packet):
                    total += frame.samples
                    self._count_decoded(frame.samples)
        except _EndOfData:
            pass
        return math.ceil(Fraction(total, self.source_rate) * self.target_rate)


def _trim_front(frame: av.AudioFrame, count: int) -> av.AudioFrame:
    """The frame without its first `count` samples, timestamps moved along."""
    data = frame.to_ndarray()
    if frame.format.is_planar:
        data = data[:, count:]
    else:
        data = data[:, count * len(frame.layout.channels) :]
    trimmed = av.AudioFrame.from_ndarray(
        # The data is the frame's own, so its dtype is one from_ndarray takes; PyAV's stubs
        # can't tie to_ndarray's result to the frame's format.
        np.ascontiguousarray(data),  # type: ignore[arg-type]
        format=frame.format.name,
        layout=frame.layout,
    )
    trimmed.sample_rate = frame.sample_rate
    if frame.time_base is not None:
        trimmed.time_base = frame.time_base
        if frame.pts is not None:
            trimmed.pts = frame.pts + round(Fraction(count, frame.sample_rate) / frame.time_base)
    return trimmed


def undecodable_reason(path: str | Path) -> str | None:
    """Why FFmpeg cannot decode any audio from the file, or None when it can (a cheap probe:
    the container is opened and one frame decoded)."""
    try:
        _Reader(Path(path), 24000).close()
    except UndecodableAudio as error:
        return error.detail
    except _BAD_INPUT_ERRORS as error:
        return f"FFmpeg could not read it: {_plain(error)}"
    return None


def decode_excerpt(
    path: str | Path,
    *,
    policy: ExcerptPolicy,
    sample_rate: int = 24000,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    min_duration_seconds: float = DEFAULT_MIN_DURATION_SECONDS,
    silence_rms: float = DEFAULT_SILENCE_RMS,
    max_decoded_seconds: float | None = None,
) -> DecodedAudio:
    """Decode the excerpt window(s) of one file as mono float32 at `sample_rate`.

    Raises UndecodableAudio (not audio, no audio stream, FFmpeg errors, NaN/Inf or absurdly
    large samples, more than `max_decoded_seconds` of source audio to decode), AudioTooShort
    (shorter than `min_duration_seconds`) and SilentAudio (RMS of the windows below
    `silence_rms`).
    """
    path = Path(path)
    if not path.is_file():
        raise UndecodableAudio(str(path), "no such file")
    try:
        reader = _Reader(path, sample_rate, max_decoded_seconds)
    except UndecodableAudio:
        raise
    except _BAD_INPUT_ERRORS as error:
        raise UndecodableAudio(str(path), f"FFmpeg could not read it: {_plain(error)}") from error
    try:
        return _decode_windows(
            reader, path, policy, sample_rate, window_seconds, min_duration_seconds, silence_rms
        )
    except (UndecodableAudio, AudioTooShort, SilentAudio):
        raise
    except _BAD_INPUT_ERRORS as error:
        raise UndecodableAudio(str(path), f"FFmpeg could not decode it: {_plain(error)}") from error
    finally:
        reader.close()


def _read_windows(
    reader: _Reader, starts: list[int], window_samples: int
) -> tuple[list[np.ndarray], int | None]:
    """The windows at `starts`; overlapping windows are decoded once, as one span.

    Returns (windows, None), or (partial, true track length) when the data ended early.
    """
    groups: list[list[int]] = []
    for start in starts:
        if groups and start < groups[-1][-1] + window_samples:
            groups[-1].append(start)
        else:
            groups.append([start])
    windows: list[np.ndarray] = []
    for group in groups:
        span_start, span_end = group[0], group[-1] + window_samples
        span, track_total = reader.read_span(span_start, span_end - span_start)
        if track_total is not None:
            return windows, track_total
        if len(group) == 1:
            windows.append(span)
        else:
            windows += [
                span[s - span_start : s - span_start + window_samples].copy() for s in group
            ]
    return windows, None


def _decode_windows(
    reader: _Reader,
    path: Path,
    policy: ExcerptPolicy,
    sample_rate: int,
    window_seconds: float,
    min_duration_seconds: float,
    silence_rms: float,
) -> DecodedAudio:
    window_samples = round(window_seconds * sample_rate)
    duration = reader.metadata_duration()
    duration_from: Literal["metadata", "decoded"] = "metadata"
    if duration is None:
        total = reader.count_output_samples()
        duration_from = "decoded"
    else:
        total = math.floor(duration * sample_rate + 1e-6)

    windows: list[np.ndarray] = []
    starts: list[int] = []
    for attempt in range(4):
        if attempt == 3:  # lengths that keep changing: trust nothing but a full count
            raise UndecodableAudio(str(path), "the file's length could not be determined")
        if total <= window_samples:
            # A short track is read to its end, whatever its header says about its length.
            data, track_total = reader.read_span(0, window_samples)
            if track_total is None and total < window_samples:
                # The header said "short" but the data goes on: count it and plan again.
                total, duration_from = reader.count_output_samples(), "decoded"
                continue
            if track_total is not None:
                total, duration_from = track_total, "decoded"
            windows, starts = [data], [0]
            break
        starts = policy.plan(total, window_samples)
        windows, track_total = _read_windows(reader, starts, window_samples)
        if track_total is None:
            break
        # The data ended before a window was full: now the true length is known.
        total, duration_from = track_total, "decoded"

    # duration is None only when the length was decoded; the second test says so to mypy.
    duration_seconds = (
        total / sample_rate if duration_from == "decoded" or duration is None else float(duration)
    )
    if duration_seconds < min_duration_seconds:
        raise AudioTooShort(
            str(path),
            f"{duration_seconds:.2f} s of audio, "
            f"shorter than the minimum of {min_duration_seconds:g} s",
        )
    # NaN/Inf (float WAVs can hold them) would pass the silence check (a NaN RMS compares
    # False) and come out of the model as a NaN vector. numpy's min()/max() propagate NaN and,
    # unlike abs(), copy nothing.
    extremes = [float(x) for w in windows if w.size for x in (w.min(), w.max())]
    if not all(math.isfinite(x) for x in extremes):
        raise UndecodableAudio(str(path), "the audio contains non-finite samples (NaN/Inf)")
    peak = max((abs(x) for x in extremes), default=0.0)
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise UndecodableAudio(
            str(path), f"the audio's samples reach {peak:.3g}, far outside the -1..1 range of audio"
        )
    energy = sum(float(np.dot(w, w)) for w in windows)  # no float64 copy of the windows
    rms = math.sqrt(energy / sum(w.size for w in windows))
    if rms < silence_rms:
        level = "digital silence" if rms == 0 else f"{20 * math.log10(rms):.1f} dBFS"
        threshold = 20 * math.log10(silence_rms)
        raise SilentAudio(
            str(path), f"the excerpt is silent ({level}, below the {threshold:.1f} dBFS threshold)"
        )
    return DecodedAudio(
        path=path,
        windows=windows,
        duration_seconds=duration_seconds,
        window_starts_seconds=[s / sample_rate for s in starts],
        sample_rate=sample_rate,
        source_sample_rate=reader.source_rate,
        channels=reader.channels,
        codec=reader.codec_name,
        container_format=reader.format_name,
        decoded_seconds=reader.decoded_samples / reader.source_rate,
        duration_from=duration_from,
    )


def decode_full(path: str | Path, *, sample_rate: int = 24000) -> np.ndarray:
    """The whole file as mono float32 at `sample_rate`, in one sequential pass.

    The reference the excerpt reader is checked against, and useful for short clips.
    """
    path = Path(path)
    try:
        with _open_container(path) as container:
            if not container.streams.audio:
                raise UndecodableAudio(str(path), "the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            parts = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
            parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except _BAD_INPUT_ERRORS as error:
        raise UndecodableAudio(str(path), f"FFmpeg could not decode it: {_plain(error)}") from error
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
