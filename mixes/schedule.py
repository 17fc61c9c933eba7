"""The served process keeps the listener's mixes fresh: every `every_s`, after a library change
big enough to matter (`after_tracks` tracks ingested since the last run, once the store's
upkeep of that change is done), and when asked (`POST /mixes/refresh`).

One background thread runs the refreshes, one at a time; the last run (when, what, failures)
is kept in memory for `GET /mixes` and noted in the store, so a restarted server knows when
the next run is due instead of running again at every start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from soundalike.core.errors import SoundalikeError
from soundalike.core.events import (
    NO_EVENTS,
    Event,
    EventStream,
    MixesRefreshed,
    TrackStored,
    UpkeepDone,
)
from soundalike.mixes.run import MixesReport, now_iso

log = logging.getLogger("soundalike.mixes")

# Runs `refresh(trigger)` and returns its report; never raises for a failed run (the report
# says why).
Refresh = Callable[[str], MixesReport]
# A wait never longer than this: closing is noticed at once anyway (the condition is notified).
MAX_WAIT_S = 300.0


class MixesSchedule:
    """When the mixes are refreshed, and what the last refresh did."""

    def __init__(
        self,
        refresh: Refresh,
        *,
        server: str,
        every_s: float,
        after_tracks: int,
        last_run: dict[str, Any] | None = None,
        events: EventStream = NO_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`server`: the media server, as shown (no secret); `every_s`: 0 for no periodic
        refresh; `after_tracks`: 0 for none after library changes; `last_run`: the run noted
        in the store by an earlier process; `events`: where each refresh is reported
        (`MixesRefreshed`)."""
        self._refresh = refresh
        self._events = events
        self.server = server
        self.every_s = every_s
        self.after_tracks = after_tracks
        self._clock = clock
        self._changed = threading.Condition()
        self._requested: str | None = None
        self._running = False
        self._closed = False
        self._tracks_since_run = 0
        self._last_run = last_run
        self._next_at = self._first_run_at(last_run)
        self._thread: threading.Thread | None = None

    def _first_run_at(self, last_run: dict[str, Any] | None) -> float | None:
        if self.every_s <= 0:
            return None
        finished = _timestamp((last_run or {}).get("finished_at"))
        if finished is None or not (last_run or {}).get("ok"):
            return self._clock()  # never ran, or the last run failed: now
        return finished + self.every_s

    # --- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="soundalike-mixes", daemon=True)
        self._thread.start()

    def request(self, trigger: str = "request") -> None:
        """Runs a refresh as soon as the current one (if any) is over."""
        with self._changed:
            self._requested = self._requested or trigger
            self._changed.notify_all()

    def close(self) -> None:
        """Stops the schedule; a refresh under way finishes first (it writes whole playlists)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def __call__(self, event: Event) -> None:
        """A sink of the process's event stream: counts ingested tracks and asks for a refresh
        once enough changed and the store's upkeep of the change is done."""
        if self.after_tracks <= 0:
            return
        if isinstance(event, TrackStored) and event.outcome == "ingested":
            with self._changed:
                self._tracks_since_run += 1
        elif isinstance(event, UpkeepDone) and event.kind == "centroids":
            with self._changed:
                due = self._tracks_since_run >= self.after_tracks and not self._requested
            if due:
                self.request("library")

    # --- what GET /mixes shows -----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._changed:
            next_at = self._next_at
            return {
                "enabled": True,
                "server": self.server,
                "every_seconds": self.every_s or None,
                "after_tracks": self.after_tracks or None,
                "running": self._running,
                "requested": self._requested is not None,
                "next_run_at": _iso(next_at) if next_at is not None else None,
                "tracks_since_last_run": self._tracks_since_run,
                "last_run": self._last_run,
            }

    # --- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._closed and self._requested is None and not self._due():
                    self._changed.wait(self._wait_s())
                if self._closed:
                    return
                trigger = self._requested or "schedule"
                self._requested = None
                self._running = True
                self._tracks_since_run = 0
            report = self._run(trigger)
            with self._changed:
                self._running = False
                self._last_run = report.to_dict()
                self._next_at = self._clock() + self.every_s if self.every_s > 0 else None
                self._changed.notify_all()

    def _due(self) -> bool:
        return self._next_at is not None and self._clock() >= self._next_at

    def _wait_s(self) -> float:
        if self._next_at is None:
            return MAX_WAIT_S
        return min(MAX_WAIT_S, max(0.05, self._next_at - self._clock()))

    def _run(self, trigger: str) -> MixesReport:
        started, started_at = time.monotonic(), now_iso()
        try:
            report = self._refresh(trigger)
        except SoundalikeError as error:
            report = MixesReport(started_at=started_at, trigger=trigger, error=error.message)
        except Exception:  # a bug must not end the schedule; the log has the traceback
            log.exception("the mixes refresh failed")
            report = MixesReport(
                started_at=started_at,
                trigger=trigger,
                error="unexpected failure (the server's log has the details)",
            )
        if report.finished_at is None:
            report.finished_at = now_iso()
            report.seconds = round(time.monotonic() - started, 3)
        self._events.emit(
            MixesRefreshed(trigger, report.ok, len(report.mixes), report.seconds or 0.0)
        )
        level = logging.INFO if report.ok else logging.WARNING
        log.log(level, "mixes refresh (%s): %s", trigger, report.error or
                f"{len(report.mixes)} mixes written")  # fmt: skip
        return report


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
