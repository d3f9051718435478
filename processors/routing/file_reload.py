"""Watching a file: a value parsed from it, re-parsed when the file changes, without a restart.

The mechanics the hot-reloaded policy and the hot-reloaded classifier share.
`FileReloader(path, parse)` holds `parse(bytes, stamp)`'s result for the file
at `path`; `current()` returns it and is cheap enough to call per message: a
clock read and a comparison, almost always. At most every `check_every_s`
seconds it also stats the file, and only when the stamp (modification time,
size, inode) changed is the file read and parsed. A good parse replaces the
value in one reference assignment (an atomic swap: a caller sees wholly the
old value or wholly the new one). A bad file — one `parse` raises one of
`errors` for, or that cannot be read — is refused: the last good value stays
in force, the refused stamp is not tried again, and the next change is. A
file that disappears also leaves the last good value in force.

A file whose stamp changes while it is read is being written: it is neither
taken nor refused, and is looked at again at the next check. Writers should
still replace the file atomically (write a temporary file, rename it over the
old one); the re-stat only catches most non-atomic writers.

The first load must succeed: a bad file at start is a configuration error,
and its exception propagates. What the owner says about a reload or a refusal
(log lines) is its own business: the `on_reload` and `on_refuse` hooks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

Clock = Callable[[], float]
#: a file's (modification time in ns, size, inode): a change in any one is a new file
Stamp = tuple[int, int, int]


def stamp_of(path: Path) -> Stamp:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class FileReloader(Generic[T]):
    """`parse(content, stamp)` of the file at `path`, re-parsed when it changes.

    `on_reload(value)` is called after a swap; `on_refuse(why, stamp)` on every
    refusal, before `last_error` takes the new reason (so a hook can tell a new
    reason from a repeated one), with the refused file's stamp (None when it
    could not even be stat'ed).
    """

    def __init__(
        self,
        path: Path,
        parse: Callable[[bytes, Stamp], T],
        *,
        check_every_s: float = 5.0,
        errors: tuple[type[Exception], ...] = (ValueError,),
        clock: Clock = time.monotonic,
        on_reload: Callable[[T], None] | None = None,
        on_refuse: Callable[[str, Stamp | None], None] | None = None,
    ) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._parse = parse
        self._errors: tuple[type[Exception], ...] = (OSError, *errors)
        self._clock = clock
        self._on_reload = on_reload
        self._on_refuse = on_refuse
        self._lock = threading.Lock()
        self.reloads = 0
        #: why the last attempted reload was refused (None after a good one)
        self.last_error: str | None = None
        stamp = stamp_of(path)
        self._value = parse(path.read_bytes(), stamp)
        self.stamp: Stamp | None = stamp
        self._refused: Stamp | None = None
        self._next_check = clock() + check_every_s

    def current(self) -> T:
        """The value in force. Cheap; at most every `check_every_s` it also stats the file."""
        if self._clock() >= self._next_check:
            self.check()
        return self._value

    @property
    def value(self) -> T:
        """The value in force, without looking at the file."""
        return self._value

    def check(self) -> bool:
        """Look at the file now; True when a new value was swapped in."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is checking right now
        try:
            self._next_check = self._clock() + self.check_every_s
            return self._reload_if_changed()
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> bool:
        try:
            stamp = stamp_of(self.path)
            if stamp == self.stamp or stamp == self._refused:
                return False
            content = self.path.read_bytes()
            if stamp_of(self.path) != stamp:
                return False  # still being written: try again at the next check
            value = self._parse(content, stamp)
        except self._errors as exc:
            self._refuse(str(exc))
            return False
        self._value = value  # the swap: one reference assignment
        self.stamp = stamp
        self._refused = None
        self.last_error = None
        self.reloads += 1
        if self._on_reload is not None:
            self._on_reload(value)
        return True

    def _refuse(self, why: str) -> None:
        try:
            refused: Stamp | None = stamp_of(self.path)
        except OSError:
            refused = None
        if self._on_refuse is not None:
            self._on_refuse(why, refused)
        self.last_error = why
        self._refused = refused
