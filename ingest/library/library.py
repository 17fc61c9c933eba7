"""The live library's scheduler: scan at start, follow events, rescan periodically, report.

One worker thread does every write (the store sees one writer; queries read concurrently);
embedding runs there and decoding in the pipeline's decoder processes, never on the server's
event loop. A watcher thread turns file-system events (watchfiles: inotify, FSEvents) into
pending paths; the worker waits until they have been quiet for `debounce_seconds` (a copied
album arrives as one batch) and files modified more recently than that wait for the next round.
A periodic full rescan catches what mounts without events (NFS, SMB) never announce.

A root that disappears (an unmounted disk) keeps its tracks: it is reported as missing, and
scanned again when it comes back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from soundalike.core.errors import InvalidRequest, SoundalikeError
from soundalike.core.events import (
    Event,
    EventStream,
    LibraryChanged,
    TrackFailed,
    TracksPlanned,
    TrackStored,
)
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.library.files import (
    LibraryConfig,
    LibrarySource,
    Listing,
    RootRules,
    absolute,
    is_within,
)
from soundalike.ingest.library.sync import SyncResult, sync_batch
from soundalike.ingest.sources.base import displayable
from soundalike.search.store import Store

log = logging.getLogger("soundalike.library")

State = Literal["off", "scanning", "watching", "idle"]
RECENT_FAILURES = 20
# How often the worker looks at missing roots, due rescans and quiet event batches.
TICK_SECONDS = 0.25
# After an unexpected error a batch is retried this much later (a store that went away).
RETRY_SECONDS = 30.0
# The library's work (decoding, embedding, writing) yields the CPU to queries: nice 10 weighs
# about a tenth of a default-priority thread in Linux's scheduler.
LIBRARY_NICENESS = 10
# Niceness does not reach the GIL: a query thread waits for the library's Python code up to the
# interpreter's switch interval (5 ms by default) each time it gives the GIL up (a store call),
# which set the p99 during a scan. 0.2 ms bounds that wait (docs/benchmarks.md, "Live library").
LIBRARY_SWITCH_INTERVAL_S = 0.0002


def lower_this_threads_priority(niceness: int | None = None) -> bool:
    """Queries come first: the calling thread runs at a lower CPU priority, and so do the
    decoder processes and torch worker threads it starts afterwards (Linux gives a new thread
    or process its creator's niceness). Linux only, where niceness is per thread; elsewhere it
    would slow the whole server down, so nothing changes there. True when it was lowered."""
    if sys.platform != "linux":
        return False
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(current, niceness or LIBRARY_NICENESS))
    except OSError as exc:
        log.debug("library: could not lower its CPU priority: %s", exc)
        return False
    return True


class LibraryOff(SoundalikeError):
    """The server follows no library folders."""


@dataclass
class LibraryStatus:
    state: State
    roots: list[str]
    files_seen: int
    queued: int
    ingested: int
    failed: int
    removed: int
    last_scan_started: str | None
    last_scan_finished: str | None
    eta_seconds: float | None
    failures: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


class Library:
    """Keeps the store in sync with the configured folders. `start()` returns at once; the
    first scan runs in the background. `close()` stops the threads (a batch in progress stops
    after its current file; what was written is durable)."""

    def __init__(
        self,
        config: LibraryConfig,
        *,
        store: Callable[[], Store],
        engine: Callable[[], VectorEngine],
        events: EventStream | None = None,
    ) -> None:
        self.config = config
        # The process's stream (Services.events): the batches emit their tracks there, and the
        # status below is kept from what this library hears (`_on_event`). Run on its own, a
        # library listens to a stream of its own.
        self.events = events if events is not None else EventStream()
        self._unsubscribe: Callable[[], None] | None = None
        self._switch_interval: float | None = None  # the interpreter's, restored by close()
        self._store = store
        self._engine = engine
        self._engine_cached: VectorEngine | None = None
        self._roots: list[Path] = list(config.roots)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Work
        self._full_scans: list[Path] = list(self._roots)
        self._changed: dict[str, float] = {}  # path -> time of its last event
        self._last_event = 0.0
        self._next_rescan = time.monotonic() + config.rescan_seconds
        self._missing: set[Path] = set()
        # Status
        self._hashes: dict[str, tuple[tuple[int, int], str]] = {}
        self._known: dict[str, tuple[int, int]] = {}  # location -> signature when last stored
        self._seen: set[str] = set()
        self._failures: OrderedDict[str, str] = OrderedDict()
        self._scanning = False
        self._queued_in_batch = 0
        self._done_in_batch = 0
        self._batch_started = 0.0
        self._ingested = 0
        self._removed = 0
        self._scan_started: float | None = None
        self._scan_finished: float | None = None
        self.version = 0  # bumped on every status change (server-sent events watch it)

    # --- lifetime --------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self._roots)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        if not self.enabled or self._threads:
            return
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, LIBRARY_SWITCH_INTERVAL_S))
        if self._unsubscribe is None:
            self._unsubscribe = self.events.subscribe(self._on_event)
        self._spawn(self._work, "soundalike-library")
        if self.config.watch:
            self._spawn(self._watch, "soundalike-library-watch")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(60)
        self._threads.clear()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        # The switch interval is the process's: what start() changed is given back (the
        # threads' niceness is theirs and ends with them).
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    # --- requests ----------------------------------------------------------------------------

    def request_scan(self, path: str | None = None) -> None:
        """Rescan every root now, or only `path` (a folder or file under a root; a new root
        when the settings allow adding roots)."""
        if path is None:
            if not self.enabled:
                raise LibraryOff("the server follows no library folders (SOUNDALIKE_LIBRARY)")
            with self._lock:
                self._full_scans = list(self._roots)
                self._changed_version()
            return
        target = absolute(path)
        root = self._root_of(target)
        if root is None:
            if not self.config.allow_new_roots:
                if not self.enabled:
                    raise LibraryOff(
                        "the server follows no library folders and may not add any "
                        "(SOUNDALIKE_LIBRARY_ALLOW_NEW_ROOTS)"
                    )
                raise InvalidRequest(
                    f"{displayable(str(target))} is not under the server's library folders "
                    f"({', '.join(str(r) for r in self._roots)}), and the server may not add "
                    "folders (SOUNDALIKE_LIBRARY_ALLOW_NEW_ROOTS)"
                )
            if not target.is_dir():
                raise InvalidRequest(f"{displayable(str(target))}: not a folder on the server")
            with self._lock:
                self._roots.append(target)
                self._full_scans.append(target)
                self._changed_version()
            self.start()
            return
        if not os.path.lexists(target):
            raise InvalidRequest(f"{displayable(str(target))}: no such file or folder")
        with self._lock:
            self._changed[str(target)] = 0.0  # no debounce: asked for explicitly
            self._changed_version()

    def _root_of(self, path: Path) -> Path | None:
        for root in self._roots:
            if is_within(str(path), str(root)):
                return root
        return None

    # --- status ------------------------------------------------------------------------------

    def status(self) -> LibraryStatus:
        with self._lock:
            state = self._state()
            remaining = max(self._queued_in_batch - self._done_in_batch, 0)
            queued = remaining + len(self._changed)
            eta: float | None = None
            if self._scanning and self._done_in_batch > 0:
                rate = self._done_in_batch / max(time.monotonic() - self._batch_started, 1e-3)
                eta = round(remaining / rate, 1)
            recent = list(self._failures.items())[-RECENT_FAILURES:][::-1]
            return LibraryStatus(
                state=state,
                roots=[displayable(str(r)) for r in self._roots],
                files_seen=len(self._seen),
                queued=queued,
                ingested=self._ingested,
                failed=len(self._failures),
                removed=self._removed,
                last_scan_started=_iso(self._scan_started),
                last_scan_finished=_iso(self._scan_finished),
                eta_seconds=eta,
                failures=[{"path": p, "reason": r} for p, r in recent],
            )

    def failures(self, *, limit: int, offset: int) -> tuple[list[dict[str, str]], int]:
        """One page of the current failures, most recent first, and how many there are."""
        with self._lock:
            ordered = list(self._failures.items())[::-1]
        page = ordered[offset : offset + limit]
        return [{"path": p, "reason": r} for p, r in page], len(ordered)

    def _changed_version(self) -> None:
        # Called with the lock held.
        self.version += 1
        self._lock.notify_all()
        self.events.emit(LibraryChanged(self._state()))

    def _state(self) -> State:
        # Called with the lock held.
        if not self.enabled:
            return "off"
        if self._scanning or self._full_scans:
            return "scanning"
        return "watching" if self.config.watch else "idle"

    def _on_event(self, event: Event) -> None:
        """The status's batch progress, from the tracks the flow emits for the library."""
        if getattr(event, "origin", None) != "library":
            return
        with self._lock:
            if isinstance(event, TracksPlanned):
                self._queued_in_batch += event.count
                self._changed_version()
            elif isinstance(event, TrackStored) and event.outcome == "ingested":
                self._done_in_batch += 1
                self._ingested += 1
                self._failures.pop(event.location, None)
                # Throttled: server-sent events poll the version a few times a second anyway.
                self.version += 1
            elif isinstance(event, TrackFailed) and event.reason_class not in (
                "listing",
                "metadata",
            ):
                self._done_in_batch += 1  # a planned file is done, failed
                self.version += 1

    def wait_idle(self, timeout: float) -> bool:
        """Blocks until nothing is queued or scanning (tests, `ingest --server`)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._scanning or self._full_scans or self._changed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, TICK_SECONDS))
        return True

    # --- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        lower_this_threads_priority()
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the library keeps following; the log has it
                log.exception("library batch failed; retrying in %.0f s", RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)

    def _step(self) -> None:
        self._check_roots()
        with self._lock:
            now = time.monotonic()
            if now >= self._next_rescan:
                self._next_rescan = now + self.config.rescan_seconds
                for scan_root in self._roots:
                    if scan_root not in self._full_scans:
                        self._full_scans.append(scan_root)
            root = self._full_scans[0] if self._full_scans else None
            batch: list[str] = []
            quiet = now - self._last_event >= self.config.debounce_seconds
            if root is None and self._changed and quiet:
                batch = list(self._changed)
                self._changed.clear()
            if root is None and not batch:
                self._lock.wait(TICK_SECONDS)
                return
            self._scanning = True
            self._changed_version()
        done = False
        try:
            if root is not None:
                self._full_scan(root)
            else:
                self._event_batch(batch)
            done = True
        except SoundalikeError as error:
            # A store that refuses (another model's catalogue, a server that is down): said in
            # the status, and the same work is tried again later.
            log.warning("library: %s; retrying in %.0f s", error.message, RETRY_SECONDS)
            with self._lock:
                for where in [root] if root is not None else self._roots:
                    self._fail(displayable(str(where)), f"cannot ingest: {error.message}")
            self._stop.wait(RETRY_SECONDS)
        finally:
            with self._lock:
                if not done and root is None:
                    for path in batch:
                        self._changed.setdefault(path, time.monotonic())
                if done and root is not None and root in self._full_scans:
                    self._full_scans.remove(root)
                self._scanning = False
                self._queued_in_batch = self._done_in_batch = 0
                self._changed_version()

    def _check_roots(self) -> None:
        for root in list(self._roots):
            present = root.is_dir()
            with self._lock:
                if not present and root not in self._missing:
                    self._missing.add(root)
                    self._fail(
                        displayable(str(root)),
                        "library folder missing (unmounted?): its tracks are kept until it "
                        "comes back",
                    )
                    if root in self._full_scans:
                        self._full_scans.remove(root)
                elif present and root in self._missing:
                    self._missing.discard(root)
                    self._failures.pop(displayable(str(root)), None)
                    if root not in self._full_scans:
                        self._full_scans.append(root)
                    self._changed_version()

    def _full_scan(self, root: Path) -> None:
        rules = RootRules(root, self._config_now())
        started = time.time()
        with self._lock:
            self._scan_started = started
            self._batch_started = time.monotonic()
        listing = rules.list_tree()
        if not root.is_dir():  # vanished while listed: keep its tracks
            return
        if _empty(root):
            # An unmounted disk often leaves its empty mount point behind: keep the tracks.
            with self._lock:
                self._fail(
                    displayable(str(root)),
                    "library folder is empty (unmounted?): its tracks are kept; they are "
                    "removed once it holds files again and theirs are gone",
                )
            return
        result = self._run(root, listing, [str(root)], full_scan=True)
        if result is not None and not result.stopped:
            with self._lock:
                self._scan_finished = time.time()

    def _event_batch(self, paths: list[str]) -> None:
        by_root: dict[Path, list[Path]] = {}
        for text in paths:
            path = Path(text)
            root = self._root_of(path)
            if root is not None and root not in self._missing:
                by_root.setdefault(root, []).append(path)
        for root, changed in by_root.items():
            if not root.is_dir() or _empty(root):
                continue  # gone or unmounted: its tracks stay (the next full scan reports it)
            rules = RootRules(root, self._config_now())
            listing = Listing()
            scope: list[str] = []
            for path in _outermost(changed):
                scope.append(str(path))
                part = rules.changed(path)
                listing.files += part.files
                listing.problems += part.problems
            self._run(root, listing, scope, full_scan=False)

    def _config_now(self) -> LibraryConfig:
        # Roots may have been added over HTTP: symlinks into them are inside the library.
        config = self.config
        return LibraryConfig(
            roots=tuple(self._roots),
            artist_from=config.artist_from,
            exclude=config.exclude,
            follow_symlinks=config.follow_symlinks,
        )

    def _run(
        self, root: Path, listing: Listing, scope: list[str], *, full_scan: bool
    ) -> SyncResult | None:
        # Files already stored and unchanged since (same size and mtime) are not read again.
        unchanged = [
            p
            for p in listing.files
            if self._known.get(displayable(str(p))) is not None
            and self._known.get(displayable(str(p))) == _signature(p)
        ]
        unchanged_set = set(unchanged)
        source = LibrarySource(
            root,
            [p for p in listing.files if p not in unchanged_set],
            artist_from=self.config.artist_from,
            hashes=self._hashes,
            scope=scope,
            problems=listing.problems,
            unchanged=[displayable(str(p)) for p in unchanged],
            settle_seconds=self.config.debounce_seconds,
        )
        with self._lock:
            self._batch_started = time.monotonic()
        result = sync_batch(
            self._store(),
            self._engine_once,
            source,
            self.events,
            workers=self.config.workers,
            full_scan=full_scan,
            stop=self._stop,
        )
        self._record(result, scope)
        return result

    def _engine_once(self) -> VectorEngine:
        if self._engine_cached is None:
            self._engine_cached = self._engine()
        return self._engine_cached

    def _record(self, result: SyncResult, scope: list[str]) -> None:
        scope_shown = [displayable(s) for s in scope]
        with self._lock:
            # This batch speaks for its scope: earlier failures there are replaced by its own.
            for location in [p for p in self._failures if _inside(p, scope_shown)]:
                del self._failures[location]
            for location in [p for p in self._seen if _inside(p, scope_shown)]:
                self._seen.discard(location)
            for location in [p for p in self._known if _inside(p, scope_shown)]:
                if location not in result.listed:
                    del self._known[location]
            self._seen |= result.listed
            self._known.update(result.stored)
            for failure in result.failed:
                self._fail(failure.path, failure.reason)
                self._known.pop(failure.path, None)
            self._removed += len(result.removed)
            for path in result.deferred:
                self._changed[str(path)] = time.monotonic()
                self._last_event = time.monotonic()
            self._changed_version()
        if result.removed:
            log.debug("library: removed %s (scope %s)", result.removed, scope)
        if result.ingested or result.removed or result.moved:
            log.info(
                "library: %d ingested, %d moved, %d removed, %d failed, %d artists updated",
                len(result.ingested),
                len(result.moved),
                len(result.removed),
                len(result.failed),
                result.artists_updated,
            )

    def _fail(self, location: str, reason: str) -> None:
        # Called with the lock held; most recent last.
        self._failures.pop(location, None)
        self._failures[location] = reason
        self.version += 1

    # --- the watcher -------------------------------------------------------------------------

    def _watch(self) -> None:
        import watchfiles

        previous: list[Path] | None = None  # None: the first start (its scan is queued)
        while not self._stop.is_set():
            watched = [r for r in self._roots if r.is_dir()]
            if not watched:
                self._stop.wait(1.0)
                continue
            if previous is not None:
                # A root watched anew (added, or back): what changed before its watch began is
                # found by a scan, queued once the watch is being set up.
                with self._lock:
                    for root in watched:
                        if root not in previous and root not in self._full_scans:
                            self._full_scans.append(root)
                    self._changed_version()
            previous = watched
            try:
                for changes in watchfiles.watch(
                    *watched,
                    stop_event=self._stop,
                    debounce=200,
                    step=50,
                    rust_timeout=1000,
                    yield_on_timeout=True,
                    recursive=True,
                    ignore_permission_denied=True,
                    raise_interrupt=False,
                    watch_filter=None,  # hidden and excluded files are the listing's to skip
                ):
                    if changes:
                        self._note_events(path for _, path in changes)
                    # A root that went or came back, or a root added: watch the new set.
                    if [r for r in self._roots if r.is_dir()] != watched:
                        break
            except Exception as error:  # noqa: BLE001 - e.g. a root removed under the watcher
                log.warning("library watcher restarting: %s", error)
                self._stop.wait(1.0)

    def _note_events(self, paths: Any) -> None:
        now = time.monotonic()
        with self._lock:
            for path in paths:
                self._changed[str(path)] = now
            self._last_event = now
            self._changed_version()


def _signature(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns
    return None


def _empty(folder: Path) -> bool:
    try:
        return not any(os.scandir(folder))
    except OSError:
        return False


def _inside(location: str, scope: list[str]) -> bool:
    return any(is_within(location, s) for s in scope)


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths none of whose ancestors is also in the list (one walk covers the rest)."""
    chosen: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(is_within(str(path), str(c)) for c in chosen):
            chosen.append(path)
    return chosen
