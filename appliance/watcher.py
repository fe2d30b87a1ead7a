"""Drop-folder watching. File-system events are hints only: a start-up rescan, a periodic rescan
and the stability tracker decide what is taken. A file is handed to the spool once its size,
mtime, inode and type have not changed for ``settle_seconds``; scanner temporary names are
ignored until renamed."""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from appliance.settings import DropFolder, IntakeSettings

log = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]  # size, mtime_ns, inode, mode


@dataclass(frozen=True)
class Candidate:
    path: Path
    folder: DropFolder
    root: Path


class StabilityTracker:
    """Remembers each entry's signature and since when it has been unchanged. An entry whose
    writer closed it (inotify IN_CLOSE_WRITE, a local write or a Samba share on this box) needs
    only ``closed_settle`` seconds unchanged after the close; others need ``settle``."""

    def __init__(self, settle_seconds: float, closed_settle_seconds: float | None = None) -> None:
        self.settle = settle_seconds
        self.closed_settle = settle_seconds if closed_settle_seconds is None else closed_settle_seconds
        self._seen: dict[Path, tuple[Signature, float, Candidate]] = {}
        self._closed: dict[Path, Signature] = {}
        self._lock = threading.Lock()

    @staticmethod
    def signature(path: Path) -> Signature | None:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)

    def observe(self, cand: Candidate, now: float, *, closed: bool = False) -> None:
        sig = self.signature(cand.path)
        with self._lock:
            if sig is None:
                self._seen.pop(cand.path, None)
                self._closed.pop(cand.path, None)
                return
            old = self._seen.get(cand.path)
            if old is None or old[0] != sig or closed:
                self._seen[cand.path] = (sig, now, cand)
            if closed:
                self._closed[cand.path] = sig
            elif cand.path in self._closed and self._closed[cand.path] != sig:
                del self._closed[cand.path]  # written again after the close

    def ready(self, now: float) -> list[Candidate]:
        """Entries unchanged for the settle time (re-checked now, so a write since the last event
        resets the clock)."""
        with self._lock:
            items = list(self._seen.items())
        out = []
        for path, (sig, since, cand) in items:
            cur = self.signature(path)
            if cur is None:
                self.forget(path)
            elif cur != sig:
                self.observe(cand, now)
            elif now - since >= (self.closed_settle if self._closed.get(path) == sig else self.settle):
                out.append(cand)
        return out

    def forget(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)
            self._closed.pop(path, None)

    def __len__(self) -> int:
        return len(self._seen)


def ignored(name: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def scan_folder(root: Path, globs: tuple[str, ...]) -> Iterator[Path]:
    """Every entry below ``root`` that may be a scan (not following symlinked folders)."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
        log.warning("cannot list drop folder %s: %s", root, e)
        return
    for entry in entries:
        if ignored(entry.name, globs):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from scan_folder(Path(entry.path), globs)
        else:
            yield Path(entry.path)


def lingering_ignored(root: Path, globs: tuple[str, ...], older_than: float) -> Iterator[tuple[Path, float]]:
    """Temporary-named entries (ignored until renamed) that have not changed for ``older_than``
    seconds: a scanner upload that never finished. Shown by ``hall status`` so that nothing sits
    unnoticed in a drop folder."""
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if ignored(entry.name, globs):
            if age >= older_than:
                yield Path(entry.path), age
        elif entry.is_dir(follow_symlinks=False):
            yield from lingering_ignored(Path(entry.path), globs, older_than)


class _OverflowListener(logging.Handler):
    """watchdog notices inotify queue overflows (events were lost) but reports them only as a log
    warning; this handler turns that warning into an immediate rescan."""

    def __init__(self, rescan_now: threading.Event) -> None:
        super().__init__(level=logging.WARNING)
        self.rescan_now = rescan_now

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.rescan_now.set()


WATCHDOG_INOTIFY_LOGGER = "watchdog.observers.inotify_c"


class _Handler(FileSystemEventHandler):
    def __init__(self, hints: queue.SimpleQueue[tuple[Path, bool]]) -> None:
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        # A writer that closed the file (IN_CLOSE_WRITE) or renamed it into place (the scanner's
        # "write to a temporary name, then rename") is done with it: the short settle applies.
        closed = event.event_type == "closed"
        if event.src_path:
            self.hints.put((Path(os.fsdecode(event.src_path)), closed))
        dest = getattr(event, "dest_path", "")
        if dest:
            self.hints.put((Path(os.fsdecode(dest)), event.event_type == "moved"))


class DropWatcher:
    """Watches the drop folders and calls ``take(candidate)`` for each settled entry."""

    def __init__(
        self,
        folders: list[tuple[DropFolder, Path]],
        settings: IntakeSettings,
        take: Callable[[Candidate], None],
    ) -> None:
        self.folders = folders
        self.settings = settings
        self.take = take
        self.tracker = StabilityTracker(settings.settle_seconds, settings.closed_settle_seconds)
        self.hints: queue.SimpleQueue[tuple[Path, bool]] = queue.SimpleQueue()
        self._observers: list[BaseObserver] = []
        self._stop = threading.Event()
        self.rescan_now = threading.Event()
        self._overflow = _OverflowListener(self.rescan_now)
        self._thread: threading.Thread | None = None

    def _candidate(self, path: Path) -> Candidate | None:
        for folder, root in self.folders:
            if path == root or root not in path.parents:
                continue
            rel = path.relative_to(root)
            if any(ignored(part, self.settings.ignore_globs) for part in rel.parts):
                return None
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    for sub in scan_folder(path, self.settings.ignore_globs):
                        self.tracker.observe(Candidate(sub, folder, root), time.monotonic())
                    return None
            except FileNotFoundError:
                return None
            return Candidate(path, folder, root)
        return None

    def rescan(self) -> None:
        now = time.monotonic()
        for folder, root in self.folders:
            for path in scan_folder(root, self.settings.ignore_globs):
                self.tracker.observe(Candidate(path, folder, root), now)

    def start(self) -> None:
        logging.getLogger(WATCHDOG_INOTIFY_LOGGER).addHandler(self._overflow)
        for folder, root in self.folders:
            root.mkdir(parents=True, exist_ok=True)
            obs: BaseObserver = (
                PollingObserver(timeout=self.settings.poll_seconds) if folder.polling else Observer()
            )
            obs.schedule(_Handler(self.hints), str(root), recursive=True)
            obs.daemon = True
            obs.start()
            self._observers.append(obs)
        self.rescan()  # start-up rescan: files that landed while the service was down
        self._thread = threading.Thread(target=self._loop, name="drop-watcher", daemon=True)
        self._thread.start()

    def poll_once(self) -> int:
        """Drain hints, rescan when due, take settled entries. Returns how many were taken."""
        now = time.monotonic()
        while True:
            try:
                path, closed = self.hints.get_nowait()
            except queue.Empty:
                break
            cand = self._candidate(path)
            if cand is not None:
                self.tracker.observe(cand, now, closed=closed)
        taken = 0
        for cand in self.tracker.ready(now):
            try:
                self.take(cand)
                taken += 1
            except Exception as e:  # no traceback: its messages carry file names (personal data)
                log.error(
                    "taking a file from %s failed (%s, errno %s); it stays there and is retried",
                    cand.folder.counter,
                    type(e).__name__,
                    getattr(e, "errno", None),
                )
            finally:
                self.tracker.forget(cand.path)
        return taken

    def _loop(self) -> None:
        last_rescan = time.monotonic()
        fastest = min(self.settings.settle_seconds, self.settings.closed_settle_seconds)
        tick = min(0.1, max(fastest / 4, 0.05))
        while not self._stop.wait(tick):
            if self.rescan_now.is_set() or time.monotonic() - last_rescan >= self.settings.rescan_seconds:
                self.rescan_now.clear()
                self.rescan()
                last_rescan = time.monotonic()
            self.poll_once()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        logging.getLogger(WATCHDOG_INOTIFY_LOGGER).removeHandler(self._overflow)
        self._stop.set()
        for obs in self._observers:
            obs.stop()
        for obs in self._observers:
            obs.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
