"""Which bytes of a song hold its excerpt, for the one kind of file where that is exact: PCM WAV.

A PCM WAV file is a header and then fixed-size sample frames, so sample n lives at
`data_offset + n * block_align`, and the decoder (ingest/audio.py) reads the duration from the
header and seeks exactly. A sparse local file holding the real header, the real tail (chunks
after the data, ID3 tags) and the real bytes around each window — holes elsewhere — decodes
to exactly the windows of the whole file: the decoder's pre-roll (0.5 s) lies inside the margin
fetched before each window. WAV is also where this matters most: it is the largest format per
minute. Every other format is downloaded whole (see subsonic.py, "What is downloaded").
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from soundalike.ingest.excerpt import ExcerptPolicy

HEADER_BYTES = 1 << 16
TAIL_BYTES = 1 << 16
# Fetched around each window: before it more than the decoder's pre-roll, after it a little.
MARGIN_BEFORE_SECONDS = 2.0
MARGIN_AFTER_SECONDS = 1.0
# A whole download is simpler and as cheap when the excerpt is most of the file.
WORTHWHILE_FRACTION = 0.6
WAV_SUFFIXES = frozenset({"wav", "wave"})
# PCM, IEEE float, and WAVE_FORMAT_EXTENSIBLE (whose subformat is PCM or float in practice;
# anything else fails the decode of the sparse file like it would the whole file).
_FRAME_FORMATS = frozenset({1, 3, 0xFFFE})


@dataclass(frozen=True)
class PcmLayout:
    """Where a WAV file's sample frames are."""

    data_offset: int
    data_size: int
    block_align: int
    sample_rate: int

    @property
    def frames(self) -> int:
        return self.data_size // self.block_align


def parse_wav_header(head: bytes, total_size: int) -> PcmLayout | None:
    """The frame layout of a RIFF/WAVE file from its first bytes, or None when the header is
    not a plain PCM/float WAV header that fits in `head` (RF64, compressed WAV, odd chunks)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position = 12
    format_tag = block_align = sample_rate = None
    while position + 8 <= len(head):
        chunk_id = head[position : position + 4]
        (size,) = struct.unpack_from("<I", head, position + 4)
        body = position + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(head):
                return None
            format_tag, _channels, sample_rate, _byte_rate, block_align = struct.unpack_from(
                "<HHIIH", head, body
            )
        elif chunk_id == b"data":
            if format_tag not in _FRAME_FORMATS or not block_align or not sample_rate:
                return None
            # A streamed WAV may say 0 or 0xFFFFFFFF; then the data runs to the end of the file.
            available = total_size - body
            data_size = size if 0 < size <= available else available
            if data_size <= 0:
                return None
            return PcmLayout(body, data_size, block_align, sample_rate)
        position = body + size + (size & 1)  # chunks are word-aligned
    return None


def worth_a_partial_read(
    duration_seconds: float, policy: ExcerptPolicy, window_seconds: float
) -> bool:
    """Whether the windows and their margins are clearly less than the whole song (as the
    server lists its duration): otherwise one whole download beats a header read first."""
    if duration_seconds <= 0:
        return False
    per_window = window_seconds + MARGIN_BEFORE_SECONDS + MARGIN_AFTER_SECONDS
    return policy.count * per_window < WORTHWHILE_FRACTION * duration_seconds


def excerpt_byte_ranges(
    layout: PcmLayout,
    total_size: int,
    *,
    policy: ExcerptPolicy,
    window_seconds: float,
    sample_rate: int,
) -> list[tuple[int, int]] | None:
    """The [start, end) byte ranges to fetch — header, tail, and each window with its margins —
    merged and sorted; None when they would be most of the file (download it whole)."""
    total_out = math.floor(layout.frames * sample_rate / layout.sample_rate + 1e-6)
    window_out = round(window_seconds * sample_rate)
    ranges = [
        (0, min(total_size, layout.data_offset)),
        (max(0, total_size - TAIL_BYTES), total_size),
    ]
    before = math.ceil(MARGIN_BEFORE_SECONDS * layout.sample_rate)
    after = math.ceil(MARGIN_AFTER_SECONDS * layout.sample_rate)
    window_src = math.ceil(window_out * layout.sample_rate / sample_rate)
    for start_out in policy.plan(total_out, window_out):
        start_src = math.floor(start_out * layout.sample_rate / sample_rate)
        first = max(0, start_src - before)
        last = min(layout.frames, start_src + window_src + after)
        ranges.append(
            (
                layout.data_offset + first * layout.block_align,
                layout.data_offset + last * layout.block_align,
            )
        )
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    if sum(end - start for start, end in merged) > WORTHWHILE_FRACTION * total_size:
        return None
    return merged
