"""Sinks of the ingest events (core/events.py): what a run *reports* is built from what the flow
emits, never written from inside it.

- `SummarySink`: the `IngestSummary` (`soundalike ingest`'s last line, its `--json`);
- `ReportSink`: `--report FILE`, one JSON line per file, appended and flushed as the run goes;
- `ProgressSink`: tqdm bars on a terminal (tracks; neighbour lists from the store's upkeep).

Each listens to one origin, so a sink subscribed to a server's shared stream hears only its run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from soundalike.core.events import (
    Event,
    EventStream,
    IngestOrigin,
    StageTimed,
    TrackFailed,
    TracksPlanned,
    TrackStored,
    UpkeepProgress,
)
from soundalike.ingest.stages import Failure

log = logging.getLogger("soundalike.ingest")


@dataclass
class IngestSummary:
    ingested: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    artists_updated: int = 0
    seconds: float = 0.0
    report_error: str | None = None
    windows: int = 0  # windows embedded
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {"decode": 0.0, "embed": 0.0, "write": 0.0}
    )

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ingested": self.ingested,
            "skipped": self.skipped,
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "artists_updated": self.artists_updated,
            "seconds": round(self.seconds, 3),
            "windows": self.windows,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }
        if self.report_error is not None:
            document["report_error"] = self.report_error
        return document


class SummarySink:
    """Counts one origin's stored, skipped and failed tracks, windows and stage times."""

    def __init__(self, origin: IngestOrigin = "cli") -> None:
        self.origin = origin
        self.summary = IngestSummary()
        self._lock = threading.Lock()  # a server's stream may emit from several threads

    def __call__(self, event: Event) -> None:
        if getattr(event, "origin", None) != self.origin:
            return
        summary = self.summary
        with self._lock:
            if isinstance(event, TrackStored):
                if event.outcome == "ingested":
                    summary.ingested += 1
                else:
                    summary.skipped += 1
            elif isinstance(event, TrackFailed):
                summary.failed.append(Failure(event.location, event.reason, event.reason_class))
            elif isinstance(event, StageTimed):
                summary.stage_seconds[event.stage] += event.seconds
                if event.stage == "embed":
                    summary.windows += event.windows


class ReportSink:
    """`--report FILE`: one JSON line per file, appended and flushed as the run goes.

    The report never stops a run: a line that cannot be written (a full disk) is cut back to the
    last whole line, the report stops, and `error` says why (the summary carries it)."""

    def __init__(self, path: Path | None, origin: IngestOrigin = "cli") -> None:
        self.path = path
        self.origin = origin
        self.error: str | None = None
        self._file: IO[bytes] | None = None
        if path is not None:
            try:
                self._file = path.open("ab")
            except OSError as error:
                self._stop(f"cannot open {path}: {error.strerror or error}")

    def __call__(self, event: Event) -> None:
        if getattr(event, "origin", None) != self.origin:
            return
        if isinstance(event, TrackStored):
            reason = "already stored" if event.outcome == "skipped" else None
            self.write(event.location, event.outcome, event.track_id, event.artist, reason)
        elif isinstance(event, TrackFailed):
            self.write(event.location, "failed", event.track_id, event.artist, event.reason)

    def write(
        self, path: str, status: str, track: str | None, artist: str | None, reason: str | None
    ) -> None:
        if self._file is None:
            return
        line = {
            "path": path,
            "track_id": track,
            "artist": artist,
            "status": status,
            "reason": reason,
        }
        encoded = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        start = self._file.tell()
        try:
            self._file.write(encoded)
            self._file.flush()
        except OSError as error:
            self._truncate(start)
            self._stop(f"writing {self.path} failed: {error.strerror or error}")

    def _truncate(self, size: int) -> None:
        try:
            assert self._file is not None
            self._file.truncate(size)
        except (OSError, ValueError):
            pass  # the next writer appends after whatever survived; lines stay line-delimited

    def _stop(self, why: str) -> None:
        self.error = f"{why}; the report stopped there, the ingest went on"
        log.warning("%s", self.error)  # the summary carries it too
        self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class ProgressSink:
    """tqdm bars on stderr: the tracks planned and done (failures counted beside), and the
    neighbour lists from the store's `UpkeepProgress`. Draws nothing when disabled (pipes,
    `--json`)."""

    def __init__(self, enabled: bool, origin: IngestOrigin = "cli") -> None:
        self.enabled = enabled
        self.origin = origin
        self.failures = 0
        self._tracks: Any = None
        self._lists: Any = None

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, UpkeepProgress):
            if event.kind == "neighbour_lists":
                self._lists = self._lists or _bar("artist", "neighbour lists", event.total)
                self._lists.update(event.done - self._lists.n)
            return
        if getattr(event, "origin", None) != self.origin:
            return
        if isinstance(event, TracksPlanned):
            self._tracks = self._tracks or _bar("track", None, 0)
            self._tracks.total += event.count
            self._tracks.refresh()
        elif isinstance(event, TrackStored) and event.outcome == "ingested":
            if self._tracks is not None:
                self._tracks.update(1)
        elif (
            isinstance(event, TrackFailed)
            and self._tracks is not None
            # Only planned tracks move the bar; listing and metadata failures were never in it.
            and event.reason_class not in ("listing", "metadata")
        ):
            self.failures += 1
            self._tracks.set_postfix(failed=self.failures)
            self._tracks.update(1)

    def close(self) -> None:
        for bar in (self._tracks, self._lists):
            if bar is not None:
                bar.close()
        self._tracks = self._lists = None


def _bar(unit: str, description: str | None, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=description, file=sys.stderr, dynamic_ncols=True)


@contextlib.contextmanager
def listening(
    events: EventStream,
    *,
    origin: IngestOrigin = "cli",
    report_path: Path | None = None,
    progress: bool = False,
) -> Iterator[SummarySink]:
    """Subscribes a run's summary, report and progress sinks to `events` for the block, and
    removes them after (the summary keeps the report's error)."""
    summary = SummarySink(origin)
    report = ReportSink(report_path, origin)
    bar = ProgressSink(progress, origin)
    removals = [events.subscribe(sink) for sink in (summary, report, bar)]
    try:
        yield summary
    finally:
        for remove in removals:
            remove()
        bar.close()
        report.close()
        summary.summary.report_error = report.error
